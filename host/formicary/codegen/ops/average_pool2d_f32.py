"""AVERAGE_POOL_2D float32 → fm_average_pool2d_f32 (fm_pool_params_t as the int8 lowering builds it)."""
from __future__ import annotations

from formicary.codegen.ops import register
from formicary.codegen.ops.average_pool2d import pool_params
from formicary.codegen.ops.base import LowerContext, LoweredOp, dims4
from formicary.tflite.ir import Operator


@register("AVERAGE_POOL_2D", dtype="float32")
def lower(op: Operator, ctx: LowerContext) -> LoweredOp:
    inp, out = ctx.inputs()[0], ctx.outputs()[0]
    params = ctx.const_struct("params", "fm_pool_params_t", pool_params(op, ctx, "float32"))
    d = dims4(out)
    macs = d[0] * d[1] * d[2] * d[3] * int(op.options.get("filter_height", 1)) * int(op.options.get("filter_width", 1))
    return LoweredOp(call=f"fm_average_pool2d_f32({params}, {ctx.tensor_ref(inp)}, {ctx.tensor_ref(out)})",
                     macs=macs, sources=("average_pool2d_f32.c",), kernel="fm_average_pool2d_f32")
