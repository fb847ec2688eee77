"""SOFTMAX int8 → fm_softmax_s8, with input_multiplier / input_left_shift / diff_min as TFLM's Prepare."""
from __future__ import annotations

from formicary.codegen import quant
from formicary.codegen.ops import register
from formicary.codegen.ops.base import (
    LowerContext,
    LoweredOp,
    Unsupported,
    qparams,
    require_dtype,
)
from formicary.tflite.ir import Operator


@register("SOFTMAX")
def lower(op: Operator, ctx: LowerContext) -> LoweredOp:
    inp, out = ctx.inputs()[0], ctx.outputs()[0]
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
    mult, left_shift, diff_min = quant.softmax_int8_params(beta, in_scale)
    depth = int(inp.shape[-1])
    params = ctx.const_struct("params", "fm_softmax_s8_params_t", {
        "outer_size": inp.numel // depth, "depth": depth, "input_multiplier": mult,
        "input_left_shift": left_shift, "diff_min": diff_min})
    return LoweredOp(call=f"fm_softmax_s8({params}, {ctx.tensor_ref(inp)}, {ctx.tensor_ref(out)})",
                     macs=0, sources=("softmax_s8.c",), kernel="fm_softmax_s8")
