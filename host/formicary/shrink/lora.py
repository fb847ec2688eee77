"""LoRA (low-rank adaptation): fine-tune a trained tf_keras model through small trainable factors on frozen weights.

Every Dense and Conv2D layer not named in `keep_trainable` keeps its weights W frozen and learns an update
(alpha/rank)·A·B of rank `rank`:

- Dense, kernel W (in × out): A is (in × r), B is (r × out). The adapter branch is Dense(r) then Dense(out),
  both without bias.
- Conv2D k×k, kernel W (kh, kw, cin, cout): the kernel reshaped to the matrix (kh·kw·cin × cout) is factored as
  A (kh·kw·cin × r) · B (r × cout). A is then a kh×kw convolution to r channels with the layer's strides,
  padding and dilation, B a 1×1 convolution r → cout, both without bias. A convolution is linear in its kernel
  and a 1×1 convolution mixes channels pixel by pixel, so conv(conv(x, A), B) = conv(x, A·B) exactly (zero
  padding commutes with the channel mix): the branch is the reshaped-matrix factorisation itself, and it exports
  as two ordinary convolutions formicary-rt runs. Factoring the spatial taps apart instead (e.g. k×1 then 1×k)
  would constrain the filter's shape, not its rank over channels, and is not what the matrix view means.
- B starts at zero, A at a small uniform draw (fan-in scaled): the adapted model starts exactly equal to the base.

Not adapted, and frozen (named in the info's `skipped`, with the reason), unless named in `keep_trainable`:
DepthwiseConv2D (one kh×kw filter per channel: a 3×3 filter has rank ≤ 3, so rank-4 factors save nothing, and
the factorisation of the reshaped (kh·kw × channels) matrix needs a per-channel weighting after r shared spatial
filters, which no TFLite builtin does without a grouped convolution; the layer has few weights, so name it in
`keep_trainable` to train it fully), grouped or channels-first Conv2D, and every layer of another type.

After training the adapters are merged, W' = W + (alpha/rank)·A·B, into a copy of the model with the base's exact
layer structure (zero run-time cost), and the merged model's outputs are checked against the adapter model's on
the training inputs before anything is quantized. With `separate=True` the adapters stay explicit instead: each
adapted layer becomes the base op with a linear activation, the two small adapter ops (scale folded into B), an
Add and the layer's activation, so one base can carry several small adapters on a device (docs/shrinking.md).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from formicary.errors import FormicaryError
from formicary.shrink import FineTune, fit, require_labels

ADAPTED = ("Dense", "Conv2D")
# Relative tolerance of the merge check (float32 on the same inputs; the difference is summation order only).
MERGE_RTOL = 1e-4
MAX_CHECK_SAMPLES = 2000
DEPTHWISE_REASON = ("DepthwiseConv2D is not factored: each channel has one kh×kw filter (rank ≤ min(kh, kw)), "
                    "so low-rank factors save nothing, and the reshaped-matrix factorisation needs a per-channel "
                    "weighting no TFLite builtin does; frozen (name it in keep_trainable to train it fully: it has "
                    "few weights)")


@dataclass
class _Plan:
    """Which layers get adapters, which are trained fully, which stay frozen (and why)."""
    adapted: list[str] = field(default_factory=list)
    keep: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


@dataclass
class LoRAAdapters:
    """A trained LoRA: the adapter (training) model, a private copy of the base, and the factors per layer."""
    rank: int
    alpha: float
    base: Any                                   # private copy of the input model (keep_trainable layers trained)
    train_model: Any                            # base layers frozen + explicit adapter branches (with scale)
    plan: _Plan
    trainable_params: int
    full_finetune_params: int
    train_seconds: float
    per_layer: dict[str, dict[str, Any]]

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    @property
    def factors(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """layer -> (A, B) as their Keras kernels (Dense: (in, r), (r, out); Conv2D: (kh, kw, cin, r),
        (1, 1, r, cout)), read from the adapter model."""
        return {name: tuple(self.train_model.get_layer(f"{name}_lora_{x}").get_weights()[0] for x in "ab")
                for name in self.plan.adapted}

    def delta(self, name: str) -> np.ndarray:
        """(alpha/rank)·A·B in the shape of the layer's kernel."""
        a, b = self.factors[name]
        kernel_shape = self.base.get_layer(name).get_weights()[0].shape
        r = a.shape[-1]
        return (self.scale * (a.reshape(-1, r).astype(np.float64) @ b.reshape(r, -1).astype(np.float64))
                ).reshape(kernel_shape).astype(np.float32)

    def merged(self) -> Any:
        """A copy of the base with W' = W + (alpha/rank)·A·B in every adapted layer: the base's layer structure."""
        import tf_keras as keras

        model = keras.models.clone_model(self.base)
        model.set_weights(self.base.get_weights())
        for name in self.plan.adapted:
            layer = model.get_layer(name)
            weights = layer.get_weights()
            weights[0] = weights[0] + self.delta(name)
            layer.set_weights(weights)
        return model

    def separate(self) -> Any:
        """The model with explicit adapter branches (scale folded into B), every layer a fresh copy."""
        factors = self.factors
        return _rebuild(self.base, lambda layer, args, kwargs: (
            _branch(layer, args, kwargs, self.rank, scale=None, factors=factors[layer.name],
                    folded_scale=self.scale) if layer.name in self.plan.adapted else None), fresh=True)

    def check(self, model: Any, x: np.ndarray) -> tuple[float, float]:
        """(max abs difference of `model`'s outputs from the adapter model's on x, the tolerance it must meet)."""
        x = x[:MAX_CHECK_SAMPLES].astype(np.float32, copy=False)
        want = _outputs(self.train_model, x)
        got = _outputs(model, x)
        err = max(float(np.max(np.abs(a.astype(np.float64) - b))) for a, b in zip(got, want))
        tol = MERGE_RTOL * max(1.0, max(float(np.max(np.abs(w))) for w in want))
        return err, tol


