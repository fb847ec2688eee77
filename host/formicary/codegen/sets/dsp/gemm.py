"""The dsp set's GEMM kernels, Python side: CONV_2D (firmware/kernels/dsp/conv2d_s8.c) and FULLY_CONNECTED
(fully_connected_s8.c). Packs their int8 weights ahead of time into the layout the SMLAD micro-kernels read and
declares the convolution's im2col scratch.

Two layouts per kernel, chosen per layer by `wide_weights` (the packed_layout id in the params says which):
- pre-extended int16 (LAYOUT_CONV_GEMM, LAYOUT_FC_GEMV): each depth block k0..k3 stored (k0,k2),(k1,k3) to match
  the activations widened with SXTB16 / SXTB16-ROR8, so a weight word meets an activation word in one SMLAD with
  no widening in the loop; twice the flash of the int8 weights;
- compact int8 (LAYOUT_CONV_GEMM8, LAYOUT_FC_GEMV8): the same blocks as 4 int8 in TFLite order, one word whose
  SXTB16 / SXTB16-ROR8 are those two pairs; the kernels widen every weight word in the loop.
Depth is padded to a multiple of 4 with zero weights; data is emitted as int32 words (4-aligned, read as words by
the kernels). The bias is folded with the input offset (packing.folded_bias): the kernels add no offsets in their
loops.
"""
from __future__ import annotations

import numpy as np

from formicary.codegen.ops.base import dims4
from formicary.codegen.packing import PackRequest, folded_bias

from . import PACK, SCRATCH

LAYOUT_CONV_GEMM = 0x4447  # FM_DSP_LAYOUT_CONV_GEMM in firmware/kernels/dsp/fm_dsp_gemm.h
LAYOUT_FC_GEMV = 0x4446    # FM_DSP_LAYOUT_FC_GEMV
LAYOUT_CONV_GEMM8 = 0x3847  # FM_DSP_LAYOUT_CONV_GEMM8
LAYOUT_FC_GEMV8 = 0x3846    # FM_DSP_LAYOUT_FC_GEMV8
# The layout rule (measured on qemu-m4, see docs/kernels.md): the int16 layout saves instructions in proportion to
# how often a weight is used per inference (output pixels x batches), and costs one flash byte per weight.
WIDE_MIN_REUSE = 4           # below: weight-streaming layers (FC at batch 1) keep int8
WIDE_MAX_BYTES = 32 * 1024   # a layer with more int8 weights than this keeps int8 (its int16 copy would not be small)
WIDE_ANYWAY_BYTES = 1024     # a layer this small is widened even without reuse: <= 1 KB of flash for ~10 % fewer
                             # instructions (KWS's FC 64->12: 2,360 -> 2,120, +768 B)
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


