"""The element-wise family: ADD, SUB and MUL with NumPy/TFLite broadcasting of up to 6 dimensions, int8 (TFLM's
general rescaling add and sub with left shift 20 and three multipliers; mul with one multiplier) and float32."""
from __future__ import annotations

import numpy as np

from formicary.codegen import quant
from formicary.codegen.ops import register
from formicary.codegen.ops.base import (
    BCAST_DIMS,
    FLOAT_ACT,
    LowerContext,
    LoweredOp,
    Unsupported,
    c_array,
    fused_activation,
    nested,
    qparams,
    require_dtype,
)
from formicary.tflite.ir import Operator, Tensor


def broadcast_fields(a: Tensor, b: Tensor, out: Tensor) -> dict[str, object]:
    """fm_broadcast_t for out = f(a, b) with NumPy/TFLite broadcasting of up to 6 dims."""
    sa, sb, so = (tuple(int(d) for d in t.shape) for t in (a, b, out))
    if max(len(sa), len(sb), len(so)) > BCAST_DIMS:
        raise Unsupported(f"broadcast over more than {BCAST_DIMS} dimensions", "reshape to at most 6 dims.")
    ea, eb, eo = ((1,) * (BCAST_DIMS - len(s)) + s for s in (sa, sb, so))
    for da, db, do in zip(ea, eb, eo):
        if do != max(da, db) or da not in (1, do) or db not in (1, do):
            raise Unsupported(f"shapes {list(sa)} and {list(sb)} do not broadcast to {list(so)}",
                              "re-export the model.")

    def strides(e: tuple[int, ...]) -> list[int]:
        st, acc = [0] * BCAST_DIMS, 1
        for d in range(BCAST_DIMS - 1, -1, -1):
            st[d] = acc if e[d] > 1 else 0
            acc *= e[d]
        return st

    flat = 1
    for d in eo:
        flat *= d
    return {"flat_size": flat, "broadcast": int(not (ea == eo and eb == eo)), "out_dims": c_array(list(eo)),
            "in1_strides": c_array(strides(ea)), "in2_strides": c_array(strides(eb))}


def _inplace(a: Tensor, out: Tensor) -> dict[int, int]:
    # The kernel reads element i of a full-shaped input before writing element i of the output.
    return {out.index: a.index} if (not a.is_constant and tuple(a.shape) == tuple(out.shape)) else {}


@register("ADD", "SUB", "MUL")
def lower_binary(op: Operator, ctx: LowerContext) -> LoweredOp:
    name = op.opcode.lower()
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
        if name in ("add", "sub"):
            # SUB's Prepare gives ADD's constants: the pinned TFLM wheel computes them in double like ADD (older
            # TFLM sources divide in float; tests/kernels/test_binary_reduce.py pins the difference down).
            if not min(quant.f32(s1), quant.f32(s2), quant.f32(so)) > 0:
                raise Unsupported(f"{op.opcode} with a zero or negative scale ({s1!r}, {s2!r}, {so!r})",
                                  "re-quantize the model.")
            real_out = 2.0 * max(float(np.float32(s1)), float(np.float32(s2))) / (
                float(1 << quant.ADD_LEFT_SHIFT_INT8) * float(np.float32(so)))
            if not real_out < 1.0:
                # TFLM's Prepare (QuantizeMultiplierSmallerThanOneExp) aborts the program on such a model.
                raise Unsupported(f"{op.opcode} output scale {so:.3g} is degenerate: TFLM needs twice the larger "
                                  f"input scale / (2^20 x output scale) < 1, here {real_out:.3g} (TFLM aborts on "
                                  "this model)",
                                  "re-quantize with calibration data that covers the output's real range.")
            fields.update(quant.add_int8_params(s1, s2, so))
        else:
            m, s = quant.mul_int8_multiplier(s1, s2, so)
            fields.update({"output_multiplier": m, "output_shift": s})
        fields.update({"act_min": act_min, "act_max": act_max})
        params = ctx.const_struct("params", f"fm_{name}_s8_params_t", fields)
        fn = f"fm_{name}_s8"
    call = f"{fn}({params}, {ctx.tensor_ref(a)}, {ctx.tensor_ref(b)}, {ctx.tensor_ref(out)})"
    return LoweredOp(call=call, macs=out.numel if name == "mul" else 0, sources=(fn[3:] + ".c",),
                     kernel=fn, inplace=_inplace(a, out) or _inplace(b, out))
