"""SOFTMAX float32 → fm_softmax_f32 (beta from the options)."""
from __future__ import annotations

from formicary.codegen.ops import register
from formicary.codegen.ops._k2_common import float_literal
from formicary.codegen.ops.base import (
    LowerContext,
    LoweredOp,
    Unsupported,
    require_dtype,
)
from formicary.tflite.ir import Operator


@register("SOFTMAX", dtype="float32")
def lower(op: Operator, ctx: LowerContext) -> LoweredOp:
    inp, out = ctx.inputs()[0], ctx.outputs()[0]
    require_dtype(out, ("float32",), "output")
    if not inp.shape or tuple(inp.shape) != tuple(out.shape):
        raise Unsupported("input and output shapes differ", "re-export the model.")
    depth = int(inp.shape[-1])
    params = ctx.const_struct("params", "fm_softmax_f32_params_t", {
        "outer_size": inp.numel // depth, "depth": depth,
        "beta": float_literal(float(op.options.get("beta", 1.0)))})
    return LoweredOp(call=f"fm_softmax_f32({params}, {ctx.tensor_ref(inp)}, {ctx.tensor_ref(out)})",
                     sources=("softmax_f32.c",), kernel="fm_softmax_f32",
                     inplace={} if inp.is_constant else {out.index: inp.index})
