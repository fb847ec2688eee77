"""A small CONV_2D + FULLY_CONNECTED model built with the flatbuffer builder (no TensorFlow), in int8 or float32,
narrower or block-pruned: the energy-model tests' hand calculation and the report's energy bars use it."""
from __future__ import annotations

import numpy as np
from formicary.tflite.builder import Op, T, build


def conv_fc_model(*, dtype: str = "int8", conv_out: int = 4, fc_zero_blocks: float = 0.0) -> bytes:
    """input [1,6,6,2] -> CONV_2D 3x3 VALID, `conv_out` channels -> [1,4,4,conv_out] -> FULLY_CONNECTED to 3."""
    rng = np.random.default_rng(0)
    q = dtype == "int8"
    depth = 16 * conv_out
    w_conv = rng.integers(-100, 100, (conv_out, 3, 3, 2)) if q else rng.normal(size=(conv_out, 3, 3, 2))
    w_fc = rng.integers(-100, 100, (3, depth)) if q else rng.normal(size=(3, depth))
    w_fc[w_fc == 0] = 1
    if fc_zero_blocks:
        blocks = w_fc.reshape(3, depth // 4, 4)
        blocks[:, : int(fc_zero_blocks * depth // 4)] = 0
    act = {"scale": [0.05], "zero_point": [-3]} if q else {}
    bias_t = "int32" if q else "float32"
    tensors = [
        T((1, 6, 6, 2), dtype, **act),
        T(w_conv.shape, dtype, scale=[0.01] * conv_out if q else None, zero_point=[0] * conv_out if q else None,
          data=w_conv),
        T((conv_out,), bias_t, scale=[0.0005] * conv_out if q else None, zero_point=[0] * conv_out if q else None,
          data=np.arange(conv_out)),
        T((1, 4, 4, conv_out), dtype, **act),
        T(w_fc.shape, dtype, scale=[0.01] if q else None, zero_point=[0] if q else None, data=w_fc),
        T((3,), bias_t, scale=[0.0005] if q else None, zero_point=[0] if q else None, data=np.arange(3)),
        T((1, 3), dtype, **act),
    ]
    ops = [Op("CONV_2D", [0, 1, 2], [3], "Conv2DOptions", {"Padding": 1, "StrideW": 1, "StrideH": 1}),
           Op("FULLY_CONNECTED", [3, 4, 5], [6], "FullyConnectedOptions", {})]
    return build(tensors, ops, [0], [6])
