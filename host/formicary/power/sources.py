"""The one power-source interface and the sample container every source returns."""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import numpy as np

Label = Literal["measured", "modelled"]


@dataclass(frozen=True)
class InferenceWindow:
    """A stretch of time, in the source's time base (seconds), during which `inferences` inferences ran."""
    start_s: float
    end_s: float
    inferences: int

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass
class PowerSamples:
    """Power over time from one source. `t_s` is strictly increasing seconds in the source's own time base.

    `gpio` is the sync line (0/1 per sample) when the instrument records one; `markers` are (name, t_s) events
    stamped in the same time base (serial markers, or window edges the source knows directly).
    """
    source: str
    label: Label
    t_s: np.ndarray
    power_w: np.ndarray
    current_a: np.ndarray | None = None
    voltage_v: np.ndarray | None = None
    gpio: np.ndarray | None = None
    markers: list[tuple[str, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.t_s = np.asarray(self.t_s, dtype=np.float64)
        self.power_w = np.asarray(self.power_w, dtype=np.float64)
        if self.t_s.shape != self.power_w.shape or self.t_s.ndim != 1:
            raise ValueError("t_s and power_w must be 1-D arrays of the same length")
        if self.t_s.size > 1 and np.any(np.diff(self.t_s) <= 0):
            raise ValueError("sample timestamps must be strictly increasing")

    def __len__(self) -> int:
        return int(self.t_s.size)

    def to_json(self, max_points: int = 2000) -> dict[str, Any]:
        """`power_samples` for the bench JSON: decimated (by averaging) to at most `max_points` points."""
        n = len(self)
        step = max(1, -(-n // max_points))
        m = n // step * step
        t = self.t_s[:m].reshape(-1, step).mean(axis=1) if m else self.t_s
        p = self.power_w[:m].reshape(-1, step).mean(axis=1) if m else self.power_w
        return {"source": self.source, "method": self.label, "unit": {"t": "s", "power": "mW"},
                "decimation": step, "t": [round(float(x), 9) for x in t],
                "power": [round(float(x) * 1e3, 6) for x in p],
                "markers": [{"name": name, "t": t_m} for name, t_m in self.markers]}


class PowerSource(ABC):
    """Start before the inferences, stop after: `stop()` returns everything sampled in between.

    `mark(name)` stamps a host-side marker (e.g. just before/after the serial command that runs the
    inferences) in the source's time base, the serial-marker synchronisation of MLPerf Tiny's runner.
    """
    label: Label
    name: str

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self) -> PowerSamples: ...

    def mark(self, name: str) -> None:
        self._markers().append((name, self.now_s()))

    def now_s(self) -> float:
        """Current time in the source's time base; host monitors use the host clock since start()."""
        return time.perf_counter() - getattr(self, "_t0", time.perf_counter())

    def _markers(self) -> list[tuple[str, float]]:
        if not hasattr(self, "_marker_list"):
            self._marker_list: list[tuple[str, float]] = []
        return self._marker_list

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if getattr(self, "_running", False):
            self.stop()
