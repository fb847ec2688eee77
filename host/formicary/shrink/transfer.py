"""Transfer learning: adapt a trained tf_keras model to a new task from a small labelled dataset.

The base's feature extractor is frozen up to a layer (named, or `auto` = the last feature layer), its classifier
head is replaced by a fresh one for the new classes (same kind: a Dense with the base's output activation), the
head is trained, and optionally the top block of the frozen part is unfrozen afterwards and trained at a low rate.
With `lora_rank`, LoRA adapters (formicary.shrink.lora) train instead of the plain head training.

Rules (docs/shrinking.md, "Transfer learning"):
- classifier head (replaced): from the model output, walk back through parameter-free output layers (Activation,
  Softmax) to the last Dense layer, then through the Dropout-like layers feeding it.
- last feature layer (`auto`): the last Flatten / GlobalPooling layer the head depends on, when every path from
  the input to the head passes through it: the end of the convolutional feature extractor. The Dense layers
  between it and the head (the classifier block, e.g. the digits CNN's hidden `fc1`) are trained, starting from
  the base's weights; the head's last Dense is new. Without such a layer (an MLP), the head's input layer.
- frozen part: the freeze layer and every layer it depends on (its ancestors in the graph); everything after it
  trains. BatchNormalization layers stay frozen, in inference mode, during the whole adaptation (a few dozen
  examples would wreck their statistics), also when they sit in the unfrozen top block.
- top block: the frozen layers after the last "cut" before the freeze layer that leaves at least one
  Conv/Dense layer behind it; a cut is a point of the graph every path from the input passes through. In a
  Sequential model that is the last Conv/Dense layer (with its BatchNormalization and activation); in a residual
  model the whole last residual block (the skip branch makes the points inside the block no cut).
- labels: the new data's labels may be any integers; they are mapped in sorted order to class indices
  0..N-1 (`label_map[i]` = the original label of class i), and the same mapping is applied to validation data.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from formicary.data import Dataset, as_float, fit_to_input, load_dataset
from formicary.errors import FormicaryError
from formicary.shrink import KERNEL_LAYERS, FineTune, fit

AUTO = "auto"
MIN_EXAMPLES_PER_CLASS = 2
# Layers after the classifier Dense that only shape its output, and layers in front of it that only act while
# training: both belong to the head and are re-created with it.
_OUTPUT_LAYERS = ("Activation", "Softmax")
_HEAD_INPUT_LAYERS = ("Dropout", "AlphaDropout", "GaussianDropout", "GaussianNoise")
_NORM_LAYERS = ("BatchNormalization", "SyncBatchNormalization")


@dataclass
class AdaptOptions:
    """What `formicary adapt` was asked to do (the CLI options, one to one)."""

    classes: int | None = None          # None: keep the base's head (labels must be within its classes)
    freeze_until: str = AUTO             # "auto" or a layer name
    epochs: int = 30                     # head training (or LoRA) epochs
    fine_tune_epochs: int = 0            # then the top block unfrozen for this many epochs
    fine_tune_lr: float = 1e-4
    learning_rate: float = 1e-2          # only the small head trains: a high rate is safe and quick
    batch_size: int = 16
    seed: int = 0
    lora_rank: int | None = None
    lora_alpha: float | None = None
    lora_separate: bool = False


@dataclass
class HeadInfo:
    """Where a model's classifier head sits."""

    dense: str                    # the classifier Dense layer
    feature: str                  # the last feature layer (`auto` freezes up to it)
    head_input: str               # the layer whose output feeds the head (the latest possible freeze point)
    before: list[str] = field(default_factory=list)   # Dropout-like layers between feature and Dense
    after: list[str] = field(default_factory=list)    # Activation/Softmax layers after the Dense
    activation: str = "linear"    # the base's output activation (the Dense's own or the trailing layer's)


