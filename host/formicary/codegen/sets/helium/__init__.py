"""The `helium` kernel set (firmware/kernels/helium/): int8 kernels vectorized with Armv8.1-M MVE (Helium),
Cortex-M55/M85. Files it lacks come from the `dsp` set (an M55 has the DSP extension too), then `reference`.

Its Python side: scratch sizes and ahead-of-time weight packers per kernel, one module per op family."""
from __future__ import annotations

from formicary.codegen.kernel_sets import KernelSet, register_kernel_set

from formicary.codegen.sets.helium import conv

SCRATCH: dict = {"fm_conv2d_s8": conv.conv_scratch, "fm_depthwise_conv2d_s8": conv.depthwise_scratch}
PACK: dict = {"fm_conv2d_s8": conv.pack_gemm, "fm_fully_connected_s8": conv.pack_gemm,
              "fm_depthwise_conv2d_s8": conv.pack_depthwise}

HELIUM = register_kernel_set(KernelSet(
    "helium", scratch=SCRATCH, pack=PACK, cores=("cortex-m55", "cortex-m85"), base="dsp",
    description="Armv8.1-M Helium/MVE: Cortex-M55/M85; weights packed ahead of time"))
