"""The indexing family: ARG_MAX (int8 / float32 / int32 in, int32 out) and STRIDED_SLICE (any element type, up
to 5 dims, constant begin/end/strides), as the gate of a mixture of experts needs them (argmax of the gate's
logits, then the scalar expert index)."""
from __future__ import annotations

import numpy as np

from formicary.codegen.ops import register
from formicary.codegen.ops.base import LowerContext, LoweredOp, Unsupported, c_array, require_dtype
from formicary.tflite.ir import Operator

SLICE_DIMS = 5  # FM_SLICE_DIMS
_ARG_MAX_KERNELS = {"int8": "fm_arg_max_s8", "float32": "fm_arg_max_f32", "int32": "fm_arg_max_i32"}


def _const_ints(t, what: str) -> list[int]:
    if t is None or not t.is_constant:
        raise Unsupported(f"{what} is not a constant tensor", "export the model with constant " + what + ".")
    return [int(v) for v in np.asarray(t.data).reshape(-1)]


@register("ARG_MAX")
def lower_arg_max(op: Operator, ctx: LowerContext) -> LoweredOp:
    inp, axis_t = ctx.inputs()[0], ctx.inputs()[1]
    out = ctx.outputs()[0]
    require_dtype(inp, tuple(_ARG_MAX_KERNELS), "input")
    require_dtype(out, ("int32",), "output")
    axes = _const_ints(axis_t, "ARG_MAX axis")
    rank = len(inp.shape)
    if len(axes) != 1 or not -rank <= axes[0] < max(rank, 1):
        raise Unsupported(f"ARG_MAX axis {axes} of a rank-{rank} input", "reduce over one valid axis.")
    axis = axes[0] + rank if axes[0] < 0 else axes[0]
    shape = [int(d) for d in inp.shape] or [1]
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    if shape[axis] < 1 or out.numel != outer * inner:
        raise Unsupported(f"ARG_MAX output size {out.numel} does not match input {shape} without axis {axis}",
                          "re-export the model.")
    fn = _ARG_MAX_KERNELS[inp.dtype]
    params = ctx.const_struct("params", "fm_arg_max_params_t", {
        "outer_size": outer, "axis_size": shape[axis], "inner_size": inner})
    return LoweredOp(call=f"{fn}({params}, {ctx.tensor_ref(inp)}, {ctx.tensor_ref(out)})",
                     sources=("arg_max.c",), kernel=fn)


def slice_plan(shape: list[int], begin: list[int], end: list[int], strides: list[int], begin_mask: int,
               end_mask: int, shrink_mask: int) -> list[tuple[int, int, int]]:
    """(start, stride, count) per dim, as TFLM's StartForAxis / StopForAxis and its loop condition decide."""
    plan = []
    for axis, size in enumerate(shape):
        stride = strides[axis]
        if size == 0:
            plan.append((0, stride, 0))
            continue
        start = begin[axis]
        if begin_mask & (1 << axis):
            start = -(2 ** 31) if stride > 0 else 2 ** 31 - 1
        if start < 0:
            start += size
        start = min(max(start, 0), size) if stride > 0 else min(max(start, -1), size - 1)
        if shrink_mask & (1 << axis):
            stop = start + 1
        else:
            stop = end[axis]
            if end_mask & (1 << axis):
                stop = 2 ** 31 - 1 if stride > 0 else -(2 ** 31)
            if stop < 0:
                stop += size
            stop = min(max(stop, 0), size) if stride > 0 else min(max(stop, -1), size - 1)
        count = len(range(start, stop, stride))
        plan.append((start, stride, count))
    return plan


@register("STRIDED_SLICE")
def lower_strided_slice(op: Operator, ctx: LowerContext) -> LoweredOp:
    ins = ctx.inputs()
    inp, out = ins[0], ctx.outputs()[0]
    require_dtype(inp, ("int8", "int32", "float32", "int16", "uint8", "bool"), "input")
    require_dtype(out, (inp.dtype,), "output")
    if inp.quant is not None and out.quant is not None and (
            inp.quant.scale.tolist() != out.quant.scale.tolist()
            or inp.quant.zero_point.tolist() != out.quant.zero_point.tolist()):
        raise Unsupported("STRIDED_SLICE changes quantization parameters", "re-export the model.")
    opts = op.options
    if opts.get("ellipsis_mask", 0) or opts.get("new_axis_mask", 0) or opts.get("offset", False):
        raise Unsupported("STRIDED_SLICE with ellipsis/new-axis masks or offset (TFLM refuses them too)",
                          "slice with begin/end/strides and begin/end/shrink masks only.")
    rank = len(inp.shape)
    begin, end, strides = (_const_ints(t, name) for t, name in ((ins[1], "begin"), (ins[2], "end"),
                                                                  (ins[3], "strides")))
    if rank > SLICE_DIMS or not len(begin) == len(end) == len(strides) == rank:
        raise Unsupported(f"STRIDED_SLICE of a rank-{rank} tensor with {len(begin)} begin indices",
                          f"slice tensors of at most {SLICE_DIMS} dims, one index per dim.")
    if any(s == 0 for s in strides):
        raise Unsupported("STRIDED_SLICE with a zero stride", "re-export the model.")
    shape = [int(d) for d in inp.shape]
    plan = slice_plan(shape, begin, end, strides, int(opts.get("begin_mask", 0)), int(opts.get("end_mask", 0)),
                      int(opts.get("shrink_axis_mask", 0)))
    total = int(np.prod([c for _, _, c in plan], dtype=np.int64)) if plan else 1
    if total != out.numel:
        raise Unsupported(f"STRIDED_SLICE selects {total} elements, the output holds {out.numel}",
                          "re-export the model.")
    pad = SLICE_DIMS - rank
    full_shape = [1] * pad + shape
    in_strides = [int(np.prod(full_shape[d + 1:], dtype=np.int64)) for d in range(SLICE_DIMS)]
    plan = [(0, 1, 1)] * pad + plan
    params = ctx.const_struct("params", "fm_strided_slice_params_t", {
        "element_bytes": int(np.dtype(inp.np_dtype).itemsize), "in_strides": c_array(in_strides),
        "begin": c_array([b for b, _, _ in plan]), "stride": c_array([s for _, s, _ in plan]),
        "count": c_array([c for _, _, c in plan])})
    return LoweredOp(call=f"fm_strided_slice({params}, {ctx.tensor_ref(inp)}, {ctx.tensor_ref(out)})",
                     sources=("strided_slice.c",), kernel="fm_strided_slice")
