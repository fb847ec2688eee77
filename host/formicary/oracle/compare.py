"""Does a device's output match the reference? One rule and one set of tolerances for verify, bench and the HIL
plugin: integer outputs must be bit-exact; float32 outputs must satisfy np.allclose(device, reference, rtol,
atol), because formicary-rt's float kernels may sum in another order than TFLM's (and use FMA)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

FLOAT_RTOL = 1e-4
FLOAT_ATOL = 1e-5


@dataclass(frozen=True)
class Match:
    """One inference's outputs against the reference."""
    bit_exact: bool
    within_tolerance: bool   # bit-exact, or every float output within (FLOAT_RTOL, FLOAT_ATOL)
    max_abs_diff: float

    @property
    def ok(self) -> bool:
        return self.within_tolerance


def match(device: Sequence[np.ndarray], reference: Sequence[np.ndarray], *, rtol: float = FLOAT_RTOL,
          atol: float = FLOAT_ATOL) -> Match:
    """Compare one inference's outputs; reference arrays are reshaped and cast to the device's."""
    exact, close, diff = True, True, 0.0
    for d, r in zip(device, reference):
        d = np.asarray(d)
        r = np.asarray(r).reshape(d.shape)
        same = d.tobytes() == r.astype(d.dtype).tobytes()
        exact &= same
        if not same:
            delta = np.abs(d.astype(np.float64) - r.astype(np.float64))
            diff = max(diff, float(delta.max()) if delta.size else 0.0)
        close &= same or (d.dtype.kind == "f" and bool(np.allclose(d, r, rtol=rtol, atol=atol)))
    return Match(bit_exact=exact, within_tolerance=close, max_abs_diff=diff)


def describe_differences(device: Sequence[np.ndarray], reference: Sequence[np.ndarray], *,
                         rtol: float = FLOAT_RTOL, atol: float = FLOAT_ATOL) -> list[str]:
    """Readable differences between device and reference outputs; empty when they agree (same rule as match)."""
    problems = []
    if len(device) != len(reference):
        return [f"the device returned {len(device)} output(s), TFLM {len(reference)}."]
    for i, (d, r) in enumerate(zip(device, reference)):
        d, r = np.asarray(d), np.asarray(r)
        what = f"output {i} ({d.dtype}, shape {list(d.shape)})"
        if d.size != r.size:
            problems.append(f"{what}: {d.size} elements on the device, {r.size} in TFLM.")
            continue
        if d.dtype != r.dtype:
            problems.append(f"{what}: TFLM's output is {r.dtype}.")
            continue
        df, rf = d.reshape(-1), r.reshape(-1)
        if np.issubdtype(d.dtype, np.floating):
            bad = ~np.isclose(df, rf, rtol=rtol, atol=atol, equal_nan=True)
            if bad.any():
                j = int(np.flatnonzero(bad)[0])
                worst = float(np.nanmax(np.abs(df.astype(np.float64) - rf)))
                problems.append(f"{what}: {int(bad.sum())} of {df.size} elements outside rtol={rtol:g}, "
                                f"atol={atol:g}; first at flat index {j}: device {df[j]!s}, TFLM {rf[j]!s} "
                                f"(largest difference {worst:g}).")
            continue
        db, rb = df.view(np.uint8), rf.view(np.uint8)
        bad_bytes = int((db != rb).sum())
        if bad_bytes:
            bad = df != rf
            j = int(np.flatnonzero(bad)[0])
            problems.append(f"{what} is not bit-exact with TFLM: {bad_bytes} of {db.size} bytes differ "
                            f"({int(bad.sum())} of {df.size} elements); first at flat index {j}: "
                            f"device {int(df[j])}, TFLM {int(rf[j])}.")
    return problems


def tolerance_record(ok: bool) -> dict:
    """The `tolerance` key of verify/bench JSON for float models."""
    return {"rtol": FLOAT_RTOL, "atol": FLOAT_ATOL, "ok": ok}


__all__ = ["FLOAT_ATOL", "FLOAT_RTOL", "Match", "describe_differences", "match", "tolerance_record"]
