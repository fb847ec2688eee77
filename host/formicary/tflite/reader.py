"""Reads a .tflite flatbuffer into ModelIR with the `tflite` schema bindings; no TensorFlow import.

Any malformed file ends in one FormicaryError, because flatbuffer accessors fail with arbitrary low-level
exceptions (struct.error, IndexError, …) on truncated or random data.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import tflite
from tflite.utils import BUILTIN_OPCODE2NAME

from formicary.errors import FormicaryError
from formicary.tflite.ir import (
    ACTIVATION,
    PADDING,
    TENSOR_TYPES,
    ModelIR,
    Operator,
    Quantization,
    SubgraphIR,
    Tensor,
)

_OPTION_CLASSES: dict[int, type] = {
    value: getattr(tflite, name) for name, value in vars(tflite.BuiltinOptions).items()
    if not name.startswith("_") and isinstance(value, int) and hasattr(tflite, name)
}
_ENUM_OPTIONS = {"padding": PADDING, "fused_activation_function": ACTIVATION}


def read_model(source: str | Path | bytes) -> ModelIR:
    """Parse a .tflite model (path or bytes). Raises FormicaryError naming the problem for bad input."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise FormicaryError(f"model file {path} does not exist.", "check the path.")
        data = path.read_bytes()
        label = str(path)
    else:
        data = bytes(source)
        label = "model"
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise FormicaryError(
            f"{label} is not a TFLite flatbuffer (no 'TFL3' identifier in its header).",
            "pass a .tflite file produced by the TFLite converter or `formicary compile`.")
    try:
        return _parse(data)
    except FormicaryError:
        raise
    except Exception as exc:  # noqa: BLE001 - corrupt flatbuffers fail in many low-level ways
        raise FormicaryError(
            f"{label} is a corrupt or truncated TFLite flatbuffer ({type(exc).__name__}: {exc}).",
            "re-export the model; if it was copied, check the copy is complete.") from exc


def _parse(data: bytes) -> ModelIR:
    model = tflite.Model.GetRootAs(data, 0)
    if model.SubgraphsLength() < 1:
        raise FormicaryError("the flatbuffer has no subgraph: an empty or corrupt model.", "re-export the model.")
    buffers = [model.Buffers(i) for i in range(model.BuffersLength())]
    opcodes = [_opcode_name(model.OperatorCodes(i)) for i in range(model.OperatorCodesLength())]
    subgraphs = [_read_subgraph(model.Subgraphs(s), s, buffers, opcodes, data)
                 for s in range(model.SubgraphsLength())]
    main = subgraphs[0]
    desc = model.Description()
    return ModelIR(
        tensors=main.tensors, operators=main.operators, inputs=main.inputs, outputs=main.outputs,
        schema_version=model.Version(), description=desc.decode("utf-8", "replace") if desc else "",
        size_bytes=len(data), subgraph_count=model.SubgraphsLength(), subgraphs=subgraphs)


def _read_subgraph(graph, index: int, buffers: list, opcodes: list[tuple[str, int]], data: bytes) -> SubgraphIR:
    where = "" if index == 0 else f" of subgraph {index}"
    tensors = [_read_tensor(graph.Tensors(i), i, buffers, data) for i in range(graph.TensorsLength())]
    operators = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code_index = op.OpcodeIndex()
        if code_index >= len(opcodes):
            raise FormicaryError(f"operator {i}{where} refers to opcode {code_index}, beyond the model's opcode "
                                 "table.", "the file is corrupt; re-export the model.")
        name, version = opcodes[code_index]
        operators.append(Operator(
            index=i, opcode=name, version=version,
            inputs=tuple(int(t) for t in _ints(op.InputsAsNumpy())),
            outputs=tuple(int(t) for t in _ints(op.OutputsAsNumpy())),
            options=_read_options(op)))
    for op in operators:
        for t in (*op.inputs, *op.outputs):
            if t >= len(tensors) or t < -1:
                raise FormicaryError(f"operator {op.index}{where} ({op.opcode}) refers to tensor {t}, which does "
                                     "not exist.", "the file is corrupt; re-export the model.")
    inputs = [int(t) for t in _ints(graph.InputsAsNumpy())]
    outputs = [int(t) for t in _ints(graph.OutputsAsNumpy())]
    for t in (*inputs, *outputs):
        if not 0 <= t < len(tensors):
            raise FormicaryError(f"subgraph {index} names tensor {t} as an input/output, which does not exist.",
                                 "the file is corrupt; re-export the model.")
    name = graph.Name()
    return SubgraphIR(index=index, name=name.decode("utf-8", "replace") if name else f"subgraph_{index}",
                      tensors=tensors, operators=operators, inputs=inputs, outputs=outputs)


