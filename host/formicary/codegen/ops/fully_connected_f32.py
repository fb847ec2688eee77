"""FULLY_CONNECTED float32 → fm_fully_connected_f32."""
from __future__ import annotations

from formicary.codegen.ops import register
from formicary.codegen.ops._k2_common import FLOAT_ACT, fused_activation
from formicary.codegen.ops.base import (
    LowerContext,
    LoweredOp,
    Unsupported,
    require_dtype,
)
from formicary.codegen.ops.conv2d_f32 import _float_bias
from formicary.tflite.ir import Operator


@register("FULLY_CONNECTED", dtype="float32")
def lower(op: Operator, ctx: LowerContext) -> LoweredOp:
    ins = ctx.inputs()
    inp, filt = ins[0], ins[1]
    bias = ins[2] if len(ins) > 2 else None
    out = ctx.outputs()[0]
    for t, role in ((inp, "input"), (filt, "weights"), (out, "output")):
        require_dtype(t, ("float32",), role)
    if not filt.is_constant or len(filt.shape) != 2:
        raise Unsupported("weights must be a constant 2-D tensor", "export the model with constant weights.")
    act = fused_activation(op)
    out_depth, accum = int(filt.shape[0]), int(filt.shape[1])
    if not out.shape or int(out.shape[-1]) != out_depth:
        raise Unsupported("output shape disagrees with the weights", "re-export the model.")
    batches = out.numel // out_depth
    if inp.numel != batches * accum:
        raise Unsupported(f"input has {inp.numel} values, expected {batches}x{accum}", "re-export the model.")
    lo, hi = FLOAT_ACT[act]
    params = ctx.const_struct("params", "fm_fully_connected_f32_params_t", {
        "batches": batches, "accum_depth": accum, "output_depth": out_depth, "act_min": lo, "act_max": hi,
        "filter": ctx.tensor_ref(filt), "bias": _float_bias(ctx, bias)})
    return LoweredOp(call=f"fm_fully_connected_f32({params}, {ctx.tensor_ref(inp)}, {ctx.tensor_ref(out)})",
                     macs=batches * out_depth * accum, sources=("fully_connected_f32.c",),
                     kernel="fm_fully_connected_f32")
