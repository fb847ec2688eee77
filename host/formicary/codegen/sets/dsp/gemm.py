"""The dsp set's GEMM kernels, Python side: CONV_2D (firmware/kernels/dsp/conv2d_s8.c) and FULLY_CONNECTED
(fully_connected_s8.c). Packs their int8 weights ahead of time into the layout the SMLAD micro-kernels read and
declares the convolution's im2col scratch.

Both layouts hold weights as int16 (pre-extended: a weight pair is one load, half the instructions of widening int8
weights in the loop, at twice the flash of the int8 weights), depth padded to a multiple of 4 with zero weights,
each depth block k0..k3 stored (k0,k2),(k1,k3) to match the activations widened with SXTB16 / SXTB16-ROR8, int16
pairs emitted as int32 words (4-aligned, read as words by the kernels). The bias is folded with the input offset
(packing.folded_bias): the kernels add no offsets in their loops.
"""
from __future__ import annotations

import numpy as np

from formicary.codegen.ops.base import dims4
from formicary.codegen.packing import PackRequest, folded_bias

from . import PACK, SCRATCH

LAYOUT_CONV_GEMM = 0x4447  # FM_DSP_LAYOUT_CONV_GEMM in firmware/kernels/dsp/fm_dsp_gemm.h
LAYOUT_FC_GEMV = 0x4446    # FM_DSP_LAYOUT_FC_GEMV
SXTB16_ORDER = (0, 2, 1, 3)  # depth k0..k3 of a block as the kernels' int16 lanes hold them


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def words(w16: np.ndarray) -> np.ndarray:
    """int16 values (even count) as little-endian int32 words: element 2i in the low half of word i."""
    u = w16.astype(np.int64).reshape(-1, 2) & 0xFFFF
    return ((u[:, 1] << 16 | u[:, 0]) + 2**31) % 2**32 - 2**31


def blocked(mat: np.ndarray, rows_per_block: int) -> np.ndarray:
    """[rows, depth] int -> int16 [rows/R, depth/4, R, 4]: rows and depth zero-padded to multiples of R and 4,
    each depth block in SXTB16 order."""
    rows, depth = mat.shape
    out = np.zeros((_round_up(rows, rows_per_block), _round_up(max(depth, 1), 4)), dtype=np.int16)
    out[:rows, :depth] = mat
    out = out.reshape(-1, rows_per_block, out.shape[1] // 4, 4)[..., list(SXTB16_ORDER)]
    return out.transpose(0, 2, 1, 3)


def conv_layout(req: PackRequest) -> np.ndarray:
    """CONV_2D weights [oc, kh, kw, ic/groups] -> int16 [group][oc pair][depth/4][2][4] (conv2d_s8.c)."""
    oc = req.filter.shape[0]
    groups = int(req.input_shape[3]) // int(req.filter.shape[3])
    mat = req.filter.reshape(oc, -1).astype(np.int16)
    per = oc // groups
    return np.concatenate([blocked(mat[g * per:(g + 1) * per], 2).reshape(-1) for g in range(groups)])


def fc_layout(req: PackRequest) -> np.ndarray:
    """FULLY_CONNECTED weights [out, depth] -> int16 w + filter_offset as [out/4][depth/4][4][4]."""
    return blocked(req.filter.astype(np.int16) + req.filter_offset, 4).reshape(-1)


def _pack(req: PackRequest, ctx, layout: int, w16: np.ndarray) -> dict[str, str]:
    name = ctx.const_array("pw", "int32_t", words(w16))
    return {"packed_filter": f"(const int8_t *){name}",
            "folded_bias": ctx.const_array("fbias", "int32_t", folded_bias(req)),
            "packed_layout": layout}


def requant_table(shift: np.ndarray, output_offset: int) -> np.ndarray:
    """int32 [channel][2] for conv2d_s8.c's requantization: {k, rs - 1} with k = 2^(rs-2) + offset * 2^(rs-1)
    where the right shift rs = -shift is in [2, 23] (fm_dsp_fast_shift), else {0, -1}: fm_mbqm at run time."""
    out = np.zeros((len(shift), 2), dtype=np.int64)
    for i, s in enumerate(int(v) for v in shift):
        rs = -s
        if 2 <= rs <= 23:
            out[i] = ((1 << (rs - 2)) + output_offset * (1 << (rs - 1)), rs - 1)
        else:
            out[i] = (0, -1)
    return ((out + 2**31) % 2**32 - 2**31).astype(np.int32)


def pack_conv(req: PackRequest, ctx) -> dict[str, str]:
    from formicary.codegen.ops.base import ON_INT8, fused_activation
    from formicary.codegen.ops.conv import Requant

    inp, filt, out = ctx.inputs()[0], ctx.inputs()[1], ctx.outputs()[0]
    # the same Requant the lowering puts in the params (multiplier, shift, output offset)
    rq = Requant.per_channel(inp, out, filt, req.out_channels, 0, fused_activation(ctx.op, ON_INT8))
    fields = _pack(req, ctx, LAYOUT_CONV_GEMM, conv_layout(req))
    fields["packed_aux"] = ctx.const_array("rqk", "int32_t", requant_table(rq.shift, rq.output_offset))
    return fields


def pack_fc(req: PackRequest, ctx) -> dict[str, str]:
    return _pack(req, ctx, LAYOUT_FC_GEMV, fc_layout(req))


def conv_scratch_bytes(op, ctx) -> int:
    """Two pixels' int16 panel (4 bytes per padded depth), one int8 im2col column (1 byte per padded depth) and
    the int32 accumulators of two pixels x one group's output channels (rounded up to pairs)."""
    in_c = dims4(ctx.inputs()[0])[3]
    _, kh, kw, kc = dims4(ctx.inputs()[1])
    per_group = dims4(ctx.outputs()[0])[3] // max(in_c // kc, 1)
    return 5 * _round_up(kh * kw * kc, 4) + 8 * _round_up(per_group, 2)


SCRATCH["fm_conv2d_s8"] = conv_scratch_bytes
PACK["fm_conv2d_s8"] = pack_conv
PACK["fm_fully_connected_s8"] = pack_fc
