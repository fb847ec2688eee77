"""Keras 3 models in formicary: load them, convert them directly, and rebuild them in tf_keras for tfmot.

Keras 3 (the `keras` package TensorFlow >= 2.16 installs) and tf_keras (Keras 2) live side by side in one
process: formicary sets TF_USE_LEGACY_KERAS=1 before TensorFlow is imported, which only makes `tf.keras` mean
tf_keras; `import keras` still gives Keras 3 on the TensorFlow backend, sharing TensorFlow's variables and
graphs. The two have separate layer classes, so a Keras 3 model is never a tf_keras model (and tfmot, which
only wraps tf_keras layers, cannot touch it).

- Quantization needs no tf_keras: the Keras 3 model's inference call (training=False) is traced into a
  SavedModel (Keras' ExportArchive, quietly) and handed to the TFLite converter (model/convert.py).
- Pruning, clustering, QAT and distillation need tfmot and so tf_keras: `to_tf_keras` rebuilds the graph layer
  by layer with the tf_keras class of the same name (CARRIED_LAYERS), copies every weight, and checks that both
  models give the same outputs (float tolerance) before anything is shrunk. A layer without a one-to-one
  tf_keras twin (custom layers, Lambda, raw `keras.ops` calls in a functional graph, LoRA-enabled Dense, ...)
  is named in one FormicaryError; quantization alone still works for such a model.
- A SavedModel without Keras metadata (Keras 3 `model.export()`, `tf.saved_model.save`) has no layers left,
  only a traced graph: it is quantized from its serving signature (`GraphModel`), and cannot be shrunk.
"""
from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from formicary.errors import FormicaryError

# Keras 3 layer classes rebuilt as the tf_keras class of the same name, with the config keys renamed where the
# two APIs differ. Kept in docs/models.md ("Keras 3").
CARRIED_LAYERS: dict[str, dict[str, str]] = {
    **{name: {} for name in (
        "Conv1D", "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose", "Dense",
        "BatchNormalization", "LayerNormalization",
        "Activation", "ReLU", "ELU", "Softmax", "PReLU",
        "MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D",
        "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D", "GlobalMaxPooling2D",
        "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate",
        "Reshape", "Flatten", "Permute", "Dropout", "SpatialDropout1D", "SpatialDropout2D",
        "ZeroPadding1D", "ZeroPadding2D", "Cropping1D", "Cropping2D", "UpSampling1D", "UpSampling2D",
        "Rescaling", "Identity")},
    "LeakyReLU": {"negative_slope": "alpha"},
}
# Keras 3-only config keys, carried over only while they hold the value that means "feature not used".
_KERAS3_ONLY = {"synchronized": False, "quantization_config": None, "lora_rank": None, "lora_alpha": None,
                "rms_scaling": False}
_INITIALIZER = "_initializer"   # config keys ending so are dropped: every weight is copied afterwards
_REGULARIZER_KEYS = ("regularizer", "constraint")

# Outputs of the rebuilt model must match the Keras 3 model within atol + rtol * |keras3 output| (float32:
# both run the same TensorFlow kernels, differences come only from op order).
ATOL = 1e-4
RTOL = 1e-4

KERAS3_SHRINK_FIX = ("drop --prune/--cluster/--qat/--distill-from (int8 quantization works directly on the Keras 3 "
                     "model), or replace the layer with built-in layers (see docs/models.md, \"Keras 3\") and "
                     "save the model again.")


def is_keras3_version(version: str | None) -> bool:
    head = (version or "").split(".")[0]
    return head.isdigit() and int(head) >= 3


def is_keras3_model(model: Any) -> bool:
    """True for a Keras 3 model object (tf_keras models come from the `tf_keras` package)."""
    return type(model).__module__.startswith("keras.")


