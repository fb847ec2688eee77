"""PAD / PADV2 (int8 and float32) up to 4-D: fm_pad_s8 pads with the output zero point (or PADV2's constant),
fm_pad_f32 with 0.0f (or the constant)."""
from __future__ import annotations

import numpy as np

from formicary.codegen.ops import register
from formicary.codegen.ops._k2_common import c_array, float_literal
from formicary.codegen.ops.base import (
    LowerContext,
    LoweredOp,
    Unsupported,
    dims4,
    dims4_c,
    qparams,
    require_dtype,
)
from formicary.tflite.ir import Operator


@register("PAD", "PADV2")
def lower(op: Operator, ctx: LowerContext) -> LoweredOp:
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
