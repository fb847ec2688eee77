"""LOGISTIC and TANH: int8 → fm_logistic_s8 / fm_tanh_s8 (gemmlowp fixed point as TFLM), float32 → *_f32."""
from __future__ import annotations

from formicary.codegen import quant
from formicary.codegen.ops import register
from formicary.codegen.ops._k2_common import same_shape_elementwise
from formicary.codegen.ops.base import (
    LowerContext,
    LoweredOp,
    Unsupported,
    qparams,
    require_dtype,
)
from formicary.tflite.ir import Operator

# TFLM fixes the int8 output quantization of these ops: (scale, zero point).
_OUTPUT_QUANT = {"logistic": (1.0 / 256.0, -128), "tanh": (1.0 / 128.0, 0)}


def lower_sigmoid(op: Operator, ctx: LowerContext, name: str) -> LoweredOp:
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
        out_scale, out_zp = qparams(out)
        want_scale, want_zp = _OUTPUT_QUANT[name]
        if out_zp != want_zp:
            raise Unsupported(f"{op.opcode} int8 output zero point {out_zp}; TFLM requires {want_zp}",
                              "convert with the TFLite converter, which fixes this output quantization.")
        if abs(out_scale - want_scale) > 1e-3 * want_scale:
            raise Unsupported(f"{op.opcode} int8 output scale {out_scale}; the kernel produces {want_scale}",
                              "convert with the TFLite converter, which fixes this output quantization.")
        try:
            mult, left_shift, radius = quant.sigmoid_int8_input_params(in_scale)
        except ValueError as exc:
            raise Unsupported(str(exc), "requantize the input with a slightly different scale.") from None
        params = ctx.const_struct("params", "fm_sigmoid_s8_params_t", {
            "size": out.numel, "input_zero_point": in_zp, "input_range_radius": radius,
            "input_multiplier": mult, "input_left_shift": left_shift})
        fn = f"fm_{name}_s8"
    suffix = fn.rsplit("_", 1)[1]
    return LoweredOp(call=f"{fn}({params}, {ctx.tensor_ref(inp)}, {ctx.tensor_ref(out)})", macs=0,
                     sources=(f"{name}_{suffix}.c",), kernel=fn,
                     inplace={} if inp.is_constant else {out.index: inp.index})


@register("LOGISTIC")
def lower(op: Operator, ctx: LowerContext) -> LoweredOp:
    return lower_sigmoid(op, ctx, "logistic")
