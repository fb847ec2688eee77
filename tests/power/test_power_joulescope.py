"""JoulescopeSource against a fake Joulescope: the Device API subset formicary uses (v1 API), with parameter
names and values validated against the real `joulescope` package's parameter table. No instrument here."""
from __future__ import annotations

import numpy as np
import pytest
from formicary.power.energy import energy_per_inference, windows_from_gpio
from formicary.power.joulescope import JoulescopeSource

parameters_v1 = pytest.importorskip("joulescope.parameters_v1", reason="joulescope package not installed")


class FakeStreamBuffer:
    def __init__(self, dev: FakeJoulescope) -> None:
        self.dev = dev

    @property
    def sample_id_range(self) -> tuple[int, int]:
        return self.dev.first_id, self.dev.first_id + self.dev.produced

    def samples_get(self, start: int, stop: int, fields: list[str]) -> dict:
        i0, i1 = start - self.dev.first_id, stop - self.dev.first_id
        sig = {}
        for f in fields:
            sig[f] = {"value": self.dev.trace[f][i0:i1], "units": ""}
        return {"time": {"sample_id_range": {"value": [start, stop]},
                         "sampling_frequency": {"value": self.dev.fs}}, "signals": sig}


class FakeJoulescope:
    """Scripted 0.6 s trace at 100 kHz: 1 mA idle, two 100 ms windows at 25 mA with IN0 high, 3.3 V, one
    USB-dropped stretch (NaN) in the idle part, as the real stream buffer reports missing samples."""

    def __init__(self) -> None:
        self.fs = 100_000
        self.params: dict[str, object] = {}
        self.opened = self.streaming = False
        self.first_id = 1_000  # the buffer does not start at 0 on a real device either
        n = int(0.6 * self.fs)
        t = np.arange(n) / self.fs
        cur = np.full(n, 1e-3, dtype=np.float32)
        gpi = np.zeros(n, dtype=np.uint8)
        for a in (0.1, 0.35):
            on = (t >= a) & (t < a + 0.1)
            cur[on] = 25e-3
            gpi[on] = 1
        cur[(t > 0.25) & (t < 0.26)] = np.nan
        volt = np.full(n, 3.3, dtype=np.float32)
        self.trace = {"current": cur, "voltage": volt, "power": cur * volt, "current_lsb": gpi}
        self.produced = 0
        self.stream_buffer = FakeStreamBuffer(self)

    def open(self) -> None:
        self.opened = True

    def close(self) -> None:
        self.opened = False

    def parameter_set(self, name: str, value: object) -> None:
        assert self.opened, "parameters need an open device"
        parameters_v1.name_to_value(name, value)  # KeyError like the real device on a bad name/value
        self.params[name] = value

    def start(self, stop_fn=None, duration=None, contiguous_duration=None) -> None:
        self.streaming = True

    def stop(self) -> None:
        self.streaming = False
        self.produced = self.trace["current"].size


def test_joulescope_source_gpio_windows() -> None:
    dev = FakeJoulescope()
    src = JoulescopeSource(device=dev, sampling_frequency=100_000)
    src.start()
    assert dev.streaming and dev.params["current_lsb"] == "gpi0" and dev.params["sensor_power"] == "on"
    samples = src.stop()
    assert not dev.opened and samples.label == "measured"
    assert len(samples) == 60_000 - 999  # NaN samples dropped
    wins = windows_from_gpio(samples, 20)
    assert len(wins) == 2
    assert wins[0].start_s == pytest.approx(1_000 / 100_000 + 0.1, abs=2e-5)
    res = energy_per_inference(samples, wins, min_duration_s=0.2)
    # 25 mA x 3.3 V x 0.2 s / 40 inferences = 412.5 µJ
    assert res.uj_per_inference == pytest.approx(412.5, rel=1e-3)
    assert res.method == "measured" and res.source == "joulescope"


def test_joulescope_rejects_bad_parameter() -> None:
    dev = FakeJoulescope()
    src = JoulescopeSource(device=dev, buffer_duration_s=17)  # not an allowed buffer length
    with pytest.raises(KeyError):
        src.start()
