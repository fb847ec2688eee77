"""The per-op lowering interface: how one IR operator becomes C.

A lowering function receives the operator and a `LowerContext` and returns a `LoweredOp`:
- `call`: one C expression of type `int` (0 = ok) executed in `fm_invoke()`, or None for a pure alias;
- `decls`: file-scope C declarations (const data in flash, const parameter structs), made with
  `ctx.const_array()` / `ctx.const_struct()` so names are unique and formatting is uniform;
- `alias` / `inplace`: memory sharing the arena planner may (inplace) or must (alias) apply;
- `macs`: multiply-accumulates for fm_op_info and reports;
- `sources`: kernel C files (named as in firmware/kernels/reference/) the call needs, so builds compile only
  those, taken from the kernel set where it has them.

A lowering that cannot compile an op or option raises `Unsupported(reason, fix)`; the generator collects every
such op of the model into one FormicaryError. The helpers at the end are shared by the op families.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from formicary.tflite.ir import ModelIR, Operator, Tensor


class Unsupported(Exception):
    """This op (or one of its options/types) cannot be compiled; `fix` tells the user what to do."""

    def __init__(self, reason: str, fix: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fix = fix


@dataclass
class LoweredOp:
    call: str | None                      # C int expression, None when the op is a pure alias (RESHAPE)
    macs: int = 0
    decls: list[str] = field(default_factory=list)
    alias: dict[int, int] = field(default_factory=dict)    # output tensor -> input tensor: MUST share memory
    inplace: dict[int, int] = field(default_factory=dict)  # output tensor -> input tensor: MAY share memory
    sources: tuple[str, ...] = ()         # kernel .c files (reference names) this op calls into
    scratch_bytes: int = 0                # arena bytes needed only while this op runs: set from the kernel set
    kernel: str = ""                      # kernel function name, for docs/reports and kernel-set look-ups
    scratch_offset: int = 0               # set by the planner
    own_hooks: bool = False               # the call profiles itself (IF: cond + copies; the branch's ops report)
    packed_bytes: int = 0                 # flash of the kernel set's AOT weight re-layout (codegen/packing.py)
    replaced_bytes: int = 0               # flash of the TFLite-layout constants that re-layout replaced


_CTYPES = {"int8": "int8_t", "uint8": "uint8_t", "int16": "int16_t", "int32": "int32_t", "int64": "int64_t",
           "float32": "float", "bool": "uint8_t"}


_CSIZE = {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "uint16_t": 2, "int32_t": 4, "int64_t": 8, "float": 4}


def ctype(dtype: str) -> str:
    if dtype not in _CTYPES:
        raise Unsupported(f"tensor type {dtype} is not supported by formicary-rt",
                          "quantize the model to int8 (or keep float32).")
    return _CTYPES[dtype]


def _c_literal(value, c_type: str) -> str:
    if c_type == "float":
        v = float(value)
        if not np.isfinite(v):
            raise Unsupported(f"non-finite constant {v}", "remove NaN/Inf constants from the model.")
        return f"{float(np.float32(v))!r}f"
    if c_type in ("int32_t",) and int(value) == -(2 ** 31):
        return "INT32_MIN"
    if c_type == "int64_t":
        return f"INT64_C({int(value)})"
    return str(int(value))


def format_array(name: str, c_type: str, values: np.ndarray, align: int = 4) -> str:
    """`static const T name[n] = {...};` wrapped at ~100 columns; the data lands in flash (.rodata)."""
    flat = np.asarray(values).reshape(-1)
    items = [_c_literal(v, c_type) for v in flat] or ["0"]
    lines, line = [], "    "
    for item in items:
        piece = item + ", "
        if len(line) + len(piece) > 100:
            lines.append(line.rstrip())
            line = "    "
        line += piece
    lines.append(line.rstrip())
    return (f"static const {c_type} {name}[{max(len(flat), 1)}] FM_ALIGNED({align}) = {{\n"
            + "\n".join(lines) + "\n};")


class LowerContext:
    """What a lowering may ask about the model and how it names things in the generated C.

    Tensor pointers are referred to by name (`ctx.tensor_ref`): `fm_t<index>` for activations (a macro the
    emitter defines from the arena plan) or the const array holding a constant tensor (emitted on first use).
    """

    def __init__(self, model: ModelIR, op: Operator, kernel_set=None, program=None) -> None:
        self.model = model
        self.op = op
        self.program = program                    # codegen.subgraphs.Program: subgraphs, IF branches
        self.kernel_set = kernel_set              # codegen.kernel_sets.KernelSet; None: reference
        self.packed_bytes = 0                     # flash of the kernel set's AOT re-layout for this op
        self.replaced_bytes = 0                   # flash of the TFLite-layout constants that re-layout replaced
        self.decls: list[str] = []
        self.constant_tensors: set[int] = set()   # constant tensors referenced; emitted once by the emitter
        self.array_bytes = 0                      # bytes of per-op const arrays declared (flash)

    # -- tensors -------------------------------------------------------------------------------------------
    def inputs(self) -> list[Tensor | None]:
        return self.model.op_inputs(self.op)

    def outputs(self) -> list[Tensor]:
        return self.model.op_outputs(self.op)

    def tensor_ref(self, tensor: Tensor) -> str:
        """C expression for the tensor's data pointer (constant → const array in flash, else arena macro)."""
        if tensor.is_constant:
            self.constant_tensors.add(tensor.index)
            return const_tensor_name(tensor.index)
        return f"fm_t{tensor.index}"

    def weight_fields(self, request, filter_t: Tensor, bias_t: Tensor | None) -> dict[str, str]:
        """`filter`/`bias` struct fields of a convolution-family int8 op (operands already checked): the kernel
        set's AOT packing when the set compiled for this kernel has a packer (codegen/packing.py), else the
        TFLite-layout constants."""
        pack = self.kernel_set.packer(request.kernel) if self.kernel_set is not None else None
        if pack is not None:
            before = self.array_bytes
            fields = pack(request, self)
            if fields is not None:
                self.packed_bytes += self.array_bytes - before
                self.replaced_bytes += request.filter_bytes + request.bias_bytes
                return {"filter": "NULL", "bias": "NULL", **fields}
        return {"filter": self.tensor_ref(filter_t), "bias": self.tensor_ref(bias_t) if bias_t is not None else "NULL"}

    def scratch_ref(self) -> str:
        """C expression for this op's scratch pointer, for kernels taking `void *scratch`: the op's scratch area
        in the arena (`fm_scratch_op<i>`, LoweredOp.scratch_bytes as the kernel set declared), or NULL when the
        set declared none (replaced by the generator)."""
        return f"fm_scratch_op{self.op.index}"

    # -- generated declarations ----------------------------------------------------------------------------
    def name(self, suffix: str) -> str:
        return f"fm_op{self.op.index}_{suffix}"

    def const_array(self, suffix: str, c_type: str, values: np.ndarray) -> str:
        """Declare a per-op const array (e.g. per-channel multipliers) and return its C name."""
        name = self.name(suffix)
        self.decls.append(format_array(name, c_type, values))
        self.array_bytes += max(int(np.asarray(values).size), 1) * _CSIZE.get(c_type, 4)
        return name

    def const_struct(self, suffix: str, c_type: str, fields: dict[str, object]) -> str:
        """Declare `static const c_type name = {.field = value, ...};` and return `&name`.
        Values are C expression strings or ints."""
        name = self.name(suffix)
        body = ",\n".join(f"    .{k} = {v}" for k, v in fields.items())
        self.decls.append(f"static const {c_type} {name} = {{\n{body}\n}};")
        return f"&{name}"


