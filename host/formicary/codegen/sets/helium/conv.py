"""Ahead-of-time weight layouts and scratch sizes of the helium convolution-family kernels (CONV_2D,
DEPTHWISE_CONV_2D, FULLY_CONNECTED), matching firmware/kernels/helium/fm_helium.h and depthwise_conv2d_s8.c.

- GEMM layout (conv, FC): per group, output channels in blocks of 4, the reduction depth K padded to a multiple of
  16, bytes ordered [block][chunk of 16][channel of block][16]: one VMLADAVA per channel and chunk. Folded bias
  (codegen/packing.folded_bias) padded to the blocks; packed_aux is the requantization table.
- DW16 layout (depthwise): weights widened to int16, [block of 8 channels][tap][8], taps column by column
  (t = kx * k_h + ky, the order of the staged window columns); packed_aux per block of 8 channels: folded bias of
  the even then the odd channels, then the requantization tables of the even and of the odd channels.

Requantization table, per block of 4 channels: multiplier[4], max(shift, 0)[4], min(shift, 0)[4].
"""
from __future__ import annotations

import numpy as np

from formicary.codegen.ops.base import LowerContext, dims4
from formicary.codegen.packing import PackRequest, folded_bias
from formicary.tflite.ir import Operator

LAYOUT_GEMM = 0x4801
LAYOUT_DW16 = 0x4802
NO_LS = 0x10000  # or-ed into the layout: every shift < 0, i.e. right by at least 1 (FM_HE_LAYOUT_NO_LS)
IM2COL_BYTES = 1024  # FM_HE_IM2COL_BYTES in conv2d_s8.c


