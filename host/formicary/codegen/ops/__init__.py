"""Registry of per-op lowerings: one module per op in this package, each registering itself with
`@register("OPCODE", ...)`. Every module in the package is imported on first use, so adding an op means adding
a file here (see docs/dev/codegen-interface.md) and nothing else in the codegen.
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

# (opcode, dtype of the op's first input or None for "any type") -> lowering
_REGISTRY: dict[tuple[str, str | None], LowerFn] = {}
_LOADED = False


def register(*opcodes: str, dtype: str | None = None):
    """Decorator: `@register("CONV_2D")` on `def lower(op, ctx) -> LoweredOp`.

    With `dtype="float32"` the lowering only handles ops whose first input has that type; a dtype-specific
    lowering wins over a generic one, so float32 kernels can live in their own modules."""
    def wrap(fn: LowerFn) -> LowerFn:
        for code in opcodes:
            key = (code, dtype)
            if key in _REGISTRY and _REGISTRY[key] is not fn:
                raise RuntimeError(f"two lowerings registered for {key}: {_REGISTRY[key].__module__} and "
                                   f"{fn.__module__}")
            _REGISTRY[key] = fn
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


def lowering_for(opcode: str, dtype: str | None = None) -> LowerFn | None:
    """The lowering for an op whose first input has `dtype`: dtype-specific first, then generic."""
    _load_all()
    return _REGISTRY.get((opcode, dtype)) or _REGISTRY.get((opcode, None))


def supported_opcodes() -> list[str]:
    _load_all()
    return sorted({code for code, _ in _REGISTRY})


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