@dataclass
class LabelMap:
    """Original labels ↔ class indices (sorted order)."""

    labels: list[int]

    def encode(self, y: np.ndarray, role: str) -> np.ndarray:
        index = {lab: i for i, lab in enumerate(self.labels)}
        unknown = sorted({int(v) for v in np.unique(y)} - set(index))
        if unknown:
            raise FormicaryError(f"{role} has labels {unknown} that the training data does not have "
                                 f"(training labels: {self.labels})",
                                 "give validation data of the same classes as --data.")
        return np.asarray([index[int(v)] for v in y], dtype=np.int64)


# ------------------------------------------------------------------------------------------ graph helpers

def _kind(layer: Any) -> str:
    return type(layer).__name__


def _inbound(layer: Any) -> list[Any]:
    """The layers whose outputs `layer` takes (single-use layers only: shared layers are refused)."""
    nodes = getattr(layer, "_inbound_nodes", [])
    if len(nodes) > 1:
        raise FormicaryError(f"layer {layer.name!r} is used more than once in the model (shared layer); "
                             "transfer learning handles models whose layers are each called once",
                             "rebuild the model without shared layers.")
    if not nodes:
        return []
    return [t._keras_history.layer for t in _flat(nodes[0].input_tensors)]


def _flat(x: Any) -> list[Any]:
    import tensorflow as tf

    return list(tf.nest.flatten(x))


def _all_layers(model: Any) -> list[Any]:
    """The model's layers in topological order, the input layer first (Sequential hides it in .layers)."""
    layers = list(model.layers)
    inputs = [t._keras_history.layer for t in model.inputs]
    return [lay for lay in inputs if lay not in layers] + layers


def find_head(model: Any) -> HeadInfo:
    """Locate the classifier head (rule in the module docstring); FormicaryError when there is none."""
    if len(model.outputs) != 1:
        raise FormicaryError(f"the model has {len(model.outputs)} outputs; transfer learning replaces the head "
                             "of a single-output classifier", "adapt a model with one output.")
    layer = model.outputs[0]._keras_history.layer
    after: list[str] = []
    activation = None
    while _kind(layer) in _OUTPUT_LAYERS:
        after.insert(0, layer.name)
        activation = activation or _activation_name(layer)
        srcs = _inbound(layer)
        if len(srcs) != 1:
            break
        layer = srcs[0]
    if _kind(layer) != "Dense":
        raise FormicaryError(f"cannot find the classifier head: the output comes from {layer.name!r} "
                             f"({_kind(layer)}), not from a Dense layer",
                             "transfer learning replaces a Dense classifier head; add one to the model, or adapt "
                             "without --classes to fine-tune it as it is.")
    dense = layer
    own = _activation_name(dense)
    before: list[str] = []
    src = _single_source(dense)
    while _kind(src) in _HEAD_INPUT_LAYERS:
        before.insert(0, src.name)
        src = _single_source(src)
    if _kind(src) == "InputLayer":
        raise FormicaryError(f"the classifier {dense.name!r} takes the model input directly: there is no feature "
                             "extractor to freeze", "adapt a model with feature layers before its classifier.")
    return HeadInfo(dense=dense.name, feature=_last_feature_layer(model, src), head_input=src.name, before=before,
                    after=after, activation=activation if activation and own == "linear" else own)


_FEATURE_END = ("Flatten", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
                "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D")


def _last_feature_layer(model: Any, head_input: Any) -> str:
    chain = ancestors(model, head_input.name)
    cuts = _cuts(chain)
    for p in range(len(chain) - 1, -1, -1):
        if _kind(chain[p]) in _FEATURE_END and cuts[p]:
            return chain[p].name
    return head_input.name


def _cuts(chain: list[Any]) -> list[bool]:
    """cuts[p]: every path from the input to the end of `chain` (ancestors in topological order) passes through
    chain[p], i.e. no layer after p reads from a layer before p."""
    pos = {lay.name: i for i, lay in enumerate(chain)}
    earliest = [min([pos[s.name] for s in _inbound(lay)], default=i) for i, lay in enumerate(chain)]
    suffix_min = [len(chain)] * (len(chain) + 1)
    for i in range(len(chain) - 1, -1, -1):
        suffix_min[i] = min(suffix_min[i + 1], earliest[i])
    return [suffix_min[p + 1] >= p for p in range(len(chain))]