def im2col_rows(k16: int) -> int:
    """fm_he_im2col_rows(): im2col rows per GEMM call, even, 4..32."""
    return max(4, min(32, (IM2COL_BYTES // k16) & ~1))
DW_SEG = 8  # FM_HE_DW_SEG in depthwise_conv2d_s8.c


# The kernels read only their own requantization tables (packed_aux): the TFLite-layout per-channel arrays are not
# written to flash (codegen/ops/conv.requant_fields).
_NO_TFLITE_REQUANT = {"multiplier": "NULL", "shift": "NULL"}


def _round_up(n: int, m: int) -> int:
    return (n + m - 1) // m * m


def requant_table(mult: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """[blocks of 4][multiplier 4, ls 4, rs 4] int32 (channels past the end: multiplier 0)."""
    n4 = _round_up(len(mult), 4)
    m = np.zeros(n4, dtype=np.int64)
    s = np.zeros(n4, dtype=np.int64)
    m[:len(mult)], s[:len(shift)] = mult, shift
    tab = np.stack([m.reshape(-1, 4), np.maximum(s, 0).reshape(-1, 4), np.minimum(s, 0).reshape(-1, 4)], axis=1)
    return tab.reshape(-1).astype(np.int32)


def gemm_matrix(w: np.ndarray) -> np.ndarray:
    """[n, k] int8 -> [n4/4][k16/16][4][16] bytes (zeros in the padding)."""
    n, k = w.shape
    n4, k16 = _round_up(n, 4), _round_up(k, 16)
    full = np.zeros((n4, k16), dtype=np.int8)
    full[:n, :k] = w
    return full.reshape(n4 // 4, 4, k16 // 16, 16).transpose(0, 2, 1, 3).reshape(-1)


def _pad(v: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.int32)
    out[:len(v)] = v
    return out


def pack_gemm(req: PackRequest, ctx: LowerContext) -> dict[str, str]:
    """CONV_2D and FULLY_CONNECTED: one GEMM layout matrix, folded bias and requantization table per group."""
    oc = req.out_channels
    w = req.filter.reshape(oc, -1)
    if req.kernel == "fm_conv2d_s8":
        groups = req.input_shape[3] // req.filter.shape[3]
    else:
        groups = 1
    oc_g = oc // groups
    fb = folded_bias(req)
    mult, shift = req.multiplier, req.shift  # the lowering's, one per output channel
    mats, biases, tabs = [], [], []
    for g in range(groups):
        sl = slice(g * oc_g, (g + 1) * oc_g)
        mats.append(gemm_matrix(w[sl]))
        biases.append(_pad(fb[sl], _round_up(oc_g, 4)))
        tabs.append(requant_table(mult[sl], shift[sl]))
    return {"packed_filter": ctx.const_array("hw", "int8_t", np.concatenate(mats)),
            "folded_bias": ctx.const_array("hbias", "int32_t", np.concatenate(biases)),
            "packed_aux": ctx.const_array("hq", "int32_t", np.concatenate(tabs)),
            **_NO_TFLITE_REQUANT,
            "packed_layout": LAYOUT_GEMM | (NO_LS if np.all(shift < 0) else 0)}


def pack_depthwise(req: PackRequest, ctx: LowerContext) -> dict[str, str]:
    """DEPTHWISE_CONV_2D: int16 weights [tap][C8] and per 8 channels the folded bias and tables, even/odd split."""
    oc = req.out_channels
    c8 = _round_up(oc, 8)
    f = req.filter.reshape(req.filter.shape[1], req.filter.shape[2], oc)
    taps = f.transpose(1, 0, 2).reshape(-1, oc).astype(np.int16)  # column by column: t = kx * k_h + ky
    w = np.zeros((taps.shape[0], c8), dtype=np.int16)
    w[:, :oc] = taps
    w = w.reshape(taps.shape[0], c8 // 8, 8).transpose(1, 0, 2)  # [block][tap][8]
    fb = _pad(folded_bias(req), c8).reshape(-1, 8)
    mult, shift = req.multiplier, req.shift  # the lowering's, one per output channel
    m = np.zeros(c8, dtype=np.int64)
    s = np.zeros(c8, dtype=np.int64)
    m[:oc], s[:oc] = mult, shift
    blocks = []
    for b in range(c8 // 8):
        sl = slice(8 * b, 8 * b + 8)
        mb, sb = m[sl], s[sl]
        blocks += [fb[b, 0::2], fb[b, 1::2], requant_table(mb[0::2], sb[0::2]), requant_table(mb[1::2], sb[1::2])]
    aux = np.concatenate(blocks).astype(np.int32)
    return {"packed_filter": f"(const int8_t *){ctx.const_array('hw', 'int16_t', w)}",
            "folded_bias": "NULL",
            "packed_aux": ctx.const_array("hq", "int32_t", aux),
            **_NO_TFLITE_REQUANT,
            "packed_layout": LAYOUT_DW16 | (NO_LS if np.all(shift < 0) else 0)}


def conv_scratch(op: Operator, ctx: LowerContext) -> int:
    """CONV_2D: none on the 1x1 path, else im2col_rows(K16) rows of K16 bytes; the band im2col adds its band (a
    ring of k_h zero-point-padded input rows, each stored twice) and a K16-byte offset table (fm_he_conv_band in
    conv2d_s8.c)."""
    ins = ctx.inputs()
    in_d, f_d = dims4(ins[0]), dims4(ins[1])
    if f_d[1] == 1 and f_d[2] == 1 and f_d[3] == in_d[3]:
        return 0
    k16 = _round_up(f_d[1] * f_d[2] * f_d[3], 16)
    cols = im2col_rows(k16) * k16
    if in_d[3] == f_d[3]:  # one group: the band im2col when a window spans <= 256 bytes of the band
        out_w = dims4(ctx.outputs()[0])[2]
        sw, dw = int(op.options.get("stride_w", 1)), int(op.options.get("dilation_w_factor", 1))
        band_w = (out_w - 1) * sw + (f_d[2] - 1) * dw + 1
        if ((f_d[1] - 1) * band_w + (f_d[2] - 1) * dw) * in_d[3] + in_d[3] - 1 <= 255:
            return cols + 2 * f_d[1] * band_w * in_d[3] + k16  # the band: a ring of k_h rows, each twice
    return cols


def depthwise_scratch(op: Operator, ctx: LowerContext) -> int:
    """DEPTHWISE_CONV_2D. Depth multiplier 1 without horizontal dilation: the staged window columns of one segment
    of up to DW_SEG output pixels, [block of 16 channels][column][k_h][16] bytes. The other paths need none."""
    ins = ctx.inputs()
    in_d, f_d, out_d = dims4(ins[0]), dims4(ins[1]), dims4(ctx.outputs()[0])
    if in_d[3] == out_d[3] and int(op.options.get("dilation_w_factor", 1)) == 1:
        cols = (min(DW_SEG, out_d[2]) - 1) * int(op.options.get("stride_w", 1)) + f_d[2]
        return _round_up(in_d[3], 16) * cols * f_d[1]
    return 0
