"""Energy per inference: power integrated over inference windows, MLPerf Tiny style.

MLPerf Tiny's energy mode runs inferences for at least 10 s between two timestamps and divides the energy by
the count; `required_inferences` picks N, `windows_from_gpio`/`windows_from_markers` find the windows in a
trace, and `energy_per_inference` integrates (trapezoid, with the window edges interpolated) into µJ.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from formicary.power.sources import InferenceWindow, PowerSamples
from formicary.errors import FormicaryError

MLPERF_MIN_DURATION_S = 10.0
MLPERF_MIN_INFERENCES = 10


def required_inferences(latency_s: float, min_duration_s: float = MLPERF_MIN_DURATION_S,
                        min_inferences: int = MLPERF_MIN_INFERENCES) -> int:
    """How many inferences make a window of at least `min_duration_s` (and at least `min_inferences`)."""
    if latency_s <= 0 or not math.isfinite(latency_s):
        raise ValueError("latency_s must be a positive number")
    return max(min_inferences, math.ceil(min_duration_s / latency_s))


def integrate_j(samples: PowerSamples, start_s: float, end_s: float) -> float:
    """Energy in joules between two times, trapezoid over the samples with interpolated edges."""
    t, p = samples.t_s, samples.power_w
    if len(t) < 2 or start_s < t[0] - 1e-12 or end_s > t[-1] + 1e-12:
        raise FormicaryError(
            f"inference window {start_s:.6f}..{end_s:.6f} s is outside the power trace "
            f"({t[0] if len(t) else 0:.6f}..{t[-1] if len(t) else 0:.6f} s)",
            "start the power source before the inferences and stop it after them.")
    if end_s <= start_s:
        return 0.0
    inside = (t > start_s) & (t < end_s)
    tt = np.concatenate(([start_s], t[inside], [end_s]))
    pp = np.concatenate(([np.interp(start_s, t, p)], p[inside], [np.interp(end_s, t, p)]))
    return float(np.sum((pp[1:] + pp[:-1]) * 0.5 * np.diff(tt)))


def _edges(level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = np.diff(level.astype(np.int8))
    return np.flatnonzero(d > 0) + 1, np.flatnonzero(d < 0) + 1


def windows_from_gpio(samples: PowerSamples, inferences_per_window: int | Sequence[int],
                      mode: Literal["level", "pulse"] = "level", active_low: bool = False) -> list[InferenceWindow]:
    """Windows from the DUT's sync line recorded by the instrument.

    level: the line is active during the inferences (one window per active run).
    pulse: the line pulses once at the start and once at the end (the EnergyRunner timestamp pin, active low);
           pulses pair up into windows.
    """
    if samples.gpio is None:
        raise FormicaryError(f"{samples.source} recorded no GPIO sync line",
                             "wire the DUT's timestamp pin to the instrument's digital input, or use markers.")
    level = np.asarray(samples.gpio).astype(bool)
    if active_low:
        level = ~level
    rise, fall = _edges(level)
    t = samples.t_s
    if mode == "level":
        if level[0]:
            raise FormicaryError("the sync line was already active when sampling started",
                                 "start the power source before the first inference.")
        starts = [t[i] for i in rise]
        ends = [t[i] for i in fall]
        if len(ends) < len(starts):
            raise FormicaryError("the sync line was still active when sampling stopped",
                                 "stop the power source after the last inference.")
        pairs = list(zip(starts, ends))
    else:
        stamps = [t[i] for i in rise]  # pulse leading edge (after active_low inversion)
        if len(stamps) % 2:
            raise FormicaryError(f"odd number of timestamp pulses ({len(stamps)})",
                                 "each window needs a start and an end pulse; check the wiring and the trace length.")
        pairs = list(zip(stamps[0::2], stamps[1::2]))
    counts = [inferences_per_window] * len(pairs) if isinstance(inferences_per_window, int) \
        else list(inferences_per_window)
    if len(counts) != len(pairs):
        raise FormicaryError(f"found {len(pairs)} inference windows on the sync line, expected {len(counts)}",
                             "check the GPIO wiring and that sampling covers every run.")
    return [InferenceWindow(float(a), float(b), int(n)) for (a, b), n in zip(pairs, counts)]


def windows_from_markers(samples: PowerSamples, inferences: int, start: str = "start",
                         stop: str = "stop") -> list[InferenceWindow]:
    """Windows between host serial markers (coarser than GPIO: includes serial latency)."""
    starts = [t for name, t in samples.markers if name == start]
    stops = [t for name, t in samples.markers if name == stop]
    if not starts or len(starts) != len(stops):
        raise FormicaryError(f"markers {start!r}/{stop!r} do not pair up in the {samples.source} trace",
                             "call source.mark('start') before and source.mark('stop') after each run.")
    return [InferenceWindow(a, b, inferences) for a, b in zip(starts, stops)]


@dataclass(frozen=True)
class EnergyResult:
    uj_per_inference: float
    method: Literal["measured", "modelled"]
    source: str
    inferences: int
    duration_s: float
    mean_power_mw: float
    min_duration_s: float
    energy_floor_uj: float | None = None

    @property
    def meets_min_duration(self) -> bool:
        return self.duration_s >= self.min_duration_s * (1 - 1e-9)  # float sums of window lengths

    def to_json(self) -> dict[str, Any]:
        """The bench JSON `energy` dict."""
        out: dict[str, Any] = {"uj_per_inference": self.uj_per_inference, "unit": "uJ", "method": self.method,
                               "source": self.source, "inferences": self.inferences,
                               "duration_s": self.duration_s, "mean_power_mw": self.mean_power_mw,
                               "min_duration_s": self.min_duration_s,
                               "meets_min_duration": self.meets_min_duration}
        if self.energy_floor_uj is not None:
            out["energy_floor_uj"] = self.energy_floor_uj
        return out


def energy_per_inference(samples: PowerSamples, windows: Sequence[InferenceWindow], source: str | None = None,
                         min_duration_s: float = MLPERF_MIN_DURATION_S,
                         energy_floor_uj: float | None = None) -> EnergyResult:
    """Total energy in the windows / total inferences, in µJ, labelled with the samples' method."""
    if not windows:
        raise FormicaryError("no inference windows to integrate power over",
                             "run at least one inference while the power source samples.")
    n = sum(w.inferences for w in windows)
    if n <= 0:
        raise FormicaryError("the inference windows hold no inferences", "run N >= 1 inferences per window.")
    energy = sum(integrate_j(samples, w.start_s, w.end_s) for w in windows)
    duration = sum(w.duration_s for w in windows)
    return EnergyResult(uj_per_inference=energy / n * 1e6, method=samples.label, source=source or samples.source,
                        inferences=n, duration_s=duration,
                        mean_power_mw=(energy / duration * 1e3) if duration > 0 else 0.0,
                        min_duration_s=min_duration_s, energy_floor_uj=energy_floor_uj)
