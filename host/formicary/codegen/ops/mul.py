"""MUL int8 → fm_mul_s8 and float32 → fm_mul_f32 (broadcasting as ADD)."""
from __future__ import annotations

from formicary.codegen.ops import register
from formicary.codegen.ops.add import lower_binary
from formicary.codegen.ops.base import LowerContext, LoweredOp
from formicary.tflite.ir import Operator


@register("MUL")
def lower(op: Operator, ctx: LowerContext) -> LoweredOp:
    return lower_binary(op, ctx, "mul")
