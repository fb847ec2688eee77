"""Pruning, in four structures, each fine-tuned on the training data and then measured rather than trusted:

- `channel`: whole output channels removed with the next layers' inputs (shrink/channel.py); the model gets
  narrower and runs on the dense kernels: the structure that pays on every device. `sparsity` = the fraction of
  each prunable layer's channels removed; the report gives the fraction of weights and MACs that went.
- `block`: blocks of 4 consecutive input channels of one output channel at one filter tap are zeroed (gradual
  magnitude schedule, own masks); formicary-rt stores only the non-zero blocks and skips the zero ones
  (fm_*_sparse_s8). `sparsity` = fraction of blocks zeroed in each Conv/Dense kernel.
- `2:4`: at most 2 non-zeros in every 4 consecutive input-channel weights (tfmot sparsity_m_by_n).
- `unstructured`: tfmot magnitude pruning (PolynomialDecay), kept for accuracy studies: zeros anywhere save
  nothing on the device.

Depthwise kernels: unstructured prunes them too (tfmot's registry declares no prunable weight for
DepthwiseConv2D, so they are wrapped as a PrunableLayer); 2:4 and block leave them dense, because both group
weights along input channels and a depthwise filter has one input channel per output channel. Every layer left
dense is reported with the reason.

PolynomialDecay only reaches its final sparsity at `end_step`, and only if a pruning update falls on that step
before training ends; the schedule is laid out so that it does, and whether it did is checked from the wrappers'
step counters: the epochs are blamed only when the schedule really did not complete.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from formicary.errors import FormicaryError
from formicary.shrink import (
    KERNEL_LAYERS,
    FineTune,
    fit,
    kernels,
    require_labels,
    sparsity_of,
)

Structure = Literal["unstructured", "2:4", "block", "channel"]
STRUCTURES = ("unstructured", "2:4", "block", "channel")
BLOCK = 4   # input channels per block (1 output channel x 4 consecutive input channels at one tap)
DEPTHWISE_GROUPS = ("depthwise: 2:4 and block groups run along input channels, and a depthwise filter has one "
                    "input channel per output channel")


@dataclass
class PruneResult:
    target: float
    structure: str
    achieved: float                       # zero fraction over the pruned kernels (channel: weights removed)
    per_layer: dict[str, float]
    schedule: dict[str, Any] = field(default_factory=dict)
    skipped_layers: list[str] = field(default_factory=list)   # layers left dense (reasons in left_dense)
    left_dense: dict[str, str] = field(default_factory=dict)  # layer -> why it was not pruned
    overall: float | None = None          # zero fraction over all kernels, the dense ones included
    extra: dict[str, Any] = field(default_factory=dict)       # structure-specific figures (channel: MACs, widths)

    def to_dict(self) -> dict[str, Any]:
        d = {"target": self.target, "structure": self.structure, "achieved": round(self.achieved, 4),
             "per_layer": {k: round(v, 4) for k, v in self.per_layer.items()}, "schedule": self.schedule,
             "skipped_layers": self.skipped_layers, "left_dense": self.left_dense,
             "overall": None if self.overall is None else round(self.overall, 4)}
        d.update(self.extra)
        return d


def schedule_for(tune: FineTune) -> tuple[int, int]:
    """(end_step, frequency): pruning ends at ~70 % of the steps on an update step, leaving the rest for
    fine-tuning with the final mask."""
    total = tune.total_steps
    if total < 2:
        raise FormicaryError(f"pruning needs at least 2 training steps, the --train data gives {total}",
                             "pass more --train samples or more --epochs.")
    frequency = max(1, min(100, total // 20))
    end_step = max(frequency, (int(total * 0.7) // frequency) * frequency)
    end_step = min(end_step, total - 1)
    end_step -= end_step % frequency
    return max(end_step, 0), frequency


def check_options(sparsity: float, structure: str) -> None:
    if structure not in STRUCTURES:
        raise FormicaryError(f"unknown --prune-structure {structure!r}", f"use one of {', '.join(STRUCTURES)}.")
    if not 0.0 < sparsity < 1.0:
        raise FormicaryError(f"--prune {sparsity} is not a sparsity in (0, 1)", "pass e.g. --prune 0.5 for 50 %.")
    if structure == "2:4" and abs(sparsity - 0.5) > 1e-9:
        raise FormicaryError(f"2:4 structured pruning zeroes exactly 50 % of each group; --prune {sparsity} "
                             "contradicts it", "use --prune 0.5 with --prune-structure 2:4.")


def prune(model: Any, tune: FineTune, sparsity: float,
          structure: Structure = "unstructured") -> tuple[Any, PruneResult]:
    """Prune a copy of `model` (a tf_keras model, left as it was) and return the pruned model with what was
    achieved. FormicaryError if nothing could be pruned or the target was not reached."""
    check_options(sparsity, structure)
    require_labels(tune, "--prune")
    if structure == "channel":
        return prune_channels(model, tune, sparsity)
    if structure == "block":
        return _prune_blocks(model, tune, sparsity)
    return _prune_tfmot(model, tune, sparsity, structure)


# ---- channel -------------------------------------------------------------------------------------------------

def prune_channels(model: Any, tune: FineTune, sparsity: float) -> tuple[Any, PruneResult]:
    """Remove `sparsity` of the channels of every prunable layer, rebuild narrower, fine-tune."""
    from formicary.shrink.channel import (
        build_pruned,
        count_params,
        keras_macs,
        plan_channels,
    )

    plan, walk = plan_channels(model, sparsity)
    if not any((~mask).any() for mask in plan.keep.values()):
        listing = "; ".join(f"{k}: {v}" for k, v in plan.left_dense.items()) or "no Conv/Dense layer"
        raise FormicaryError(f"channel pruning found no channel it can remove ({listing})",
                             "use --prune-structure unstructured or block, or a model whose hidden Conv/Dense "
                             "layers feed standard layers.")
    before_macs, before_params = keras_macs(model), count_params(model)
    before_kernels = sum(k.size for k in kernels(model).values())
    narrow = build_pruned(model, plan, walk)
    fit(narrow, tune, original=model)
    after_macs, after_params = keras_macs(narrow), count_params(narrow)
    after_kernels = sum(k.size for k in kernels(narrow).values())
    per_layer = {name: float(1.0 - mask.mean()) for name, mask in plan.keep.items()}
    channels = {name: [int(mask.sum()), int(mask.size)] for name, mask in plan.keep.items()}
    removed = 1.0 - after_kernels / before_kernels if before_kernels else 0.0
    result = PruneResult(
        target=sparsity, structure="channel", achieved=removed, per_layer=per_layer,
        schedule={"kind": "one-shot channel removal by importance (BatchNorm-folded filter L1 norm), then "
                          f"{tune.epochs} fine-tuning epochs"},
        skipped_layers=sorted(plan.left_dense), left_dense=dict(plan.left_dense), overall=removed,
        extra={"channels": channels,
               "weights_removed": round(removed, 4),
               "params": [before_params, after_params],
               "macs": [before_macs, after_macs],
               "macs_removed": round(1.0 - after_macs / before_macs, 4) if before_macs else 0.0,
               "meaning": "target = fraction of each prunable layer's output channels removed; achieved = "
                          "fraction of Conv/Dense kernel weights removed"})
    return narrow, result


# ---- unstructured and 2:4 (tfmot) ----------------------------------------------------------------------------

def _prunable_depthwise_class() -> type:
    """DepthwiseConv2D declaring its kernel prunable: tfmot's registry lists no prunable weight for it."""
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras

    global _PRUNABLE_DW
    if _PRUNABLE_DW is None:
        class PrunableDepthwiseConv2D(keras.layers.DepthwiseConv2D, tfmot.sparsity.keras.PrunableLayer):
            def get_prunable_weights(self):
                return [self.depthwise_kernel]

        _PRUNABLE_DW = PrunableDepthwiseConv2D
    return _PRUNABLE_DW


