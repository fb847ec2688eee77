"""The dsp set's upsampling family: its TRANSPOSE_CONV int8 (firmware/kernels/dsp/transpose_conv_s8.c) keeps the
reference kernel's int32 accumulators, one word per output element, and reads the TFLite filter layout (no
packing)."""
from __future__ import annotations

from formicary.codegen.ops.upsample import transpose_conv_scratch_bytes
from formicary.codegen.sets.dsp import SCRATCH

SCRATCH["fm_transpose_conv_s8"] = transpose_conv_scratch_bytes