def lora_finetune(model: Any, tune: FineTune, rank: int, *, alpha: float | None = None,
                  keep_trainable: Collection[str] = (), separate: bool = False) -> tuple[Any, dict[str, Any]]:
    """Fine-tune `model` with LoRA factors of rank `rank` on its Dense/Conv2D layers (frozen base weights) and the
    layers named in `keep_trainable` trained fully; everything else frozen. `alpha` (default: `rank`, i.e. scale 1)
    scales the update by alpha/rank.

    Returns (model, info): the merged model with the original layer structure, or with `separate=True` the model
    with explicit adapter branches; `info` is the provenance stage (keys in docs/shrinking.md, "LoRA"). The input
    model is not modified. FormicaryError when the exported model's outputs differ from the adapter model's by
    more than the tolerance (before quantization)."""
    adapters = lora_train(model, tune, rank, alpha=alpha, keep_trainable=keep_trainable)
    out = adapters.separate() if separate else adapters.merged()
    err, tol = adapters.check(out, tune.train.x)
    what = "model with separate adapters" if separate else "merged model"
    if not err <= tol:
        raise FormicaryError(
            f"the LoRA {what} differs from the adapter model by {err:.3g} (tolerance {tol:.3g}) on the training "
            "inputs", "report this as a formicary bug (the merge W + (alpha/rank)·A·B should reproduce the adapter "
            "model up to float rounding); train with the unmerged model meanwhile.",
            details={"max_abs_error": err, "tolerance": tol, "layers": adapters.plan.adapted})
    return out, info_of(adapters, merged=not separate, error=err, tolerance=tol)


def info_of(adapters: LoRAAdapters, *, merged: bool, error: float, tolerance: float) -> dict[str, Any]:
    """The provenance stage of a LoRA fine-tuning."""
    return {"stage": "lora", "rank": adapters.rank, "alpha": adapters.alpha, "scale": adapters.scale,
            "layers": list(adapters.plan.adapted), "keep_trainable": list(adapters.plan.keep),
            "skipped": dict(adapters.plan.skipped), "per_layer": adapters.per_layer,
            "trainable_params": adapters.trainable_params, "full_finetune_params": adapters.full_finetune_params,
            "merged": merged, "merge_max_abs_error": error, "merge_tolerance": tolerance,
            "train_seconds": round(adapters.train_seconds, 3),
            "label": f"lora{adapters.rank}" + ("" if merged else "sep")}


def lora_train(model: Any, tune: FineTune, rank: int, *, alpha: float | None = None,
               keep_trainable: Collection[str] = ()) -> LoRAAdapters:
    """Train LoRA factors (and the keep_trainable layers) and return them with the base, unmerged."""
    require_labels(tune, "LoRA")
    adapters = prepare(model, rank, alpha=alpha, keep_trainable=keep_trainable)
    start = time.perf_counter()
    fit(adapters.train_model, tune, original=model)
    adapters.train_seconds = time.perf_counter() - start
    for layer in adapters.base.layers:
        layer.trainable = True   # the exported models are ordinary, fully trainable models again
    return adapters


