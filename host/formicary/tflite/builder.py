"""TensorFlow-free builder of small .tflite flatbuffers (single-op test models) with the `tflite` schema
bindings' builder functions. Only what the codegen tests and `formicary kernels check` need: tensors with
per-tensor/per-channel quantization and constant data, builtin ops with their options tables."""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import flatbuffers
import numpy as np
import tflite

_TYPES = {"float32": 0, "int32": 2, "uint8": 3, "int64": 4, "bool": 6, "int16": 7, "int8": 9}


def _mod(name: str):
    return importlib.import_module(f"tflite.{name}")


@dataclass
class T:
    shape: tuple[int, ...]
    dtype: str = "int8"
    scale: list[float] | None = None
    zero_point: list[int] | None = None
    axis: int = 0
    data: np.ndarray | None = None
    name: str = ""


@dataclass
class Op:
    opcode: str                     # builtin name, e.g. "CONV_2D"
    inputs: list[int]
    outputs: list[int]
    options: str | None = None      # options table name, e.g. "Conv2DOptions"
    fields: dict = field(default_factory=dict)  # option field (CamelCase without Add) -> value


@dataclass
class Subgraph:
    """A further subgraph (index 1, 2, ... in the order given): IF branches name it by index."""
    tensors: list[T]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]
    name: str = ""


def _vec(b: flatbuffers.Builder, values, dtype) -> int:
    return b.CreateNumpyVector(np.asarray(values, dtype=dtype))


_NP = {"float32": np.float32, "int32": np.int32, "int8": np.int8, "uint8": np.uint8, "int16": np.int16,
       "int64": np.int64, "bool": np.bool_}