_PRUNABLE_DW: type | None = None


def _groups_fit(layer: Any) -> str | None:
    """Why 2:4/block cannot apply to this layer's kernel, or None."""
    cls = type(layer).__name__
    if cls.startswith("Depthwise"):
        return DEPTHWISE_GROUPS
    if cls.startswith("Separable"):
        return "separable: its depthwise half has one input channel per output channel"
    return None


def _prune_tfmot(model: Any, tune: FineTune, sparsity: float, structure: str) -> tuple[Any, PruneResult]:
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras

    sk = tfmot.sparsity.keras
    end_step, frequency = schedule_for(tune)
    left_dense: dict[str, str] = {}
    dw_class = _prunable_depthwise_class()
    if structure == "2:4":
        schedule = sk.ConstantSparsity(0.5, begin_step=0, frequency=frequency)
        sched_info: dict[str, Any] = {"kind": "2:4 (tfmot sparsity_m_by_n)", "frequency": frequency}
    else:
        schedule = sk.PolynomialDecay(initial_sparsity=0.0, final_sparsity=sparsity, begin_step=0,
                                      end_step=end_step, frequency=frequency)
        sched_info = {"kind": "PolynomialDecay", "begin_step": 0, "end_step": end_step, "frequency": frequency,
                      "total_steps": tune.total_steps}
    fresh: dict[str, Any] = {}    # depthwise layers rebuilt as PrunableDepthwiseConv2D: weights set after cloning
    original = model
    try:  # prune a copy: tfmot wraps (and trains) the layers it is given, the caller's model stays as it was
        model = keras.models.clone_model(original)
    except ValueError as exc:
        raise FormicaryError(f"cannot copy this model for pruning: {str(exc).splitlines()[0]}",
                             "use a Sequential or functional tf_keras model (subclassed models cannot be "
                             "cloned).") from exc
    model.set_weights(original.get_weights())

    def wrap(layer: Any) -> Any:
        cls = type(layer).__name__
        if cls not in KERNEL_LAYERS:
            return layer
        if structure == "2:4":
            why = _groups_fit(layer)
            in_c = int(layer.get_weights()[0].shape[-2]) if layer.get_weights() else 0
            if why is None and in_c < 4:
                why = f"{in_c} input channel(s): a group of 4 needs at least 4"
            if why is not None:
                left_dense[layer.name] = why
                return layer
            return sk.prune_low_magnitude(layer, pruning_schedule=schedule, sparsity_m_by_n=(2, 4))
        if cls == "DepthwiseConv2D":
            new = dw_class.from_config(layer.get_config())
            fresh[layer.name] = layer
            layer = new
        return sk.prune_low_magnitude(layer, pruning_schedule=schedule)

    try:
        wrapped = keras.models.clone_model(model, clone_function=wrap)
    except ValueError as exc:
        raise FormicaryError(f"cannot rebuild this model layer by layer for tfmot: {str(exc).splitlines()[0]}",
                             "use a Sequential or functional tf_keras model (subclassed models cannot be "
                             "cloned).") from exc
    for layer in wrapped.layers:
        inner = getattr(layer, "layer", None)
        if inner is not None and inner.name in fresh:
            inner.set_weights(fresh[inner.name].get_weights())
    pruned_names = [layer.layer.name for layer in wrapped.layers if hasattr(layer, "pruning_step")]
    if not pruned_names:
        raise FormicaryError(f"{structure} pruning found no layer it can prune ("
                             + "; ".join(f"{k}: {v}" for k, v in left_dense.items()) + ")",
                             "use --prune-structure channel or unstructured.")
    fit(wrapped, tune, callbacks=[sk.UpdatePruningStep()], original=original)
    steps_done = min(int(keras.backend.get_value(layer.pruning_step)) for layer in wrapped.layers
                     if hasattr(layer, "pruning_step"))
    stripped = _plain_depthwise(sk.strip_pruning(wrapped), dw_class)
    measured = sparsity_of(stripped)
    per_layer = {k: v for k, v in measured["per_layer"].items() if k in pruned_names}
    ks = kernels(stripped)
    pruned_total = sum(ks[n].size for n in per_layer)
    achieved = sum(int((ks[n] == 0).sum()) for n in per_layer) / pruned_total if pruned_total else 0.0
    sched_info["steps_done"] = steps_done
    result = PruneResult(target=sparsity, structure=structure, achieved=achieved, per_layer=per_layer,
                         schedule=sched_info, skipped_layers=sorted(left_dense), left_dense=left_dense,
                         overall=measured["overall"])
    completed = structure == "2:4" or steps_done >= end_step
    if structure == "2:4":
        _verify_2_4(stripped, result, steps_done)
    else:
        _verify_unstructured(stripped, result, completed)
    return stripped, result


