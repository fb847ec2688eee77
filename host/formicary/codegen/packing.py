"""Ahead-of-time weight packing: what an optimized kernel set may do with the constants of an op at codegen.

An interpreter sees a model's weights only at run time; formicary sees them while it writes the C. For the int8
kernels of the convolution family the lowering hands the set's packer (`KernelSet.pack`) a `PackRequest`: the
kernel, the op's geometry and its constant filter and bias in TFLite layout. The packer returns the parameter
struct fields to use instead of `filter` and `bias` (e.g. `packed_filter`, `folded_bias`, `packed_layout`,
declared with `ctx.const_array` so their flash is counted), or None to keep the TFLite layout. A packer whose
kernel reads its own requantization table returns `multiplier` and `shift` too (as "NULL"): the per-channel arrays
are then not written to flash.

The helpers here are the pieces every set needs: folding bias + input offset x sum of weights into one per-channel
constant, and the flash bookkeeping of a re-layout.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class PackRequest:
    kernel: str                          # fm_conv2d_s8, fm_depthwise_conv2d_s8 or fm_fully_connected_s8
    filter: np.ndarray                   # int8, TFLite layout (fm_kernels.h): CONV [oc, kh, kw, ic/groups],
                                         # DEPTHWISE [1, kh, kw, oc], FULLY_CONNECTED [oc, depth]
    bias: np.ndarray | None              # int32 [oc] or None
    input_offset: int                    # -input zero point
    filter_offset: int = 0               # -filter zero point (per-tensor FULLY_CONNECTED only; else 0)
    geometry: dict[str, int] = field(default_factory=dict)  # strides, dilations, pads, depth_multiplier
    input_shape: tuple[int, int, int, int] = (1, 1, 1, 1)    # NHWC (FULLY_CONNECTED: 1, 1, batches, depth)
    output_shape: tuple[int, int, int, int] = (1, 1, 1, 1)
    # the lowering's requantization (TFLM's rules, computed once there): one multiplier/shift per output channel
    # (a per-tensor FULLY_CONNECTED's broadcast), and the output zero point
    multiplier: np.ndarray | None = None
    shift: np.ndarray | None = None
    output_offset: int = 0

    @property
    def out_channels(self) -> int:
        return int(self.filter.shape[-1] if self.kernel == "fm_depthwise_conv2d_s8" else self.filter.shape[0])

    @property
    def filter_bytes(self) -> int:
        return int(self.filter.size)

    @property
    def bias_bytes(self) -> int:
        return 0 if self.bias is None else 4 * int(self.bias.size)


def folded_bias(req: PackRequest) -> np.ndarray:
    """Per output channel: bias + input_offset * sum(weights + filter_offset) + filter_offset-free terms.

    The int8 accumulator of TFLM is sum((w + filter_offset) * (x + input_offset)) + bias. With the input offset
    folded, a kernel accumulates sum((w + filter_offset) * x) and starts from this constant; padding taps must then
    read the input zero point (x + input_offset = 0), which makes their folded contribution cancel exactly.
    int32 wrap-around is kept, as the kernels' accumulators wrap."""
    w = req.filter.astype(np.int64) + req.filter_offset
    oc = req.out_channels
    if req.kernel == "fm_depthwise_conv2d_s8":
        sums = w.reshape(-1, oc).sum(axis=0)
    else:
        sums = w.reshape(oc, -1).sum(axis=1)
    b = np.zeros(oc, dtype=np.int64) if req.bias is None else req.bias.astype(np.int64)
    total = b + int(req.input_offset) * sums
    return ((total + 2**31) % 2**32 - 2**31).astype(np.int32)