def build(tensors: list[T], ops: list[Op], inputs: list[int], outputs: list[int],
          subgraphs: list[Subgraph] = ()) -> bytes:
    b = flatbuffers.Builder(1024)
    graphs = [Subgraph(tensors, ops, inputs, outputs, "main"), *subgraphs]
    # Buffers: 0 is the empty sentinel; each constant tensor gets its own.
    buffer_of: dict[tuple[int, int], int] = {}
    buffer_data: list[bytes | None] = [None]
    for g, graph in enumerate(graphs):
        for i, t in enumerate(graph.tensors):
            if t.data is not None:
                buffer_of[g, i] = len(buffer_data)
                buffer_data.append(np.ascontiguousarray(t.data, dtype=_NP[t.dtype]).tobytes())
            else:
                buffer_of[g, i] = 0
    buf_offsets = []
    for raw in buffer_data:
        data_off = _vec(b, np.frombuffer(raw, dtype=np.uint8), np.uint8) if raw else None
        B = _mod("Buffer")
        B.Start(b)
        if data_off is not None:
            B.AddData(b, data_off)
        buf_offsets.append(B.End(b))

    codes = sorted({op.opcode for graph in graphs for op in graph.ops})
    code_index = {c: i for i, c in enumerate(codes)}

    def table_vector(start_fn, items):
        start_fn(b, len(items))
        for off in reversed(items):
            b.PrependUOffsetTRelative(off)
        return b.EndVector()

    sg_offsets = [_subgraph(b, g, graph, buffer_of, code_index, table_vector) for g, graph in enumerate(graphs)]

    code_offsets = []
    for c in codes:
        C = _mod("OperatorCode")
        value = getattr(tflite.BuiltinOperator, c)
        C.Start(b)
        C.AddDeprecatedBuiltinCode(b, min(value, 127))
        C.AddBuiltinCode(b, value)
        C.AddVersion(b, 1)
        code_offsets.append(C.End(b))

    M = _mod("Model")
    codes_vec = table_vector(M.StartOperatorCodesVector, code_offsets)
    sg_vec = table_vector(M.StartSubgraphsVector, sg_offsets)
    buf_vec = table_vector(M.StartBuffersVector, buf_offsets)
    desc = b.CreateString("formicary test model")
    M.Start(b)
    M.AddVersion(b, 3)
    M.AddOperatorCodes(b, codes_vec)
    M.AddSubgraphs(b, sg_vec)
    M.AddDescription(b, desc)
    M.AddBuffers(b, buf_vec)
    b.Finish(M.End(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _subgraph(b: flatbuffers.Builder, g: int, graph: Subgraph, buffer_of: dict, code_index: dict, table_vector) -> int:
    tensor_offsets = []
    for i, t in enumerate(graph.tensors):
        name = b.CreateString(t.name or f"t{i}")
        shape = _vec(b, t.shape, np.int32)
        q_off = None
        if t.scale is not None:
            Q = _mod("QuantizationParameters")
            sc = _vec(b, t.scale, np.float32)
            zp = _vec(b, t.zero_point if t.zero_point is not None else [0] * len(t.scale), np.int64)
            Q.Start(b)
            Q.AddScale(b, sc)
            Q.AddZeroPoint(b, zp)
            Q.AddQuantizedDimension(b, t.axis)
            q_off = Q.End(b)
        TT = _mod("Tensor")
        TT.Start(b)
        TT.AddShape(b, shape)
        TT.AddType(b, _TYPES[t.dtype])
        TT.AddBuffer(b, buffer_of[g, i])
        TT.AddName(b, name)
        if q_off is not None:
            TT.AddQuantization(b, q_off)
        tensor_offsets.append(TT.End(b))

    op_offsets = []
    for op in graph.ops:
        opt_off = None
        if op.options:
            M = _mod(op.options)
            M.Start(b)
            for k, v in op.fields.items():
                getattr(M, "Add" + k)(b, v)
            opt_off = M.End(b)
        ins = _vec(b, op.inputs, np.int32)
        outs = _vec(b, op.outputs, np.int32)
        O = _mod("Operator")
        O.Start(b)
        O.AddOpcodeIndex(b, code_index[op.opcode])
        O.AddInputs(b, ins)
        O.AddOutputs(b, outs)
        if opt_off is not None:
            O.AddBuiltinOptionsType(b, getattr(tflite.BuiltinOptions, op.options))
            O.AddBuiltinOptions(b, opt_off)
        op_offsets.append(O.End(b))

    S = _mod("SubGraph")
    t_vec = table_vector(S.StartTensorsVector, tensor_offsets)
    o_vec = table_vector(S.StartOperatorsVector, op_offsets)
    in_vec = _vec(b, graph.inputs, np.int32)
    out_vec = _vec(b, graph.outputs, np.int32)
    sg_name = b.CreateString(graph.name or f"subgraph_{g}")
    S.Start(b)
    S.AddTensors(b, t_vec)
    S.AddOperators(b, o_vec)
    S.AddInputs(b, in_vec)
    S.AddOutputs(b, out_vec)
    S.AddName(b, sg_name)
    return S.End(b)

ACTIVATIONS = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}  # TFLite ActivationFunctionType


def fully_connected_model(w: np.ndarray, *, batches: int, in_scale: float, in_zp: int, f_scale: list[float],
                          out_scale: float, out_zp: int, bias: np.ndarray | None = None, f_zp: int = 0,
                          act: str = "NONE") -> bytes:
    """A one-op int8 FULLY_CONNECTED model: input [batches, depth], weights `w` [out, depth] with one scale (per
    tensor, zero point `f_zp`) or one per output (per channel, zero point 0), optional int32 bias at
    in_scale x f_scale[0] as the converter writes it, fused activation `act`."""
    out_depth = int(w.shape[0])
    tensors = [T((batches, int(w.shape[1])), scale=[in_scale], zero_point=[in_zp]),
               T(w.shape, scale=list(f_scale), zero_point=[f_zp] * len(f_scale), data=w)]
    inputs = [0, 1]
    if bias is not None:
        tensors.append(T((out_depth,), "int32", scale=[in_scale * f_scale[0]], zero_point=[0], data=bias))
        inputs.append(2)
    else:
        inputs.append(-1)
    tensors.append(T((batches, out_depth), scale=[out_scale], zero_point=[out_zp]))
    out = len(tensors) - 1
    return build(tensors, [Op("FULLY_CONNECTED", inputs, [out], "FullyConnectedOptions",
                              {"FusedActivationFunction": ACTIVATIONS[act]})], [0], [out])