def _plain_depthwise(model: Any, dw_class: type) -> Any:
    """The stripped model with PrunableDepthwiseConv2D turned back into plain DepthwiseConv2D (saveable, and
    what the converter expects)."""
    import tf_keras as keras

    swapped: dict[str, Any] = {}

    def back(layer: Any) -> Any:
        if isinstance(layer, dw_class):
            swapped[layer.name] = layer
            return keras.layers.DepthwiseConv2D.from_config(layer.get_config())
        return layer

    if not any(isinstance(layer, dw_class) for layer in model.layers):
        return model
    plain = keras.models.clone_model(model, clone_function=back)
    for layer in plain.layers:
        if layer.name in swapped:
            layer.set_weights(swapped[layer.name].get_weights())
    return plain


def _verify_unstructured(model: Any, result: PruneResult, completed: bool) -> None:
    short = {}
    ks = kernels(model)
    for name, frac in result.per_layer.items():
        # tfmot rounds the number of pruned weights per tensor; allow one weight of slack.
        if frac + 1.0 / ks[name].size + 1e-9 < result.target:
            short[name] = frac
    if not short:
        return
    if not completed:
        raise FormicaryError(f"pruning did not reach {result.target:.0%} sparsity in {short}: the schedule stopped "
                             f"at step {result.schedule.get('steps_done')} of {result.schedule.get('end_step')}",
                             "train for more --epochs or with more --train samples so the schedule completes.",
                             details={"per_layer": result.per_layer})
    raise FormicaryError(f"pruning did not reach {result.target:.0%} sparsity in {short} although the schedule "
                         "completed (tfmot did not prune these layers)",
                         "report this as a bug with the model attached; --prune-structure channel avoids tfmot.",
                         details={"per_layer": result.per_layer})


