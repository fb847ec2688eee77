"""ADD int8 → fm_add_s8 (TFLM general-rescaling add, broadcasting) and float32 → fm_add_f32."""
from __future__ import annotations

from formicary.codegen import quant
from formicary.codegen.ops import register
from formicary.codegen.ops._k2_common import (
    FLOAT_ACT,
    broadcast_fields,
    fused_activation,
    nested,
)
from formicary.codegen.ops.base import (
    LowerContext,
    LoweredOp,
    Unsupported,
    qparams,
    require_dtype,
)
from formicary.tflite.ir import Operator


def _inplace(a, out) -> dict[int, int]:
    # The kernel reads element i of a full-shaped input before writing element i of the output.
    return {out.index: a.index} if (not a.is_constant and tuple(a.shape) == tuple(out.shape)) else {}


def lower_binary(op: Operator, ctx: LowerContext, name: str) -> LoweredOp:
    a, b = ctx.inputs()[0], ctx.inputs()[1]
    out = ctx.outputs()[0]
    act = fused_activation(op)
    shape = nested(broadcast_fields(a, b, out))
    if out.dtype == "float32":
        for t, role in ((a, "input 1"), (b, "input 2")):
            require_dtype(t, ("float32",), role)
        lo, hi = FLOAT_ACT[act]
        params = ctx.const_struct("params", "fm_binary_f32_params_t",
                                  {"shape": shape, "act_min": lo, "act_max": hi})
        fn = f"fm_{name}_f32"
    else:
        for t, role in ((a, "input 1"), (b, "input 2"), (out, "output")):
            require_dtype(t, ("int8",), role)
        s1, z1 = qparams(a)
        s2, z2 = qparams(b)
        so, zo = qparams(out)
        if act == "RELU_N1_TO_1" and name == "mul":
            raise Unsupported("MUL with RELU_N1_TO_1", "use NONE/RELU/RELU6.")
        act_min, act_max = quant.activation_range(act, so, zo)
        fields: dict[str, object] = {"shape": shape, "input1_offset": -z1, "input2_offset": -z2,
                                     "output_offset": zo}
        if name == "add":
            fields.update(quant.add_int8_params(s1, s2, so))
        else:
            m, s = quant.mul_int8_multiplier(s1, s2, so)
            fields.update({"output_multiplier": m, "output_shift": s})
        fields.update({"act_min": act_min, "act_max": act_max})
        params = ctx.const_struct("params", f"fm_{name}_s8_params_t", fields)
        fn = f"fm_{name}_s8"
    call = f"{fn}({params}, {ctx.tensor_ref(a)}, {ctx.tensor_ref(b)}, {ctx.tensor_ref(out)})"
    suffix = "f32" if out.dtype == "float32" else "s8"
    return LoweredOp(call=call, macs=out.numel if name == "mul" else 0, sources=(f"{name}_{suffix}.c",),
                     kernel=fn, inplace=_inplace(a, out) or _inplace(b, out))


@register("ADD")
def lower(op: Operator, ctx: LowerContext) -> LoweredOp:
    return lower_binary(op, ctx, "add")
