"""RELU and RELU6 as standalone ops.

int8 RELU mirrors TFLM ReluQuantized (requantize input -> output, clamp at the quantized zero); int8 RELU6
mirrors TFLM Relu6Quantized, which clamps in the input's quantization and ignores the output's.
"""
from __future__ import annotations

from formicary.codegen import quant
from formicary.codegen.ops import register
from formicary.codegen.ops._k2_common import same_shape_elementwise
from formicary.codegen.ops.base import LowerContext, LoweredOp, qparams, require_dtype
from formicary.tflite.ir import Operator


def _lower(op: Operator, ctx: LowerContext, name: str) -> LoweredOp:
    inp, out = ctx.inputs()[0], ctx.outputs()[0]
    same_shape_elementwise(inp, out, op.opcode)
    if inp.dtype == "float32":
        require_dtype(out, ("float32",), "output")
        params = ctx.const_struct("params", "fm_unary_f32_params_t", {"size": out.numel})
        fn = f"fm_{name}_f32"
    else:
        require_dtype(inp, ("int8",), "input")
        require_dtype(out, ("int8",), "output")
        in_scale, in_zp = qparams(inp)
        if name == "relu6":
            params = ctx.const_struct("params", "fm_relu6_s8_params_t", {
                "size": out.numel, "zero": in_zp, "six": quant.float_to_quantized_int8(6.0, in_scale, in_zp)})
        else:
            out_scale, out_zp = qparams(out)
            mult, shift = quant.quantize_multiplier(float(quant.f32(in_scale)) / float(quant.f32(out_scale)))
            # CalculateReluOpData: act_min = max(qmin, zp + roundf(0 / scale)) = max(-128, zp), act_max = 127.
            params = ctx.const_struct("params", "fm_relu_s8_params_t", {
                "size": out.numel, "input_zero_point": in_zp, "output_zero_point": out_zp,
                "multiplier": mult, "shift": shift, "act_min": max(quant.INT8_MIN, out_zp),
                "act_max": quant.INT8_MAX})
        fn = f"fm_{name}_s8"
    suffix = fn.rsplit("_", 1)[1]
    return LoweredOp(call=f"{fn}({params}, {ctx.tensor_ref(inp)}, {ctx.tensor_ref(out)})", macs=0,
                     sources=(f"{name}_{suffix}.c",), kernel=fn,
                     inplace={} if inp.is_constant else {out.index: inp.index})


@register("RELU")
def lower_relu(op: Operator, ctx: LowerContext) -> LoweredOp:
    return _lower(op, ctx, "relu")


@register("RELU6")
def lower_relu6(op: Operator, ctx: LowerContext) -> LoweredOp:
    return _lower(op, ctx, "relu6")
