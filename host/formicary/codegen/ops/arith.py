"""Further element-wise binaries with NumPy/TFLite broadcasting: MAXIMUM, MINIMUM (int8, float32) and
SQUARED_DIFFERENCE (int8 with TFLM's left shift 7 and three multipliers, float32).

TFLM's MAXIMUM/MINIMUM have no Prepare: int8 compares the raw values whatever the quantization, which means
something only when both inputs and the output share one scale and zero point (what the TFLite converter emits);
formicary refuses the other models rather than compute a meaningless answer. TFLM's SQUARED_DIFFERENCE broadcasts
through BroadcastBinaryFunction4DSlow: broadcasting beyond 4 dimensions is refused as TFLM cannot run it.
"""
from __future__ import annotations

from formicary.codegen import quant
from formicary.codegen.ops import register
from formicary.codegen.ops.base import (
    LowerContext,
    LoweredOp,
    Unsupported,
    nested,
    qparams,
    require_dtype,
)
from formicary.codegen.ops.elementwise import broadcast_fields
from formicary.tflite.ir import Operator, Tensor

_SQDIFF_BCAST_DIMS = 4  # TFLM's BroadcastBinaryFunction4DSlow


def _inplace(a: Tensor, b: Tensor, out: Tensor) -> dict[int, int]:
    # The kernels read element i of both inputs before writing element i: a full-shaped input may be overwritten.
    for t in (a, b):
        if not t.is_constant and tuple(t.shape) == tuple(out.shape):
            return {out.index: t.index}
    return {}


def _types(a: Tensor, b: Tensor, out: Tensor) -> str:
    dtype = a.dtype
    if dtype not in ("int8", "float32"):
        raise Unsupported(f"input 1 tensor '{a.name}' is {dtype}; this kernel takes int8/float32",
                          "quantize the model to full int8 (`formicary compile --quantize int8`) or keep float32.")
    require_dtype(b, (dtype,), "input 2")
    require_dtype(out, (dtype,), "output")
    return dtype


@register("MAXIMUM", "MINIMUM")
def lower_maximum_minimum(op: Operator, ctx: LowerContext) -> LoweredOp:
    a, b, out = ctx.inputs()[0], ctx.inputs()[1], ctx.outputs()[0]
    dtype = _types(a, b, out)
    if dtype == "int8":
        q = [qparams(t) for t in (a, b, out)]
        if len({(quant.f32(s), z) for s, z in q}) != 1:
            raise Unsupported(f"{op.opcode} on int8 with different quantizations (scale, zero point) "
                              f"{[(round(s, 8), z) for s, z in q]}: TFLM compares the raw int8 values, which is "
                              "meaningful only when inputs and output share one quantization",
                              "re-export with the TFLite converter (it gives MAXIMUM/MINIMUM one quantization).")
    params = ctx.const_struct("params", "fm_binary_params_t", {"shape": nested(broadcast_fields(a, b, out))})
    fn = f"fm_{op.opcode.lower()}_{'s8' if dtype == 'int8' else 'f32'}"
    source = f"maximum_minimum_{'s8' if dtype == 'int8' else 'f32'}.c"
    return LoweredOp(call=f"{fn}({params}, {ctx.tensor_ref(a)}, {ctx.tensor_ref(b)}, {ctx.tensor_ref(out)})",
                     sources=(source,), kernel=fn, inplace=_inplace(a, b, out))


@register("SQUARED_DIFFERENCE")
def lower_squared_difference(op: Operator, ctx: LowerContext) -> LoweredOp:
    a, b, out = ctx.inputs()[0], ctx.inputs()[1], ctx.outputs()[0]
    dtype = _types(a, b, out)
    shape = broadcast_fields(a, b, out)
    if shape["broadcast"] and max(len(a.shape), len(b.shape), len(out.shape)) > _SQDIFF_BCAST_DIMS:
        raise Unsupported(f"SQUARED_DIFFERENCE broadcasting over more than {_SQDIFF_BCAST_DIMS} dimensions "
                          "(TFLM's BroadcastBinaryFunction4DSlow cannot run it)",
                          "reshape the operands to at most 4 dimensions.")
    if dtype == "float32":
        params = ctx.const_struct("params", "fm_binary_params_t", {"shape": nested(shape)})
        fn = "fm_squared_difference_f32"
    else:
        (s1, z1), (s2, z2), (so, zo) = (qparams(t) for t in (a, b, out))
        if not all(quant.INT8_MIN <= z <= quant.INT8_MAX for z in (z1, z2, zo)):
            raise Unsupported(f"SQUARED_DIFFERENCE zero points {z1}, {z2}, {zo} outside int8 (TFLM refuses them)",
                              "re-quantize the model.")
        try:
            consts = quant.squared_difference_int8_params(s1, s2, so)
        except ValueError as err:  # TFLM's Prepare aborts (TFLITE_CHECK) on a zero scale
            raise Unsupported(f"SQUARED_DIFFERENCE quantization is degenerate ({err})",
                              "re-quantize the model.") from err
        fields: dict[str, object] = {"shape": nested(shape), "input1_offset": -z1, "input2_offset": -z2,
                                     "output_offset": zo, **consts}
        params = ctx.const_struct("params", "fm_squared_difference_s8_params_t", fields)
        fn = "fm_squared_difference_s8"
    return LoweredOp(call=f"{fn}({params}, {ctx.tensor_ref(a)}, {ctx.tensor_ref(b)}, {ctx.tensor_ref(out)})",
                     macs=out.numel, sources=(fn[3:] + ".c",), kernel=fn, inplace=_inplace(a, b, out))