def prepare(model: Any, rank: int, *, alpha: float | None = None,
            keep_trainable: Collection[str] = ()) -> LoRAAdapters:
    """The untrained adapter model: a private copy of `model` with every layer frozen except the keep_trainable
    ones, and an adapter branch (A random, B = 0) beside each adapted layer."""
    import tf_keras as keras

    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 1:
        raise FormicaryError(f"LoRA rank {rank!r} is not a positive integer", "pass e.g. --lora-rank 4.")
    alpha = float(rank if alpha is None else alpha)
    if not np.isfinite(alpha) or alpha <= 0:
        raise FormicaryError(f"LoRA alpha {alpha} is not a positive number",
                             "pass e.g. --lora-alpha 8 (the update is scaled by alpha/rank), or leave it out.")
    if not isinstance(model, keras.Model) or not getattr(model, "_is_graph_network", False):
        raise FormicaryError("LoRA needs a built Sequential or functional tf_keras model (it rebuilds the layer "
                             "graph)", "build the model with keras.Sequential or the functional API with a known "
                             "input shape (subclassed models cannot be rebuilt).")
    base = keras.models.clone_model(model)
    base.set_weights(model.get_weights())
    plan = _plan(base, keep_trainable)
    if not plan.adapted and not plan.keep:
        raise FormicaryError("LoRA found no Dense or Conv2D layer to adapt and no keep_trainable layer",
                             "pass a model with Dense/Conv2D layers, or name layers to train in keep_trainable.")
    full = 0
    for name in (*plan.adapted, *plan.keep):
        full += int(sum(int(np.prod(w.shape)) for w in base.get_layer(name).trainable_weights))
    for layer in base.layers:
        layer.trainable = layer.name in plan.keep
    train_model = _rebuild(base, lambda layer, args, kwargs: (
        _branch(layer, args, kwargs, int(rank), scale=alpha / rank, seed=plan.adapted.index(layer.name))
        if layer.name in plan.adapted else None), fresh=False)
    trainable = int(sum(int(np.prod(w.shape)) for w in train_model.trainable_weights))
    per_layer = {}
    for name in plan.adapted:
        layer = base.get_layer(name)
        kernel = layer.get_weights()[0]
        a, b = (train_model.get_layer(f"{name}_lora_{x}").get_weights()[0] for x in "ab")
        per_layer[name] = {"type": type(layer).__name__,
                           "matrix": [int(np.prod(kernel.shape[:-1])), int(kernel.shape[-1])],
                           "lora_params": int(a.size + b.size),
                           "full_params": int(sum(int(np.prod(w.shape)) for w in layer.weights))}
    return LoRAAdapters(int(rank), alpha, base, train_model, plan, trainable, full, 0.0, per_layer)


def _plan(model: Any, keep_trainable: Collection[str]) -> _Plan:
    names = {layer.name for layer in model.layers}
    unknown = sorted(set(keep_trainable) - names)
    if unknown:
        raise FormicaryError(f"keep_trainable names layers the model does not have: {', '.join(unknown)}",
                             f"use layer names of the model: {', '.join(layer.name for layer in model.layers)}.")
    plan = _Plan()
    for layer in model.layers:
        kind = type(layer).__name__
        if layer.name in keep_trainable:
            plan.keep.append(layer.name)
        elif kind not in ADAPTED:
            if kind == "DepthwiseConv2D":
                plan.skipped[layer.name] = DEPTHWISE_REASON
            elif hasattr(layer, "layers"):
                plan.skipped[layer.name] = (f"nested model ({kind}): LoRA adapts the outer model's own layers only; "
                                            "frozen (build the model flat, e.g. keras.Model(base.input, "
                                            "head(base.layers[-2].output)))")
            elif layer.weights:
                plan.skipped[layer.name] = f"{kind} has no LoRA form here; frozen"
        elif kind == "Conv2D" and (layer.groups != 1 or layer.data_format != "channels_last"):
            plan.skipped[layer.name] = "grouped or channels-first Conv2D is not factored; frozen"
        elif len(layer.get_weights()[0].shape) not in (2, 4):
            plan.skipped[layer.name] = "kernel is neither a Dense matrix nor a 2-D convolution; frozen"
        else:
            plan.adapted.append(layer.name)
    return plan


