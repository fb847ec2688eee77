"""DEQUANTIZE int8 → float32 (fm_dequantize_s8)."""
from __future__ import annotations

from formicary.codegen.ops import register
from formicary.codegen.ops._k2_common import float_literal, same_shape_elementwise
from formicary.codegen.ops.base import (
    LowerContext,
    LoweredOp,
    Unsupported,
    qparams,
    require_dtype,
)
from formicary.tflite.ir import Operator


@register("DEQUANTIZE")
def lower(op: Operator, ctx: LowerContext) -> LoweredOp:
    inp, out = ctx.inputs()[0], ctx.outputs()[0]
    same_shape_elementwise(inp, out, op.opcode)
    require_dtype(inp, ("int8",), "input")
    require_dtype(out, ("float32",), "output")
    if inp.quant is not None and inp.quant.per_channel:
        raise Unsupported("per-channel DEQUANTIZE (float16/int8 weights dequantized at run time)",
                          "quantize the model to full int8 or keep float32 weights.")
    scale, zp = qparams(inp)
    params = ctx.const_struct("params", "fm_dequantize_s8_params_t", {
        "size": out.numel, "scale": float_literal(scale), "zero_point": zp})
    return LoweredOp(call=f"fm_dequantize_s8({params}, {ctx.tensor_ref(inp)}, {ctx.tensor_ref(out)})",
                     sources=("dequantize_s8.c",), kernel="fm_dequantize_s8")
