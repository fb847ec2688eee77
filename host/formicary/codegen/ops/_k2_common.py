"""Helpers shared by the kernels-2 lowerings (element-wise, activations, data movement, float32 kernels).

Not a lowering itself: modules whose name starts with "_" are not auto-imported by the registry.
"""
from __future__ import annotations

from formicary.codegen.ops.base import Unsupported
from formicary.tflite.ir import Operator, Tensor

BCAST_DIMS = 6

# Fused activation -> float clamp expressions for f32 kernels (TFLM CalculateActivationRange).
FLOAT_ACT = {"NONE": ("-FLT_MAX", "FLT_MAX"), "RELU": ("0.0f", "FLT_MAX"), "RELU6": ("0.0f", "6.0f"),
             "RELU_N1_TO_1": ("-1.0f", "1.0f")}


def fused_activation(op: Operator) -> str:
    act = op.options.get("fused_activation_function", "NONE")
    if act not in FLOAT_ACT:
        raise Unsupported(f"fused activation {act} is not supported",
                          "use NONE/RELU/RELU6 or a separate activation layer.")
    return act


def c_array(values: list[int]) -> str:
    return "{" + ", ".join(str(int(v)) for v in values) + "}"


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


def nested(fields: dict[str, object]) -> str:
    """A nested designated initializer for a struct-typed field."""
    return "{" + ", ".join(f".{k} = {v}" for k, v in fields.items()) + "}"


def same_shape_elementwise(inp: Tensor, out: Tensor, opname: str) -> None:
    if inp.numel != out.numel:
        raise Unsupported(f"{opname} input and output sizes differ ({inp.numel} vs {out.numel})",
                          "re-export the model.")


def float_literal(x: float) -> str:
    import numpy as np
    return f"{float(np.float32(x))!r}f"
