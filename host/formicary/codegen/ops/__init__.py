"""Registry of per-op lowerings, grouped by op family: `conv` (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED),
`pooling` (AVERAGE_POOL_2D, MAX_POOL_2D, MEAN), `activations` (RELU, RELU6, LOGISTIC, TANH, SOFTMAX),
`elementwise` (ADD, MUL) and `data_movement` (RESHAPE, PAD, CONCATENATION, QUANTIZE, DEQUANTIZE). Each lowering
registers itself with `@register("OPCODE", ...)` and handles every input type of its ops (int8, float32); every
module of the package but `base` is imported on first use, so adding an op means adding a lowering to its family
module (or a new family module) and nothing else in the codegen (see docs/codegen.md).
"""
from __future__ import annotations

import importlib
import pkgutil

from formicary.codegen.ops.base import (
    LowerContext,
    LoweredOp,
    LowerFn,
    Unsupported,
    const_tensor_name,
    ctype,
    dims4,
    dims4_c,
    format_array,
    qparams,
    require_dtype,
)

_REGISTRY: dict[str, LowerFn] = {}  # opcode -> lowering
_LOADED = False


def register(*opcodes: str):
    """Decorator: `@register("CONV_2D", "DEPTHWISE_CONV_2D")` on `def lower(op, ctx) -> LoweredOp`."""
    def wrap(fn: LowerFn) -> LowerFn:
        for code in opcodes:
            if code in _REGISTRY and _REGISTRY[code] is not fn:
                raise RuntimeError(f"two lowerings registered for {code}: {_REGISTRY[code].__module__} and "
                                   f"{fn.__module__}")
            _REGISTRY[code] = fn
        return fn
    return wrap


def _load_all() -> None:
    global _LOADED
    if _LOADED:
        return
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base" and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    _LOADED = True


def lowering_for(opcode: str) -> LowerFn | None:
    _load_all()
    return _REGISTRY.get(opcode)


def supported_opcodes() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


__all__ = [
    "LowerContext",
    "LoweredOp",
    "Unsupported",
    "const_tensor_name",
    "ctype",
    "dims4",
    "dims4_c",
    "format_array",
    "lowering_for",
    "qparams",
    "register",
    "require_dtype",
    "supported_opcodes",
]
