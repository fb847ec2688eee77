"""CONCATENATION (int8, float32) along any axis.

TFLM's int8 kernel copies bytes; its Prepare refuses inputs quantized differently from the output (the converter
gives every input the output's scale and zero point, inserting a QUANTIZE where needed). Codegen refuses such
models the same way rather than copying silently or requantizing where TFLM would not.
"""
from __future__ import annotations

from formicary.codegen import quant
from formicary.codegen.ops import register
from formicary.codegen.ops._k2_common import c_array
from formicary.codegen.ops.base import (
    LowerContext,
    LoweredOp,
    Unsupported,
    qparams,
    require_dtype,
)
from formicary.tflite.ir import Operator

MAX_INPUTS = 10  # FM_CONCAT_MAX_INPUTS (TFLM's kMaxInputNum is 10 as well)


@register("CONCATENATION")
def lower(op: Operator, ctx: LowerContext) -> LoweredOp:
    ins = [t for t in ctx.inputs() if t is not None]
    out = ctx.outputs()[0]
    require_dtype(out, ("int8", "float32"), "output")
    for t in ins:
        require_dtype(t, (out.dtype,), "input")
    if op.options.get("fused_activation_function", "NONE") != "NONE":
        raise Unsupported("CONCATENATION with a fused activation (TFLM refuses it too)", "apply it separately.")
    if len(ins) > MAX_INPUTS:
        raise Unsupported(f"CONCATENATION of {len(ins)} inputs (at most {MAX_INPUTS})",
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
