"""Latency statistics from raw samples: one definition shared by the store, compare and reports.

Percentiles use linear interpolation between closest ranks (numpy's default `linear` method), so the store's
figures match `numpy.percentile(samples, q)` exactly.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of already-sorted values, linear interpolation."""
    if not sorted_values:
        raise ValueError("no values")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    frac = pos - lo
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac)


def summarize(samples: Sequence[float]) -> dict[str, Any]:
    """min/median/p90/p99/max/mean and the count; all None when there are no samples."""
    if not samples:
        return {"count": 0, "min": None, "median": None, "p90": None, "p99": None, "max": None, "mean": None}
    s = sorted(samples)
    return {"count": len(s), "min": s[0], "median": percentile(s, 50), "p90": percentile(s, 90),
            "p99": percentile(s, 99), "max": s[-1], "mean": sum(s) / len(s)}
