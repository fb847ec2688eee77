"""Host side of the INA219/INA226 sensor read by the firmware (firmware/sensors/fm_ina.c).

The firmware streams raw registers with its own microsecond timestamp, so samples and inference windows share
one clock (no host-side sync needed). Record (little-endian, 12 bytes, `INA_RECORD`):
    uint32 t_us, uint16 bus, int16 shunt, int16 current, uint16 power
plus, once per session, the chip (219/226) and Current_LSB in picoamps (from fm_ina_calibrate).
The decoding below mirrors the datasheet LSBs used by the C driver; a test checks both agree.

`device_energy()` is the bench's entry point: after a RUN on firmware built with -DFM_POWER_INA it reads the
samples over the protocol (READ_POWER, `Session.read_power()`, records in timer ticks instead of microseconds)
and integrates them over the run's inference windows.
"""
from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from formicary.power.sources import InferenceWindow, PowerSamples, PowerSource
from formicary.errors import FormicaryError

if TYPE_CHECKING:
    from formicary.device.session import PowerRecords, RunResult, Session

INA_RECORD = struct.Struct("<IHhhH")

# chip: (bus LSB V, bus shift, shunt LSB V, power LSB multiple of Current_LSB)
_CHIPS = {219: (4e-3, 3, 10e-6, 20), 226: (1.25e-3, 0, 2.5e-6, 25)}


@dataclass(frozen=True)
class InaReading:
    t_s: float
    bus_v: float
    shunt_v: float
    current_a: float
    power_w: float
    overflow: bool


def decode_registers(chip: int, current_lsb_pa: int, raw_bus: int, raw_shunt: int, raw_current: int,
                     raw_power: int) -> tuple[float, float, float, float, bool]:
    """Raw register values -> (bus V, shunt V, current A, power W, overflow flag)."""
    if chip not in _CHIPS:
        raise FormicaryError(f"unknown INA chip {chip}", "use 219 (INA219) or 226 (INA226).")
    bus_lsb, shift, shunt_lsb, pmul = _CHIPS[chip]
    lsb_a = current_lsb_pa * 1e-12
    bus = ((raw_bus >> shift) if chip == 219 else (raw_bus & 0x7FFF)) * bus_lsb
    overflow = chip == 219 and bool(raw_bus & 1)
    return bus, raw_shunt * shunt_lsb, raw_current * lsb_a, raw_power * pmul * lsb_a, overflow


def decode_record(chip: int, current_lsb_pa: int, record: bytes) -> InaReading:
    t_us, bus, shunt, cur, pwr = INA_RECORD.unpack(record)
    b, s, c, p, ovf = decode_registers(chip, current_lsb_pa, bus, shunt, cur, pwr)
    return InaReading(t_us * 1e-6, b, s, c, p, ovf)


class InaStreamSource(PowerSource):
    """Collects INA records streamed by the firmware. The device link calls `feed()` with each record.

    Timestamps are the device's microsecond clock (32-bit, unwrapped here); windows then come straight from the
    device's own inference timestamps in the same clock (`InferenceWindow` in seconds).
    """
    label = "measured"

    def __init__(self, chip: int, current_lsb_pa: int, use_power_register: bool = True) -> None:
        if chip not in _CHIPS:
            raise FormicaryError(f"unknown INA chip {chip}", "use 219 (INA219) or 226 (INA226).")
        if current_lsb_pa <= 0:
            raise FormicaryError("INA Current_LSB must be positive", "calibrate the sensor before streaming.")
        self.chip, self.current_lsb_pa = chip, current_lsb_pa
        self.use_power_register = use_power_register
        self.name = f"ina{chip}"
        self._readings: list[InaReading] = []
        self._running = False
        self._wraps = 0
        self._last_us = -1
        self.overflows = 0

    def start(self) -> None:
        self._readings, self._wraps, self._last_us, self.overflows = [], 0, -1, 0
        self._running = True

    def feed(self, records: bytes | Iterable[bytes]) -> None:
        chunks = [records] if isinstance(records, (bytes, bytearray)) else list(records)
        for chunk in chunks:
            if len(chunk) % INA_RECORD.size:
                raise FormicaryError(f"INA stream chunk of {len(chunk)} bytes is not a whole number of records",
                                     "the firmware and host disagree on the record format (12 bytes).")
            for off in range(0, len(chunk), INA_RECORD.size):
                r = decode_record(self.chip, self.current_lsb_pa, bytes(chunk[off:off + INA_RECORD.size]))
                t_us = round(r.t_s * 1e6)
                if self._last_us >= 0 and t_us < self._last_us:
                    self._wraps += 1  # 32-bit microsecond counter wrapped (every ~71.6 min)
                self._last_us = t_us
                if r.overflow:
                    self.overflows += 1
                    continue  # current/power registers are invalid when OVF is set
                t = r.t_s + self._wraps * 2 ** 32 * 1e-6
                self._readings.append(InaReading(t, r.bus_v, r.shunt_v, r.current_a, r.power_w, False))

    def stop(self) -> PowerSamples:
        self._running = False
        rs = self._readings
        t = np.array([r.t_s for r in rs])
        cur = np.array([r.current_a for r in rs])
        volt = np.array([r.bus_v for r in rs])
        p = np.array([r.power_w for r in rs]) if self.use_power_register else cur * volt
        return PowerSamples(self.name, "measured", t, p, current_a=cur, voltage_v=volt,
                            markers=list(self._markers()))


