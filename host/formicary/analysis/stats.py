"""Sizes, parameters, sparsity and quantization of tensors: facts read from the flatbuffer, no arithmetic model."""
from __future__ import annotations

import numpy as np

from formicary.tflite import ModelIR, Operator, Tensor

# Ops whose constant inputs at index ≥1 are learned parameters (weights, bias), as opposed to shape/axis operands.
_PARAM_OPS = {"CONV_2D": (1, 2), "DEPTHWISE_CONV_2D": (1, 2), "FULLY_CONNECTED": (1, 2),
              "TRANSPOSE_CONV": (1, 3), "BATCH_MATMUL": (0, 1), "PRELU": (1,), "SVDF": (1, 2, 3),
              "UNIDIRECTIONAL_SEQUENCE_LSTM": tuple(range(1, 24)), "EMBEDDING_LOOKUP": (1,)}
_FLOAT = {"float32", "float16", "bfloat16", "float64"}


def tensor_role(model: ModelIR, op: Operator, position: int, tensor: Tensor) -> str:
    """'activation', 'weights', 'bias' or 'operand' (a constant that is shape/axis/index data, not learned)."""
    if not tensor.is_constant:
        return "activation"
    learned = _PARAM_OPS.get(op.opcode)
    if learned is not None:
        if position not in learned:
            return "operand"
        return "bias" if tensor.dtype in ("int32", "int64") or len(tensor.shape) == 1 else "weights"
    # Constants of arithmetic ops (ADD/MUL with a constant, …) are learned data; int32 constants are operands.
    return "operand" if tensor.dtype in ("int32", "int64") and op.opcode not in ("ADD", "MUL", "SUB") else "weights"


def zero_count(tensor: Tensor) -> int:
    """Weights whose real value is exactly 0 (q == zero_point for quantized tensors)."""
    data = tensor.data
    if data is None:
        return 0
    if tensor.dtype in _FLOAT or tensor.quant is None:
        return int(np.count_nonzero(data == 0))
    zp = tensor.quant.zero_point
    if zp.size == 1:
        return int(np.count_nonzero(data.astype(np.int64) == int(zp[0])))
    axis = tensor.quant.axis
    shape = [1] * data.ndim
    shape[axis] = zp.size
    return int(np.count_nonzero(data.astype(np.int64) == zp.reshape(shape)))


def quant_dict(tensor: Tensor) -> dict:
    """Full quantization of one tensor (every per-channel scale and zero point)."""
    q = tensor.quant
    if q is None or q.scale.size == 0:
        return {"scheme": "none"}
    return {"scheme": "per-channel" if q.per_channel else "per-tensor", "axis": q.axis if q.per_channel else None,
            "channels": int(q.scale.size), "scale": [float(s) for s in q.scale],
            "zero_point": [int(z) for z in q.zero_point]}


def layer_precision(ins: list[Tensor | None]) -> str:
    """Arithmetic precision of an op from its first activation input: int8, int16x8, float32, float16."""
    act = next((t for t in ins if t is not None and not t.is_constant), None)
    dtype = act.dtype if act is not None else next((t.dtype for t in ins if t is not None), "float32")
    if dtype in ("int8", "uint8"):
        return "int8"
    if dtype == "int16":
        return "int16x8"
    if dtype in ("float16", "bfloat16"):
        return "float16"
    return "int8" if dtype == "int4" else "float32"


def model_precision(precisions: list[str]) -> str:
    distinct = sorted(set(precisions))
    return distinct[0] if len(distinct) == 1 else ("mixed:" + "+".join(distinct) if distinct else "none")


def io_quant(tensor: Tensor) -> dict:
    q = quant_dict(tensor)
    return {"name": tensor.name, "shape": list(tensor.shape), "dtype": tensor.dtype,
            "scale": q["scale"][0] if q["scheme"] == "per-tensor" else None,
            "zero_point": q["zero_point"][0] if q["scheme"] == "per-tensor" else None}
