"""Block-sparse lowering of int8 CONV_2D and FULLY_CONNECTED (fm_conv2d_sparse_s8, fm_fully_connected_sparse_s8).

A filter row (one output channel) is cut into blocks of BLOCK consecutive input channels at one tap; only non-zero
blocks go to flash, with a uint16 column per block and an int32 start per row. conv.py asks `choose` first and
falls back to the dense kernel when it returns None.

When it pays (SPARSE_MIN_ZERO_BLOCKS): a stored block costs 4 value bytes + 2 index bytes against 4 dense bytes,
so flash breaks even at 1/3 zero blocks; a stored block also costs a few more instructions than 4 dense MACs (the
column load and bounds check, and in the general path the tap arithmetic). At 40 % zero blocks both flash and
instructions are clearly below the dense kernel's; below it, or when the compressed form is not smaller than the
dense filter (depths < 4 pad every block), the dense kernel is kept. Models pruned with
`--prune-structure block` at 0.5 have >= 50 % zero blocks in every pruned layer.
"""
from __future__ import annotations

import numpy as np

from formicary.codegen.ops.base import LowerContext, LoweredOp, dims4_c
from formicary.tflite.ir import Operator, Tensor

BLOCK = 4
SPARSE_MIN_ZERO_BLOCKS = 0.4


def blocks_of(filt: np.ndarray) -> np.ndarray:
    """[rows, blocks_per_row, BLOCK] view of a TFLite filter ([out, kh, kw, in] or [out, in]), zero-padded in depth."""
    rows, depth = filt.shape[0], filt.shape[-1]
    taps = int(np.prod(filt.shape[1:-1])) if filt.ndim > 2 else 1
    padded = np.zeros((rows, taps, -(-depth // BLOCK) * BLOCK), dtype=filt.dtype)
    padded[..., :depth] = filt.reshape(rows, taps, depth)
    return padded.reshape(rows, -1, BLOCK)


def compress(filt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(values [nnz*BLOCK] int8, cols [nnz] uint16, row_ptr [rows+1] int32, blocks_per_row)."""
    blocks = blocks_of(filt)
    nonzero = (blocks != 0).any(axis=2)
    rows, cols = np.nonzero(nonzero)                       # row-major: rows ascending, columns within a row
    row_ptr = np.concatenate([[0], np.cumsum(nonzero.sum(axis=1))]).astype(np.int32)
    return blocks[rows, cols].reshape(-1).astype(np.int8), cols.astype(np.uint16), row_ptr, blocks.shape[1]


def zero_block_fraction(filt: np.ndarray) -> float:
    blocks = blocks_of(filt)
    return float(1.0 - (blocks != 0).any(axis=2).mean()) if blocks.size else 0.0


def compressed_bytes(filt: np.ndarray) -> int:
    values, cols, row_ptr, _ = compress(filt)
    return values.size + 2 * cols.size + 4 * row_ptr.size


def pays(filt: Tensor, ctx: LowerContext | None = None, dense_kernel: str = "") -> bool:
    """True when the constant int8 filter has enough zero blocks for the sparse kernel to beat the dense one.

    Only against a dense kernel of the same kernel set: the sparse kernels skip zero blocks with scalar loops, so an
    optimized set's dense kernel (SMLAD, Helium) beats them at any sparsity the pruning produces; a set that wants
    sparse execution provides its own sparse kernel file."""
    if filt.data is None or filt.dtype != "int8":
        return False
    threshold = SPARSE_MIN_ZERO_BLOCKS
    if ctx is not None and ctx.kernel_set is not None and dense_kernel:
        sparse_kernel = "fm_conv2d_sparse_s8" if dense_kernel == "fm_conv2d_s8" else "fm_fully_connected_sparse_s8"
        owner = ctx.kernel_set.owner_of_kernel(sparse_kernel)
        if owner is not ctx.kernel_set.owner_of_kernel(dense_kernel):
            return False
        if owner.sparse_min_zero_blocks is not None:  # the set measured its own break-even
            threshold = owner.sparse_min_zero_blocks
    data = np.asarray(filt.data)
    blocks_per_row = blocks_of(data).shape[1]
    # depths < 4 pad every block: the compressed form must also be smaller than the dense filter
    return (blocks_per_row < 65536 and zero_block_fraction(data) >= threshold
            and compressed_bytes(data) < data.size)


def _weights_field(ctx: LowerContext, filt: Tensor) -> str:
    data = np.asarray(filt.data)
    values, cols, row_ptr, per_row = compress(data)
    return ("{" + f".rows = {data.shape[0]}, .blocks_per_row = {per_row}, .nnz_blocks = {cols.size}, "
            f".values = {ctx.const_array('sparse_values', 'int8_t', values)}, "
            f".cols = {ctx.const_array('sparse_cols', 'uint16_t', cols)}, "
            f".row_ptr = {ctx.const_array('sparse_row_ptr', 'int32_t', row_ptr)}" + "}")


def _call(fn: str, params: str, ctx: LowerContext, inp: Tensor, out: Tensor, macs: int) -> LoweredOp:
    call = f"{fn}({params}, {ctx.tensor_ref(inp)}, {ctx.tensor_ref(out)}, {ctx.scratch_ref()})"
    return LoweredOp(call=call, macs=macs, sources=(fn[3:] + ".c",), kernel=fn)


def lower_conv(op: Operator, ctx: LowerContext, inp: Tensor, filt: Tensor, bias_c: str, out: Tensor,
               in_d, f_d, out_d, geometry: dict, rq, macs: int) -> LoweredOp:
    """fm_conv2d_sparse_s8 for a groups = 1 CONV_2D whose filter `pays`; the dense filter is not emitted."""
    params = ctx.const_struct("params", "fm_conv_sparse_s8_params_t", {
        "input_dims": dims4_c(in_d), "filter_dims": dims4_c(f_d), "output_dims": dims4_c(out_d), **geometry,
        **rq.clamp_fields(), "weights": _weights_field(ctx, filt), "bias": bias_c, **rq.array_fields(ctx)})
    return _call("fm_conv2d_sparse_s8", params, ctx, inp, out, macs)


def lower_fully_connected(op: Operator, ctx: LowerContext, inp: Tensor, filt: Tensor, bias_c: str, out: Tensor,
                          batches: int, accum: int, out_depth: int, rq, per_channel: bool) -> LoweredOp:
    """fm_fully_connected_sparse_s8 for weights (zero point 0) that `pay`; the dense weights are not emitted."""
    params = ctx.const_struct("params", "fm_fully_connected_sparse_s8_params_t", {
        "batches": batches, "accum_depth": accum, "output_depth": out_depth, "input_offset": rq.input_offset,
        "output_offset": rq.output_offset, "act_min": rq.act_min, "act_max": rq.act_max,
        "per_channel": int(per_channel), "weights": _weights_field(ctx, filt), "bias": bias_c,
        **rq.array_fields(ctx)})
    return _call("fm_fully_connected_sparse_s8", params, ctx, inp, out, batches * out_depth * accum)
