"""The architectures of MLPerf Tiny's VWW (MobileNetV1 0.25, 96x96x3) and IC (ResNet-8, 32x32x3) models as int8
graphs with random weights (built without TensorFlow, like tests/support/netmodels.py): their activation shapes,
hence their arenas (liveness bounds 55,296 and 49,152 B, /work notes' anchors), are the real models'. Outputs
are checked against TFLM, so the weights need not mean anything."""
from __future__ import annotations

import numpy as np

from formicary.tflite.builder import Op, T, build

RELU, RELU6 = 1, 3


class _Net:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.tensors: list[T] = []
        self.ops: list[Op] = []

    def add(self, t: T) -> int:
        self.tensors.append(t)
        return len(self.tensors) - 1

    def act(self, shape, scale=0.024, zp=-128) -> int:
        return self.add(T(shape, scale=[scale], zero_point=[zp]))

    def weights(self, shape, per_axis: int, axis: int) -> int:
        fan_in = int(np.prod(shape)) // per_axis
        scales = self.rng.uniform(0.5, 1.5, per_axis) / (40.0 * np.sqrt(fan_in))
        data = self.rng.integers(-127, 128, shape).astype(np.int8)
        return self.add(T(shape, scale=list(scales), zero_point=[0] * per_axis, axis=axis, data=data))

    def bias(self, n: int) -> int:
        return self.add(T((n,), "int32", data=self.rng.integers(-3000, 3000, n).astype(np.int32)))

    def conv(self, x: int, hw: int, cin: int, cout: int, k: int, stride: int, act: int) -> tuple[int, int]:
        out_hw = (hw + stride - 1) // stride
        y = self.act((1, out_hw, out_hw, cout))
        self.ops.append(Op("CONV_2D", [x, self.weights((cout, k, k, cin), cout, 0), self.bias(cout)], [y],
                           "Conv2DOptions", dict(Padding=0, StrideW=stride, StrideH=stride,
                                                 FusedActivationFunction=act)))
        return y, out_hw

    def dw(self, x: int, hw: int, ch: int, stride: int) -> tuple[int, int]:
        out_hw = (hw + stride - 1) // stride
        y = self.act((1, out_hw, out_hw, ch))
        self.ops.append(Op("DEPTHWISE_CONV_2D", [x, self.weights((1, 3, 3, ch), ch, 3), self.bias(ch)], [y],
                           "DepthwiseConv2DOptions", dict(Padding=0, StrideW=stride, StrideH=stride,
                                                          DepthMultiplier=1, FusedActivationFunction=RELU6)))
        return y, out_hw

    def head(self, x: int, hw: int, ch: int, classes: int) -> int:
        pooled = self.act((1, 1, 1, ch))
        self.ops.append(Op("AVERAGE_POOL_2D", [x], [pooled], "Pool2DOptions",
                           dict(Padding=1, StrideW=hw, StrideH=hw, FilterWidth=hw, FilterHeight=hw)))
        shape = self.add(T((2,), "int32", data=np.array([1, ch], np.int32)))
        flat = self.act((1, ch))
        self.ops.append(Op("RESHAPE", [pooled, shape], [flat]))
        logits = self.add(T((1, classes), scale=[0.1], zero_point=[0]))
        self.ops.append(Op("FULLY_CONNECTED", [flat, self.weights((classes, ch), classes, 0), self.bias(classes)],
                           [logits], "FullyConnectedOptions", {}))
        probs = self.add(T((1, classes), scale=[1 / 256], zero_point=[-128]))
        self.ops.append(Op("SOFTMAX", [logits], [probs], "SoftmaxOptions", dict(Beta=1.0)))
        return probs


# MobileNetV1 0.25 blocks: (depthwise stride, pointwise output channels)
VWW_BLOCKS = ((1, 16), (2, 32), (1, 32), (2, 64), (1, 64), (2, 128), (1, 128), (1, 128), (1, 128), (1, 128),
              (1, 128), (2, 256), (1, 256))


def vww(seed: int = 0, hw: int = 96) -> bytes:
    """MLPerf Tiny VWW's MobileNetV1 0.25 on 96x96x3 (or hw x hw): conv3x3/s2 to 8 channels, 13 dw3x3 + pw1x1
    blocks (RELU6), average pool (3x3 at 96), FC 2, softmax."""
    n = _Net(seed)
    inp = n.add(T((1, hw, hw, 3), scale=[1 / 128], zero_point=[0]))
    x, hw = n.conv(inp, hw, 3, 8, 3, 2, RELU6)
    ch = 8
    for stride, out_ch in VWW_BLOCKS:
        x, hw = n.dw(x, hw, ch, stride)
        x, hw = n.conv(x, hw, ch, out_ch, 1, 1, RELU6)
        ch = out_ch
    return build(n.tensors, n.ops, [inp], [n.head(x, hw, ch, 2)])


def resnet8(seed: int = 0) -> bytes:
    """MLPerf Tiny IC's ResNet-8 on 32x32x3: conv3x3 16, three residual stacks (16 s1, 32 s2, 64 s2; a 1x1/s2
    convolution on the shortcut of the strided ones), average pool 8x8, FC 10, softmax."""
    n = _Net(seed)
    inp = n.add(T((1, 32, 32, 3), scale=[1 / 128], zero_point=[0]))
    x, hw = n.conv(inp, 32, 3, 16, 3, 1, RELU)
    ch = 16
    for out_ch, stride in ((16, 1), (32, 2), (64, 2)):
        a, out_hw = n.conv(x, hw, ch, out_ch, 3, stride, RELU)
        b, _ = n.conv(a, out_hw, out_ch, out_ch, 3, 1, 0)
        skip = x if stride == 1 else n.conv(x, hw, ch, out_ch, 1, stride, 0)[0]
        y = n.act((1, out_hw, out_hw, out_ch))
        n.ops.append(Op("ADD", [skip, b], [y], "AddOptions", dict(FusedActivationFunction=RELU)))
        x, hw, ch = y, out_hw, out_ch
    return build(n.tensors, n.ops, [inp], [n.head(x, hw, ch, 10)])