def groups_of_four_ok(kernel: np.ndarray) -> bool:
    """True if every 4 consecutive input-channel weights of a Keras kernel ([..., in, out]) hold ≤ 2 non-zeros."""
    if kernel.ndim == 2:
        rows = kernel.T
    elif kernel.ndim == 4:
        rows = np.transpose(kernel, (3, 0, 1, 2)).reshape(-1, kernel.shape[2])
    else:
        return False
    pad = (-rows.shape[1]) % 4
    rows = np.pad(rows, ((0, 0), (0, pad)))
    return bool(((rows.reshape(rows.shape[0], -1, 4) != 0).sum(axis=2) <= 2).all())


def _verify_2_4(model: Any, result: PruneResult, steps_done: int) -> None:
    ks = kernels(model)
    bad = [name for name in result.per_layer if not groups_of_four_ok(ks[name])]
    if bad:
        if steps_done < 1:
            raise FormicaryError(f"2:4 pruning left groups with more than 2 non-zeros in {bad}: no pruning step ran",
                                 "train for more --epochs or with more --train samples.")
        raise FormicaryError(f"2:4 pruning left groups with more than 2 non-zeros in {bad} after "
                             f"{steps_done} pruning steps", "report this as a bug with the model attached.")


# ---- block (own masks) ----------------------------------------------------------------------------------------

