"""The Python side of the optimized kernel sets, one module per set (its C files: firmware/kernels/<set>/).

A module here registers its `KernelSet` (`kernel_sets.register_kernel_set`) with the set's scratch sizes and AOT
weight packers; `kernel_sets` imports every module of this package on first use, so adding a set means adding its
C folder and, when it needs scratch or packing, one module here.
"""
from __future__ import annotations

import importlib
import pkgutil


def load_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
