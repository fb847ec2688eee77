"""The data-movement family: RESHAPE (and SQUEEZE / EXPAND_DIMS: no kernel, the output aliases the input's arena
bytes), PAD / PADV2, CONCATENATION, and the type conversions QUANTIZE (float32 -> int8, int8 -> int8) and
DEQUANTIZE (int8 -> float32).

TFLM's int8 CONCATENATION copies bytes; its Prepare refuses inputs quantized differently from the output (the
converter gives every input the output's scale and zero point, inserting a QUANTIZE where needed). Codegen refuses
such models the same way rather than copying silently or requantizing where TFLM would not.
"""
from __future__ import annotations

import numpy as np

from formicary.codegen import quant
from formicary.codegen.ops import register
from formicary.codegen.ops.base import (
    LowerContext,
    LoweredOp,
    Unsupported,
    c_array,
    dims4,
    dims4_c,
    float_literal,
    qparams,
    require_dtype,
    same_shape,
)
from formicary.tflite.ir import Operator


@register("RESHAPE", "SQUEEZE", "EXPAND_DIMS")
def lower_reshape(op: Operator, ctx: LowerContext) -> LoweredOp:
    inp, out = ctx.inputs()[0], ctx.outputs()[0]
    if inp.nbytes != out.nbytes or inp.dtype != out.dtype:
        raise Unsupported(f"{op.opcode} changes the size or type ({inp.nbytes} -> {out.nbytes} bytes)",
                          "re-export the model.")
    if inp.quant is not None and out.quant is not None and (
            inp.quant.scale.tolist() != out.quant.scale.tolist()
            or inp.quant.zero_point.tolist() != out.quant.zero_point.tolist()):
        raise Unsupported(f"{op.opcode} changes quantization parameters", "re-export the model.")
    if inp.is_constant:
        raise Unsupported(f"{op.opcode} of a constant tensor", "fold the constant reshape when converting.")
    return LoweredOp(call=None, macs=0, alias={out.index: inp.index}, kernel="(alias)")


@register("PAD", "PADV2")
def lower_pad(op: Operator, ctx: LowerContext) -> LoweredOp:
    """Up to 4-D: fm_pad_s8 pads with the output zero point (or PADV2's constant), fm_pad_f32 with 0.0f (or it)."""
    ins = ctx.inputs()
    inp, paddings, out = ins[0], ins[1], ctx.outputs()[0]
    const_value = ins[2] if len(ins) > 2 else None
    require_dtype(inp, ("int8", "float32"), "input")
    require_dtype(out, (inp.dtype,), "output")
    if paddings is None or not paddings.is_constant:
        raise Unsupported("PAD with non-constant paddings", "use constant paddings.")
    pads = np.asarray(paddings.data, dtype=np.int64).reshape(-1, 2)
    rank = len(inp.shape)
    if rank > 4 or pads.shape[0] != rank or np.any(pads < 0):
        raise Unsupported(f"PAD of a rank-{rank} tensor with paddings {pads.tolist()}",
                          "pad at most 4-D tensors with non-negative amounts.")
    before = [0] * (4 - rank) + [int(p) for p in pads[:, 0]]
    in_d, out_d = dims4(inp), dims4(out)
    if any(i + b + int(a) != o for i, b, a, o in zip(in_d, before, [0] * (4 - rank) + list(pads[:, 1]), out_d)):
        raise Unsupported("PAD output shape disagrees with the paddings", "re-export the model.")
    fields: dict[str, object] = {"input_dims": dims4_c(in_d), "output_dims": dims4_c(out_d),
                                 "before": c_array(before)}
    if inp.dtype == "int8":
        if const_value is not None:
            if not const_value.is_constant:
                raise Unsupported("PADV2 with a non-constant pad value", "use a constant pad value.")
            pad_value = int(np.asarray(const_value.data).reshape(-1)[0])
        else:
            pad_value = qparams(out)[1]
        fields.update({"pad_value": pad_value, "pad_value_f": "0.0f"})
        fn = "fm_pad_s8"
    else:
        value = float(np.asarray(const_value.data).reshape(-1)[0]) if const_value is not None else 0.0
        fields.update({"pad_value": 0, "pad_value_f": float_literal(value)})
        fn = "fm_pad_f32"
    params = ctx.const_struct("params", "fm_pad_params_t", fields)
    return LoweredOp(call=f"{fn}({params}, {ctx.tensor_ref(inp)}, {ctx.tensor_ref(out)})",
                     sources=(fn[3:] + ".c",), kernel=fn)


CONCAT_MAX_INPUTS = 10  # FM_CONCAT_MAX_INPUTS (TFLM's kMaxInputNum is 10 as well)


