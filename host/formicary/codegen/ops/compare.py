"""The comparison family: LESS, LESS_EQUAL, GREATER, GREATER_EQUAL, EQUAL, NOT_EQUAL on int32 and float32 with
broadcasting, bool (one byte, 0/1) out: the conditions of IF ops."""
from __future__ import annotations

from formicary.codegen.ops import register
from formicary.codegen.ops.base import LowerContext, LoweredOp, Unsupported, nested, require_dtype
from formicary.codegen.ops.elementwise import broadcast_fields
from formicary.tflite.ir import Operator

_OPS = {"LESS": 0, "LESS_EQUAL": 1, "GREATER": 2, "GREATER_EQUAL": 3, "EQUAL": 4, "NOT_EQUAL": 5}


@register(*_OPS)
def lower_compare(op: Operator, ctx: LowerContext) -> LoweredOp:
    a, b = ctx.inputs()[0], ctx.inputs()[1]
    out = ctx.outputs()[0]
    require_dtype(a, ("int32", "float32"), "input 1")
    require_dtype(b, (a.dtype,), "input 2")
    require_dtype(out, ("bool",), "output")
    if a.quant is not None and a.dtype != "int32":
        raise Unsupported(f"{op.opcode} of quantized tensors", "compare int32 or float32 values.")
    fn = "fm_compare_i32" if a.dtype == "int32" else "fm_compare_f32"
    params = ctx.const_struct("params", "fm_compare_params_t", {
        "shape": nested(broadcast_fields(a, b, out)), "op": _OPS[op.opcode]})
    return LoweredOp(call=f"{fn}({params}, {ctx.tensor_ref(a)}, {ctx.tensor_ref(b)}, {ctx.tensor_ref(out)})",
                     sources=("compare.c",), kernel=fn)