def _ints(value) -> np.ndarray:
    # The bindings return 0 (not an empty array) for an absent vector.
    return value if isinstance(value, np.ndarray) else np.zeros(0, dtype=np.int32)


def _opcode_name(code) -> tuple[str, int]:
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    if builtin == 32:  # CUSTOM
        custom = code.CustomCode()
        return f"CUSTOM:{custom.decode() if custom else '?'}", code.Version()
    return BUILTIN_OPCODE2NAME.get(builtin, f"UNKNOWN_{builtin}"), code.Version()


def _read_tensor(t, index: int, buffers: list, data: bytes) -> Tensor:
    type_id = t.Type()
    if type_id not in TENSOR_TYPES:
        raise FormicaryError(f"tensor {index} has unknown type id {type_id}.", "the file is corrupt or too new.")
    dtype_name, np_dtype, _ = TENSOR_TYPES[type_id]
    shape = tuple(int(d) for d in _ints(t.ShapeAsNumpy()))
    sig = _ints(t.ShapeSignatureAsNumpy())
    name = t.Name()
    tensor = Tensor(index=index, name=name.decode("utf-8", "replace") if name else f"tensor_{index}",
                    shape=shape, dtype=dtype_name, buffer=t.Buffer(), is_variable=bool(t.IsVariable()),
                    sparse=t.Sparsity() is not None,
                    shape_signature=tuple(int(d) for d in sig) if sig.size else None)
    q = t.Quantization()
    if q is not None and q.ScaleLength() > 0:
        tensor.quant = Quantization(scale=np.asarray(q.ScaleAsNumpy(), dtype=np.float32),
                                    zero_point=np.asarray(_ints(q.ZeroPointAsNumpy()), dtype=np.int64),
                                    axis=int(q.QuantizedDimension()))
    if 0 < tensor.buffer < len(buffers):
        raw = _buffer_bytes(buffers[tensor.buffer], data)
        if raw is not None and len(raw) > 0:
            if dtype_name in ("int4", "string") or tensor.sparse:
                tensor.data = np.frombuffer(raw, dtype=np.uint8)  # packed/variable layout: keep raw bytes
            else:
                arr = np.frombuffer(raw, dtype=np_dtype)
                expected = int(np.prod(shape)) if shape else 1
                if arr.size != expected:
                    raise FormicaryError(
                        f"tensor {index} ('{tensor.name}') has {arr.size} elements of data but shape {list(shape)}.",
                        "the file is corrupt; re-export the model.")
                tensor.data = arr.reshape(shape)
    return tensor


def _buffer_bytes(buf, data: bytes) -> bytes | None:
    offset, size = buf.Offset(), buf.Size()
    if offset > 1:  # large models keep buffers after the flatbuffer
        if offset + size > len(data):
            raise FormicaryError("a weight buffer points past the end of the file.", "the file is truncated.")
        return data[offset:offset + size]
    if buf.DataLength() == 0:
        return None
    return buf.DataAsNumpy().tobytes()


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _read_options(op) -> dict:
    cls = _OPTION_CLASSES.get(op.BuiltinOptionsType())
    table = op.BuiltinOptions()
    if cls is None or table is None:
        return {}
    opts = cls()
    opts.Init(table.Bytes, table.Pos)
    out: dict = {}
    for attr in dir(cls):
        if attr.startswith(("_", "Init", "GetRootAs")) or attr.endswith(("BufferHasIdentifier", "IsNone",
                                                                        "Length", "AsNumpy")):
            continue
        getter = getattr(opts, attr)
        try:
            value = getter()
        except TypeError:  # vector element accessors need an index; use the AsNumpy form instead
            numpy_getter = getattr(opts, attr + "AsNumpy", None)
            value = _ints(numpy_getter()).tolist() if numpy_getter else None
        key = _snake(attr)
        out[key] = _ENUM_OPTIONS[key].get(value, value) if key in _ENUM_OPTIONS else value
    return out