def _single_source(layer: Any) -> Any:
    srcs = _inbound(layer)
    if len(srcs) != 1:
        raise FormicaryError(f"layer {layer.name!r} takes {len(srcs)} inputs; the classifier head must sit on "
                             "one feature tensor", "name the freeze layer with --freeze-until.")
    return srcs[0]


def _activation_name(layer: Any) -> str:
    if _kind(layer) == "Softmax":
        return "softmax"
    act = getattr(layer, "activation", None)
    return getattr(act, "__name__", str(act)) if act is not None else "linear"


def ancestors(model: Any, name: str) -> list[Any]:
    """`name` and every layer it depends on, in topological order."""
    by_name = {lay.name: lay for lay in _all_layers(model)}
    seen: set[str] = set()
    stack = [by_name[name]]
    while stack:
        layer = stack.pop()
        if layer.name in seen:
            continue
        seen.add(layer.name)
        stack.extend(_inbound(layer))
    return [lay for lay in _all_layers(model) if lay.name in seen]


def feature_candidates(model: Any, head: HeadInfo) -> list[str]:
    """Layer names --freeze-until accepts: the head's input layer and every layer it depends on (no input)."""
    return [lay.name for lay in ancestors(model, head.head_input) if _kind(lay) != "InputLayer"]


def resolve_freeze(model: Any, freeze_until: str, head: HeadInfo) -> str:
    if freeze_until == AUTO:
        return head.feature
    names = feature_candidates(model, head)
    if freeze_until not in names:
        known = {lay.name for lay in _all_layers(model)}
        why = ("is part of the classifier head or after it" if freeze_until in known else "is not a layer of the "
               "model")
        shown = (" …, " if len(names) > 12 else "") + ", ".join(names[-12:])
        raise FormicaryError(f"--freeze-until {freeze_until!r} {why}",
                             f"pass auto (= {head.feature}) or one of the layers before the head: {shown}.",
                             details={"candidates": names})
    return freeze_until


def top_block(model: Any, freeze: str) -> list[str]:
    """The frozen layers that `--fine-tune-epochs` unfreezes (rule in the module docstring), in order."""
    chain = ancestors(model, freeze)
    cuts = _cuts(chain)
    for p in range(len(chain) - 2, -1, -1):
        block = chain[p + 1:]
        if cuts[p] and any(_kind(lay) in KERNEL_LAYERS for lay in block):
            return [lay.name for lay in block]
    return [lay.name for lay in chain if _kind(lay) != "InputLayer"]


# ------------------------------------------------------------------------------------------ head, labels

def replace_head(model: Any, classes: int, head: HeadInfo | None = None) -> Any:
    """A new model: `model`'s layers up to its last feature layer (shared, weights kept) and a freshly initialised
    head of the same kind for `classes` outputs (same layer names, Dense with the base's output activation)."""
    import tf_keras as keras

    head = head or find_head(model)
    by_name = {lay.name: lay for lay in _all_layers(model)}
    x = by_name[head.head_input].output
    for name in head.before:
        layer = by_name[name]
        x = layer.__class__.from_config(layer.get_config())(x)
    dense = by_name[head.dense]
    units_act = head.activation if not head.after else _activation_name(dense)
    x = keras.layers.Dense(classes, activation=units_act, name=dense.name)(x)
    for name in head.after:
        layer = by_name[name]
        x = layer.__class__.from_config(layer.get_config())(x)
    return keras.Model(model.inputs, x, name=f"{model.name}_adapted")


