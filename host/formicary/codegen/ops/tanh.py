"""TANH: see logistic.py (same Prepare arithmetic, different gemmlowp function and output scaling)."""
from __future__ import annotations

from formicary.codegen.ops import register
from formicary.codegen.ops.base import LowerContext, LoweredOp
from formicary.codegen.ops.logistic import lower_sigmoid
from formicary.tflite.ir import Operator


@register("TANH")
def lower(op: Operator, ctx: LowerContext) -> LoweredOp:
    return lower_sigmoid(op, ctx, "tanh")
