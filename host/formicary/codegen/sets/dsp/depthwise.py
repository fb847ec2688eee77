"""DEPTHWISE_CONV_2D int8 of the dsp set: ahead-of-time weight packing and scratch size
(firmware/kernels/dsp/depthwise_conv2d_s8.c).

Depth multiplier 1 (layout 1): channels in groups of 4, per group and tap two int32 words holding the int16
weights [w0 | w2] and [w1 | w3] (the lanes SXTB16 / SXTB16-ROR8 make of 4 input channels), zero past the last
channel; twice the int8 filter's flash, which saves the two extends per tap and channel group that int8 weights
would cost. Other multipliers (layout 2): the TFLite filter unchanged. Both carry the folded bias
(codegen/packing.py), so the kernel adds no input offset and reads the zero point at padding taps.
"""
from __future__ import annotations

import numpy as np

from formicary.codegen.packing import PackRequest, folded_bias

LAYOUT_GROUPS4 = 1
LAYOUT_PLAIN = 2


def pack_groups4(filt: np.ndarray) -> np.ndarray:
    """int32 words of layout 1 from a [1, kh, kw, c] int8 filter: [group][tap][w0|w2, w1|w3]."""
    taps = int(filt.shape[1] * filt.shape[2])
    ch = int(filt.shape[3])
    groups = (ch + 3) // 4
    w = np.zeros((taps, groups * 4), dtype=np.int64)
    w[:, :ch] = filt.reshape(taps, ch)
    w = w.reshape(taps, groups, 4).transpose(1, 0, 2)          # [group, tap, lane]
    lo = w[..., [0, 1]] & 0xFFFF                                 # channels 0, 1 in the low halves
    hi = w[..., [2, 3]] & 0xFFFF                                 # channels 2, 3 in the high halves
    words = (lo | (hi << 16)).astype(np.uint32).view(np.int32)
    return words.reshape(-1)


def requant_rows(multiplier: np.ndarray, shift: np.ndarray) -> np.ndarray | None:
    """Per channel {multiplier, H, L, rs - 1} of the kernel's one-sum requantization (dw_requant in
    depthwise_conv2d_s8.c): (H, L) = 2^30 + 2^(30 + rs) as high/low words, rs = -shift. None when a channel is
    outside what that form covers exactly (shift not in [-31, -1], or a multiplier in (0, 2^30))."""
    m = np.asarray(multiplier, dtype=np.int64).reshape(-1)
    rs = -np.asarray(shift, dtype=np.int64).reshape(-1)
    if np.any(rs < 1) or np.any(rs > 31) or np.any((m != 0) & (m < 2 ** 30)):
        return None
    nudge = 2 ** 30 + (1 << (30 + rs))
    hi, lo = nudge >> 32, nudge & 0xFFFFFFFF
    rows = np.stack([m, hi, (lo + 2 ** 31) % 2 ** 32 - 2 ** 31, rs - 1], axis=1)
    return rows.astype(np.int32)


def _multipliers(ctx, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """The op's per-channel multipliers and shifts, as the lowering computes them (codegen/ops/conv.py)."""
    from formicary.codegen import quant
    from formicary.codegen.ops.base import qparams
    from formicary.codegen.ops.conv import check_filter_quant

    inp, filt, out = ctx.inputs()[0], ctx.inputs()[1], ctx.outputs()[0]
    scales = check_filter_quant(filt, channels, 3)
    mult, shift = quant.conv_per_channel_multipliers(qparams(inp)[0], scales, qparams(out)[0], channels)
    return np.asarray(mult), np.asarray(shift)


def pack_depthwise(req: PackRequest, ctx) -> dict[str, str]:
    fields = {"folded_bias": ctx.const_array("fbias", "int32_t", folded_bias(req))}
    if int(req.geometry.get("depth_multiplier", 1)) == 1:
        words = ctx.const_array("wpack", "int32_t", pack_groups4(req.filter))
        rows = requant_rows(*_multipliers(ctx, req.out_channels))
        if rows is not None:
            fields["packed_aux"] = f"(const void *){ctx.const_array('rq', 'int32_t', rows)}"
        return {"packed_filter": f"(const int8_t *){words}", **fields, "packed_layout": LAYOUT_GROUPS4}
    plain = ctx.const_array("wpack", "int8_t", req.filter.reshape(-1))
    return {"packed_filter": plain, **fields, "packed_layout": LAYOUT_PLAIN}


def depthwise_scratch(op, ctx) -> int:
    """Depth multiplier 1 with padding: one k_h x k_w x C patch for the pixels whose window crosses the border."""
    inp, filt, out = ctx.inputs()[0], ctx.inputs()[1], ctx.outputs()[0]
    if out.shape[-1] != inp.shape[-1] or op.options.get("padding", "SAME") == "VALID":
        return 0
    kh, kw, ch = int(filt.shape[1]), int(filt.shape[2]), int(filt.shape[3])
    return (kh * kw * ch + 3) // 4 * 4


def _register() -> None:
    from formicary.codegen.sets.dsp import PACK, SCRATCH

    PACK["fm_depthwise_conv2d_s8"] = pack_depthwise
    SCRATCH["fm_depthwise_conv2d_s8"] = depthwise_scratch


_register()