def label_map_for(y: np.ndarray, classes: int | None, base_classes: int) -> tuple[LabelMap, bool]:
    """(mapping, new_head): sorted distinct labels → 0..N-1 with a new head, or the base's own classes."""
    distinct = sorted(int(v) for v in np.unique(y))
    if classes is None:
        if distinct[0] < 0 or distinct[-1] >= base_classes:
            raise FormicaryError(f"the --data labels run from {distinct[0]} to {distinct[-1]} but the base model has "
                                 f"{base_classes} classes, and no --classes was given",
                                 f"pass --classes {len(distinct)} to train a new head for these "
                                 f"{len(distinct)} classes (labels are mapped in sorted order to 0..N-1), or give "
                                 "labels of the base's classes to fine-tune it as it is.")
        return LabelMap(list(range(base_classes))), False
    if classes != len(distinct):
        raise FormicaryError(f"--classes {classes} but the --data labels have {len(distinct)} distinct values "
                             f"({_short(distinct)})",
                             f"pass --classes {len(distinct)} (the number of distinct labels), or give data with "
                             f"exactly {classes} distinct labels.",
                             details={"labels": distinct})
    if classes < 2:
        raise FormicaryError("the --data labels have a single class: there is nothing to tell apart",
                             "give examples of at least 2 classes.")
    return LabelMap(distinct), True


def _short(values: Sequence[int]) -> str:
    return ", ".join(map(str, values[:12])) + (" …" if len(values) > 12 else "")


def _check_examples(y: np.ndarray, labels: LabelMap, new_head: bool) -> list[int]:
    counts = [int((y == lab).sum()) for lab in labels.labels]
    if new_head:
        few = [lab for lab, n in zip(labels.labels, counts) if n < MIN_EXAMPLES_PER_CLASS]
        if few:
            raise FormicaryError(f"too few examples: label(s) {_short(few)} have fewer than "
                                 f"{MIN_EXAMPLES_PER_CLASS} examples in --data",
                                 f"give at least {MIN_EXAMPLES_PER_CLASS} labelled examples per class "
                                 "(transfer learning works from ~10-20 per class).",
                                 details={"examples_per_class": dict(zip(map(str, labels.labels), counts))})
    elif len(y) < MIN_EXAMPLES_PER_CLASS:
        raise FormicaryError(f"too few examples: --data holds {len(y)}",
                             f"give at least {MIN_EXAMPLES_PER_CLASS} labelled examples.")
    return counts


# ------------------------------------------------------------------------------------------------ adapt

def _params(weights: list[Any]) -> int:
    return int(sum(int(np.prod(w.shape)) for w in weights))


def _set_trainable(model: Any, frozen: set[str]) -> None:
    for layer in model.layers:
        layer.trainable = layer.name not in frozen and _kind(layer) not in _NORM_LAYERS


def validate_options(options: AdaptOptions) -> None:
    """Option errors that need neither TensorFlow nor the files."""
    if options.classes is not None and options.classes < 2:
        raise FormicaryError(f"--classes {options.classes}: a classifier needs at least 2 classes",
                             "pass the number of distinct labels in --data.")
    if options.epochs < 1:
        raise FormicaryError(f"--epochs {options.epochs}: need at least 1", "pass --epochs 1 or more.")
    if options.fine_tune_epochs < 0:
        raise FormicaryError(f"--fine-tune-epochs {options.fine_tune_epochs} is negative",
                             "pass 0 (no top-block fine-tuning) or more.")
    for name in ("learning_rate", "fine_tune_lr"):
        if not getattr(options, name) > 0:
            raise FormicaryError(f"--{name.replace('_', '-')} must be positive", "pass e.g. 1e-3.")
    if options.batch_size < 1:
        raise FormicaryError(f"batch size {options.batch_size}: need at least 1", "use a positive batch size.")
    if options.lora_rank is not None:
        if options.lora_rank < 1:
            raise FormicaryError(f"--lora-rank {options.lora_rank}: need at least 1", "pass e.g. --lora-rank 4.")
        if options.fine_tune_epochs:
            raise FormicaryError("--fine-tune-epochs unfreezes the top block after head training; with --lora-rank "
                                 "the adapters already train every Dense/Conv layer",
                                 "drop --fine-tune-epochs, or drop --lora-rank.")
        if options.freeze_until != AUTO:
            raise FormicaryError("--freeze-until does not apply with --lora-rank: LoRA freezes every base weight and "
                                 "trains low-rank factors on each Dense/Conv layer instead",
                                 "drop --freeze-until (or use it without --lora-rank).")
    elif options.lora_alpha is not None or options.lora_separate:
        raise FormicaryError("--lora-alpha / --lora-separate need --lora-rank", "pass --lora-rank R as well.")