def const_tensor_name(index: int) -> str:
    return f"fm_const_t{index}"


def dims4(tensor: Tensor) -> tuple[int, int, int, int]:
    """NHWC view of a tensor of rank <= 4 (leading dims padded with 1), as TFLM's RuntimeShape extension."""
    shape = tuple(int(d) for d in tensor.shape)
    if len(shape) > 4:
        raise Unsupported(f"tensor '{tensor.name}' has rank {len(shape)} > 4", "reshape to at most 4 dimensions.")
    full = (1,) * (4 - len(shape)) + shape
    return full  # type: ignore[return-value]


def dims4_c(t: tuple[int, int, int, int]) -> str:
    return "{" + ", ".join(str(d) for d in t) + "}"


def qparams(tensor: Tensor | None) -> tuple[float, int]:
    """(scale, zero_point) of a per-tensor-quantized tensor; Unsupported when it is not quantized."""
    if tensor is None or tensor.quant is None or tensor.quant.scale.size == 0:
        name = tensor.name if tensor is not None else "?"
        raise Unsupported(f"tensor '{name}' has no quantization parameters",
                          "quantize the model fully to int8 (`formicary compile --quantize int8`).")
    return float(tensor.quant.scale[0]), int(tensor.quant.zero_point[0])


def require_dtype(tensor: Tensor | None, allowed: tuple[str, ...], role: str) -> None:
    if tensor is None:
        raise Unsupported(f"missing {role} tensor", "re-export the model.")
    if tensor.dtype not in allowed:
        raise Unsupported(f"{role} tensor '{tensor.name}' is {tensor.dtype}; this kernel takes {'/'.join(allowed)}",
                          "quantize the model to full int8 (`formicary compile --quantize int8`).")


# ---- shared by the op families ------------------------------------------------------------------------------

BCAST_DIMS = 6  # FM_BCAST_DIMS: broadcasting and reductions work on shapes extended to 6 dims

# Fused activation -> float clamp bounds of the f32 kernels (TFLM CalculateActivationRange); int8 kernels get
# quantized bounds from quant.activation_range.
FLOAT_ACT = {"NONE": ("-FLT_MAX", "FLT_MAX"), "RELU": ("0.0f", "FLT_MAX"), "RELU6": ("0.0f", "6.0f"),
             "RELU_N1_TO_1": ("-1.0f", "1.0f")}
ON_INT8 = " on int8"


def first_input_dtype(ctx: LowerContext) -> str | None:
    """Type of the op's first present input: what selects an op's int8 or float32 kernel."""
    return next((t.dtype for t in ctx.inputs() if t is not None), None)


def fused_activation(op: Operator, qualifier: str = "") -> str:
    """The op's fused activation, one of FLOAT_ACT; `qualifier` completes the refusal (ON_INT8)."""
    act = op.options.get("fused_activation_function", "NONE")
    if act not in FLOAT_ACT:
        raise Unsupported(f"fused activation {act} is not supported{qualifier}",
                          "use NONE/RELU/RELU6 or a separate activation layer.")
    return act


def same_shape(inp: Tensor, out: Tensor, opname: str) -> None:
    """Element-wise ops: input and output hold as many values."""
    if inp.numel != out.numel:
        raise Unsupported(f"{opname} input and output sizes differ ({inp.numel} vs {out.numel})",
                          "re-export the model.")


def c_array(values: list[int]) -> str:
    """An initializer for a fixed-size int array field."""
    return "{" + ", ".join(str(int(v)) for v in values) + "}"


def nested(fields: dict[str, object]) -> str:
    """A nested designated initializer for a struct-typed field."""
    return "{" + ", ".join(f".{k} = {v}" for k, v in fields.items()) + "}"


def float_literal(x: float) -> str:
    return f"{float(np.float32(x))!r}f"


LowerFn = Callable[[Operator, LowerContext], LoweredOp]
