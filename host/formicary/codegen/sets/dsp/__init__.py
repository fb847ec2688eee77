"""The `dsp` kernel set (firmware/kernels/dsp/): int8 kernels for Armv7E-M and later cores with the DSP extension
(Cortex-M4, M7, M33, M55 without Helium), built on SMLAD/SXTB16 (firmware/kernels/include/fm_acle.h).

Its Python side: scratch sizes and ahead-of-time weight packers per kernel, one module per op family."""
from __future__ import annotations

from formicary.codegen.kernel_sets import KernelSet, register_kernel_set

SCRATCH: dict = {}
PACK: dict = {}

DSP = register_kernel_set(KernelSet(
    "dsp", scratch=SCRATCH, pack=PACK, base="reference",
    description="Armv7E-M DSP (SMLAD/SXTB16): Cortex-M4/M7/M33; weights packed ahead of time"))

from formicary.codegen.sets.dsp import depthwise  # noqa: E402,F401  (fills PACK/SCRATCH for DEPTHWISE_CONV_2D)
