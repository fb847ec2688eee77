"""DEPTHWISE_CONV_2D int8 → fm_depthwise_conv2d_s8 (per-channel multipliers, depth multiplier)."""
from __future__ import annotations

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
from formicary.codegen.ops.conv2d import bias_ref, check_activation, check_filter_quant
from formicary.tflite.ir import Operator


@register("DEPTHWISE_CONV_2D")
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
    sh, sw = int(op.options.get("stride_h", 1)), int(op.options.get("stride_w", 1))
    dh, dw = int(op.options.get("dilation_h_factor", 1)), int(op.options.get("dilation_w_factor", 1))
    padding = op.options.get("padding", "SAME")
    if padding not in ("SAME", "VALID"):
        raise Unsupported(f"padding {padding}", "use SAME or VALID padding.")
    out_c = out_d[3]
    # TFLM derives the multiplier from the shapes (the option may be 0 in some exported models).
    if in_d[3] == 0 or out_c % in_d[3] != 0 or f_d[3] != out_c:
        raise Unsupported("output channels are not a multiple of input channels", "re-export the model.")
    dm = out_c // in_d[3]
    opt_dm = int(op.options.get("depth_multiplier", 0) or 0)
    if opt_dm not in (0, dm):
        raise Unsupported(f"depth_multiplier option {opt_dm} disagrees with the shapes ({dm})",
                          "re-export the model.")
    oh = quant.compute_out_size(padding, in_d[1], f_d[1], sh, dh)
    ow = quant.compute_out_size(padding, in_d[2], f_d[2], sw, dw)
    if (oh, ow) != (out_d[1], out_d[2]) or in_d[0] != out_d[0]:
        raise Unsupported(f"output shape {list(out.shape)} disagrees with the convolution geometry",
                          "re-export the model.")
    pad_h = quant.compute_padding(sh, dh, in_d[1], f_d[1], oh)
    pad_w = quant.compute_padding(sw, dw, in_d[2], f_d[2], ow)
    in_scale, in_zp = qparams(inp)
    out_scale, out_zp = qparams(out)
    scales = check_filter_quant(filt, out_c, 3)
    mult, shift = quant.conv_per_channel_multipliers(in_scale, scales, out_scale, out_c)
    act_min, act_max = quant.activation_range(act, out_scale, out_zp)
    params = ctx.const_struct("params", "fm_depthwise_conv_s8_params_t", {
        "input_dims": dims4_c(in_d), "filter_dims": dims4_c(f_d), "output_dims": dims4_c(out_d),
        "stride_h": sh, "stride_w": sw, "dilation_h": dh, "dilation_w": dw, "pad_h": pad_h, "pad_w": pad_w,
        "depth_multiplier": dm, "input_offset": -in_zp, "output_offset": out_zp,
        "act_min": act_min, "act_max": act_max,
        "filter": ctx.tensor_ref(filt), "bias": bias_ref(ctx, bias),
        "multiplier": ctx.const_array("mult", "int32_t", mult),
        "shift": ctx.const_array("shift", "int32_t", shift),
    })
    macs = out_d[0] * out_d[1] * out_d[2] * out_c * f_d[1] * f_d[2]
    return LoweredOp(call=f"fm_depthwise_conv2d_s8({params}, {ctx.tensor_ref(inp)}, {ctx.tensor_ref(out)})",
                     macs=macs, sources=("depthwise_conv2d_s8.c",), kernel="fm_depthwise_conv2d_s8")
