"""HARD_SWISH, LEAKY_RELU and PRELU, int8 and float32: the activations of MobileNetV3 and of PyTorch CNNs.

int8 constants are TFLM's Prepare arithmetic (formicary.codegen.quant): HardSwishPrepare's int16 multipliers
(refused where TFLM's Prepare fails: output scale below input scale / 128), CalculateOpDataLeakyRelu's identity
and alpha multipliers, CalculatePreluParams' two multipliers. HARD_SWISH and LEAKY_RELU run in place when their
input dies; PRELU when its input has the output's shape (alpha broadcasts against it, up to 4 dims as in TFLM).
"""
from __future__ import annotations

from formicary.codegen import quant
from formicary.codegen.ops import register
from formicary.codegen.ops.base import (
    LowerContext,
    LoweredOp,
    Unsupported,
    float_literal,
    nested,
    qparams,
    require_dtype,
    same_shape,
)
from formicary.codegen.ops.elementwise import broadcast_fields
from formicary.tflite.ir import Operator, Tensor

_TYPES = ("int8", "float32")
_PRELU_DIMS = 4  # TFLM's BroadcastPrelu4DSlow


def _int8_or_float(inp: Tensor, out: Tensor, opname: str) -> str:
    """The kernel type ("s8" / "f32") from the input; TFLM requires the output to have the input's type."""
    require_dtype(inp, _TYPES, "input")
    if out.dtype != inp.dtype:
        raise Unsupported(f"{opname} input is {inp.dtype} but output is {out.dtype}; TFLM requires equal types",
                          "re-export the model.")
    return "s8" if inp.dtype == "int8" else "f32"


def _per_tensor(t: Tensor, role: str, opname: str) -> None:
    if t.quant is not None and t.quant.scale.size > 1:
        raise Unsupported(f"{opname} {role} '{t.name}' is quantized per channel; TFLM uses a single scale",
                          "quantize it per tensor (the TFLite converter does).")


def _unary_call(ctx: LowerContext, fn: str, params: str, inp: Tensor, out: Tensor) -> LoweredOp:
    return LoweredOp(call=f"{fn}({params}, {ctx.tensor_ref(inp)}, {ctx.tensor_ref(out)})", macs=0,
                     sources=(fn[3:] + ".c",), kernel=fn,
                     inplace={} if inp.is_constant else {out.index: inp.index})


@register("HARD_SWISH")
def lower_hard_swish(op: Operator, ctx: LowerContext) -> LoweredOp:
    inp, out = ctx.inputs()[0], ctx.outputs()[0]
    same_shape(inp, out, op.opcode)
    kind = _int8_or_float(inp, out, op.opcode)
    if kind == "f32":
        params = ctx.const_struct("params", "fm_unary_f32_params_t", {"size": out.numel})
        return _unary_call(ctx, "fm_hard_swish_f32", params, inp, out)
    for t, role in ((inp, "input"), (out, "output")):
        _per_tensor(t, role, op.opcode)
    in_scale, in_zp = qparams(inp)
    out_scale, out_zp = qparams(out)
    try:
        consts = quant.hard_swish_int8_params(in_scale, out_scale)
    except ValueError as exc:
        raise Unsupported(str(exc), "requantize the HARD_SWISH output with a larger scale (the TFLite converter "
                                    "never produces this).") from None
    if consts["reluish_exponent"] > 31:
        raise Unsupported(f"HARD_SWISH input scale {in_scale} needs a reluish left shift of "
                          f"{consts['reluish_exponent']} bits; TFLM's int16 arithmetic is undefined there",
                          "requantize the input with a smaller scale.")
    params = ctx.const_struct("params", "fm_hard_swish_s8_params_t", {
        "size": out.numel, "input_zero_point": in_zp, "output_zero_point": out_zp, **consts})
    return _unary_call(ctx, "fm_hard_swish_s8", params, inp, out)


@register("LEAKY_RELU")
def lower_leaky_relu(op: Operator, ctx: LowerContext) -> LoweredOp:
    inp, out = ctx.inputs()[0], ctx.outputs()[0]
    same_shape(inp, out, op.opcode)
    kind = _int8_or_float(inp, out, op.opcode)
    alpha = float(op.options.get("alpha", 0.0))
    if kind == "f32":
        params = ctx.const_struct("params", "fm_leaky_relu_f32_params_t",
                                  {"size": out.numel, "alpha": float_literal(alpha)})
        return _unary_call(ctx, "fm_leaky_relu_f32", params, inp, out)
    for t, role in ((inp, "input"), (out, "output")):
        _per_tensor(t, role, op.opcode)
    in_scale, in_zp = qparams(inp)
    out_scale, out_zp = qparams(out)
    params = ctx.const_struct("params", "fm_leaky_relu_s8_params_t", {
        "size": out.numel, "input_zero_point": in_zp, "output_zero_point": out_zp,
        **quant.leaky_relu_int8_params(in_scale, out_scale, alpha)})
    return _unary_call(ctx, "fm_leaky_relu_s8", params, inp, out)


@register("PRELU")
def lower_prelu(op: Operator, ctx: LowerContext) -> LoweredOp:
    inp, alpha = ctx.inputs()[0], ctx.inputs()[1]
    out = ctx.outputs()[0]
    kind = _int8_or_float(inp, out, op.opcode)
    require_dtype(alpha, (inp.dtype,), "alpha")
    for t, role in ((inp, "input"), (alpha, "alpha"), (out, "output")):
        if len(t.shape) > _PRELU_DIMS:
            raise Unsupported(f"PRELU {role} has rank {len(t.shape)}; TFLM's PRELU takes at most 4 dimensions",
                              "reshape to at most 4 dimensions.")
    shape = nested(broadcast_fields(inp, alpha, out))
    if kind == "f32":
        params = ctx.const_struct("params", "fm_prelu_f32_params_t", {"shape": shape})
    else:
        for t, role in ((inp, "input"), (alpha, "alpha"), (out, "output")):
            _per_tensor(t, role, op.opcode)
        in_scale, in_zp = qparams(inp)
        a_scale, a_zp = qparams(alpha)
        out_scale, out_zp = qparams(out)
        params = ctx.const_struct("params", "fm_prelu_s8_params_t", {
            "shape": shape, "input_offset": -in_zp, "alpha_offset": -a_zp, "output_offset": out_zp,
            **quant.prelu_int8_params(in_scale, a_scale, out_scale)})
    fn = f"fm_prelu_{kind}"
    # the kernel reads input element i before writing output element i when the input is full-shaped
    inplace = {out.index: inp.index} if (not inp.is_constant and tuple(inp.shape) == tuple(out.shape)) else {}
    return LoweredOp(call=f"{fn}({params}, {ctx.tensor_ref(inp)}, {ctx.tensor_ref(alpha)}, {ctx.tensor_ref(out)})",
                     macs=0, sources=(fn[3:] + ".c",), kernel=fn, inplace=inplace)
