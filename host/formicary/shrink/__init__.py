"""Shrinking a tf_keras model before conversion: magnitude pruning, weight clustering, quantization-aware training.

Each step wraps the model with tfmot, fine-tunes it on the training data and strips the wrappers again, then
checks that what was asked for (sparsity, number of distinct weights) really holds. Shared fine-tuning
helpers live here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from formicary.data import Dataset
from formicary.errors import FormicaryError

# Layers whose kernels tfmot prunes/clusters; also what sparsity is measured over.
KERNEL_LAYERS = ("Conv1D", "Conv2D", "Conv3D", "DepthwiseConv2D", "SeparableConv2D", "Dense", "Conv2DTranspose")


@dataclass
class FineTune:
    """How to fine-tune: data, epochs, batch size; `learning_rate` is deliberately low (the model is trained)."""

    train: Dataset
    epochs: int
    batch_size: int = 32
    learning_rate: float = 1e-3

    @property
    def steps_per_epoch(self) -> int:
        return max(1, math.ceil(len(self.train) / self.batch_size))

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.epochs


def require_labels(tune: FineTune, what: str) -> None:
    if not tune.train.has_labels:
        raise FormicaryError(f"{what} fine-tunes the model, but the --train data has no labels `y`",
                             "pass --train data with labels (an .npz with x and y, or a .bin folder with "
                             "y_labels.csv).")
    if tune.epochs < 1:
        raise FormicaryError(f"{what} needs at least one fine-tuning epoch", "pass --epochs 1 or more.")


def loss_and_metrics(model: Any) -> tuple[Any, list[str]]:
    """A loss matching the model's output and the integer labels formicary's datasets carry."""
    import tf_keras as keras

    out_units = model.outputs[0].shape[-1]
    activation = output_activation(model)
    if out_units == 1:
        return keras.losses.BinaryCrossentropy(from_logits=activation != "sigmoid"), ["accuracy"]
    return keras.losses.SparseCategoricalCrossentropy(from_logits=activation != "softmax"), ["accuracy"]


def output_activation(model: Any) -> str:
    """The activation the model's output ends in ("softmax", "sigmoid", "" for logits/linear): the last layer's
    own activation, or a separate Softmax / Activation layer (tfmot wrappers are looked through)."""
    last = model.layers[-1]
    if hasattr(last, "layer"):  # a tfmot wrapper: look at the wrapped layer
        last = last.layer
    if type(last).__name__ == "Softmax":
        return "softmax"
    name = getattr(getattr(last, "activation", None), "__name__", "")
    return "" if name == "linear" else name


def fit(model: Any, tune: FineTune, callbacks: list | None = None, original: Any | None = None) -> None:
    """Compile (Adam, low rate) and fine-tune `model` in place, deterministically (no shuffle randomness beyond
    the global seed set by the caller)."""
    import tf_keras as keras

    loss, metrics = loss_and_metrics(original if original is not None else model)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=tune.learning_rate), loss=loss, metrics=metrics)
    x = tune.train.x.astype(np.float32, copy=False)
    from formicary.model.keras_io import quiet_native_logs

    with quiet_native_logs():
        model.fit(x, tune.train.y, epochs=tune.epochs, batch_size=tune.batch_size, shuffle=True,
                  callbacks=callbacks or [], verbose=0)


def wrap_kernel_layers(model: Any, wrap: Any) -> Any:
    """Clone `model`, applying `wrap(layer)` to Conv/Dense layers only and reusing every other layer as is.

    tfmot's whole-model helpers refuse a model with any layer they do not know (Rescaling, custom layers…);
    wrapping just the kernel layers prunes/clusters what matters and leaves the rest untouched.
    """
    import tf_keras as keras

    def clone(layer):
        return wrap(layer) if type(layer).__name__ in KERNEL_LAYERS else layer

    try:
        return keras.models.clone_model(model, clone_function=clone)
    except ValueError as exc:
        raise FormicaryError(f"cannot rebuild this model layer by layer for tfmot: {str(exc).splitlines()[0]}",
                             "use a Sequential or functional tf_keras model (subclassed models cannot be "
                             "cloned).") from exc


def kernels(model: Any) -> dict[str, np.ndarray]:
    """The kernel (main weight tensor) of every prunable/clusterable layer, by layer name: weights[0], except a
    SeparableConv2D's pointwise kernel (weights[1]), which holds most of its weights and is what tfmot prunes."""
    out = {}
    for layer in model.layers:
        if type(layer).__name__ in KERNEL_LAYERS:
            weights = layer.get_weights()
            if weights:
                out[layer.name] = weights[1] if type(layer).__name__.startswith("Separable") else weights[0]
    return out


def sparsity_of(model: Any) -> dict[str, Any]:
    """Fraction of exact zeros, per kernel and over all kernels (weights only: biases are not pruned)."""
    ks = kernels(model)
    total = sum(k.size for k in ks.values())
    zeros = sum(int((k == 0).sum()) for k in ks.values())
    return {"overall": zeros / total if total else 0.0,
            "per_layer": {name: float((k == 0).mean()) for name, k in ks.items()}}