def blocked8(mat: np.ndarray, rows_per_block: int) -> np.ndarray:
    """[rows, depth] int8 -> int8 [rows/R, depth/4, R, 4] in TFLite depth order (zero-padded like `blocked`)."""
    rows, depth = mat.shape
    out = np.zeros((_round_up(rows, rows_per_block), _round_up(max(depth, 1), 4)), dtype=np.int8)
    out[:rows, :depth] = mat
    return out.reshape(-1, rows_per_block, out.shape[1] // 4, 4).transpose(0, 2, 1, 3)


def bytes_words(b8: np.ndarray) -> np.ndarray:
    """int8 values (a multiple of 4) as little-endian int32 words."""
    return np.ascontiguousarray(b8.astype(np.int8).reshape(-1)).view("<i4").astype(np.int64)


def reuse(req: PackRequest) -> int:
    """How many times each weight is used per inference: output pixels x batches."""
    return int(np.prod(req.output_shape[:3]))


def wide_weights(req: PackRequest) -> bool:
    """Pre-extended int16 weights (fastest) or the compact int8 layout, per layer (module docstring)."""
    if req.filter_offset != 0:
        return True   # w + filter_offset may leave int8: only the int16 layout holds it
    if req.filter_bytes <= WIDE_ANYWAY_BYTES:
        return True
    return reuse(req) >= WIDE_MIN_REUSE and req.filter_bytes <= WIDE_MAX_BYTES


def conv_layout(req: PackRequest, wide: bool = True) -> np.ndarray:
    """CONV_2D weights [oc, kh, kw, ic/groups] -> [group][oc pair][depth/4][2][4], int16 in SXTB16 order (wide) or
    int8 in TFLite order (conv2d_s8.c)."""
    oc = req.filter.shape[0]
    groups = int(req.input_shape[3]) // int(req.filter.shape[3])
    per = oc // groups
    mat = req.filter.reshape(oc, -1)
    lay = (lambda m: blocked(m.astype(np.int16), 2)) if wide else (lambda m: blocked8(m, 2))
    return np.concatenate([lay(mat[g * per:(g + 1) * per]).reshape(-1) for g in range(groups)])


def fc_layout(req: PackRequest, wide: bool = True) -> np.ndarray:
    """FULLY_CONNECTED weights [out, depth] -> w + filter_offset as [out/4][depth/4][4][4], int16 in SXTB16 order
    (wide) or int8 in TFLite order (compact; filter_offset 0)."""
    if wide:
        return blocked(req.filter.astype(np.int16) + req.filter_offset, 4).reshape(-1)
    return blocked8(req.filter, 4).reshape(-1)


def conv_bias(req: PackRequest) -> np.ndarray:
    """folded_bias per group, padded with zeros to the group's channel pairs (conv2d_s8.c reads 2 per pair)."""
    fb = folded_bias(req)
    groups = int(req.input_shape[3]) // int(req.filter.shape[3])
    per = len(fb) // groups
    out = np.zeros((groups, _round_up(per, 2)), dtype=np.int64)
    out[:, :per] = fb.reshape(groups, per)
    return out.reshape(-1)


def _pack(ctx, layout: int, w: np.ndarray, bias: np.ndarray) -> dict[str, str]:
    name = ctx.const_array("pw", "int32_t", words(w) if w.dtype == np.int16 else bytes_words(w))
    return {"packed_filter": f"(const int8_t *){name}",
            "folded_bias": ctx.const_array("fbias", "int32_t", bias),
            "packed_layout": layout}


def requant_table(multiplier: np.ndarray, shift: np.ndarray, output_offset: int) -> np.ndarray:
    """int32 [channel][3] for conv2d_s8.c's requantization: {m, k, rs - 1} with k = 2^(rs-2) + offset * 2^(rs-1)
    where the right shift rs = -shift is in [2, 23] (fm_dsp_fast_shift), else {m, shift, -1}: fm_mbqm at run
    time. It replaces the params' multiplier / shift arrays."""
    out = np.zeros((len(shift), 3), dtype=np.int64)
    for i, (m, s) in enumerate(zip((int(v) for v in multiplier), (int(v) for v in shift))):
        rs = -s
        if 2 <= rs <= 23:
            out[i] = (m, (1 << (rs - 2)) + output_offset * (1 << (rs - 1)), rs - 1)
        else:
            out[i] = (m, s, -1)
    return ((out + 2**31) % 2**32 - 2**31).astype(np.int32)


def pack_conv(req: PackRequest, ctx) -> dict[str, str]:
    wide = wide_weights(req)
    fields = _pack(ctx, LAYOUT_CONV_GEMM if wide else LAYOUT_CONV_GEMM8, conv_layout(req, wide), conv_bias(req))
    fields["packed_aux"] = ctx.const_array("rqk", "int32_t", requant_table(req.multiplier, req.shift,
                                                                          req.output_offset))
    fields["multiplier"] = fields["shift"] = "NULL"
    return fields


def pack_fc(req: PackRequest, ctx) -> dict[str, str]:
    wide = wide_weights(req)
    return _pack(ctx, LAYOUT_FC_GEMV if wide else LAYOUT_FC_GEMV8, fc_layout(req, wide), folded_bias(req))


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


def sparse_scratch_bytes(op, ctx) -> int:
    """conv2d_sparse_s8.c / fully_connected_sparse_s8.c: the int16 panel of 4 pixels, 32 bytes per block column
    (taps x ceil(depth / 4))."""
    filt = ctx.inputs()[1]
    shape = [int(d) for d in filt.shape]
    taps = int(np.prod(shape[1:-1])) if len(shape) > 2 else 1
    return 32 * taps * _round_up(shape[-1], 4) // 4


SCRATCH["fm_conv2d_sparse_s8"] = sparse_scratch_bytes
SCRATCH["fm_fully_connected_sparse_s8"] = sparse_scratch_bytes