def _branch(layer: Any, args: tuple, kwargs: dict, rank: int, *, scale: float | None, seed: int = 0,
            factors: tuple[np.ndarray, np.ndarray] | None = None, folded_scale: float = 1.0) -> Any:
    """act(base(x) + scale·B(A(x))) for one adapted layer, in plain Keras layers.

    Training (`factors` None): the base copy is frozen, A and B are new and trainable, B = 0, the scale a
    Rescaling layer. Export (`factors` given): the trained A and B, the scale folded into B, no Rescaling."""
    import tf_keras as keras

    x = args[0]
    config = layer.get_config()
    activation = config.get("activation", "linear")
    weights = layer.get_weights()
    base_layer = type(layer).from_config({**config, "activation": "linear", "trainable": factors is not None})
    base_out = base_layer(x, **kwargs)
    base_layer.set_weights(weights)
    a_init = keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform", seed=1000 + seed)
    if type(layer).__name__ == "Dense":
        a_layer = keras.layers.Dense(rank, use_bias=False, kernel_initializer=a_init, name=f"{layer.name}_lora_a")
        b_layer = keras.layers.Dense(config["units"], use_bias=False, kernel_initializer="zeros",
                                     name=f"{layer.name}_lora_b")
    else:
        a_layer = keras.layers.Conv2D(rank, config["kernel_size"], strides=config["strides"],
                                      padding=config["padding"], dilation_rate=config["dilation_rate"],
                                      use_bias=False, kernel_initializer=a_init, name=f"{layer.name}_lora_a")
        b_layer = keras.layers.Conv2D(config["filters"], 1, use_bias=False, kernel_initializer="zeros",
                                      name=f"{layer.name}_lora_b")
    low = b_layer(a_layer(x))
    if factors is not None:
        a_layer.set_weights([factors[0]])
        b_layer.set_weights([factors[1] * np.float32(folded_scale)])
    elif scale is not None and scale != 1.0:
        low = keras.layers.Rescaling(scale, name=f"{layer.name}_lora_scale")(low)
    y = keras.layers.Add(name=f"{layer.name}_lora_add")([base_out, low])
    if activation not in ("linear", None):
        y = keras.layers.Activation(activation, name=f"{layer.name}_lora_act")(y)
    return y


def _rebuild(model: Any, replace: Callable[[Any, tuple, dict], Any], *, fresh: bool) -> Any:
    """A new functional model with `model`'s graph, where `replace(layer, args, kwargs)` may return the output of
    a sub-graph standing in for a layer (None: keep the layer). `fresh`: every kept layer is a new copy with the
    same weights (the result shares nothing with `model`); otherwise kept layers are reused (shared)."""
    import tensorflow as tf
    import tf_keras as keras

    tensors: dict[int, Any] = {}
    inputs = []
    for t in model.inputs:
        source = t._keras_history.layer
        new = keras.Input(batch_shape=source.get_config()["batch_input_shape"], dtype=t.dtype, name=source.name)
        tensors[id(t)] = new
        inputs.append(new)

    def mapped(value):
        # Keras tensors are mapped by identity (the graph's nodes hold the originals alive); constants pass through.
        return tensors.get(id(value), value) if hasattr(value, "_keras_history") else value

    copies: dict[str, Any] = {}
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if node.is_input:
                continue
            layer = node.layer
            args = tf.nest.map_structure(mapped, node.call_args)
            kwargs = tf.nest.map_structure(mapped, node.call_kwargs)
            out = replace(layer, args, kwargs)
            if out is None:
                if fresh:
                    if layer.name not in copies:
                        copies[layer.name] = type(layer).from_config(layer.get_config())
                    out = copies[layer.name](*args, **kwargs)
                else:
                    out = layer(*args, **kwargs)
            for old, new in zip(tf.nest.flatten(node.outputs), tf.nest.flatten(out)):
                tensors[id(old)] = new
    for name, copy in copies.items():
        copy.set_weights(model.get_layer(name).get_weights())
    outputs = [tensors[id(t)] for t in model.outputs]
    return keras.Model(inputs, outputs if len(outputs) > 1 else outputs[0], name=model.name)


def _outputs(model: Any, x: np.ndarray) -> list[np.ndarray]:
    from formicary.model.keras_io import quiet_native_logs

    with quiet_native_logs():   # Grappler complains about the Add/Activation graph on fd 2; harmless
        out = model(x, training=False)
    return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]
