"""The layout family: ops that only move bytes. TRANSPOSE, DEPTH_TO_SPACE and SPACE_TO_DEPTH (one strided-copy
kernel, `fm_transpose`), SPLIT, SPLIT_V and UNPACK (several outputs, `fm_split`), PACK (`fm_pack`) and GATHER
(constant or run-time int32 positions, `fm_gather`). Every kernel takes the element size instead of a type, so
int8 and float32 (and the other types TFLM's kernel accepts for the op) share one function.

Like TFLM, these kernels copy bytes and never requantize: an int8 output quantized differently from its input gets
the input's bytes, as TFLM's does. What each lowering refuses mirrors the op's Prepare/Eval checks in TFLM
(types, ranks, constant perm/axis tensors, block sizes); shapes that disagree with the op's own arithmetic are
refused rather than copied.
"""
from __future__ import annotations

import numpy as np

from formicary.codegen.ops import register
from formicary.codegen.ops.base import (
    LowerContext,
    LoweredOp,
    Unsupported,
    c_array,
    require_dtype,
)
from formicary.tflite.ir import Operator, Tensor

TRANSPOSE_DIMS = 6  # FM_TRANSPOSE_DIMS
TRANSPOSE_MAX_RANK = 5  # TFLM's TransposePrepare: "only supports 1D-5D input arrays" (its reference kernel
                        # would take 6; the 6-D walk here serves DEPTH_TO_SPACE / SPACE_TO_DEPTH)
_REEXPORT = "re-export the model."

# Types each TFLM kernel accepts (its Prepare/Eval switch); all are copied by size.
_TRANSPOSE_TYPES = ("int8", "float32", "int16")
_SPLIT_TYPES = ("int8", "float32", "int16", "int32")
_PACK_TYPES = ("int8", "float32", "int32", "int64")
_SPACE_TYPES = ("int8", "float32")
_GATHER_TYPES = ("int8", "float32")


def _itemsize(t: Tensor) -> int:
    return int(np.dtype(t.np_dtype).itemsize)


def _shape(t: Tensor) -> list[int]:
    return [int(d) for d in t.shape]


def _prod(values) -> int:
    return int(np.prod(list(values), dtype=np.int64)) if len(values) else 1


def _const_ints(t: Tensor | None, what: str) -> list[int]:
    if t is None or not t.is_constant:
        raise Unsupported(f"{what} is not a constant tensor (TFLM requires it constant)",
                          f"export the model with a constant {what}.")
    return [int(v) for v in np.asarray(t.data).reshape(-1)]


def _axis(value: int, rank: int, what: str) -> int:
    axis = value + rank if value < 0 else value
    if not 0 <= axis < rank:
        raise Unsupported(f"{what} axis {value} is out of range for a rank-{rank} tensor", _REEXPORT)
    return axis


def _same_types(ins: list[Tensor], outs: list[Tensor], allowed: tuple[str, ...]) -> None:
    require_dtype(ins[0], allowed, "input")
    for t in [*ins[1:], *outs]:
        require_dtype(t, (ins[0].dtype,), "input/output")


def _element_strides(shape: list[int]) -> list[int]:
    return [_prod(shape[d + 1:]) for d in range(len(shape))]


def strided_view(dims: list[int], strides: list[int]) -> tuple[list[int], list[int]]:
    """The output walk (extent per output dim, input stride per step) with extent-1 dims dropped and neighbouring
    dims merged where the outer one steps over the whole inner one, padded in front to FM_TRANSPOSE_DIMS dims:
    fewer, longer loops in the kernel, and a contiguous innermost run becomes one memcpy."""
    kept = [(n, s) for n, s in zip(dims, strides) if n != 1]
    merged: list[tuple[int, int]] = []
    for n, s in kept:
        if merged and merged[-1][1] == s * n:
            merged[-1] = (merged[-1][0] * n, s)
        else:
            merged.append((n, s))
    if any(n == 0 for n in dims):
        merged = [(0, 1)]
    if len(merged) > TRANSPOSE_DIMS:
        raise Unsupported(f"a copy pattern of {len(merged)} dims (at most {TRANSPOSE_DIMS})", _REEXPORT)
    merged = [(1, 0)] * (TRANSPOSE_DIMS - len(merged)) + merged
    return [n for n, _ in merged], [s for _, s in merged]


