"""DEPTHWISE_CONV_2D float32 → fm_depthwise_conv2d_f32 (see conv2d_f32.py)."""
from __future__ import annotations

from formicary.codegen.ops import register
from formicary.codegen.ops.base import LowerContext, LoweredOp
from formicary.codegen.ops.conv2d_f32 import lower_conv_f32
from formicary.tflite.ir import Operator


@register("DEPTHWISE_CONV_2D", dtype="float32")
def lower(op: Operator, ctx: LowerContext) -> LoweredOp:
    return lower_conv_f32(op, ctx, depthwise=True)
