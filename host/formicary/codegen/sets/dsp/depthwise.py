"""DEPTHWISE_CONV_2D int8 of the dsp set: ahead-of-time weight packing and scratch size
(firmware/kernels/dsp/depthwise_conv2d_s8.c).

Depth multiplier 1 (layout 1): the int8 weights [tap][channels rounded up to 4] (zero weights in the padding, so
the kernel's 4-channel loads stay inside; the TFLite filter's flash when the channel count is a multiple of 4) and
the folded bias (codegen/packing.py) in place of the bias. Int16 pre-extended weights (twice the flash) would save
one instruction per tap and group of 4 channels on the general path only, and a per-channel requantization table
(12 B per channel) nothing on the 3x3 path, which derives both once per channel and call. The kernel pads and pre-extends a band of input rows per group of 4
channels in scratch (a slab of 8 B per pixel: interleaved for the general path, one int16
plane per channel for the 3x3 path); the band height is chosen here for a bounded scratch and travels in
packed_layout. Other multipliers (layout 2): the TFLite filter unchanged, folded bias, no scratch.
"""
from __future__ import annotations

import numpy as np

from formicary.codegen.packing import PackRequest, folded_bias

LAYOUT_GROUPS4 = 1
LAYOUT_PLAIN = 2
SLAB_BUDGET = 2048  # bytes of scratch the kernel's slab may take before the image is split into bands of rows


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


def pack_channels4(filt: np.ndarray) -> np.ndarray:
    """Layout 1 from a [1, kh, kw, c] int8 filter: [tap][c rounded up to 4], zero weights past the last channel."""
    taps = int(filt.shape[1] * filt.shape[2])
    ch = int(filt.shape[3])
    w = np.zeros((taps, (ch + 3) // 4 * 4), dtype=np.int8)
    w[:, :ch] = filt.reshape(taps, ch)
    return w.reshape(-1)


def pack_depthwise(req: PackRequest, ctx) -> dict[str, str]:
    fields = {"folded_bias": ctx.const_array("fbias", "int32_t", folded_bias(req))}
    g = req.geometry
    if int(g.get("depth_multiplier", 1)) != 1:
        plain = ctx.const_array("wpack", "int8_t", req.filter.reshape(-1))
        return {"packed_filter": plain, **fields, "packed_layout": LAYOUT_PLAIN}
    weights = ctx.const_array("wpack", "int8_t", pack_channels4(req.filter))
    _, kh, kw, _ = req.filter.shape
    band, _ = slab_band(req.output_shape[1], req.output_shape[2], int(kh), int(kw), int(g["stride_h"]),
                        int(g["stride_w"]), int(g["dilation_h"]), int(g["dilation_w"]))
    return {"packed_filter": weights, **fields, "packed_layout": LAYOUT_GROUPS4 | (band << 8)}


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