def _transpose_call(ctx: LowerContext, inp: Tensor, out: Tensor, dims: list[int], strides: list[int]) -> LoweredOp:
    if _prod(dims) != out.numel:
        raise Unsupported(f"the output holds {out.numel} elements, the op moves {_prod(dims)}", _REEXPORT)
    n, s = strided_view(dims, strides)
    params = ctx.const_struct("params", "fm_transpose_params_t", {
        "element_bytes": _itemsize(inp), "out_dims": c_array(n), "in_strides": c_array(s)})
    return LoweredOp(call=f"fm_transpose({params}, {ctx.tensor_ref(inp)}, {ctx.tensor_ref(out)})",
                     sources=("transpose.c",), kernel="fm_transpose")


@register("TRANSPOSE")
def lower_transpose(op: Operator, ctx: LowerContext) -> LoweredOp:
    """TFLM TransposePrepare: constant 1-D perm of one entry per input dim, each in range; types as TFLM's Eval."""
    inp, perm_t = ctx.inputs()[0], ctx.inputs()[1]
    out = ctx.outputs()[0]
    _same_types([inp], [out], _TRANSPOSE_TYPES)
    perm = _const_ints(perm_t, "TRANSPOSE perm")
    shape = _shape(inp)
    rank = len(shape)
    if rank > TRANSPOSE_MAX_RANK:
        raise Unsupported(f"TRANSPOSE of a rank-{rank} tensor (TFLM takes at most {TRANSPOSE_MAX_RANK} dims)",
                          "reshape to fewer dims around the transpose.")
    if len(perm_t.shape) != 1 or len(perm) != rank or sorted(perm) != list(range(rank)):
        raise Unsupported(f"TRANSPOSE perm {perm} is not a permutation of the input's {rank} dims", _REEXPORT)
    in_strides = _element_strides(shape)
    dims = [shape[p] for p in perm]
    if _shape(out) != dims:
        raise Unsupported(f"TRANSPOSE output shape {_shape(out)}, perm {perm} of {shape} gives {dims}", _REEXPORT)
    return _transpose_call(ctx, inp, out, dims, [in_strides[p] for p in perm])


def _block_size(op: Operator) -> int:
    bs = int(op.options.get("block_size", 0))
    if bs <= 0:
        raise Unsupported(f"{op.opcode} block size {bs} (TFLM requires > 0)", _REEXPORT)
    return bs


@register("DEPTH_TO_SPACE")
def lower_depth_to_space(op: Operator, ctx: LowerContext) -> LoweredOp:
    """[N, H, W, bs*bs*C] -> [N, H*bs, W*bs, C], i.e. the input viewed as [N, H, W, bs, bs, C] transposed to
    [N, H, bs, W, bs, C] (TFLM reference_ops::DepthToSpace reads the same element for every output)."""
    inp, out = ctx.inputs()[0], ctx.outputs()[0]
    _same_types([inp], [out], _SPACE_TYPES)
    bs = _block_size(op)
    shape = _shape(inp)
    if len(shape) != 4:
        raise Unsupported(f"DEPTH_TO_SPACE of a rank-{len(shape)} tensor (TFLM takes 4-D NHWC)", _REEXPORT)
    n, h, w, c = shape
    if c % (bs * bs):
        raise Unsupported(f"DEPTH_TO_SPACE of {c} channels with block size {bs} (not a multiple of {bs * bs})",
                          _REEXPORT)
    oc = c // (bs * bs)
    if _shape(out) != [n, h * bs, w * bs, oc]:
        raise Unsupported(f"DEPTH_TO_SPACE output shape {_shape(out)} != {[n, h * bs, w * bs, oc]}", _REEXPORT)
    return _transpose_call(ctx, inp, out, [n, h, bs, w, bs, oc], [h * w * c, w * c, bs * oc, c, oc, 1])