def import_keras3() -> Any:
    """The Keras 3 package, imported as `keras` (never through tf.keras, which is tf_keras here)."""
    from formicary.model.keras_io import import_tensorflow, quiet_native_logs

    import_tensorflow()
    with quiet_native_logs():
        import keras
    if not is_keras3_version(keras.__version__):
        raise FormicaryError(f"`import keras` gives Keras {keras.__version__}, not Keras 3",
                             "install the Keras 3 that comes with TensorFlow (pip install 'keras>=3').")
    return keras


# ------------------------------------------------------------------------------------------------ loading

def load(path: Path) -> Any:
    """Load a Keras 3 .keras / .h5 model; FormicaryError naming a class Keras cannot find."""
    keras = import_keras3()
    from formicary.model.keras_io import quiet_native_logs

    try:
        with quiet_native_logs():
            model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises TypeError/ValueError/... for unreadable models
        text = str(exc)
        first = text.splitlines()[0] if text else type(exc).__name__
        missing = _missing_class(text)
        if missing or "Lambda" in text or "safe_mode" in text:
            what = f"custom class {missing!r}" if missing else "a Lambda layer (arbitrary Python code)"
            raise FormicaryError(
                f"cannot load {path.name} with Keras 3: it uses {what}, which formicary cannot import",
                "export the model where its code is available: model.export('saved_model_dir') and pass that "
                "folder (int8 quantization works on it), or convert it to .tflite yourself; for pruning, "
                "clustering or QAT use built-in layers only.", details={"keras": text[:2000]}) from exc
        raise FormicaryError(f"cannot load {path.name} with Keras 3: {first}",
                             "re-save the model with model.save('model.keras') and try again.") from exc
    check_static_input(model, path.name)
    return model


def _missing_class(text: str) -> str | None:
    import re

    for pattern in (r"Could not locate class '([^']+)'", r"Unknown layer: '?([A-Za-z0-9_.>]+)",
                    r"class_name['\"]?: ['\"]([A-Za-z0-9_.>]+)['\"]"):
        m = re.search(pattern, text)
        if m:
            return m.group(1)
    return None


def check_static_input(model: Any, name: str) -> None:
    """One FormicaryError naming the input layer whose shape is not fixed (all but the batch axis)."""
    inputs = list(getattr(model, "inputs", None) or [])
    if not inputs:
        raise FormicaryError(f"{name}: the model has no defined input (a subclassed model never built on a fixed "
                             "shape)", "build it from keras.Input((H, W, C)) (functional or Sequential) and "
                             "save it again.")
    for tensor in inputs:
        shape = tuple(tensor.shape)
        dynamic = [i for i, d in enumerate(shape) if i > 0 and d is None]
        if dynamic:
            layer = _input_layer_name(tensor)
            raise FormicaryError(
                f"{name}: input {layer!r} has a dynamic shape {_shape_text(shape)} (axes {dynamic} unknown); "
                "a microcontroller model needs every axis but the batch fixed",
                f"give the input a fixed shape, e.g. keras.Input({_example_shape(shape)}), copy the weights "
                "(model.set_weights) and save it again.", details={"input": layer, "shape": list(shape)})


def _input_layer_name(tensor: Any) -> str:
    history = getattr(tensor, "_keras_history", None)
    op = history[0] if history else None
    return getattr(op, "name", None) or getattr(tensor, "name", "input")


def _shape_text(shape: tuple) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def _example_shape(shape: tuple) -> str:
    dims = [str(d) if d is not None else ("3" if i == len(shape) - 1 else "96") for i, d in enumerate(shape)][1:]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


# -------------------------------------------------------------------------- SavedModel without Keras layers

@dataclass
class _Spec:
    shape: tuple


