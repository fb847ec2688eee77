"""CONV_2D int8 → fm_conv2d_s8 (per-channel multipliers precomputed as TFLM's Prepare does)."""
from __future__ import annotations

import numpy as np

from formicary.codegen import quant
from formicary.codegen.ops import register
from formicary.codegen.ops.base import (
    LowerContext,
    LoweredOp,
    Unsupported,
    dims4,
    dims4_c,
    qparams,
    require_dtype,
)
from formicary.tflite.ir import Operator


def check_filter_quant(filter_t, num_channels: int, axis: int) -> np.ndarray:
    """Filter scales broadcast to num_channels; symmetric (zero point 0) as TFLM requires for int8."""
    q = filter_t.quant
    if q is None or q.scale.size == 0:
        raise Unsupported(f"filter '{filter_t.name}' is not quantized", "quantize the model fully to int8.")
    if q.per_channel and (q.scale.size != num_channels or q.axis != axis):
        raise Unsupported(f"filter '{filter_t.name}' has {q.scale.size} scales on axis {q.axis}; expected "
                          f"{num_channels} on axis {axis}", "re-quantize with the TFLite converter.")
    if np.any(q.zero_point != 0):
        raise Unsupported(f"filter '{filter_t.name}' has a non-zero zero point (TFLM requires symmetric int8 "
                          "filters)", "re-quantize with the TFLite converter (symmetric weights).")
    return q.scale


def bias_ref(ctx: LowerContext, bias_t) -> str:
    if bias_t is None:
        return "NULL"
    require_dtype(bias_t, ("int32",), "bias")
    if not bias_t.is_constant:
        raise Unsupported(f"bias '{bias_t.name}' is not a constant", "fold the bias into the model as a constant.")
    return ctx.tensor_ref(bias_t)


def check_activation(op: Operator) -> str:
    act = op.options.get("fused_activation_function", "NONE")
    if act not in ("NONE", "RELU", "RELU6", "RELU_N1_TO_1"):
        raise Unsupported(f"fused activation {act} is not supported on int8",
                          "use NONE/RELU/RELU6 or a separate activation layer.")
    return act


@register("CONV_2D")
def lower(op: Operator, ctx: LowerContext) -> LoweredOp:
    ins = ctx.inputs()
    inp, filt = ins[0], ins[1]
    bias = ins[2] if len(ins) > 2 else None
    out = ctx.outputs()[0]
    require_dtype(inp, ("int8",), "input")
    require_dtype(out, ("int8",), "output")
    require_dtype(filt, ("int8",), "filter")
    if not filt.is_constant:
        raise Unsupported("the filter is not a constant tensor", "export the model with constant weights.")
    act = check_activation(op)
    in_d, f_d, out_d = dims4(inp), dims4(filt), dims4(out)
    if len(inp.shape) != 4 or len(filt.shape) != 4:
        raise Unsupported("CONV_2D needs 4-D input and filter", "re-export the model.")
    sh, sw = int(op.options.get("stride_h", 1)), int(op.options.get("stride_w", 1))
    dh, dw = int(op.options.get("dilation_h_factor", 1)), int(op.options.get("dilation_w_factor", 1))
    padding = op.options.get("padding", "SAME")
    if padding not in ("SAME", "VALID"):
        raise Unsupported(f"padding {padding}", "use SAME or VALID padding.")
    oh = quant.compute_out_size(padding, in_d[1], f_d[1], sh, dh)
    ow = quant.compute_out_size(padding, in_d[2], f_d[2], sw, dw)
    if (oh, ow) != (out_d[1], out_d[2]) or out_d[3] != f_d[0] or in_d[0] != out_d[0]:
        raise Unsupported(f"output shape {list(out.shape)} disagrees with the convolution geometry",
                          "re-export the model.")
    if in_d[3] % f_d[3] != 0 or f_d[0] % (in_d[3] // f_d[3]) != 0:
        raise Unsupported("input channels are not a multiple of the filter's input channels",
                          "re-export the model.")
    pad_h = quant.compute_padding(sh, dh, in_d[1], f_d[1], oh)
    pad_w = quant.compute_padding(sw, dw, in_d[2], f_d[2], ow)
    in_scale, in_zp = qparams(inp)
    out_scale, out_zp = qparams(out)
    scales = check_filter_quant(filt, f_d[0], 0)
    mult, shift = quant.conv_per_channel_multipliers(in_scale, scales, out_scale, f_d[0])
    act_min, act_max = quant.activation_range(act, out_scale, out_zp)
    params = ctx.const_struct("params", "fm_conv_s8_params_t", {
        "input_dims": dims4_c(in_d), "filter_dims": dims4_c(f_d), "output_dims": dims4_c(out_d),
        "stride_h": sh, "stride_w": sw, "dilation_h": dh, "dilation_w": dw, "pad_h": pad_h, "pad_w": pad_w,
        "input_offset": -in_zp, "output_offset": out_zp, "act_min": act_min, "act_max": act_max,
        "filter": ctx.tensor_ref(filt), "bias": bias_ref(ctx, bias),
        "multiplier": ctx.const_array("mult", "int32_t", mult),
        "shift": ctx.const_array("shift", "int32_t", shift),
    })
    macs = out_d[0] * out_d[1] * out_d[2] * out_d[3] * f_d[1] * f_d[2] * f_d[3]
    return LoweredOp(call=f"fm_conv2d_s8({params}, {ctx.tensor_ref(inp)}, {ctx.tensor_ref(out)})",
                     macs=macs, sources=("conv2d_s8.c",), kernel="fm_conv2d_s8")