@register("SPACE_TO_DEPTH")
def lower_space_to_depth(op: Operator, ctx: LowerContext) -> LoweredOp:
    """[N, H, W, C] -> [N, H/bs, W/bs, bs*bs*C], i.e. the input viewed as [N, H/bs, bs, W/bs, bs, C] transposed to
    [N, H/bs, W/bs, bs, bs, C] (TFLM reference_ops::SpaceToDepth; its Prepare requires H and W divisible)."""
    inp, out = ctx.inputs()[0], ctx.outputs()[0]
    _same_types([inp], [out], _SPACE_TYPES)
    bs = _block_size(op)
    shape = _shape(inp)
    if len(shape) != 4:
        raise Unsupported(f"SPACE_TO_DEPTH of a rank-{len(shape)} tensor (TFLM takes 4-D NHWC)", _REEXPORT)
    n, h, w, c = shape
    if h % bs or w % bs:
        raise Unsupported(f"SPACE_TO_DEPTH of {h}x{w} with block size {bs} (TFLM requires divisible sizes)",
                          _REEXPORT)
    if _shape(out) != [n, h // bs, w // bs, bs * bs * c]:
        raise Unsupported(f"SPACE_TO_DEPTH output shape {_shape(out)} != {[n, h // bs, w // bs, bs * bs * c]}",
                          _REEXPORT)
    return _transpose_call(ctx, inp, out, [n, h // bs, w // bs, bs, bs, c],
                           [h * w * c, bs * w * c, bs * c, w * c, c, 1])


def _split_call(ctx: LowerContext, inp: Tensor, outs: list[Tensor], axis: int) -> LoweredOp:
    """Outputs of `inp` cut along `axis` (each output's own extent there), as TFLM's SplitImpl walks them."""
    shape = _shape(inp)
    outer, inner = _prod(shape[:axis]), _prod(shape[axis + 1:])
    eb = _itemsize(inp)
    copy = [_prod(_shape(t)[axis:axis + 1]) * inner * eb if len(t.shape) == len(shape) else inner * eb
            for t in outs]
    if sum(copy) * outer != inp.nbytes or any(outer * c != t.nbytes for c, t in zip(copy, outs)):
        raise Unsupported(f"output shapes {[_shape(t) for t in outs]} do not cut input {shape} along axis {axis}",
                          _REEXPORT)
    sizes = ctx.const_array("copy_bytes", "int32_t", np.asarray(copy, np.int32))
    params = ctx.const_struct("params", "fm_split_params_t", {
        "outer_size": outer, "num_outputs": len(outs), "copy_bytes": sizes})
    ptrs = ", ".join(ctx.tensor_ref(t) for t in outs)
    return LoweredOp(call=f"fm_split({params}, {ctx.tensor_ref(inp)}, (void *const[]){{{ptrs}}})",
                     sources=("split.c",), kernel="fm_split")


def _check_cut(op: Operator, inp: Tensor, outs: list[Tensor], axis: int) -> None:
    """Every output has the input's rank and dims, but along the axis."""
    shape = _shape(inp)
    for t in outs:
        s = _shape(t)
        if len(s) != len(shape) or any(a != b for d, (a, b) in enumerate(zip(s, shape)) if d != axis):
            raise Unsupported(f"{op.opcode} output shape {s} does not fit input {shape} cut along axis {axis}",
                              _REEXPORT)


@register("SPLIT")
def lower_split(op: Operator, ctx: LowerContext) -> LoweredOp:
    """inputs (axis, input): equal parts along a constant axis (TFLM SplitPrepare requires it constant)."""
    axis_t, inp = ctx.inputs()[0], ctx.inputs()[1]
    outs = ctx.outputs()
    _same_types([inp], outs, _SPLIT_TYPES)
    axes = _const_ints(axis_t, "SPLIT axis")
    rank = len(inp.shape)
    if len(axes) != 1:
        raise Unsupported(f"SPLIT axis tensor holds {len(axes)} values", _REEXPORT)
    axis = _axis(axes[0], rank, "SPLIT")
    _check_cut(op, inp, outs, axis)
    if int(inp.shape[axis]) != int(outs[0].shape[axis]) * len(outs) or len({int(t.shape[axis]) for t in outs}) > 1:
        raise Unsupported(f"SPLIT of {int(inp.shape[axis])} into {len(outs)} unequal parts", _REEXPORT)
    return _split_call(ctx, inp, outs, axis)


@register("SPLIT_V")
def lower_split_v(op: Operator, ctx: LowerContext) -> LoweredOp:
    """inputs (input, size_splits, axis): parts sized by the outputs' shapes (as TFLM's SplitImpl reads them)
    along a constant axis."""
    ins = ctx.inputs()
    inp, axis_t = ins[0], ins[2] if len(ins) > 2 else None
    outs = ctx.outputs()
    _same_types([inp], outs, _SPLIT_TYPES)
    axes = _const_ints(axis_t, "SPLIT_V axis")
    if len(axes) != 1:
        raise Unsupported(f"SPLIT_V axis tensor holds {len(axes)} values", _REEXPORT)
    axis = _axis(axes[0], len(inp.shape), "SPLIT_V")
    _check_cut(op, inp, outs, axis)
    if sum(int(t.shape[axis]) for t in outs) != int(inp.shape[axis]):
        raise Unsupported(f"SPLIT_V parts {[int(t.shape[axis]) for t in outs]} do not add up to "
                          f"{int(inp.shape[axis])}", _REEXPORT)
    return _split_call(ctx, inp, outs, axis)


@register("UNPACK")
def lower_unpack(op: Operator, ctx: LowerContext) -> LoweredOp:
    """One output per index along the axis, that dim removed (TFLM UnpackImpl)."""
    inp, outs = ctx.inputs()[0], ctx.outputs()
    _same_types([inp], outs, _SPLIT_TYPES)
    shape = _shape(inp)
    axis = _axis(int(op.options.get("axis", 0)), len(shape), "UNPACK")
    expect = shape[:axis] + shape[axis + 1:]
    if len(outs) != shape[axis] or any(_shape(t) != expect for t in outs):
        raise Unsupported(f"UNPACK of {shape} along axis {axis} into {[_shape(t) for t in outs]}", _REEXPORT)
    return _split_call(ctx, inp, outs, axis)


@register("PACK")
def lower_pack(op: Operator, ctx: LowerContext) -> LoweredOp:
    """Inputs of one shape stacked along a new axis of the output (TFLM PackImpl)."""
    ins, out = [t for t in ctx.inputs() if t is not None], ctx.outputs()[0]
    _same_types(ins, [out], _PACK_TYPES)
    shape = _shape(ins[0])
    axis = _axis(int(op.options.get("axis", 0)), len(shape) + 1, "PACK")
    expect = shape[:axis] + [len(ins)] + shape[axis:]
    if any(_shape(t) != shape for t in ins) or _shape(out) != expect:
        raise Unsupported(f"PACK of {[_shape(t) for t in ins]} into {_shape(out)} along axis {axis}", _REEXPORT)
    params = ctx.const_struct("params", "fm_pack_params_t", {
        "outer_size": _prod(shape[:axis]), "num_inputs": len(ins),
        "copy_bytes": _prod(shape[axis:]) * _itemsize(out)})
    ptrs = ", ".join(ctx.tensor_ref(t) for t in ins)
    return LoweredOp(call=f"fm_pack({params}, (const void *const[]){{{ptrs}}}, {ctx.tensor_ref(out)})",
                     sources=("pack.c",), kernel="fm_pack")


@register("GATHER")
def lower_gather(op: Operator, ctx: LowerContext) -> LoweredOp:
    """TFLM GatherPrepare: int32 positions, float32/int8 input, 0 <= batch_dims <= axis < rank. Constant
    positions are range-checked here (TFLM would fail every invoke); run-time ones by the kernel (FM_ERR_RANGE)."""
    inp, coords = ctx.inputs()[0], ctx.inputs()[1]
    out = ctx.outputs()[0]
    _same_types([inp], [out], _GATHER_TYPES)
    if coords is None or coords.dtype != "int32":
        raise Unsupported(f"GATHER positions of type {coords.dtype if coords is not None else 'none'} (TFLM's "
                          "GatherPrepare takes int32 only)", "cast the indices to int32 before exporting the model.")
    shape, cshape = _shape(inp), _shape(coords)
    axis = _axis(int(op.options.get("axis", 0)), len(shape), "GATHER")
    batch_dims = int(op.options.get("batch_dims", 0))
    if batch_dims < 0:
        batch_dims += len(cshape)
    if not (0 <= batch_dims <= axis and batch_dims < len(shape) and batch_dims <= len(cshape)) or \
            shape[:batch_dims] != cshape[:batch_dims]:
        raise Unsupported(f"GATHER batch_dims {op.options.get('batch_dims', 0)} with axis {axis}, input {shape}, "
                          f"positions {cshape} (TFLM refuses it)", _REEXPORT)
    expect = shape[:axis] + cshape[batch_dims:] + shape[axis + 1:]
    if _shape(out) != expect:
        raise Unsupported(f"GATHER output shape {_shape(out)} != {expect}", _REEXPORT)
    axis_size = shape[axis]
    if coords.is_constant:
        bad = [v for v in _const_ints(coords, "positions") if not 0 <= v < axis_size]
        if bad:
            raise Unsupported(f"GATHER positions {bad[:5]} outside [0, {axis_size}) (TFLM fails every invoke)",
                              "fix the model's constant indices.")
    params = ctx.const_struct("params", "fm_gather_params_t", {
        "batch_size": _prod(shape[:batch_dims]), "outer_size": _prod(shape[batch_dims:axis]),
        "axis_size": axis_size, "coord_size": _prod(cshape[batch_dims:]),
        "inner_bytes": _prod(shape[axis + 1:]) * _itemsize(inp)})
    return LoweredOp(call=f"fm_gather({params}, {ctx.tensor_ref(inp)}, {ctx.tensor_ref(coords)}, "
                          f"{ctx.tensor_ref(out)})", sources=("gather.c",), kernel="fm_gather")
