"""QUANTIZE: float32 → int8 (fm_quantize_f32_s8) and int8 → int8 requantization (fm_requantize_s8)."""
from __future__ import annotations

from formicary.codegen import quant
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


@register("QUANTIZE")
def lower(op: Operator, ctx: LowerContext) -> LoweredOp:
    inp, out = ctx.inputs()[0], ctx.outputs()[0]
    same_shape_elementwise(inp, out, op.opcode)
    require_dtype(out, ("int8",), "output")
    if out.quant is not None and out.quant.per_channel:
        raise Unsupported("per-channel QUANTIZE output", "quantize activations per tensor.")
    out_scale, out_zp = qparams(out)
    if inp.dtype == "float32":
        params = ctx.const_struct("params", "fm_quantize_f32_s8_params_t", {
            "size": out.numel, "scale": float_literal(out_scale), "zero_point": out_zp})
        return LoweredOp(call=f"fm_quantize_f32_s8({params}, {ctx.tensor_ref(inp)}, {ctx.tensor_ref(out)})",
                         sources=("quantize_s8.c",), kernel="fm_quantize_f32_s8")
    require_dtype(inp, ("int8",), "input")
    in_scale, in_zp = qparams(inp)
    # quantize_common.cc: effective_scale = double(input scale) / double(output scale).
    mult, shift = quant.quantize_multiplier(float(quant.f32(in_scale)) / float(quant.f32(out_scale)))
    params = ctx.const_struct("params", "fm_requantize_s8_params_t", {
        "size": out.numel, "input_zero_point": in_zp, "output_zero_point": out_zp,
        "multiplier": mult, "shift": shift})
    return LoweredOp(call=f"fm_requantize_s8({params}, {ctx.tensor_ref(inp)}, {ctx.tensor_ref(out)})",
                     sources=("quantize_s8.c",), kernel="fm_requantize_s8",
                     inplace={} if inp.is_constant else {out.index: inp.index})
