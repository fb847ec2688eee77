"""The reduction family over a constant set of axes (keep_dims either way: the output holds the same values in
the same order): MEAN (GlobalAveragePooling produces axes [1, 2]), SUM and REDUCE_MAX, int8 and float32.

One geometry serves all three (`reduce_fields`, fm_reduce_params_t = fm_mean_params_t): output element o walks
the kept dims, and sums (or takes the max of) the reduced dims in the input's row-major order.
- int8 MEAN and SUM mirror TFLM's reference_ops::QuantizedMeanOrSum integer path: the int32 sum minus count *
  input zero point, rescaled by one multiplier (input_scale / output_scale; MEAN folds 1/count into it as TFLM
  does, quant.mean_int8_multiplier; SUM folds nothing), plus the output zero point, clamped. Both call
  fm_mean_s8.
- int8 REDUCE_MAX compares raw values; TFLM refuses (at Eval) input and output quantizations that differ, and so
  does formicary, at codegen.
- float32 SUM and REDUCE_MAX follow ReduceGeneric (init 0 / lowest), adding in the same order as TFLM.
"""
from __future__ import annotations

import numpy as np

from formicary.codegen import quant
from formicary.codegen.ops import register
from formicary.codegen.ops.base import (
    BCAST_DIMS,
    LowerContext,
    LoweredOp,
    Unsupported,
    c_array,
    qparams,
    require_dtype,
)
from formicary.tflite.ir import Operator, Tensor


def reduce_fields(opname: str, inp: Tensor, axis_t: Tensor | None, out: Tensor) -> dict[str, object]:
    """fm_reduce_params_t geometry (out_size, red_count, kept/reduced dims and strides) for reducing `inp` over
    the constant axes in `axis_t` (negative and repeated axes resolved as TFLM's ResolveAxis does)."""
    if axis_t is None or not axis_t.is_constant:
        raise Unsupported(f"{opname} with non-constant axes", "use constant reduction axes.")
    shape = [int(d) for d in inp.shape]
    rank = len(shape)
    if rank > BCAST_DIMS:
        raise Unsupported(f"{opname} of a rank-{rank} tensor", f"use at most {BCAST_DIMS} dimensions.")
    if inp.numel == 0:
        raise Unsupported(f"{opname} of an empty tensor", "re-export the model.")
    raw_axes = [int(a) for a in np.asarray(axis_t.data).reshape(-1)]
    if any(not -rank <= a < rank for a in raw_axes) and rank > 0:
        raise Unsupported(f"{opname} axes {raw_axes} out of range for rank {rank}", "re-export the model.")
    axes = sorted({(a + rank) % rank for a in raw_axes}) if rank else []
    strides = [1] * rank
    for d in range(rank - 2, -1, -1):
        strides[d] = strides[d + 1] * shape[d + 1]
    kept = [d for d in range(rank) if d not in axes]

    def pad(xs: list[int], fill: int) -> list[int]:
        return [fill] * (BCAST_DIMS - len(xs)) + xs

    red_count = int(np.prod([shape[d] for d in axes])) if axes else 1
    out_size = int(np.prod([shape[d] for d in kept])) if kept else 1
    if out_size != out.numel:
        raise Unsupported(f"{opname} output size disagrees with the axes", "re-export the model.")
    return {"out_size": out_size, "red_count": red_count,
            "kept_dims": c_array(pad([shape[d] for d in kept], 1)),
            "kept_strides": c_array(pad([strides[d] for d in kept], 0)),
            "red_dims": c_array(pad([shape[d] for d in axes], 1)),
            "red_strides": c_array(pad([strides[d] for d in axes], 0))}


_NO_QUANT = {"input_zero_point": 0, "output_zero_point": 0, "multiplier": 0, "shift": 0}


@register("MEAN", "SUM", "REDUCE_MAX")
def lower_reduce(op: Operator, ctx: LowerContext) -> LoweredOp:
    inp, axis_t = ctx.inputs()[0], ctx.inputs()[1]
    out = ctx.outputs()[0]
    require_dtype(inp, ("int8", "float32"), "input")
    require_dtype(out, (inp.dtype,), "output")
    fields = reduce_fields(op.opcode, inp, axis_t, out)
    int8 = inp.dtype == "int8"
    if int8:
        in_scale, in_zp = qparams(inp)
        out_scale, out_zp = qparams(out)
        if not (quant.f32(in_scale) > 0 and quant.f32(out_scale) > 0):
            raise Unsupported(f"{op.opcode} with a zero or negative scale ({in_scale!r}, {out_scale!r})",
                              "re-quantize the model.")
    if op.opcode == "REDUCE_MAX":
        if int8 and (quant.f32(in_scale), in_zp) != (quant.f32(out_scale), out_zp):
            raise Unsupported("REDUCE_MAX input and output quantization differ (TFLM requires them equal for int8)",
                              "re-export the model with the TFLite converter.")
        fields.update(_NO_QUANT)
        fn = f"fm_reduce_max_{'s8' if int8 else 'f32'}"
    elif int8:
        if op.opcode == "MEAN":
            mult, shift = quant.mean_int8_multiplier(in_scale, out_scale, fields["red_count"])
        else:
            mult, shift = quant.sum_int8_multiplier(in_scale, out_scale)
        fields.update({"input_zero_point": in_zp, "output_zero_point": out_zp, "multiplier": mult, "shift": shift})
        fn = "fm_mean_s8"
    else:
        fields.update(_NO_QUANT)
        fn = "fm_mean_f32" if op.opcode == "MEAN" else "fm_sum_f32"
    params = ctx.const_struct("params", "fm_reduce_params_t" if op.opcode != "MEAN" else "fm_mean_params_t", fields)
    return LoweredOp(call=f"{fn}({params}, {ctx.tensor_ref(inp)}, {ctx.tensor_ref(out)})",
                     macs=inp.numel if op.opcode != "REDUCE_MAX" else 0, sources=(fn[3:] + ".c",), kernel=fn)