class GraphModel:
    """A SavedModel without Keras metadata (Keras 3 `model.export()`, tf.saved_model.save): only its serving
    signature is left. Quacks like a Keras model where compile needs it (inputs/outputs shapes, predict)."""

    def __init__(self, path: Path) -> None:
        from formicary.model.keras_io import import_tensorflow, quiet_native_logs

        tf = import_tensorflow()
        self.path = path
        try:
            with quiet_native_logs():
                self._loaded = tf.saved_model.load(str(path))
        except Exception as exc:  # noqa: BLE001
            raise FormicaryError(f"cannot load the SavedModel {path}: {str(exc).splitlines()[0]}",
                                 "re-export it (Keras 3: model.export(DIR)) and try again.") from exc
        sigs = dict(self._loaded.signatures)
        if not sigs:
            raise FormicaryError(f"the SavedModel {path} has no serving signature",
                                 "export it with a signature: Keras 3 model.export(DIR), or "
                                 "tf.saved_model.save(obj, DIR, signatures=fn.get_concrete_function(spec)).")
        self.signature_key = "serving_default" if "serving_default" in sigs else sorted(sigs)[0]
        fn = sigs[self.signature_key]
        in_specs = fn.structured_input_signature[1]
        if len(in_specs) != 1:
            raise FormicaryError(f"the SavedModel {path} takes {len(in_specs)} inputs; formicary compile handles "
                                 "single-input models", "export a model with one input tensor.")
        (self._in_name, spec), = in_specs.items()
        outs = fn.structured_outputs
        self._out_name = sorted(outs)[0]
        self.inputs = [_Spec(tuple(spec.shape.as_list()))]
        self.outputs = [_Spec(tuple(outs[self._out_name].shape.as_list()))]
        self._fn = fn
        shape = self.inputs[0].shape
        dynamic = [i for i, d in enumerate(shape) if i > 0 and d is None]
        if dynamic:
            raise FormicaryError(
                f"{path.name}: signature input {self._in_name!r} has a dynamic shape {_shape_text(shape)} "
                f"(axes {dynamic} unknown); a microcontroller model needs every axis but the batch fixed",
                f"export it with a fixed input: model.export(DIR, input_signature=[tf.TensorSpec("
                f"(None, {_example_shape(shape)[1:-1]}), tf.float32)]).",
                details={"input": self._in_name, "shape": list(shape)})
        self.layers: list = []

    def converter(self) -> Any:
        """The TFLite converter for the serving signature traced again at batch 1 (a free batch axis turns a
        Flatten into SHAPE → STRIDED_SLICE → PACK → RESHAPE, which formicary-rt does not run)."""
        import tensorflow as tf

        fn, name = self._fn, self._in_name
        spec = fn.structured_input_signature[1][name]

        @tf.function(input_signature=[tf.TensorSpec((1, *self.inputs[0].shape[1:]), spec.dtype, name=name)])
        def serve(x: Any) -> Any:
            return fn(**{name: x})

        return tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], self._loaded)

    def predict(self, x: np.ndarray, batch_size: int = 256, verbose: int = 0) -> np.ndarray:
        import tensorflow as tf

        out = [self._fn(**{self._in_name: tf.constant(x[i:i + batch_size])})[self._out_name].numpy()
               for i in range(0, len(x), batch_size)]
        return np.concatenate(out)


def refuse_shrinking(model: GraphModel, stages: list[str]) -> None:
    raise FormicaryError(
        f"{', '.join(stages)} needs the model's layers, but {model.path.name} is a SavedModel without Keras "
        "metadata (Keras 3 model.export() or tf.saved_model.save): only a traced graph is left",
        "pass the Keras file instead (Keras 3: model.save('model.keras')); `formicary compile` without "
        "--prune/--cluster/--qat/--distill-from quantizes this SavedModel as it is.")


# ---------------------------------------------------------------------------------------------- conversion