def block_norms(kernel: np.ndarray) -> np.ndarray:
    """L2 norm of every block of BLOCK consecutive input channels of a Keras kernel ([..., in, out]); the last
    block of each tap is partial when `in` is not a multiple of BLOCK. Shape [..., ceil(in/BLOCK), out]."""
    in_c = kernel.shape[-2]
    pad = (-in_c) % BLOCK
    padded = np.pad(kernel, [(0, 0)] * (kernel.ndim - 2) + [(0, pad), (0, 0)])
    shape = padded.shape[:-2] + ((in_c + pad) // BLOCK, BLOCK, kernel.shape[-1])
    return np.sqrt((padded.reshape(shape).astype(np.float64) ** 2).sum(axis=-2))


def block_mask(kernel: np.ndarray, fraction: float) -> np.ndarray:
    """Mask (kernel's shape) zeroing the `fraction` of blocks with the smallest L2 norm."""
    norms = block_norms(kernel)
    n = norms.size
    k = int(np.floor(fraction * n + 1e-9))
    keep_blocks = np.ones(n, dtype=bool)
    if k:
        keep_blocks[np.argsort(norms.reshape(-1), kind="stable")[:k]] = False
    keep_blocks = keep_blocks.reshape(norms.shape)
    full = np.repeat(keep_blocks, BLOCK, axis=-2)[..., :kernel.shape[-2], :]
    return full.astype(kernel.dtype)


def _prune_blocks(model: Any, tune: FineTune, sparsity: float) -> tuple[Any, PruneResult]:
    import tensorflow as tf
    import tf_keras as keras

    end_step, frequency = schedule_for(tune)
    original = model
    try:  # fine-tune a copy: the caller's model stays as it was
        model = keras.models.clone_model(original)
    except ValueError as exc:
        raise FormicaryError(f"cannot copy this model for block pruning: {str(exc).splitlines()[0]}",
                             "use a Sequential or functional tf_keras model.") from exc
    model.set_weights(original.get_weights())
    left_dense: dict[str, str] = {}
    targets = []
    for layer in model.layers:
        cls = type(layer).__name__
        if cls not in KERNEL_LAYERS:
            continue
        why = _groups_fit(layer)
        if why is None and cls not in ("Conv2D", "Dense", "Conv1D"):
            why = f"{cls}: the block-sparse kernels cover CONV_2D and FULLY_CONNECTED only"
        if why is None and getattr(layer, "groups", 1) != 1:
            why = "grouped convolution: the block-sparse kernel takes groups = 1 only"
        if why is not None:
            left_dense[layer.name] = why
            continue
        targets.append(layer)
    if not targets:
        raise FormicaryError("block pruning found no Conv2D/Dense layer to prune ("
                             + "; ".join(f"{k}: {v}" for k, v in left_dense.items()) + ")",
                             "use --prune-structure channel or unstructured.")

    class Masks(keras.callbacks.Callback):
        """Gradual schedule (cubic, as tfmot's PolynomialDecay): masks recomputed every `frequency` steps up
        to `end_step`, and re-applied after every step so the optimizer cannot regrow pruned weights."""

        def __init__(self) -> None:
            super().__init__()
            self.step = 0
            self.masks: dict[str, Any] = {}
            self.last_update = -1

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.step += 1
            if self.step <= end_step and self.step % frequency == 0:
                frac = sparsity * (1.0 - (1.0 - self.step / max(end_step, 1)) ** 3)
                for layer in targets:
                    self.masks[layer.name] = tf.constant(block_mask(layer.kernel.numpy(), frac))
                self.last_update = self.step
            for layer in targets:
                if layer.name in self.masks:
                    layer.kernel.assign(layer.kernel * self.masks[layer.name])

    masks = Masks()
    fit(model, tune, callbacks=[masks], original=original)
    completed = masks.last_update >= end_step
    if not completed:
        raise FormicaryError(f"block pruning's schedule stopped at step {masks.step} before its end step {end_step}",
                             "train for more --epochs or with more --train samples so the schedule completes.")
    per_layer = {}
    zero_blocks = total_blocks = 0
    for layer in targets:
        norms = block_norms(layer.kernel.numpy())
        z = int((norms == 0).sum())
        per_layer[layer.name] = z / norms.size
        zero_blocks += z
        total_blocks += norms.size
    for name, frac in per_layer.items():
        n = block_norms(model.get_layer(name).kernel.numpy()).size
        if frac + 1.0 / n + 1e-9 < sparsity:
            raise FormicaryError(f"block pruning left {name} at {frac:.1%} zero blocks, short of {sparsity:.0%}",
                                 "report this as a bug with the model attached.")
    result = PruneResult(target=sparsity, structure="block", achieved=zero_blocks / total_blocks,
                         per_layer=per_layer,
                         schedule={"kind": f"gradual block magnitude (1x{BLOCK} blocks along input channels)",
                                   "begin_step": 0, "end_step": end_step, "frequency": frequency,
                                   "total_steps": tune.total_steps, "steps_done": masks.step},
                         skipped_layers=sorted(left_dense), left_dense=left_dense,
                         overall=sparsity_of(model)["overall"],
                         extra={"block": [1, BLOCK], "meaning": "fraction of 1x4 blocks (one output channel, four "
                                                                "consecutive input channels, one tap) zeroed"})
    return model, result
