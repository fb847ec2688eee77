"""MAX_POOL_2D int8 → fm_max_pool2d_s8, float32 → fm_max_pool2d_f32 (fm_pool_params_t shared with AVERAGE)."""
from __future__ import annotations

from formicary.codegen.ops import register
from formicary.codegen.ops.average_pool2d import pool_params
from formicary.codegen.ops.base import LowerContext, LoweredOp, Unsupported
from formicary.tflite.ir import Operator


@register("MAX_POOL_2D")
def lower(op: Operator, ctx: LowerContext) -> LoweredOp:
    inp, out = ctx.inputs()[0], ctx.outputs()[0]
    if inp.dtype not in ("int8", "float32"):
        raise Unsupported(f"MAX_POOL_2D on {inp.dtype}", "quantize the model to int8 or keep float32.")
    suffix = "s8" if inp.dtype == "int8" else "f32"
    params = ctx.const_struct("params", "fm_pool_params_t", pool_params(op, ctx, inp.dtype))
    fn = f"fm_max_pool2d_{suffix}"
    return LoweredOp(call=f"{fn}({params}, {ctx.tensor_ref(inp)}, {ctx.tensor_ref(out)})", macs=0,
                     sources=(f"max_pool2d_{suffix}.c",), kernel=fn)