@register("CONCATENATION")
def lower_concatenation(op: Operator, ctx: LowerContext) -> LoweredOp:
    """int8 and float32, along any axis."""
    ins = [t for t in ctx.inputs() if t is not None]
    out = ctx.outputs()[0]
    require_dtype(out, ("int8", "float32"), "output")
    for t in ins:
        require_dtype(t, (out.dtype,), "input")
    if op.options.get("fused_activation_function", "NONE") != "NONE":
        raise Unsupported("CONCATENATION with a fused activation (TFLM refuses it too)", "apply it separately.")
    if len(ins) > CONCAT_MAX_INPUTS:
        raise Unsupported(f"CONCATENATION of {len(ins)} inputs (at most {CONCAT_MAX_INPUTS})",
                          "concatenate in several steps.")
    rank = len(out.shape)
    axis = int(op.options.get("axis", 0))
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis < rank:
        raise Unsupported(f"axis {op.options.get('axis')} out of range", "re-export the model.")
    outer = 1
    for d in out.shape[:axis]:
        outer *= int(d)
    copy = []
    for t in ins:
        if len(t.shape) != rank or any(int(t.shape[d]) != int(out.shape[d]) for d in range(rank) if d != axis):
            raise Unsupported(f"input shape {list(t.shape)} does not fit output {list(out.shape)}",
                              "re-export the model.")
        inner = 1
        for d in t.shape[axis:]:
            inner *= int(d)
        copy.append(inner)
    if sum(copy) * outer != out.numel:
        raise Unsupported("CONCATENATION sizes do not add up", "re-export the model.")
    if out.dtype == "int8":
        out_q = qparams(out)
        for t in ins:
            q = qparams(t)
            if (quant.f32(q[0]), q[1]) != (quant.f32(out_q[0]), out_q[1]):
                raise Unsupported(f"int8 input '{t.name}' has scale {q[0]:g} / zero point {q[1]}, the output "
                                  f"{out_q[0]:g} / {out_q[1]} (TFLM requires them equal)",
                                  "convert with the TFLite converter, which requantizes the inputs (QUANTIZE).")
    suffix = "s8" if out.dtype == "int8" else "f32"
    ctype = "int8_t" if suffix == "s8" else "float"
    params = ctx.const_struct("params", "fm_concat_params_t", {
        "num_inputs": len(ins), "outer_size": outer, "copy_size": c_array(copy)})
    ptrs = ", ".join(ctx.tensor_ref(t) for t in ins)
    call = f"fm_concatenation_{suffix}({params}, (const {ctype} *const[]){{{ptrs}}}, {ctx.tensor_ref(out)})"
    return LoweredOp(call=call, sources=(f"concatenation_{suffix}.c",), kernel=f"fm_concatenation_{suffix}")


@register("QUANTIZE")
def lower_quantize(op: Operator, ctx: LowerContext) -> LoweredOp:
    """float32 -> int8 (fm_quantize_f32_s8) and int8 -> int8 requantization (fm_requantize_s8)."""
    inp, out = ctx.inputs()[0], ctx.outputs()[0]
    same_shape(inp, out, op.opcode)
    require_dtype(out, ("int8",), "output")
    if out.quant is not None and out.quant.per_channel:
        raise Unsupported("per-channel QUANTIZE output", "quantize activations per tensor.")
    out_scale, out_zp = qparams(out)
    if inp.dtype == "float32":
        params = ctx.const_struct("params", "fm_quantize_f32_s8_params_t", {
            "size": out.numel, "scale": float_literal(out_scale), "zero_point": out_zp})
        return LoweredOp(call=f"fm_quantize_f32_s8({params}, {ctx.tensor_ref(inp)}, {ctx.tensor_ref(out)})",
                         sources=("quantize_s8.c",), kernel="fm_quantize_f32_s8")
    require_dtype(inp, ("int8",), "input")
    in_scale, in_zp = qparams(inp)
    # quantize_common.cc: effective_scale = double(input scale) / double(output scale).
    mult, shift = quant.quantize_multiplier(float(quant.f32(in_scale)) / float(quant.f32(out_scale)))
    params = ctx.const_struct("params", "fm_requantize_s8_params_t", {
        "size": out.numel, "input_zero_point": in_zp, "output_zero_point": out_zp,
        "multiplier": mult, "shift": shift})
    return LoweredOp(call=f"fm_requantize_s8({params}, {ctx.tensor_ref(inp)}, {ctx.tensor_ref(out)})",
                     sources=("quantize_s8.c",), kernel="fm_requantize_s8",
                     inplace={} if inp.is_constant else {out.index: inp.index})


@register("DEQUANTIZE")
def lower_dequantize(op: Operator, ctx: LowerContext) -> LoweredOp:
    """int8 -> float32 (fm_dequantize_s8)."""
    inp, out = ctx.inputs()[0], ctx.outputs()[0]
    same_shape(inp, out, op.opcode)
    require_dtype(inp, ("int8",), "input")
    require_dtype(out, ("float32",), "output")
    if inp.quant is not None and inp.quant.per_channel:
        raise Unsupported("per-channel DEQUANTIZE (float16/int8 weights dequantized at run time)",
                          "quantize the model to full int8 or keep float32 weights.")
    scale, zp = qparams(inp)
    params = ctx.const_struct("params", "fm_dequantize_s8_params_t", {
        "size": out.numel, "scale": float_literal(scale), "zero_point": zp})
    return LoweredOp(call=f"fm_dequantize_s8({params}, {ctx.tensor_ref(inp)}, {ctx.tensor_ref(out)})",
                     sources=("dequantize_s8.c",), kernel="fm_dequantize_s8")
