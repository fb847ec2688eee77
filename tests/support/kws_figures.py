"""What one MLPerf Tiny KWS inference (/work/shared/models/kws_ref_model.tflite) may cost on a virtual Cortex-M
board, per kernel set: sanity bands for tests that run KWS on QEMU for other reasons (HIL plugin, MLPerf runner).

Instruction counts under `-icount` are deterministic, so a band is not a timing test: it catches a wrong clock, a
lost timestamp or a build that silently fell back to other kernels. The figures themselves are measured by
benchmarks/kernels.py and quoted in the README; the dsp band's upper edge is issue 11's bar (2.0 per MAC).
"""
from __future__ import annotations

KWS_MACS = 2_656_768
INSTRUCTIONS_PER_MAC = {          # measured 2026-12-05: reference 15.5, dsp 1.39, helium ~0.5
    "reference": (14.5, 16.5),
    "dsp": (1.0, 2.0),
    "helium": (0.3, 0.7),
}


def kws_instruction_band(kernels: str, overhead: int = 0) -> tuple[float, float]:
    """(low, high) instructions per KWS inference with `kernels`, plus a fixed `overhead` (e.g. a runner's loop)."""
    lo, hi = INSTRUCTIONS_PER_MAC[kernels]
    return lo * KWS_MACS + overhead, hi * KWS_MACS + overhead
