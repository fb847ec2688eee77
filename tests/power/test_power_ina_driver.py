"""INA219/INA226 firmware driver on the host against simulated register files, and the host-side decoder."""
from __future__ import annotations

import ctypes
import subprocess
from pathlib import Path

import pytest
from formicary.power.energy import energy_per_inference
from formicary.power.ina import INA_RECORD, InaStreamSource, decode_registers
from formicary.power.sources import InferenceWindow


def test_c_driver_against_simulated_chips(ina_test_binary: Path) -> None:
    # datasheet calibration examples, a grid against the formula, readings, conversion-ready, faults (ASan/UBSan)
    proc = subprocess.run([str(ina_test_binary)], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok ") and int(proc.stdout.split()[1]) > 300


class Sample(ctypes.Structure):
    _fields_ = [("bus_uv", ctypes.c_int32), ("shunt_nv", ctypes.c_int32), ("current_ua", ctypes.c_int32),
                ("power_uw", ctypes.c_uint32), ("raw_bus", ctypes.c_uint16), ("raw_current", ctypes.c_uint16),
                ("raw_power", ctypes.c_uint16), ("raw_shunt", ctypes.c_int16)]


@pytest.mark.parametrize("chip,shunt_uohm,amps,bus_v", [
    (219, 100_000, 1.234, 5.0), (219, 100_000, -0.25, 3.3), (219, 10_000, 7.5, 12.0),
    (226, 20_000, 1.234, 5.0), (226, 2_000, 12.0, 24.0), (226, 10_000_000, 0.0042, 1.8)])
def test_host_decoder_matches_c_driver(ina_shared_lib: Path, chip: int, shunt_uohm: int, amps: float,
                                       bus_v: float) -> None:
    lib = ctypes.CDLL(str(ina_shared_lib))
    lib.ina_sample.argtypes = [ctypes.c_int, ctypes.c_double, ctypes.c_double, ctypes.c_uint32, ctypes.c_uint32,
                               ctypes.POINTER(Sample), ctypes.POINTER(ctypes.c_uint32)]
    s, lsb = Sample(), ctypes.c_uint32()
    max_ua = int(abs(amps) * 1.5e6) + 1000
    rc = lib.ina_sample(chip, amps * shunt_uohm * 1e-6, bus_v, shunt_uohm, max_ua, ctypes.byref(s), ctypes.byref(lsb))
    assert rc == 0
    raw_current = ctypes.c_int16(s.raw_current).value
    bus, shunt, cur, pwr, ovf = decode_registers(chip, lsb.value, s.raw_bus, s.raw_shunt, raw_current, s.raw_power)
    assert not ovf
    assert bus == pytest.approx(s.bus_uv * 1e-6, abs=1e-9)
    assert shunt == pytest.approx(s.shunt_nv * 1e-9, abs=1e-12)
    assert cur == pytest.approx(s.current_ua * 1e-6, abs=1.01e-6)   # driver truncates to whole µA
    assert pwr == pytest.approx(s.power_uw * 1e-6, abs=1.01e-6)
    # and both are the physical values within the chip's resolution
    assert cur == pytest.approx(amps, abs=3 * lsb.value * 1e-12 + 0.005 * abs(amps))
    assert bus == pytest.approx(bus_v, abs=4e-3)


def test_stream_source_energy_and_wrap() -> None:
    # INA226, Current_LSB 100 µA: 200 mA at 5 V during a 10 ms window sampled every 1 ms (firmware clock)
    lsb_pa = 100_000_000
    src = InaStreamSource(226, lsb_pa)
    src.start()
    start_us = 2 ** 32 - 5_000  # the device clock wraps mid-trace
    recs = []
    for k in range(30):
        t_us = (start_us + k * 1000) % 2 ** 32
        active = 10 <= k < 20
        cur_raw = 2000 if active else 100            # 200 mA / 10 mA
        bus_raw = 4000                                # 5.000 V at 1.25 mV
        pwr_raw = cur_raw * bus_raw // 20000          # what the chip computes
        recs.append(INA_RECORD.pack(t_us, bus_raw, 0, cur_raw, pwr_raw))
    src.feed(b"".join(recs[:7]))
    src.feed(recs[7:])
    samples = src.stop()
    assert samples.label == "measured" and len(samples) == 30
    t0 = samples.t_s[0]
    assert samples.t_s[-1] - t0 == pytest.approx(0.029)
    win = [InferenceWindow(t0 + 0.010, t0 + 0.019, 3)]
    res = energy_per_inference(samples, win, min_duration_s=0.0)
    # power register: 400 LSB x 25 x 100 µA = 1.0 W over 9 ms = 9 mJ / 3 inferences
    assert res.uj_per_inference == pytest.approx(3000.0, rel=1e-9)
    assert res.to_json()["method"] == "measured"
    with pytest.raises(Exception, match="whole number"):
        src.feed(b"\x00" * 5)


def test_stream_source_drops_overflowed_ina219_samples() -> None:
    src = InaStreamSource(219, 100_000_000)
    src.start()
    src.feed(INA_RECORD.pack(0, (1250 << 3) | 0b11, 100, 50, 10) + INA_RECORD.pack(10, (1250 << 3) | 0b10, 100, 50, 10)
             + INA_RECORD.pack(20, (1250 << 3) | 0b10, 100, 50, 10))
    s = src.stop()
    assert src.overflows == 1 and len(s) == 2
    assert s.voltage_v[0] == pytest.approx(5.0)
