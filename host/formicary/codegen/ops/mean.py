"""MEAN (int8, float32) over any constant set of axes (GlobalAveragePooling produces axes [1, 2]).

int8 mirrors TFLM's reference_ops::QuantizedMeanOrSum integer path: the sum minus count * input zero point,
rescaled by one multiplier into which 1/count is folded (quant.mean_int8_multiplier).
"""
from __future__ import annotations

import numpy as np

from formicary.codegen import quant
from formicary.codegen.ops import register
from formicary.codegen.ops._k2_common import BCAST_DIMS, c_array
from formicary.codegen.ops.base import (
    LowerContext,
    LoweredOp,
    Unsupported,
    qparams,
    require_dtype,
)
from formicary.tflite.ir import Operator


@register("MEAN")
def lower(op: Operator, ctx: LowerContext) -> LoweredOp:
    inp, axis_t = ctx.inputs()[0], ctx.inputs()[1]
    out = ctx.outputs()[0]
    require_dtype(inp, ("int8", "float32"), "input")
    require_dtype(out, (inp.dtype,), "output")
    if axis_t is None or not axis_t.is_constant:
        raise Unsupported("MEAN with non-constant axes", "use constant reduction axes.")
    shape = [int(d) for d in inp.shape]
    rank = len(shape)
    if rank > BCAST_DIMS:
        raise Unsupported(f"MEAN of a rank-{rank} tensor", f"use at most {BCAST_DIMS} dimensions.")
    axes = sorted({(int(a) + rank) % rank for a in np.asarray(axis_t.data).reshape(-1)})
    strides = [1] * rank
    for d in range(rank - 2, -1, -1):
        strides[d] = strides[d + 1] * shape[d + 1]
    kept = [d for d in range(rank) if d not in axes]
    pad = lambda xs, fill: [fill] * (BCAST_DIMS - len(xs)) + xs
    kept_dims = pad([shape[d] for d in kept], 1)
    kept_strides = pad([strides[d] for d in kept], 0)
    red_dims = pad([shape[d] for d in axes], 1)
    red_strides = pad([strides[d] for d in axes], 0)
    red_count = int(np.prod([shape[d] for d in axes])) if axes else 1
    out_size = int(np.prod([shape[d] for d in kept])) if kept else 1
    if out_size != out.numel:
        raise Unsupported("MEAN output size disagrees with the axes", "re-export the model.")
    fields: dict[str, object] = {
        "out_size": out_size, "red_count": red_count, "kept_dims": c_array(kept_dims),
        "kept_strides": c_array(kept_strides), "red_dims": c_array(red_dims), "red_strides": c_array(red_strides)}
    if inp.dtype == "int8":
        in_scale, in_zp = qparams(inp)
        out_scale, out_zp = qparams(out)
        mult, shift = quant.mean_int8_multiplier(in_scale, out_scale, red_count)
        fields.update({"input_zero_point": in_zp, "output_zero_point": out_zp, "multiplier": mult,
                       "shift": shift})
        fn = "fm_mean_s8"
    else:
        fields.update({"input_zero_point": 0, "output_zero_point": 0, "multiplier": 0, "shift": 0})
        fn = "fm_mean_f32"
    params = ctx.const_struct("params", "fm_mean_params_t", fields)
    return LoweredOp(call=f"{fn}({params}, {ctx.tensor_ref(inp)}, {ctx.tensor_ref(out)})", macs=inp.numel,
                     sources=(fn[3:] + ".c",), kernel=fn)
