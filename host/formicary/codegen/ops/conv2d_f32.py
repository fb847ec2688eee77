"""CONV_2D and DEPTHWISE_CONV_2D float32 → fm_conv2d_f32 / fm_depthwise_conv2d_f32 (tolerance-checked)."""
from __future__ import annotations

from formicary.codegen import quant
from formicary.codegen.ops import register
from formicary.codegen.ops._k2_common import FLOAT_ACT, fused_activation
from formicary.codegen.ops.base import (
    LowerContext,
    LoweredOp,
    Unsupported,
    dims4,
    dims4_c,
    require_dtype,
)
from formicary.tflite.ir import Operator


def _float_bias(ctx: LowerContext, bias) -> str:
    if bias is None:
        return "NULL"
    require_dtype(bias, ("float32",), "bias")
    if not bias.is_constant:
        raise Unsupported(f"bias '{bias.name}' is not a constant", "fold the bias into the model as a constant.")
    return ctx.tensor_ref(bias)


def lower_conv_f32(op: Operator, ctx: LowerContext, depthwise: bool) -> LoweredOp:
    ins = ctx.inputs()
    inp, filt = ins[0], ins[1]
    bias = ins[2] if len(ins) > 2 else None
    out = ctx.outputs()[0]
    for t, role in ((inp, "input"), (filt, "filter"), (out, "output")):
        require_dtype(t, ("float32",), role)
    if not filt.is_constant:
        raise Unsupported("the filter is not a constant tensor", "export the model with constant weights.")
    if len(inp.shape) != 4 or len(filt.shape) != 4:
        raise Unsupported(f"{op.opcode} needs 4-D input and filter", "re-export the model.")
    act = fused_activation(op)
    in_d, f_d, out_d = dims4(inp), dims4(filt), dims4(out)
    sh, sw = int(op.options.get("stride_h", 1)), int(op.options.get("stride_w", 1))
    dh, dw = int(op.options.get("dilation_h_factor", 1)), int(op.options.get("dilation_w_factor", 1))
    padding = op.options.get("padding", "SAME")
    if padding not in ("SAME", "VALID"):
        raise Unsupported(f"padding {padding}", "use SAME or VALID padding.")
    oh = quant.compute_out_size(padding, in_d[1], f_d[1], sh, dh)
    ow = quant.compute_out_size(padding, in_d[2], f_d[2], sw, dw)
    if (oh, ow) != (out_d[1], out_d[2]) or in_d[0] != out_d[0]:
        raise Unsupported(f"output shape {list(out.shape)} disagrees with the convolution geometry",
                          "re-export the model.")
    if depthwise:
        if in_d[3] == 0 or out_d[3] % in_d[3] != 0 or f_d[3] != out_d[3]:
            raise Unsupported("output channels are not a multiple of input channels", "re-export the model.")
        dm = out_d[3] // in_d[3]
    else:
        if out_d[3] != f_d[0] or in_d[3] % f_d[3] != 0 or f_d[0] % (in_d[3] // f_d[3]) != 0:
            raise Unsupported("filter shape disagrees with the input/output channels", "re-export the model.")
        dm = 1
    lo, hi = FLOAT_ACT[act]
    params = ctx.const_struct("params", "fm_conv_f32_params_t", {
        "input_dims": dims4_c(in_d), "filter_dims": dims4_c(f_d), "output_dims": dims4_c(out_d),
        "stride_h": sh, "stride_w": sw, "dilation_h": dh, "dilation_w": dw,
        "pad_h": quant.compute_padding(sh, dh, in_d[1], f_d[1], oh),
        "pad_w": quant.compute_padding(sw, dw, in_d[2], f_d[2], ow),
        "depth_multiplier": dm, "act_min": lo, "act_max": hi,
        "filter": ctx.tensor_ref(filt), "bias": _float_bias(ctx, bias)})
    fn = "fm_depthwise_conv2d_f32" if depthwise else "fm_conv2d_f32"
    taps = f_d[1] * f_d[2] * (1 if depthwise else f_d[3])
    return LoweredOp(call=f"{fn}({params}, {ctx.tensor_ref(inp)}, {ctx.tensor_ref(out)})",
                     macs=out_d[0] * out_d[1] * out_d[2] * out_d[3] * taps, sources=(fn[3:] + ".c",), kernel=fn)


@register("CONV_2D", dtype="float32")
def lower(op: Operator, ctx: LowerContext) -> LoweredOp:
    return lower_conv_f32(op, ctx, depthwise=False)
