"""RESHAPE (and SQUEEZE / EXPAND_DIMS): no kernel, the output aliases the input's arena bytes."""
from __future__ import annotations

from formicary.codegen.ops import register
from formicary.codegen.ops.base import LowerContext, LoweredOp, Unsupported
from formicary.tflite.ir import Operator


@register("RESHAPE", "SQUEEZE", "EXPAND_DIMS")
def lower(op: Operator, ctx: LowerContext) -> LoweredOp:
    inp, out = ctx.inputs()[0], ctx.outputs()[0]
    if inp.nbytes != out.nbytes or inp.dtype != out.dtype:
        raise Unsupported(f"{op.opcode} changes the size or type ({inp.nbytes} -> {out.nbytes} bytes)",
                          "re-export the model.")
    if inp.quant is not None and out.quant is not None and (
            inp.quant.scale.tolist() != out.quant.scale.tolist()
            or inp.quant.zero_point.tolist() != out.quant.zero_point.tolist()):
        raise Unsupported(f"{op.opcode} changes quantization parameters", "re-export the model.")
    if inp.is_constant:
        raise Unsupported(f"{op.opcode} of a constant tensor", "fold the constant reshape when converting.")
    return LoweredOp(call=None, macs=0, alias={out.index: inp.index}, kernel="(alias)")
