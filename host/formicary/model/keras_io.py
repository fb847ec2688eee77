"""Recognise, load and save Keras models; reproducible TensorFlow set-up.

Model files are recognised from their bytes before TensorFlow is imported, so a wrong or truncated file fails
fast with a clear message. tfmot (pruning, clustering, QAT) only works on tf_keras (Keras 2) models, hence
tf_keras everywhere; Keras 3 files and SavedModels without Keras metadata are recognised here (`flavour`) and
handled by formicary.model.keras3 (direct quantization; rebuilt in tf_keras for tfmot).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from formicary.errors import FormicaryError

ModelKind = Literal["tflite", "keras", "h5", "savedmodel"]
# Who wrote a Keras-kind file: tf_keras (Keras 2), Keras 3, or nobody (a SavedModel with only a traced graph).
Flavour = Literal["tf_keras", "keras3", "graph"]

_KERAS3_FIX = ("tfmot (pruning, clustering, QAT) needs Keras 2: rebuild or load the model with tf_keras "
               "(`import tf_keras as keras`, or TF_USE_LEGACY_KERAS=1 before importing TensorFlow) and save it "
               "again with model.save('model.keras'); or convert it to .tflite yourself and pass that file.")
_MODEL_FORMATS = "a tf_keras model (.keras, .h5, SavedModel directory) or a .tflite flatbuffer"


@dataclass
class ModelFile:
    path: Path
    kind: ModelKind
    keras_version: str | None = None
    flavour: Flavour = "tf_keras"


def identify(path: str | Path) -> ModelFile:
    """What kind of model `path` is, from its bytes; FormicaryError for missing, foreign, truncated or Keras 3."""
    p = Path(path)
    if not p.exists():
        raise FormicaryError(f"model not found: {p}", f"pass {_MODEL_FORMATS}.")
    if p.is_dir():
        return _identify_savedmodel(p)
    head = _head(p, 8)
    if len(head) >= 8 and head[4:8] == b"TFL3":
        return ModelFile(p, "tflite")
    if head.startswith(b"PK"):
        return _identify_keras_zip(p)
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return _identify_h5(p)
    if p.suffix in (".keras", ".h5", ".hdf5", ".tflite"):
        raise FormicaryError(f"{p.name} is not a valid {p.suffix} model: its header is wrong or the file is "
                             f"truncated ({p.stat().st_size} bytes)",
                             "re-export the model; check that the file was copied completely.")
    raise FormicaryError(f"{p.name} is not a model file (unrecognised contents)", f"pass {_MODEL_FORMATS}.")


def _head(p: Path, n: int) -> bytes:
    with p.open("rb") as fh:
        return fh.read(n)


def _identify_keras_zip(p: Path) -> ModelFile:
    try:
        with zipfile.ZipFile(p) as zf:
            names = set(zf.namelist())
            if "config.json" not in names:
                raise FormicaryError(f"{p.name} is a zip archive but not a Keras model (no config.json)",
                                     f"pass {_MODEL_FORMATS}.")
            meta = json.loads(zf.read("metadata.json")) if "metadata.json" in names else {}
            bad = zf.testzip()
    except zipfile.BadZipFile as exc:
        raise FormicaryError(f"{p.name} is truncated or corrupt ({exc})",
                             "re-save the model; check that the file was copied completely.") from exc
    if bad is not None:
        raise FormicaryError(f"{p.name} is corrupt (member {bad} fails its checksum)", "re-save the model.")
    version = str(meta.get("keras_version", "")) or None
    return ModelFile(p, "keras", version, _flavour(version))


def _identify_h5(p: Path) -> ModelFile:
    import h5py  # comes with TensorFlow but imports quickly on its own

    try:
        with h5py.File(p, "r") as f:
            version = f.attrs.get("keras_version")
            has_config = "model_config" in f.attrs
    except OSError as exc:
        raise FormicaryError(f"{p.name} is truncated or corrupt: {exc}",
                             "re-save the model; check that the file was copied completely.") from exc
    version = version.decode() if isinstance(version, bytes) else (str(version) if version is not None else None)
    if not has_config:
        raise FormicaryError(f"{p.name} is an HDF5 file without a model config (weights only?)",
                             "save the whole model: model.save('model.h5') or, better, model.save('model.keras').")
    return ModelFile(p, "h5", version, _flavour(version))


def _identify_savedmodel(p: Path) -> ModelFile:
    if not (p / "saved_model.pb").is_file():
        raise FormicaryError(f"{p} is a directory but not a SavedModel (no saved_model.pb)",
                             f"pass {_MODEL_FORMATS}.")
    if not (p / "keras_metadata.pb").is_file():
        # Keras 3 `model.export()` and tf.saved_model.save write no Keras metadata: a traced graph only,
        # quantized from its serving signature, nothing tfmot can wrap.
        return ModelFile(p, "savedmodel", None, "graph")
    return ModelFile(p, "savedmodel")


def _flavour(version: str | None) -> Flavour:
    from formicary.model.keras3 import is_keras3_version

    return "keras3" if is_keras3_version(version) else "tf_keras"


# TensorFlow's C++ start-up and tf.data chatter (absl INFO lines, missing CUDA, a harmless NodeDef attribute
# mismatch) that TF_CPP_MIN_LOG_LEVEL cannot silence because it is printed before logging is initialised.
# The Grappler MLIR hook lines come from graphs with a separate Activation after an Add (LoRA's adapter branches):
# the hook skips that pass and TensorFlow carries on with the classic optimiser, results unchanged.
_NATIVE_NOISE = re.compile(
    r"^(WARNING: All log messages before absl|[IW]\d{4} |E\d{4} .*(cuInit|cuda|NodeDef mentions attribute"
    r"|tfg_optimizer_hook)|\s*when importing GraphDef to MLIR module in GrapplerHook"
    r"|.*oneDNN custom operations|.*Could not find cuda drivers)")


_TERMINAL = None


@contextlib.contextmanager
def quiet_native_logs() -> Iterator[None]:
    """Drop TensorFlow's known native log noise from fd 2 while keeping Python's stderr (progress, warnings)
    on the terminal; any other native output is passed through afterwards, so real errors are never lost."""
    global _TERMINAL
    sys.stderr.flush()
    saved = os.dup(2)
    if _TERMINAL is None or _same_file(_TERMINAL.fileno(), 2) is False:
        # A stream on the current stderr, never closed: logging handlers created inside the block keep it.
        _TERMINAL = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
    old_stderr = sys.stderr
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        sys.stderr = _TERMINAL
        try:
            yield
        finally:
            sys.stderr.flush()
            sys.stderr = old_stderr
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            kept = [ln for ln in sink.read().decode("utf-8", "replace").splitlines()
                    if ln.strip() and not _NATIVE_NOISE.match(ln)]
            if kept:
                print("\n".join(kept), file=sys.stderr)


def _same_file(fd_a: int, fd_b: int) -> bool:
    a, b = os.fstat(fd_a), os.fstat(fd_b)
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def import_tensorflow():
    """Import TensorFlow (once) without its start-up noise."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    with quiet_native_logs():
        import tensorflow
    return tensorflow


