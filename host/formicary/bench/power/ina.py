"""Host side of the INA219/INA226 sensor read by the firmware (firmware/sensors/fm_ina.c).

The firmware streams raw registers with its own microsecond timestamp, so samples and inference windows share
one clock (no host-side sync needed). Record (little-endian, 12 bytes, `INA_RECORD`):
    uint32 t_us, uint16 bus, int16 shunt, int16 current, uint16 power
plus, once per session, the chip (219/226) and Current_LSB in picoamps (from fm_ina_calibrate).
The decoding below mirrors the datasheet LSBs used by the C driver; a test checks both agree.
"""
from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from formicary.bench.power.sources import PowerSamples, PowerSource
from formicary.errors import FormicaryError

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
