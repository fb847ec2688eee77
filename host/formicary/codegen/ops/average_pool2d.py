"""AVERAGE_POOL_2D int8 → fm_average_pool2d_s8 (input and output share quantization, as TFLM requires)."""
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
from formicary.codegen.ops.conv2d import check_activation
from formicary.tflite.ir import Operator


def pool_params(op: Operator, ctx: LowerContext, dtype: str) -> dict[str, object]:
    """fm_pool_params_t fields for AVERAGE_POOL_2D / MAX_POOL_2D (shared with MAX_POOL_2D's lowering)."""
    inp, out = ctx.inputs()[0], ctx.outputs()[0]
    require_dtype(inp, (dtype,), "input")
    require_dtype(out, (dtype,), "output")
    if len(inp.shape) != 4 or len(out.shape) != 4:
        raise Unsupported("pooling needs 4-D tensors", "re-export the model.")
    act = check_activation(op)
    in_d, out_d = dims4(inp), dims4(out)
    fh, fw = int(op.options.get("filter_height", 1)), int(op.options.get("filter_width", 1))
    sh, sw = int(op.options.get("stride_h", 1)), int(op.options.get("stride_w", 1))
    padding = op.options.get("padding", "VALID")
    if padding not in ("SAME", "VALID"):
        raise Unsupported(f"padding {padding}", "use SAME or VALID padding.")
    oh = quant.compute_out_size(padding, in_d[1], fh, sh)
    ow = quant.compute_out_size(padding, in_d[2], fw, sw)
    if (oh, ow) != (out_d[1], out_d[2]) or in_d[3] != out_d[3] or in_d[0] != out_d[0]:
        raise Unsupported(f"output shape {list(out.shape)} disagrees with the pooling geometry",
                          "re-export the model.")
    fields: dict[str, object] = {
        "input_dims": dims4_c(in_d), "output_dims": dims4_c(out_d), "filter_h": fh, "filter_w": fw,
        "stride_h": sh, "stride_w": sw,
        "pad_h": quant.compute_padding(sh, 1, in_d[1], fh, oh), "pad_w": quant.compute_padding(sw, 1, in_d[2], fw, ow),
    }
    if dtype == "float32":
        lo, hi = {"NONE": ("-FLT_MAX", "FLT_MAX"), "RELU": ("0.0f", "FLT_MAX"), "RELU6": ("0.0f", "6.0f"),
                  "RELU_N1_TO_1": ("-1.0f", "1.0f")}[act]
        fields.update({"act_min": 0, "act_max": 0, "act_min_f": lo, "act_max_f": hi})
    else:
        in_scale, in_zp = qparams(inp)
        out_scale, out_zp = qparams(out)
        if (quant.f32(in_scale), in_zp) != (quant.f32(out_scale), out_zp):
            raise Unsupported("input and output quantization differ (TFLM requires them equal for int8 pooling)",
                              "re-export the model with the TFLite converter.")
        act_min, act_max = quant.activation_range(act, out_scale, out_zp)
        fields.update({"act_min": act_min, "act_max": act_max, "act_min_f": "0.0f", "act_max_f": "0.0f"})
    return fields


@register("AVERAGE_POOL_2D")
def lower(op: Operator, ctx: LowerContext) -> LoweredOp:
    inp, out = ctx.inputs()[0], ctx.outputs()[0]
    if inp.dtype != "int8":
        raise Unsupported(f"AVERAGE_POOL_2D on {inp.dtype} is not implemented yet", "quantize the model to int8.")
    params = ctx.const_struct("params", "fm_pool_params_t", pool_params(op, ctx, "int8"))
    d = dims4(out)
    macs = d[0] * d[1] * d[2] * d[3] * int(op.options.get("filter_height", 1)) * int(op.options.get("filter_width", 1))
    return LoweredOp(call=f"fm_average_pool2d_s8({params}, {ctx.tensor_ref(inp)}, {ctx.tensor_ref(out)})",
                     macs=macs, sources=("average_pool2d_s8.c",), kernel="fm_average_pool2d_s8")
