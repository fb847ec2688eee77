"""Which kernel sets a per-op test runs for, and how many Hypothesis examples each gets.

Every kernel test takes the kernel set as a pytest parameter (`@pytest.mark.parametrize("kernels", ...)`), computed
at collection from `kernel_sets.available_kernel_sets()`: the reference set always, and every other set that has
its own file for the op under test (a set without one falls through to a file another parameter already tests:
reference, or the base set that owns it). So the optimized sets (firmware/kernels/dsp/, helium/, ...) are tested
the moment their files land, with no change to the tests.

Time budget: the examples of an op are split across its sets (`examples(n, files)`: ceil(n / sets)), so the
tests/kernels wall time stays what it was with the reference set alone however many sets there are. With the
reference set alone nothing changes. FORMICARY_KERNEL_EXAMPLES_SCALE (a float, default 1) scales every budget
for a longer local run.

FORMICARY_TEST_KERNEL_SET=name=/path/to/folder registers an extra set for one run (e.g. a test-only set holding a
single kernel file), so these tests can be pointed at a set that is not in firmware/kernels/.
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path

from formicary.codegen import kernel_sets

REFERENCE = kernel_sets.REFERENCE
ENV_EXTRA_SET = "FORMICARY_TEST_KERNEL_SET"
ENV_SCALE = "FORMICARY_KERNEL_EXAMPLES_SCALE"


def register_env_set() -> str | None:
    """Register the set named by FORMICARY_TEST_KERNEL_SET (name=folder); returns its name."""
    spec = os.environ.get(ENV_EXTRA_SET, "").strip()
    if not spec:
        return None
    name, _, folder = spec.partition("=")
    if not name or not folder or not Path(folder).is_dir():
        raise ValueError(f"{ENV_EXTRA_SET}={spec!r}: expected NAME=FOLDER with FOLDER a folder of kernel .c files")
    kernel_sets.register_kernel_set(kernel_sets.KernelSet(name, root=Path(folder)))
    return name


def sets_for(files: str | Iterable[str]) -> list[str]:
    """Reference, then every available set that provides one of `files` itself (reference kernel file names,
    e.g. "conv2d_s8.c")."""
    wanted = {files} if isinstance(files, str) else set(files)
    out = [REFERENCE]
    for name in kernel_sets.available_kernel_sets():
        if name != REFERENCE and wanted & set(kernel_sets.kernel_set(name).files()):
            out.append(name)
    return out


def examples(n: int, files: str | Iterable[str]) -> int:
    """Hypothesis examples per set for a test with budget `n` over the sets of `files` (at least 1)."""
    scale = float(os.environ.get(ENV_SCALE, "1") or 1)
    return max(1, math.ceil(n * scale / len(sets_for(files))))


def kernel_param(files: str | Iterable[str]):
    """`@kernel_param("conv2d_s8.c")`: parametrize a test's `kernels` argument over `sets_for(files)`."""
    import pytest

    return pytest.mark.parametrize("kernels", sets_for(files))