def adapt(base_model: Any, train: Dataset, options: AdaptOptions,
          val: Dataset | None = None) -> tuple[Any, dict[str, Any]]:
    """Adapt `base_model` to `train` (labelled; any integer labels) and return (model, transfer stage).

    The caller seeds TensorFlow (formicary.model.keras_io.make_deterministic) before building/loading the base.
    The returned model has every layer trainable again (a plain model for compile/prune); the stage dict is the
    provenance record (docs/shrinking.md); with LoRA it carries the LoRA stage under `lora`.
    """
    validate_options(options)
    if train.y is None:
        raise FormicaryError("the --data for adapting has no labels `y`",
                             "give labelled data: an .npz with x and y, or a .bin folder with y_labels.csv.")
    base_classes = int(base_model.outputs[0].shape[-1] or 0)
    labels, new_head = label_map_for(train.y, options.classes, base_classes)
    counts = _check_examples(train.y, labels, new_head)
    head = find_head(base_model) if new_head or options.lora_rank is None else None
    y = labels.encode(train.y, "--data")
    val_y = labels.encode(val.y, "--val") if val is not None and val.y is not None else None

    model = replace_head(base_model, len(labels.labels), head) if new_head else base_model
    stage: dict[str, Any] = {
        "stage": "transfer", "method": "lora" if options.lora_rank else "frozen-features",
        "new_head": new_head, "head": head.dense if head else None, "classes": len(labels.labels),
        "label_map": labels.labels, "examples_per_class": counts, "train_samples": len(train),
        "epochs": options.epochs, "fine_tune_epochs": options.fine_tune_epochs,
        "learning_rate": options.learning_rate, "fine_tune_lr": options.fine_tune_lr,
        "batch_size": options.batch_size, "seed": options.seed,
    }
    tune = FineTune(Dataset(as_float(train.x), y, train.source), options.epochs, options.batch_size,
                    options.learning_rate)
    started = time.perf_counter()
    if options.lora_rank is not None:
        model, lora_stage = _lora(model, tune, options, [head.dense] if new_head and head else [])
        stage.update({"freeze_until": None, "frozen_params": None,
                      "trainable_params": lora_stage.get("trainable_params"), "top_block": [],
                      "lora": lora_stage})
    else:
        freeze = resolve_freeze(model, options.freeze_until, head)  # type: ignore[arg-type]
        frozen = {lay.name for lay in ancestors(model, freeze)}
        _set_trainable(model, frozen)
        stage.update({"freeze_until": freeze, "frozen_params": _params(model.non_trainable_weights),
                      "trainable_params": _params(model.trainable_weights)})
        fit(model, tune)
        block: list[str] = []
        if options.fine_tune_epochs:
            block = top_block(model, freeze)
            _set_trainable(model, frozen - set(block))
            stage["fine_tune_trainable_params"] = _params(model.trainable_weights)
            fit(model, FineTune(tune.train, options.fine_tune_epochs, options.batch_size, options.fine_tune_lr))
        stage["top_block"] = block
        for layer in model.layers:  # a plain model again: compile may prune/fine-tune any layer
            layer.trainable = True
    stage["train_seconds"] = round(time.perf_counter() - started, 3)
    if val is not None and val_y is not None:
        from formicary.model.keras_io import quiet_native_logs

        with quiet_native_logs():
            out = np.asarray(model.predict(as_float(val.x), batch_size=256, verbose=0))
        pred = out.reshape(len(val_y), -1).argmax(axis=1)
        stage["val_accuracy"] = round(float((pred == val_y).mean()), 4)
        stage["val_samples"] = len(val_y)
    stage["label"] = "adapted"
    return model, stage


def _lora(model: Any, tune: FineTune, options: AdaptOptions, keep: list[str]) -> tuple[Any, dict[str, Any]]:
    from formicary.shrink.lora import lora_finetune

    for layer in model.layers:
        layer.trainable = True
    return lora_finetune(model, tune, options.lora_rank, alpha=options.lora_alpha, keep_trainable=keep,
                         separate=options.lora_separate)


# ------------------------------------------------------------------------------------------- from files

