"""Whole int8 networks built without TensorFlow, with random weights and plausible quantization, for checks that
need a real architecture's op mix on the boards: a MobileNetV1-style depthwise-separable net (what MLPerf Tiny's
VWW model is: strided 3x3 stem, dw3x3 + pw1x1 blocks with stride 2, average pool, FC, softmax) and, in
tests/codegen/test_models.py, a residual block. Outputs are checked against TFLM, so the weights need not mean
anything; their scales keep activations spread over the int8 range rather than saturated."""
from __future__ import annotations

import numpy as np

from formicary.tflite.builder import Op, T, build


def mobilenet_v1(hw: int = 48, width: tuple[int, ...] = (8, 16, 16, 32, 32), classes: int = 2,
                 seed: int = 0) -> bytes:
    """int8 MobileNetV1-style net: conv3x3/s2 (3 -> width[0]), then per further width a dw3x3 (stride 2 on every
    other block) + pw1x1 block, all RELU6, then average pool over what is left, FC and softmax."""
    rng = np.random.default_rng(seed)
    tensors: list[T] = []
    ops: list[Op] = []

    def add(t: T) -> int:
        tensors.append(t)
        return len(tensors) - 1

    def act(shape, scale=0.024, zp=-128) -> int:  # RELU6 output: [0, 6] over int8
        return add(T(shape, scale=[scale], zero_point=[zp]))

    def weights(shape, per_axis: int, axis: int) -> int:
        fan_in = int(np.prod(shape)) // per_axis
        scales = rng.uniform(0.5, 1.5, per_axis) / (40.0 * np.sqrt(fan_in))
        data = rng.integers(-127, 128, shape).astype(np.int8)
        return add(T(shape, scale=list(scales), zero_point=[0] * per_axis, axis=axis, data=data))

    def bias(n: int) -> int:
        return add(T((n,), "int32", data=rng.integers(-3000, 3000, n).astype(np.int32)))

    x = add(T((1, hw, hw, 3), scale=[1 / 128], zero_point=[0]))
    inp = x
    size, ch = (hw + 1) // 2, width[0]
    y = act((1, size, size, ch))
    ops.append(Op("CONV_2D", [x, weights((ch, 3, 3, 3), ch, 0), bias(ch)], [y], "Conv2DOptions",
                  dict(Padding=0, StrideW=2, StrideH=2, FusedActivationFunction=3)))
    x = y
    for i, out_ch in enumerate(width[1:]):
        stride = 2 if i % 2 == 1 else 1
        size = (size + stride - 1) // stride
        dw = act((1, size, size, ch))
        ops.append(Op("DEPTHWISE_CONV_2D", [x, weights((1, 3, 3, ch), ch, 3), bias(ch)], [dw],
                      "DepthwiseConv2DOptions", dict(Padding=0, StrideW=stride, StrideH=stride, DepthMultiplier=1,
                                                     FusedActivationFunction=3)))
        pw = act((1, size, size, out_ch))
        ops.append(Op("CONV_2D", [dw, weights((out_ch, 1, 1, ch), out_ch, 0), bias(out_ch)], [pw],
                      "Conv2DOptions", dict(Padding=0, StrideW=1, StrideH=1, FusedActivationFunction=3)))
        x, ch = pw, out_ch
    pooled = act((1, 1, 1, ch))
    ops.append(Op("AVERAGE_POOL_2D", [x], [pooled], "Pool2DOptions",
                  dict(Padding=1, StrideW=size, StrideH=size, FilterWidth=size, FilterHeight=size)))
    shape = add(T((2,), "int32", data=np.array([1, ch], np.int32)))
    flat = act((1, ch))
    ops.append(Op("RESHAPE", [pooled, shape], [flat]))
    logits = add(T((1, classes), scale=[0.1], zero_point=[0]))
    ops.append(Op("FULLY_CONNECTED", [flat, weights((classes, ch), classes, 0), bias(classes)], [logits],
                  "FullyConnectedOptions", {}))
    probs = add(T((1, classes), scale=[1 / 256], zero_point=[-128]))
    ops.append(Op("SOFTMAX", [logits], [probs], "SoftmaxOptions", dict(Beta=1.0)))
    return build(tensors, ops, [inp], [probs])
