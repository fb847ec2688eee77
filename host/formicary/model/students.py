"""formicary's built-in small architectures (students for distillation, or trained from scratch), scaled by width.

Named on the command line as `builtin:NAME@WIDTH` (e.g. `builtin:cnn@0.25`, `builtin:dscnn@0.5`; `@WIDTH` may be
left out for 1.0). WIDTH multiplies every hidden layer's channel/unit count (rounded, at least 1); the input shape
and the number of classes come from the teacher (distillation) or from the data (training from scratch), so the
same name builds a model for any image-shaped input (H, W, C) and class count.

- `cnn`: the digits CNN shape: Conv 3×3 (8w) → Conv 3×3 stride 2 (16w) → Flatten → Dense (32w) → Dense (classes).
- `dscnn`: depthwise-separable: Conv 3×3 (8w) → [Depthwise 3×3 stride 2 → Conv 1×1 (16w)] →
  [Depthwise 3×3 → Conv 1×1 (32w)] → global average pooling → Dense (classes).

Inputs larger than 16 pixels on a side get a stride-2 first convolution, and feature maps still larger than 4×4
before the classifier are average-pooled down to at most 4×4 (`cnn` only; `dscnn` pools globally), so MACs stay
small for big inputs. The output layer is a softmax (what `formicary compile` and the TFLM accuracy expect).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from formicary.errors import FormicaryError

PREFIX = "builtin:"
MAX_WIDTH = 16.0

# name -> one-line description (what `unknown builtin` errors list)
ARCHITECTURES = {
    "cnn": "plain CNN: conv3x3(8w) -> conv3x3/2(16w) -> dense(32w) -> dense(classes)",
    "dscnn": "depthwise-separable CNN: conv3x3(8w) -> dw3x3/2+pw(16w) -> dw3x3+pw(32w) -> avgpool -> dense(classes)",
}

_SPEC = re.compile(r"^builtin:([A-Za-z0-9_]+)(?:@(.+))?$")


@dataclass(frozen=True)
class BuiltinSpec:
    """A parsed `builtin:NAME@WIDTH`."""

    name: str
    width: float

    @property
    def spec(self) -> str:
        return f"{PREFIX}{self.name}@{self.width:g}"


def is_builtin(model: Any) -> bool:
    """True when `model` names a built-in architecture (`builtin:...`) rather than a file."""
    return str(model).startswith(PREFIX)


def _listing() -> str:
    return "; ".join(f"{PREFIX}{n}@WIDTH ({d})" for n, d in ARCHITECTURES.items())


def parse_builtin(spec: str) -> BuiltinSpec:
    """Parse and validate `builtin:NAME[@WIDTH]`; one FormicaryError listing what exists otherwise."""
    m = _SPEC.match(str(spec).strip())
    fix = f"use one of: {_listing()}; WIDTH is a number in (0, {MAX_WIDTH:g}], e.g. builtin:cnn@0.25."
    if not m:
        raise FormicaryError(f"{spec!r} is not a built-in architecture name (syntax builtin:NAME@WIDTH)", fix)
    name, width_text = m.group(1), m.group(2)
    if name not in ARCHITECTURES:
        raise FormicaryError(f"unknown built-in architecture {name!r}", fix,
                             details={"known": sorted(ARCHITECTURES)})
    try:
        width = 1.0 if width_text is None else float(width_text)
    except ValueError:
        raise FormicaryError(f"{spec!r}: width {width_text!r} is not a number", fix) from None
    if not math.isfinite(width) or not 0.0 < width <= MAX_WIDTH:
        raise FormicaryError(f"{spec!r}: width {width_text} is outside (0, {MAX_WIDTH:g}]", fix)
    return BuiltinSpec(name, width)


def scaled(channels: int, width: float) -> int:
    """A hidden layer's channel count at `width`: rounded, never below 1."""
    return max(1, round(channels * width))


def build_builtin(spec: BuiltinSpec | str, input_shape: tuple[int | None, ...], classes: int) -> Any:
    """The tf_keras model for `spec` on inputs of `input_shape` (with or without the batch axis) and `classes`
    outputs (softmax). Weights are freshly initialised from TensorFlow's global seed (seed it first)."""
    import tf_keras as keras

    s = parse_builtin(spec) if isinstance(spec, str) else spec
    shape = tuple(input_shape[1:]) if len(input_shape) == 4 else tuple(input_shape)
    if len(shape) != 3 or any(d is None or int(d) < 1 for d in shape):
        raise FormicaryError(f"{s.spec} needs image-shaped inputs (height, width, channels) with fixed sizes; "
                             f"got {shape}", "use a Keras student model of your own for other input shapes.")
    if classes < 2:
        raise FormicaryError(f"{s.spec} is a classifier and needs at least 2 classes, got {classes}",
                             "give labels 0 … N-1 with N ≥ 2 (or a teacher with N ≥ 2 outputs).")
    h, w, _ = (int(d) for d in shape)
    first_stride = 2 if max(h, w) > 16 else 1
    L = keras.layers
    layers: list[Any] = [L.InputLayer(input_shape=shape, name="image"),
                         L.Conv2D(scaled(8, s.width), 3, strides=first_stride, padding="same", activation="relu",
                                  name="conv1")]
    oh, ow = math.ceil(h / first_stride), math.ceil(w / first_stride)
    if s.name == "cnn":
        layers.append(L.Conv2D(scaled(16, s.width), 3, strides=2, padding="same", activation="relu", name="conv2"))
        oh, ow = math.ceil(oh / 2), math.ceil(ow / 2)
        if max(oh, ow) > 4:
            pool = (math.ceil(oh / 4), math.ceil(ow / 4))
            layers.append(L.AveragePooling2D(pool, padding="same", name="pool"))
        layers += [L.Flatten(name="flatten"),
                   L.Dense(scaled(32, s.width), activation="relu", name="fc1")]
    else:  # dscnn
        layers += [L.DepthwiseConv2D(3, strides=2, padding="same", activation="relu", name="dw1"),
                   L.Conv2D(scaled(16, s.width), 1, activation="relu", name="pw1"),
                   L.DepthwiseConv2D(3, padding="same", activation="relu", name="dw2"),
                   L.Conv2D(scaled(32, s.width), 1, activation="relu", name="pw2"),
                   L.GlobalAveragePooling2D(name="pool")]
    layers.append(L.Dense(classes, activation="softmax", name="probs"))
    return keras.Sequential(layers, name=f"{s.name}_w{s.width:g}".replace(".", "_"))