@dataclass
class AdaptResult:
    model_path: Path
    provenance_path: Path
    stages: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        transfer = next(s for s in reversed(self.stages) if s.get("stage") == "transfer")
        lora = self.stages[-1] if self.stages[-1].get("stage") == "lora" else None
        return {"model_path": str(self.model_path), "provenance_path": str(self.provenance_path),
                "transfer": transfer, "lora": lora, "stages": self.stages, "warnings": self.warnings}


def adapt_files(base: str | Path, data: str | Path, out: str | Path, options: AdaptOptions,
                val: str | Path | None = None) -> AdaptResult:
    """`formicary adapt`: load BASE (a tf_keras model) and the data, adapt, save OUT (.keras) + provenance."""
    import sys

    from formicary import progress
    from formicary.model import keras_io
    from formicary.model.provenance import (
        model_digest,
        read_provenance,
        write_provenance,
    )

    validate_options(options)
    out = Path(out)
    if out.suffix not in (".keras", ".h5"):
        raise FormicaryError(f"-o {out.name}: the adapted model is saved as a tf_keras file",
                             "pass an output path ending in .keras (or .h5).")
    model_file = keras_io.identify(base)
    if model_file.kind == "tflite":
        raise FormicaryError(f"{model_file.path.name} is a .tflite flatbuffer: it has no trainable weights to adapt",
                             "pass the Keras model it was made from (.keras, .h5 or SavedModel folder); adapt it, "
                             "then compile the result.")
    train_raw = load_dataset(data)
    val_raw = load_dataset(val) if val is not None else None
    if val_raw is not None and not val_raw.has_labels:
        raise FormicaryError(f"--val data {val} has no labels `y`, so accuracy cannot be measured",
                             "save labels as `y` in the .npz (or use a .bin folder with y_labels.csv).")
    if not train_raw.has_labels:
        raise FormicaryError(f"--data {data} has no labels `y`: adapting trains on labelled examples",
                             "save labels as `y` in the .npz (or use a .bin folder with y_labels.csv).")
    if options.classes is not None:  # label errors before the slow TensorFlow import
        labels, new_head = label_map_for(train_raw.y, options.classes, options.classes)
        _check_examples(train_raw.y, labels, new_head)
    warnings: list[str] = []
    stages, warning = read_provenance(model_file.path)
    if warning:
        warnings.append(warning)
        progress.warn(warning)
    if "tensorflow" not in sys.modules:
        with progress.step("loading TensorFlow"):
            keras_io.import_tensorflow()
    keras_io.make_deterministic(options.seed)
    with progress.step(f"loading {model_file.path.name}"):
        base_model = keras_io.load_for_training(model_file, "formicary adapt")
    in_shape = keras_io.input_shape(base_model)
    train_ds = fit_to_input(train_raw, in_shape, "--data")
    val_ds = fit_to_input(val_raw, in_shape, "--val") if val_raw is not None else None
    what = (f"LoRA rank {options.lora_rank}, {options.epochs} epochs" if options.lora_rank else
            f"training the head, {options.epochs} epochs" +
            (f", then the top block {options.fine_tune_epochs} epochs" if options.fine_tune_epochs else ""))
    with progress.step(f"adapting on {len(train_ds)} examples ({what})"):
        model, stage = adapt(base_model, train_ds, options, val_ds)
    lora_stage = stage.pop("lora", None)
    stage = {"stage": "transfer", "base": str(model_file.path), "base_sha256": model_digest(model_file.path),
             **{k: v for k, v in stage.items() if k != "stage"},
             "data": {"source": train_raw.source, "samples": len(train_raw)},
             "val": None if val_raw is None else {"source": val_raw.source, "samples": len(val_raw)}}
    stage["label"] = stage.pop("label")  # last, for readability of the sidecar
    new_stages = list(stages) + [stage] + ([lora_stage] if lora_stage else [])
    with progress.step(f"saving {out.name}"):
        keras_io.save_keras_model(model, out)
        sidecar = write_provenance(out, new_stages)
    return AdaptResult(out, sidecar, new_stages, warnings)
