"""Modelled power: the board's datasheet power model (supply voltage x active current, issue 4) over the
measured on-device time. Not a measurement: every figure made here says `modelled`. On virtual boards it is the
only source, and the "time" is retired instructions under QEMU -icount converted at the board clock, which
assumes one instruction per cycle (real cores need more cycles per instruction: waits, stalls)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
from formicary.power.sources import InferenceWindow, PowerSamples, PowerSource
from formicary.errors import FormicaryError


class PowerModelLike(Protocol):
    supply_v: float
    active_current_ma: float
    source: str
    # optional (formicary.boards.PowerModel has them): `basis` (the representative silicon a virtual board's figure
    # belongs to, and how it was scaled to the clock) and `checked` (compared with the cited datasheet table)


def _board_timing_unit(board_name: str) -> str | None:
    """What the board's ticks count ('instructions' on QEMU, 'cycles' with DWT), from its definition if known."""
    if not board_name:
        return None
    from formicary.boards import load_board

    try:
        return load_board(board_name).timing_unit
    except FormicaryError:  # not a board in boards/ (e.g. a test double): say nothing rather than guess
        return None


def _time_basis(timing_unit: str | None, clock_hz: int) -> str:
    mhz = f"{clock_hz / 1e6:g} MHz"
    if timing_unit == "ms":  # an SBC: the on-board agent's time.perf_counter around each invoke()
        return "time = wall-clock milliseconds measured on the board (time.perf_counter around each invoke)"
    if timing_unit == "instructions":
        return (f"time = QEMU retired instructions (-icount) at the board clock {mhz}, "
                "assuming 1 instruction = 1 cycle")
    if timing_unit == "cycles":
        return f"time = on-device cycle count (DWT) at the board clock {mhz}"
    return f"time = on-device ticks at the board clock {mhz} (1 tick = 1 cycle assumed)"


def ticks_to_seconds(ticks: float, clock_hz: int) -> float:
    """Cycles (DWT) or instructions (QEMU) to seconds at the board clock (1 instruction = 1 cycle assumed)."""
    if clock_hz <= 0:
        raise ValueError("clock_hz must be positive")
    return float(ticks) / float(clock_hz)


class ModelledSource(PowerSource):
    """Constant active power from the board model during each inference window, built from on-device timings.

    Feed it the per-inference latencies (in ticks) measured by the firmware; `stop()` returns a piecewise
    constant power trace: active power during the inferences laid end to end, labelled `modelled`.
    """
    label = "modelled"
    name = "board-power-model"

    def __init__(self, power: PowerModelLike | None, clock_hz: int, board_name: str = "",
                 timing_unit: str | None = None) -> None:
        if power is None:
            raise FormicaryError(f"board {board_name or '?'} has no power model, so no energy can be modelled",
                                 "add a [power] table (supply_v, active_current_ma, source) to its boards/*.toml.")
        self.power = power
        self.clock_hz = clock_hz
        self.board_name = board_name
        # "instructions" (QEMU -icount) or "cycles" (DWT); looked up from the board definition when not given
        self.timing_unit = timing_unit or _board_timing_unit(board_name)
        self._latencies: list[float] = []
        self._running = False

    @property
    def source(self) -> str:
        """Every number's provenance in one line: the figure, its datasheet, whose silicon it is, how time was got."""
        basis = getattr(self.power, "basis", "")
        checked = getattr(self.power, "checked", None)
        parts = [f"board power model {self.board_name}: {self.power.supply_v} V x {self.power.active_current_ma} mA "
                 f"({self.power.source})"]
        if basis:
            parts.append(f"basis: {basis}")
        parts.append(_time_basis(self.timing_unit, self.clock_hz))
        if checked is False:
            parts.append("datasheet figure not yet checked against the document")
        return "; ".join(parts)

    @property
    def active_power_w(self) -> float:
        return self.power.supply_v * self.power.active_current_ma * 1e-3

    def start(self) -> None:
        self._latencies = []
        self._running = True

    def add_inferences(self, latencies_ticks: Sequence[float]) -> None:
        self._latencies.extend(float(x) for x in latencies_ticks)

    def windows(self) -> list[InferenceWindow]:
        out, t = [], 0.0
        for ticks in self._latencies:
            dt = ticks / 1e3 if self.timing_unit == "ms" else ticks_to_seconds(ticks, self.clock_hz)
            out.append(InferenceWindow(t, t + dt, 1))
            t += dt
        return out

    def stop(self) -> PowerSamples:
        self._running = False
        wins = self.windows()
        if not wins:
            return PowerSamples(self.name, "modelled", np.zeros(0), np.zeros(0))
        # two points per window edge make a step trace that integrates exactly to P x t
        t = [wins[0].start_s] + [w.end_s for w in wins]
        p = [self.active_power_w] * len(t)
        return PowerSamples(self.name, "modelled", np.asarray(t), np.asarray(p),
                            markers=[("start", wins[0].start_s), ("stop", wins[-1].end_s)])


def modelled_energy(power: PowerModelLike | None, clock_hz: int, latencies_ticks: Sequence[float],
                    board_name: str = "", energy_floor_uj: float | None = None,
                    timing_unit: str | None = None) -> dict[str, Any]:
    """The bench JSON `energy` dict for a run whose only source is the board model.

    uj_per_inference = supply_v x active_current_ma x (ticks / clock_hz), averaged over the inferences. `source`
    names the datasheet figure, the representative silicon (`basis`, virtual boards) and how time was obtained;
    `timing_unit` ("instructions" | "cycles") defaults to the board definition's.
    """
    from formicary.power.energy import energy_per_inference

    src = ModelledSource(power, clock_hz, board_name, timing_unit)
    src.start()
    src.add_inferences(latencies_ticks)
    samples = src.stop()
    result = energy_per_inference(samples, src.windows(), source=src.source, min_duration_s=0.0,
                                  energy_floor_uj=energy_floor_uj)
    out = result.to_json()
    unit = "instruction" if src.timing_unit == "instructions" else "tick"
    out["assumptions"] = (f"datasheet typical active current at the board clock, constant during inference; "
                          f"1 {unit} = 1 cycle") if src.timing_unit != "ms" else (
        "the board's typical active current, constant during inference, times the measured wall-clock time")
    checked = getattr(power, "checked", None)
    if checked is not None:
        out["power_model_checked"] = bool(checked)
    return out