def make_deterministic(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and turn on deterministic ops, so the same seed gives the same bytes."""
    os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
    tf = import_tensorflow()
    import tf_keras

    with quiet_native_logs():  # the first TF call initialises devices and complains about CUDA
        _single_thread(tf)
        tf_keras.backend.clear_session()  # fresh layer-name counters: names end up in the .tflite
        tf_keras.utils.set_random_seed(seed)
        tf.config.experimental.enable_op_determinism()
        tf.constant(0)  # initialise the devices here, inside the quiet block


def _single_thread(tf: Any) -> None:
    # Thread-pool sizes can only be set before TensorFlow initialises its runtime; after that the call
    # raises and op determinism alone has to do (it makes reductions order-independent of threading).
    try:
        tf.config.threading.set_inter_op_parallelism_threads(1)
        tf.config.threading.set_intra_op_parallelism_threads(1)
    except RuntimeError:
        pass


def load_keras_model(model_file: ModelFile) -> Any:
    """Load a tf_keras model (compile state kept, so its loss can be reused for fine-tuning); a Keras 3 file
    as a Keras 3 model, a SavedModel without Keras metadata as a keras3.GraphModel (see formicary.model.keras3)."""
    if model_file.flavour != "tf_keras":
        from formicary.model import keras3

        return keras3.load(model_file.path) if model_file.flavour == "keras3" else keras3.GraphModel(model_file.path)
    import tf_keras

    try:
        import tensorflow_model_optimization as tfmot

        # Models saved mid-way through pruning/QAT carry tfmot wrappers; register them.
        with tfmot.quantization.keras.quantize_scope():
            model = tf_keras.models.load_model(model_file.path)
    except FormicaryError:
        raise
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for unreadable models
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "Unknown layer" in msg or "could not be deserialized" in msg or "custom" in msg.lower():
            fix = ("the model uses custom layers/objects: load it in your own code with custom_objects and "
                   "convert it to .tflite, or save it with only built-in layers.")
        else:
            fix = "re-save the model with tf_keras (model.save('model.keras')) and try again."
        raise FormicaryError(f"cannot load {model_file.path.name} with tf_keras: {msg}", fix) from exc
    if not isinstance(model, tf_keras.Model):
        raise FormicaryError(f"{model_file.path.name} did not load as a tf_keras model", _KERAS3_FIX)
    return model


def load_for_training(model_file: ModelFile, what: str) -> Any:
    """A tf_keras model for a stage that trains it through tf_keras (`what`, e.g. "formicary adapt"): a Keras 3
    file is rebuilt in tf_keras (outputs checked, see formicary.model.keras3); a SavedModel graph is refused."""
    model = load_keras_model(model_file)
    if model_file.flavour == "tf_keras":
        return model
    from formicary.model import keras3

    if model_file.flavour == "graph":
        keras3.refuse_shrinking(model, [what])
    rebuilt, _ = keras3.to_tf_keras(model)
    return rebuilt


def input_shape(model: Any) -> tuple[int | None, ...]:
    """The single input shape of a Keras model (batch axis included)."""
    shapes = model.inputs
    if len(shapes) != 1:
        raise FormicaryError(f"the model has {len(shapes)} inputs; formicary compile handles single-input models",
                             "wrap the model so it takes one input tensor.")
    shape = shapes[0].shape  # a TensorShape in tf_keras, a tuple in Keras 3
    return tuple(shape.as_list() if hasattr(shape, "as_list") else shape)


def save_keras_model(model: Any, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    model.save(p)
    return p