@contextlib.contextmanager
def exported(model: Any) -> Any:
    """The Keras 3 model's inference call (training=False, batch 1) written as a SavedModel in a temporary
    folder; yields the folder. Keras prints the endpoints on stdout: kept off (the CLI's --json owns stdout)."""
    import tensorflow as tf

    keras = import_keras3()
    with tempfile.TemporaryDirectory(prefix="formicary-keras3-") as tmp:
        archive = keras.export.ExportArchive()
        archive.track(model)
        # Batch fixed at 1: with a free batch axis Keras 3's Flatten/Reshape trace into SHAPE, STRIDED_SLICE and
        # PACK feeding a RESHAPE; with it fixed they fold into one static RESHAPE (what tf_keras models give).
        spec = [tf.TensorSpec((1, *tuple(t.shape)[1:]), dtype=t.dtype, name=t.name) for t in model.inputs]

        def serve(*args: Any) -> Any:
            return model(list(args) if len(args) > 1 else args[0], training=False)

        with contextlib.redirect_stdout(io.StringIO()):
            archive.add_endpoint("serve", serve, spec)
            archive.write_out(tmp, verbose=False)
        yield tmp


# ----------------------------------------------------------------------------------- rebuild in tf_keras

@dataclass
class Rebuilt:
    """What `to_tf_keras` did, for the compile report."""

    layers: int
    carried: dict[str, int]     # tf_keras class -> count
    max_abs_diff: float
    samples: int
    atol: float = ATOL
    rtol: float = RTOL

    def to_dict(self) -> dict[str, Any]:
        return {"rebuilt_in_tf_keras": True, "layers": self.layers, "carried": self.carried,
                "check": {"samples": self.samples, "max_abs_diff": float(self.max_abs_diff),
                          "atol": self.atol, "rtol": self.rtol, "passed": True}}


def uncarried_layers(model: Any) -> list[tuple[str, str]]:
    """(layer name, class) of every operation in the graph that has no one-to-one tf_keras twin."""
    out = []
    for op in _operations(model):
        cls = type(op).__name__
        if cls == "InputLayer" or _is_nested_model(op):
            if _is_nested_model(op):
                out.extend(uncarried_layers(op))
            continue
        if not _is_layer(op):  # a raw keras.ops call in a functional graph
            out.append((op.name, f"keras.ops {cls}"))
        elif cls not in CARRIED_LAYERS or not _is_builtin(op):
            out.append((op.name, cls))
    return out


def to_tf_keras(model: Any, sample: np.ndarray | None = None, seed: int = 0) -> tuple[Any, Rebuilt]:
    """Rebuild a Keras 3 functional/Sequential model in tf_keras with the same weights; check the outputs match.

    Nested functional models are inlined (tfmot wraps layers of one flat model). FormicaryError naming the
    first layer that cannot be carried over, or the largest output difference if the check fails."""
    import tf_keras

    bad = uncarried_layers(model)
    if bad:
        listing = ", ".join(f"{name!r} ({cls})" for name, cls in bad[:6]) + (" ..." if len(bad) > 6 else "")
        first_name, first_cls = bad[0]
        raise FormicaryError(
            f"layer {first_name!r} ({first_cls}) of the Keras 3 model has no one-to-one tf_keras equivalent, so "
            f"the model cannot be rebuilt for tfmot (pruning, clustering, QAT, distillation)"
            + (f"; also {listing}" if len(bad) > 1 else ""), KERAS3_SHRINK_FIX,
            details={"layers": [{"name": n, "class": c} for n, c in bad]})
    carried: dict[str, int] = {}
    inputs = [tf_keras.Input(shape=tuple(t.shape)[1:], dtype=str(t.dtype), name=_input_layer_name(t))
              for t in model.inputs]
    outputs = _emit(model, inputs, carried, {})
    rebuilt = tf_keras.Model(inputs if len(inputs) > 1 else inputs[0],
                             outputs if len(outputs) > 1 else outputs[0], name=model.name)
    diff, n = _check_same(model, rebuilt, sample, seed)
    return rebuilt, Rebuilt(sum(carried.values()), dict(sorted(carried.items())), diff, n)


def _operations(model: Any) -> list:
    functional = _functional(model)
    return list(getattr(functional, "operations", None) or functional.layers)