# ---- samples streamed over the device protocol (READ_POWER) ------------------------------------------------

def _unwrap(ticks: list[int], anchor: int) -> list[int]:
    """32-bit timer values -> a monotonic count relative to `anchor` (which may lie on either side)."""
    out: list[int] = []
    prev = None
    for t in ticks:
        if prev is None:
            d = (t - anchor) % 2 ** 32
            cur = d - 2 ** 32 if d >= 2 ** 31 else d
        else:
            cur = out[-1] + (t - prev) % 2 ** 32
        out.append(cur)
        prev = t
    return out


@dataclass
class DevicePower:
    """Decoded READ_POWER data: a measured trace and the measured inferences' start times, one time base (s)."""
    samples: PowerSamples
    starts_s: list[float]
    overflowed: int   # INA219 samples dropped because the chip flagged a math overflow
    dropped: int      # oldest samples the firmware's ring overwrote
    read_errors: int  # sensor reads that failed on the device


def decode_device_power(records: PowerRecords, *, chip: int | None = None, current_lsb_pa: int | None = None,
                        use_power_register: bool = True) -> DevicePower:
    """Session.read_power() -> power trace in seconds since the oldest sample (same clock as the timings).

    chip / current_lsb_pa default to what the firmware reports; when given they must agree with it.
    """
    chip = records.chip if chip is None else chip
    lsb = records.current_lsb_pa if current_lsb_pa is None else current_lsb_pa
    if (chip, lsb) != (records.chip, records.current_lsb_pa):
        raise FormicaryError(
            f"the firmware reports INA{records.chip} with Current_LSB {records.current_lsb_pa} pA, not "
            f"INA{chip} with {lsb} pA.", "leave chip/current_lsb_pa unset to use the device's own calibration.")
    if chip not in _CHIPS or lsb <= 0:
        raise FormicaryError(f"the device reports an unusable power sensor (chip {chip}, Current_LSB {lsb} pA).",
                             "check the FM_POWER_* build flags (docs/power.md).")
    if records.timer_hz <= 0:
        raise FormicaryError("the device reports a timer frequency of 0.", "update the firmware.")
    anchor = records.records[0].ticks if records.records else (records.starts[0] if records.starts else 0)
    t_ticks = _unwrap([r.ticks for r in records.records], anchor)
    starts = _unwrap(records.starts, anchor)
    t, p, cur, volt, overflowed = [], [], [], [], 0
    for r, tt in zip(records.records, t_ticks):
        bus, _shunt, c, pw, ovf = decode_registers(chip, lsb, r.raw_bus, r.raw_shunt, r.raw_current, r.raw_power)
        if ovf:
            overflowed += 1
            continue
        t.append(tt / records.timer_hz)
        cur.append(c)
        volt.append(bus)
        p.append(pw if use_power_register else c * bus)
    try:
        samples = PowerSamples(f"ina{chip}", "measured", np.array(t), np.array(p), current_a=np.array(cur),
                               voltage_v=np.array(volt))
    except ValueError as exc:
        raise FormicaryError(f"the device's power samples are not in time order ({exc}).",
                             "report this firmware bug.") from exc
    return DevicePower(samples, [s / records.timer_hz for s in starts], overflowed, records.dropped,
                       records.errors)


