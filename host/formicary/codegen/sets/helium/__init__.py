"""The `helium` kernel set (firmware/kernels/helium/): int8 kernels vectorized with Armv8.1-M MVE (Helium),
Cortex-M55/M85. Files it lacks come from the `dsp` set (an M55 has the DSP extension too), then `reference`.

Its Python side: scratch sizes and ahead-of-time weight packers per kernel, one module per op family."""
from __future__ import annotations

from formicary.codegen.kernel_sets import KernelSet, register_kernel_set

SCRATCH: dict = {}
PACK: dict = {}

HELIUM = register_kernel_set(KernelSet(
    "helium", scratch=SCRATCH, pack=PACK, cores=("cortex-m55", "cortex-m85"), base="dsp",
    description="Armv8.1-M Helium/MVE: Cortex-M55/M85; weights packed ahead of time"))
