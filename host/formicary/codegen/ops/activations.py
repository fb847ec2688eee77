"""The activation family: RELU, RELU6, LOGISTIC and TANH (element-wise, may run in place) and SOFTMAX, int8 and
float32.

int8 RELU mirrors TFLM ReluQuantized (requantize input -> output, clamp at the quantized zero); int8 RELU6 mirrors
TFLM Relu6Quantized, which clamps in the input's quantization and ignores the output's. int8 LOGISTIC and TANH
share TFLM's Prepare arithmetic (input rescaled to gemmlowp Q4.27) and differ in the fixed-point function and the
output quantization TFLM fixes. int8 SOFTMAX takes input_multiplier / input_left_shift / diff_min as TFLM's
Prepare computes them.
"""
from __future__ import annotations

from collections.abc import Callable

from formicary.codegen import quant
from formicary.codegen.ops import register
from formicary.codegen.ops.base import (
    LowerContext,
    LoweredOp,
    Unsupported,
    float_literal,
    qparams,
    require_dtype,
    same_shape,
)
from formicary.tflite.ir import Operator, Tensor

# int8 parameters of a unary kernel: (op, input, output) -> (C struct type, fields)
Int8Params = Callable[[Operator, Tensor, Tensor], tuple[str, dict[str, object]]]


def _unary(op: Operator, ctx: LowerContext, name: str, int8_params: Int8Params) -> LoweredOp:
    """fm_<name>_f32 (size only) or fm_<name>_s8 with the op's int8 parameters; output may overwrite input."""
    inp, out = ctx.inputs()[0], ctx.outputs()[0]
    same_shape(inp, out, op.opcode)
    if inp.dtype == "float32":
        require_dtype(out, ("float32",), "output")
        params = ctx.const_struct("params", "fm_unary_f32_params_t", {"size": out.numel})
        fn = f"fm_{name}_f32"
    else:
        require_dtype(inp, ("int8",), "input")
        require_dtype(out, ("int8",), "output")
        params = ctx.const_struct("params", *int8_params(op, inp, out))
        fn = f"fm_{name}_s8"
    return LoweredOp(call=f"{fn}({params}, {ctx.tensor_ref(inp)}, {ctx.tensor_ref(out)})", macs=0,
                     sources=(fn[3:] + ".c",), kernel=fn,
                     inplace={} if inp.is_constant else {out.index: inp.index})


def _relu_s8(op: Operator, inp: Tensor, out: Tensor) -> tuple[str, dict[str, object]]:
    in_scale, in_zp = qparams(inp)
    out_scale, out_zp = qparams(out)
    mult, shift = quant.quantize_multiplier(float(quant.f32(in_scale)) / float(quant.f32(out_scale)))
    # CalculateReluOpData: act_min = max(qmin, zp + roundf(0 / scale)) = max(-128, zp), act_max = 127.
    return "fm_relu_s8_params_t", {"size": out.numel, "input_zero_point": in_zp, "output_zero_point": out_zp,
                                   "multiplier": mult, "shift": shift, "act_min": max(quant.INT8_MIN, out_zp),
                                   "act_max": quant.INT8_MAX}


def _relu6_s8(op: Operator, inp: Tensor, out: Tensor) -> tuple[str, dict[str, object]]:
    in_scale, in_zp = qparams(inp)
    return "fm_relu6_s8_params_t", {"size": out.numel, "zero": in_zp,
                                    "six": quant.float_to_quantized_int8(6.0, in_scale, in_zp)}


# TFLM fixes the int8 output quantization of LOGISTIC and TANH: (scale, zero point).
_SIGMOID_OUTPUT = {"LOGISTIC": (1.0 / 256.0, -128), "TANH": (1.0 / 128.0, 0)}


def _sigmoid_s8(op: Operator, inp: Tensor, out: Tensor) -> tuple[str, dict[str, object]]:
    in_scale, in_zp = qparams(inp)
    out_scale, out_zp = qparams(out)
    want_scale, want_zp = _SIGMOID_OUTPUT[op.opcode]
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
    return "fm_sigmoid_s8_params_t", {"size": out.numel, "input_zero_point": in_zp, "input_range_radius": radius,
                                      "input_multiplier": mult, "input_left_shift": left_shift}


_UNARY: dict[str, tuple[str, Int8Params]] = {"RELU": ("relu", _relu_s8), "RELU6": ("relu6", _relu6_s8),
                                             "LOGISTIC": ("logistic", _sigmoid_s8), "TANH": ("tanh", _sigmoid_s8)}


@register(*_UNARY)
def lower_unary(op: Operator, ctx: LowerContext) -> LoweredOp:
    return _unary(op, ctx, *_UNARY[op.opcode])


@register("SOFTMAX")
def lower_softmax(op: Operator, ctx: LowerContext) -> LoweredOp:
    inp, out = ctx.inputs()[0], ctx.outputs()[0]
    if inp.dtype == "float32":
        return _softmax_f32(op, ctx, inp, out)
    if inp.dtype != "int8":
        raise Unsupported(f"SOFTMAX on {inp.dtype} is not implemented yet", "quantize the model to int8.")
    require_dtype(out, ("int8",), "output")
    in_scale, _ = qparams(inp)
    out_scale, out_zp = qparams(out)
    # TFLM checks exactly this for int8 output.
    if out_zp != -128 or abs(out_scale - 1.0 / 256) > 0.001 * (1.0 / 256):
        raise Unsupported(f"int8 SOFTMAX output must have scale 1/256 and zero point -128 (has {out_scale}, {out_zp})",
                          "re-quantize with the TFLite converter.")
    if not inp.shape or inp.shape != out.shape:
        raise Unsupported("input and output shapes differ", "re-export the model.")
    beta = float(op.options.get("beta", 1.0))
    try:
        mult, left_shift, diff_min = quant.softmax_int8_params(beta, in_scale)
    except ValueError:  # TFLM's QuantizeMultiplierGreaterThanOne aborts the program here
        raise Unsupported(f"int8 SOFTMAX input scale {in_scale:.3g} is degenerate: TFLM needs beta x scale x 2^26 "
                          "> 1 (TFLM aborts on this model)",
                          "calibrate with real data or train the model further (near-constant logits).") from None
    depth = int(inp.shape[-1])
    params = ctx.const_struct("params", "fm_softmax_s8_params_t", {
        "outer_size": inp.numel // depth, "depth": depth, "input_multiplier": mult,
        "input_left_shift": left_shift, "diff_min": diff_min})
    return LoweredOp(call=f"fm_softmax_s8({params}, {ctx.tensor_ref(inp)}, {ctx.tensor_ref(out)})",
                     macs=0, sources=("softmax_s8.c",), kernel="fm_softmax_s8")


def _softmax_f32(op: Operator, ctx: LowerContext, inp: Tensor, out: Tensor) -> LoweredOp:
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
