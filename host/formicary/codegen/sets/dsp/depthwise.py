"""DEPTHWISE_CONV_2D int8 of the dsp set: ahead-of-time weight packing and scratch size
(firmware/kernels/dsp/depthwise_conv2d_s8.c).

Depth multiplier 1 (layout 1): channels in groups of 4, per group and tap two int32 words holding the int16
weights [w0 | w2] and [w1 | w3] (the lanes SXTB16 / SXTB16-ROR8 make of 4 input channels), zero past the last
channel: twice the int8 filter's flash, which saves the two extends per tap and channel group that int8 weights
would cost. Beside it the folded bias (codegen/packing.py) and, when every channel allows it, a per-channel
requantization table (16 B per channel). The kernel pads and pre-extends a band of input rows per group of 4
channels in scratch (a slab of 8 B per pixel: interleaved for the general path, one int16
plane per channel for the 3x3 path); the band height is chosen here for a bounded scratch and travels in
packed_layout. Other multipliers (layout 2): the TFLite filter unchanged, folded bias, no scratch.
"""
from __future__ import annotations

import numpy as np

from formicary.codegen.packing import PackRequest, folded_bias

LAYOUT_GROUPS4 = 1
LAYOUT_PLAIN = 2
SLAB_BUDGET = 4096  # bytes of scratch the kernel's slab may take before the image is split into bands of rows


def slab_band(out_h: int, out_w: int, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int) -> tuple[int, int]:
    """(output rows per band, slab bytes) of the kernel's padded int16 slab of 4 channels: 8 B per pixel and one
    spare pixel per row (the 3x3 path's last pair of taps may read it)."""
    cols = (out_w - 1) * sw + (kw - 1) * dw + 1
    span_h = (kh - 1) * dh
    row_bytes = 8 * (cols + 1)

    def rows_for(band: int) -> int:
        return (band - 1) * sh + span_h + 1

    if rows_for(out_h) * row_bytes <= SLAB_BUDGET:
        band = out_h
    else:
        band = max(1, (SLAB_BUDGET // row_bytes - span_h - 1) // sh + 1)
        band = min(band, out_h)
    return band, rows_for(band) * row_bytes


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


def requant_rows(multiplier: np.ndarray, shift: np.ndarray, output_offset: int) -> np.ndarray | None:
    """Per channel {multiplier, H, rs - 1, 0} of the kernel's one-sum requantization (dw_requant), padded with zero
    rows to a multiple of 4 channels: H = 2^(rs - 2) + output_offset * 2^(rs - 1), the high word of
    2^30 + 2^(30 + rs) + output_offset * 2^(31 + rs), rs = -shift. None when a channel is outside what that form
    covers exactly (shift not in [-24, -2], or a multiplier in (0, 2^30))."""
    m = np.asarray(multiplier, dtype=np.int64).reshape(-1)
    rs = -np.asarray(shift, dtype=np.int64).reshape(-1)
    if np.any(rs < 2) or np.any(rs > 24) or np.any((m != 0) & (m < 2 ** 30)):
        return None
    hi = (np.int64(1) << (rs - 2)) + int(output_offset) * (np.int64(1) << (rs - 1))
    rows = np.stack([m, hi, rs - 1, np.zeros_like(m)], axis=1)
    pad = (-len(rows)) % 4
    rows = np.concatenate([rows, np.zeros((pad, 4), dtype=np.int64)])
    return rows.astype(np.int32)


def _multipliers(ctx, channels: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The op's per-channel multipliers and shifts and its output offset, as the lowering computes them
    (codegen/ops/conv.py)."""
    from formicary.codegen import quant
    from formicary.codegen.ops.base import qparams
    from formicary.codegen.ops.conv import check_filter_quant

    inp, filt, out = ctx.inputs()[0], ctx.inputs()[1], ctx.outputs()[0]
    scales = check_filter_quant(filt, channels, 3)
    out_scale, out_zp = qparams(out)
    mult, shift = quant.conv_per_channel_multipliers(qparams(inp)[0], scales, out_scale, channels)
    return np.asarray(mult), np.asarray(shift), int(out_zp)


def pack_depthwise(req: PackRequest, ctx) -> dict[str, str]:
    fields = {"folded_bias": ctx.const_array("fbias", "int32_t", folded_bias(req))}
    g = req.geometry
    if int(g.get("depth_multiplier", 1)) != 1:
        plain = ctx.const_array("wpack", "int8_t", req.filter.reshape(-1))
        return {"packed_filter": plain, **fields, "packed_layout": LAYOUT_PLAIN}
    words = ctx.const_array("wpack", "int32_t", pack_groups4(req.filter))
    rows = requant_rows(*_multipliers(ctx, req.out_channels))
    if rows is not None:
        fields["packed_aux"] = f"(const void *){ctx.const_array('rq', 'int32_t', rows)}"
    _, kh, kw, _ = req.filter.shape
    band, _ = slab_band(req.output_shape[1], req.output_shape[2], int(kh), int(kw), int(g["stride_h"]),
                        int(g["stride_w"]), int(g["dilation_h"]), int(g["dilation_w"]))
    return {"packed_filter": f"(const int8_t *){words}", **fields, "packed_layout": LAYOUT_GROUPS4 | (band << 8)}


def depthwise_scratch(op, ctx) -> int:
    """Depth multiplier 1: the slab of one band of padded input rows, 4 channels pre-extended to int16."""
    inp, filt, out = ctx.inputs()[0], ctx.inputs()[1], ctx.outputs()[0]
    if out.shape[-1] != inp.shape[-1]:
        return 0
    o = op.options
    _, out_h, out_w, _ = (int(d) for d in out.shape)
    _, bytes_ = slab_band(out_h, out_w, int(filt.shape[1]), int(filt.shape[2]), int(o.get("stride_h", 1)),
                          int(o.get("stride_w", 1)), int(o.get("dilation_h_factor", 1)),
                          int(o.get("dilation_w_factor", 1)))
    return bytes_


def _register() -> None:
    from formicary.codegen.sets.dsp import PACK, SCRATCH

    PACK["fm_depthwise_conv2d_s8"] = pack_depthwise
    SCRATCH["fm_depthwise_conv2d_s8"] = depthwise_scratch


_register()
