"""A small, TensorFlow-free picture of a .tflite model: tensors, operators and their quantization.

Everything downstream (analysis, codegen, verification) works on these plain dataclasses, never on the
flatbuffer accessors, so the schema bindings stay behind one module (reader.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# TFLite TensorType enum value → (name, numpy dtype, bytes per element). INT4 is packed two per byte.
TENSOR_TYPES: dict[int, tuple[str, Any, float]] = {
    0: ("float32", np.float32, 4), 1: ("float16", np.float16, 2), 2: ("int32", np.int32, 4),
    3: ("uint8", np.uint8, 1), 4: ("int64", np.int64, 8), 5: ("string", np.uint8, 1), 6: ("bool", np.bool_, 1),
    7: ("int16", np.int16, 2), 8: ("complex64", np.complex64, 8), 9: ("int8", np.int8, 1),
    10: ("float64", np.float64, 8), 11: ("complex128", np.complex128, 16), 12: ("uint64", np.uint64, 8),
    13: ("resource", np.uint8, 1), 14: ("variant", np.uint8, 1), 15: ("uint32", np.uint32, 4),
    16: ("uint16", np.uint16, 2), 17: ("int4", np.int8, 0.5), 18: ("bfloat16", np.uint16, 2),
}

PADDING = {0: "SAME", 1: "VALID"}
ACTIVATION = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}


@dataclass(frozen=True)
class Quantization:
    """Affine quantization: real = scale * (q - zero_point), per tensor (len 1) or per channel along `axis`."""

    scale: np.ndarray        # float32, shape [n]
    zero_point: np.ndarray   # int64, shape [n]
    axis: int = 0

    @property
    def per_channel(self) -> bool:
        return self.scale.size > 1

    def to_dict(self) -> dict:
        return {"scale": self.scale.tolist(), "zero_point": self.zero_point.tolist(), "axis": self.axis,
                "per_channel": self.per_channel}


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str                       # "int8", "float32", … (see TENSOR_TYPES)
    buffer: int
    data: np.ndarray | None = None   # constant contents (already shaped), None for activations
    quant: Quantization | None = None
    is_variable: bool = False
    sparse: bool = False             # uses the TFLite sparsity format (TFLM refuses it)
    shape_signature: tuple[int, ...] | None = None

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        per = next(v[2] for v in TENSOR_TYPES.values() if v[0] == self.dtype)
        return int(np.ceil(self.numel * per))

    @property
    def np_dtype(self) -> Any:
        return next(v[1] for v in TENSOR_TYPES.values() if v[0] == self.dtype)


@dataclass
class Operator:
    index: int
    opcode: str                       # builtin name, e.g. "CONV_2D", or "CUSTOM:<code>"
    inputs: tuple[int, ...]           # tensor indices; -1 marks an omitted optional input
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)  # snake_case builtin options, enums as names
    version: int = 1


class _Graph:
    """Accessors shared by a subgraph and by the model (whose own tensors/operators are subgraph 0's)."""

    tensors: list[Tensor]
    operators: list[Operator]
    inputs: list[int]
    outputs: list[int]

    def tensor(self, index: int) -> Tensor:
        return self.tensors[index]

    @property
    def input_tensors(self) -> list[Tensor]:
        return [self.tensors[i] for i in self.inputs]

    @property
    def output_tensors(self) -> list[Tensor]:
        return [self.tensors[i] for i in self.outputs]

    def op_inputs(self, op: Operator) -> list[Tensor | None]:
        return [self.tensors[i] if i >= 0 else None for i in op.inputs]

    def op_outputs(self, op: Operator) -> list[Tensor]:
        return [self.tensors[i] for i in op.outputs]


@dataclass
class SubgraphIR(_Graph):
    """One subgraph of the flatbuffer; tensor and operator indices are local to it."""

    index: int
    name: str
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: list[int]
    outputs: list[int]


@dataclass
class ModelIR(_Graph):
    """The model. `tensors`/`operators`/`inputs`/`outputs` are subgraph 0's (the entry: what runs first and what
    single-subgraph callers have always meant); `subgraphs` holds every subgraph, subgraph 0 included."""

    tensors: list[Tensor]
    operators: list[Operator]
    inputs: list[int]
    outputs: list[int]
    schema_version: int
    description: str
    size_bytes: int
    subgraph_count: int = 1
    subgraphs: list[SubgraphIR] = field(default_factory=list)
