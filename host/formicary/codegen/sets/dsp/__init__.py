"""The `dsp` kernel set (firmware/kernels/dsp/): int8 kernels for Armv7E-M and later cores with the DSP extension
(Cortex-M4, M7, M33, M55 without Helium), built on SMLAD/SXTB16 (firmware/kernels/include/fm_acle.h).

Its Python side: scratch sizes and ahead-of-time weight packers per kernel, one module per op family."""
from __future__ import annotations

from formicary.codegen.kernel_sets import KernelSet, register_kernel_set

SCRATCH: dict = {}
PACK: dict = {}

DSP = register_kernel_set(KernelSet(
    "dsp", scratch=SCRATCH, pack=PACK, base="reference",
    cores=("cortex-m4", "cortex-m7", "cortex-m33", "cortex-m35p", "cortex-m55", "cortex-m85"),
    description="Armv7E-M DSP (SMLAD/SXTB16): Cortex-M4/M7/M33; weights packed ahead of time",
    # measured on qemu-m4 (firmware/kernels/dsp/README.md): the C block-sparse kernels lose to the dense LDM/SMLAD
    # kernel at 50 and 75 % zero blocks on 1x1 convs, win from 75 % on 3x3 convs and FC
    sparse_min_zero_blocks=0.8))

from formicary.codegen.sets.dsp import depthwise, gemm, upsample  # noqa: E402,F401  (fill PACK/SCRATCH per op family)