def device_energy(session: Session, run_result: RunResult, *, chip: int | None = None,
                  current_lsb_pa: int | None = None, use_power_register: bool = True,
                  min_duration_s: float | None = None, energy_floor_uj: float | None = None,
                  max_points: int = 2000) -> tuple[dict[str, Any], list[list[float]]] | None:
    """Energy per inference measured by the INA219/INA226 on the device's I2C, for the RUN just done.

    Call it right after `session.run(...)` returned `run_result` (before another RUN or LOAD_INPUT). Returns
    None when the firmware has no working power sensor (`session.info.power_sensor` is False); otherwise
    (`energy`, `power_samples`) for the bench JSON: `energy` is EnergyResult.to_json() with method "measured",
    a `source` naming the sensor, and a `sensor` dict (samples, dropped, overflowed, read errors, inferences
    covered); `power_samples` is [[t_s, watts], ...] since the oldest sample, decimated by averaging to at
    most `max_points`. The windows are the measured inferences, each from its start tick for its measured
    length; only inferences inside the sampled span count (a full ring on the device loses the oldest ones).
    """
    from formicary.power.energy import MLPERF_MIN_DURATION_S, energy_per_inference

    info = session.info if session.info is not None else session.hello()
    if not info.power_sensor:
        return None
    recs = session.read_power()
    if len(recs.starts) != len(run_result.ticks):
        raise FormicaryError(
            f"the device holds power data for {len(recs.starts)} inferences, the run had {len(run_result.ticks)}.",
            "call device_energy() right after the RUN it measures.")
    dp = decode_device_power(recs, chip=chip, current_lsb_pa=current_lsb_pa,
                             use_power_register=use_power_register)
    t = dp.samples.t_s
    windows = []
    if len(t) >= 2:
        for start, ticks in zip(dp.starts_s, run_result.ticks):
            end = start + ticks / recs.timer_hz
            if start >= t[0] and end <= t[-1]:
                windows.append(InferenceWindow(start, end, 1))
    if not windows:
        raise FormicaryError(
            f"the power samples ({len(t)}, {dp.dropped} overwritten, {dp.overflowed} overflowed, "
            f"{dp.read_errors} read errors) cover none of the {len(run_result.ticks)} inferences.",
            "run fewer inferences per RUN or build with a larger -DFM_POWER_RECORDS; check the sensor wiring.")
    chip_used = recs.chip
    source = (f"INA{chip_used} on device I2C, read by the firmware between inferences "
              f"(Current_LSB {recs.current_lsb_pa} pA, {'power register' if use_power_register else 'V x I'}, "
              f"{len(t)} samples)")
    res = energy_per_inference(dp.samples, windows, source=source,
                               min_duration_s=MLPERF_MIN_DURATION_S if min_duration_s is None else min_duration_s,
                               energy_floor_uj=energy_floor_uj)
    energy = res.to_json()
    energy["sensor"] = {"chip": f"INA{chip_used}", "current_lsb_pa": recs.current_lsb_pa, "samples": len(t),
                        "dropped": dp.dropped, "overflowed": dp.overflowed, "read_errors": dp.read_errors,
                        "inferences_covered": len(windows), "inferences_run": len(run_result.ticks)}
    trace = dp.samples.to_json(max_points)
    power_samples = [[tt, pw * 1e-3] for tt, pw in zip(trace["t"], trace["power"])]
    return energy, power_samples


def combine_device_energy(parts: list[tuple[dict[str, Any], list[list[float]]]], *,
                          max_points: int = 2000) -> tuple[dict[str, Any], list[list[float]]] | None:
    """Several RUNs' `device_energy()` results -> one bench `energy` dict and `power_samples`.

    Energy per inference is the total energy over all covered inferences / their number; durations, sample and
    drop counts add up. The traces are laid end to end (each RUN's starts where the previous one ended; the
    host I/O time between RUNs is not part of any trace), then decimated by averaging to `max_points`.
    """
    parts = [p for p in parts if p is not None]
    if not parts:
        return None
    n = sum(e["inferences"] for e, _ in parts)
    total_uj = sum(e["uj_per_inference"] * e["inferences"] for e, _ in parts)
    duration = sum(e["duration_s"] for e, _ in parts)
    first = parts[0][0]
    energy = dict(first)
    energy.update(uj_per_inference=total_uj / n, inferences=n, duration_s=duration,
                  mean_power_mw=(total_uj * 1e-3 / duration) if duration > 0 else 0.0)
    energy["meets_min_duration"] = duration >= first["min_duration_s"] * (1 - 1e-9)
    sensor = dict(first["sensor"])
    for key in ("samples", "dropped", "overflowed", "read_errors", "inferences_covered", "inferences_run"):
        sensor[key] = sum(e["sensor"][key] for e, _ in parts)
    sensor["runs"] = len(parts)
    energy["sensor"] = sensor
    energy["source"] = first["source"].rsplit(", ", 1)[0] + f", {sensor['samples']} samples over {len(parts)} RUNs)"
    trace: list[list[float]] = []
    offset = 0.0
    for _, tr in parts:
        if not tr:
            continue
        base = offset - tr[0][0]
        if trace:
            base = max(base, trace[-1][0] + 1e-9 - tr[0][0])  # strictly increasing across the joins
        trace.extend([t + base, p] for t, p in tr)
        offset = trace[-1][0]
    step = max(1, -(-len(trace) // max_points))
    if step > 1:
        m = len(trace) // step * step
        arr = np.asarray(trace[:m]).reshape(-1, step, 2).mean(axis=1)
        trace = [[round(float(t), 9), float(p)] for t, p in arr]
    return energy, trace
