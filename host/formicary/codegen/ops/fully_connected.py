"""FULLY_CONNECTED int8 → fm_fully_connected_s8 (per-tensor or per-channel weights)."""
from __future__ import annotations

import numpy as np

from formicary.codegen import quant
from formicary.codegen.ops import register
from formicary.codegen.ops.base import (
    LowerContext,
    LoweredOp,
    Unsupported,
    qparams,
    require_dtype,
)
from formicary.codegen.ops.conv2d import bias_ref, check_activation
from formicary.tflite.ir import Operator


@register("FULLY_CONNECTED")
def lower(op: Operator, ctx: LowerContext) -> LoweredOp:
    ins = ctx.inputs()
    inp, filt = ins[0], ins[1]
    bias = ins[2] if len(ins) > 2 else None
    out = ctx.outputs()[0]
    require_dtype(inp, ("int8",), "input")
    require_dtype(out, ("int8",), "output")
    require_dtype(filt, ("int8",), "filter")
    if not filt.is_constant:
        raise Unsupported("the weights are not a constant tensor", "export the model with constant weights.")
    if op.options.get("weights_format", 0) not in (0, "DEFAULT"):
        raise Unsupported("shuffled weights format", "export with the default weights format.")
    act = check_activation(op)
    if len(filt.shape) != 2:
        raise Unsupported(f"weights of rank {len(filt.shape)}", "re-export the model.")
    out_depth, accum = int(filt.shape[0]), int(filt.shape[1])
    if not out.shape or int(out.shape[-1]) != out_depth:
        raise Unsupported("output shape disagrees with the weights", "re-export the model.")
    batches = out.numel // out_depth
    if inp.numel != batches * accum:
        raise Unsupported(f"input has {inp.numel} values, expected {batches}x{accum}", "re-export the model.")
    in_scale, in_zp = qparams(inp)
    out_scale, out_zp = qparams(out)
    fq = filt.quant
    if fq is None or fq.scale.size == 0:
        raise Unsupported(f"weights '{filt.name}' are not quantized", "quantize the model fully to int8.")
    per_channel = fq.scale.size > 1
    if per_channel:
        if fq.scale.size != out_depth or fq.axis != 0:
            raise Unsupported("per-channel weight scales not along the output axis", "re-export the model.")
        mult, shift = quant.conv_per_channel_multipliers(in_scale, fq.scale, out_scale, out_depth)
        filter_zp = 0
        if np.any(fq.zero_point != 0):
            raise Unsupported("per-channel weights with non-zero zero points", "re-quantize symmetrically.")
    else:
        m, s = quant.per_tensor_conv_multiplier(in_scale, float(fq.scale[0]), out_scale)
        mult, shift = np.array([m], dtype=np.int32), np.array([s], dtype=np.int32)
        filter_zp = int(fq.zero_point[0])
    act_min, act_max = quant.activation_range(act, out_scale, out_zp)
    params = ctx.const_struct("params", "fm_fully_connected_s8_params_t", {
        "batches": batches, "accum_depth": accum, "output_depth": out_depth,
        "input_offset": -in_zp, "filter_offset": -filter_zp, "output_offset": out_zp,
        "act_min": act_min, "act_max": act_max, "per_channel": int(per_channel),
        "filter": ctx.tensor_ref(filt), "bias": bias_ref(ctx, bias),
        "multiplier": ctx.const_array("mult", "int32_t", mult),
        "shift": ctx.const_array("shift", "int32_t", shift),
    })
    return LoweredOp(call=f"fm_fully_connected_s8({params}, {ctx.tensor_ref(inp)}, {ctx.tensor_ref(out)})",
                     macs=batches * out_depth * accum, sources=("fully_connected_s8.c",),
                     kernel="fm_fully_connected_s8")
