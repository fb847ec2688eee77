"""The pooling family: AVERAGE_POOL_2D and MAX_POOL_2D (int8 and float32, one fm_pool_params_t for both). MEAN
(GlobalAveragePooling) is a reduction: ops/reduce.py.

int8 AVERAGE_POOL_2D mirrors TFLM's reference_integer_ops::AveragePool (input and output share quantization, as
TFLM requires).
"""
from __future__ import annotations

from formicary.codegen import quant
from formicary.codegen.ops import register
from formicary.codegen.ops.base import (
    FLOAT_ACT,
    ON_INT8,
    LowerContext,
    LoweredOp,
    Unsupported,
    dims4,
    dims4_c,
    fused_activation,
    qparams,
    require_dtype,
)
from formicary.tflite.ir import Operator

# op -> (kernel name stem, message when the input type has no kernel)
_POOLS = {"AVERAGE_POOL_2D": ("average_pool2d", "AVERAGE_POOL_2D on {dtype} is not implemented yet"),
          "MAX_POOL_2D": ("max_pool2d", "MAX_POOL_2D on {dtype}")}
_POOL_FIX = {"AVERAGE_POOL_2D": "quantize the model to int8.",
             "MAX_POOL_2D": "quantize the model to int8 or keep float32."}


@register("AVERAGE_POOL_2D", "MAX_POOL_2D")
def lower_pool(op: Operator, ctx: LowerContext) -> LoweredOp:
    inp, out = ctx.inputs()[0], ctx.outputs()[0]
    name, refusal = _POOLS[op.opcode]
    if inp.dtype not in ("int8", "float32"):
        raise Unsupported(refusal.format(dtype=inp.dtype), _POOL_FIX[op.opcode])
    params = ctx.const_struct("params", "fm_pool_params_t", pool_params(op, ctx, inp.dtype))
    fn = f"fm_{name}_{'s8' if inp.dtype == 'int8' else 'f32'}"
    args = f"{params}, {ctx.tensor_ref(inp)}, {ctx.tensor_ref(out)}"
    macs = 0
    if op.opcode == "AVERAGE_POOL_2D":  # takes a scratch pointer (fm_kernels.h)
        args += f", {ctx.scratch_ref()}"
        d = dims4(out)
        macs = d[0] * d[1] * d[2] * d[3] * int(op.options.get("filter_height", 1)) \
            * int(op.options.get("filter_width", 1))
    return LoweredOp(call=f"{fn}({args})", macs=macs, sources=(fn[3:] + ".c",), kernel=fn)


def pool_params(op: Operator, ctx: LowerContext, dtype: str) -> dict[str, object]:
    """fm_pool_params_t fields for AVERAGE_POOL_2D / MAX_POOL_2D: window geometry and the fused-activation
    clamp, quantized (int8) or float (f32)."""
    inp, out = ctx.inputs()[0], ctx.outputs()[0]
    require_dtype(inp, (dtype,), "input")
    require_dtype(out, (dtype,), "output")
    if len(inp.shape) != 4 or len(out.shape) != 4:
        raise Unsupported("pooling needs 4-D tensors", "re-export the model.")
    act = fused_activation(op, ON_INT8)
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
        lo, hi = FLOAT_ACT[act]
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