def _functional(model: Any) -> Any:
    """The functional graph of a Keras 3 model (a Sequential holds one once built)."""
    if type(model).__name__ == "Sequential":
        inner = getattr(model, "_functional", None)
        if inner is None:
            raise FormicaryError(f"the Keras 3 Sequential model {model.name!r} was never built on an input shape",
                                 "start it with keras.Input((H, W, C)) and save it again.")
        return inner
    if not hasattr(model, "_nodes_by_depth"):
        raise FormicaryError(f"{model.name!r} is a subclassed Keras 3 model (class {type(model).__name__}): "
                             "its layer graph is Python code, not data", KERAS3_SHRINK_FIX)
    return model


def _is_nested_model(op: Any) -> bool:
    return type(op).__name__ in ("Functional", "Sequential") and _is_builtin(op)


def _is_layer(op: Any) -> bool:
    keras = import_keras3()
    return isinstance(op, keras.layers.Layer)


def _is_builtin(op: Any) -> bool:
    return type(op).__module__.startswith("keras.src.")


def _emit(model: Any, inputs: list, carried: dict[str, int], twins: dict[int, Any]) -> list:
    """Run the Keras 3 graph of `model` on tf_keras tensors, each Keras 3 layer replaced by its tf_keras twin
    (one twin per layer, so a layer called twice stays shared)."""
    functional = _functional(model)

    def twin(op: Any) -> Callable[..., Any]:
        if _is_nested_model(op):
            return lambda *args, **kwargs: _call_nested(op, args, carried, twins)
        if id(op) not in twins:
            twins[id(op)] = _twin_layer(op, carried, {getattr(t, "name", "") for t in twins.values()})
        return twins[id(op)]

    def call(op: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        kwargs = {k: v for k, v in kwargs.items() if k not in ("training", "mask")}
        return op(*args, **kwargs)

    # Keras' own graph runner (what Functional.call uses): topological order, nodes' args/kwargs filled in with
    # our tensors. Private API of keras 3.x (checked with 3.15), hence the explicit error if it moves.
    runner = getattr(functional, "_run_through_graph", None)
    if runner is None:
        import keras

        raise FormicaryError(f"Keras {keras.__version__} no longer exposes the functional graph runner formicary "
                             "uses to rebuild a Keras 3 model in tf_keras", KERAS3_SHRINK_FIX)
    outputs = runner(inputs, operation_fn=twin, call_fn=call)
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def _call_nested(op: Any, args: tuple, carried: dict[str, int], twins: dict[int, Any]) -> Any:
    flat = list(args[0]) if len(args) == 1 and isinstance(args[0], (list, tuple)) else list(args)
    out = _emit(op, flat, carried, twins)
    return out if len(out) > 1 else out[0]


def _twin_layer(op: Any, carried: dict[str, int], names: set[str]) -> Any:
    import tf_keras

    cls = type(op).__name__
    config = _tf_keras_config(op, cls)
    if config["name"] in names:  # two inlined sub-models may reuse a layer name
        config["name"] = f"{config['name']}_{len(names)}"
    try:
        layer = getattr(tf_keras.layers, cls).from_config(config)
    except (TypeError, ValueError) as exc:
        raise FormicaryError(f"layer {op.name!r} ({cls}) cannot be rebuilt in tf_keras: {str(exc).splitlines()[0]}",
                             KERAS3_SHRINK_FIX, details={"config": {k: str(v) for k, v in config.items()}}) from exc
    carried[cls] = carried.get(cls, 0) + 1
    return _Twin(layer, op, [np.asarray(w) for w in op.get_weights()])


class _Twin:
    """A tf_keras layer that takes the Keras 3 layer's weights once it is built (on its first call)."""

    def __init__(self, layer: Any, source: Any, weights: list[np.ndarray]) -> None:
        self.layer, self.source, self.weights, self.name = layer, source, weights, layer.name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self.layer(*args, **kwargs)
        if self.weights:
            try:
                self.layer.set_weights(self.weights)
            except ValueError as exc:
                raise FormicaryError(f"layer {self.source.name!r} ({type(self.source).__name__}): its weights do "
                                     f"not fit the tf_keras layer ({str(exc).splitlines()[0]})",
                                     KERAS3_SHRINK_FIX) from exc
            self.weights = []
        return out


def _tf_keras_config(op: Any, cls: str) -> dict[str, Any]:
    import tf_keras

    config = dict(op.get_config())
    dtype = config.pop("dtype", None)
    policy = dtype.get("config", {}).get("name") if isinstance(dtype, dict) else dtype
    if policy not in (None, "float32"):
        raise FormicaryError(f"layer {op.name!r} ({cls}) computes in {policy}; formicary rebuilds float32 models",
                             "set the model back to float32 (keras.config.set_dtype_policy('float32') before "
                             "building) and save it again, or drop --prune/--cluster/--qat.")
    out: dict[str, Any] = {}
    for key, value in config.items():
        if key in _KERAS3_ONLY:
            if value != _KERAS3_ONLY[key]:
                raise FormicaryError(f"layer {op.name!r} ({cls}) uses the Keras 3-only setting {key}={value!r}, "
                                     "which tf_keras has no equivalent for", KERAS3_SHRINK_FIX)
            continue
        if key.endswith(_INITIALIZER):
            continue
        if key.endswith(_REGULARIZER_KEYS) and value is not None:
            value = _carry_object(op, cls, key, value)
        if key == "activation" and value is not None:
            try:
                tf_keras.activations.get(value)
            except (ValueError, TypeError) as exc:
                raise FormicaryError(f"layer {op.name!r} ({cls}) uses activation {value!r}, unknown to tf_keras",
                                     KERAS3_SHRINK_FIX) from exc
        out[CARRIED_LAYERS[cls].get(key, key)] = value
    return out


def _carry_object(op: Any, cls: str, key: str, value: Any) -> Any:
    """A Keras 3 regularizer/constraint config as the tf_keras object of the same class (L1, L2, MaxNorm...)."""
    import tf_keras

    module = tf_keras.regularizers if key.endswith("regularizer") else tf_keras.constraints
    try:
        if isinstance(value, dict):
            return module.deserialize({"class_name": value["class_name"], "config": value.get("config", {})})
        return module.get(value)
    except (ValueError, TypeError, KeyError) as exc:
        raise FormicaryError(f"layer {op.name!r} ({cls}): its {key} {value!r} has no tf_keras equivalent",
                             KERAS3_SHRINK_FIX) from exc


def _check_same(model: Any, rebuilt: Any, sample: np.ndarray | None, seed: int) -> tuple[float, int]:
    """Largest |difference| of the two models' outputs on `sample` (else seeded normal inputs); FormicaryError
    beyond ATOL + RTOL * |output|."""
    from formicary.model.keras_io import quiet_native_logs

    shape = tuple(model.inputs[0].shape)[1:]
    if sample is None or len(sample) == 0:
        sample = np.random.default_rng(seed).normal(size=(32, *shape))
    x = np.asarray(sample[:64], dtype=np.float32).reshape((-1, *shape))
    with quiet_native_logs():
        want = np.asarray(model(x, training=False))
        got = np.asarray(rebuilt(x, training=False))
    if want.shape != got.shape:
        raise FormicaryError(f"the tf_keras rebuild of {model.name!r} gives outputs shaped {got.shape}, the Keras 3 "
                             f"model {want.shape}", "report this as a bug with the model attached.")
    diff = np.abs(want - got)
    worst = int(np.argmax(diff - (ATOL + RTOL * np.abs(want))))
    if (diff > ATOL + RTOL * np.abs(want)).any():
        raise FormicaryError(
            f"the tf_keras rebuild of {model.name!r} does not compute what the Keras 3 model does (largest output "
            f"difference {float(diff.max()):.3g} at flat index {worst}, tolerance {ATOL:g} + {RTOL:g}·|output|)",
            "drop --prune/--cluster/--qat (int8 quantization works directly on the Keras 3 model) and report "
            "this as a bug with the model attached.", details={"max_abs_diff": float(diff.max())})
    return float(diff.max()), len(x)
