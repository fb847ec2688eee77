"""Joulescope (JS110/JS220) through the `joulescope` package (v1 API, pyjoulescope_driver).

Power is the instrument's own current x voltage; the DUT's sync line goes to digital input IN0, recorded as the
`current_lsb` field of the sample stream (Joulescope's name for IN0 in the v0-compatible API), which
`windows_from_gpio` turns into inference windows. Not run on real hardware here: tested against a fake device
object implementing the part of the Device API used below (open/parameter_set/start/stop/stream_buffer).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from formicary.power.sources import PowerSamples, PowerSource
from formicary.errors import FormicaryError

FIELDS = ["current", "voltage", "power", "current_lsb"]


def _import_joulescope() -> Any:
    try:
        import joulescope
    except ImportError as exc:
        raise FormicaryError("the `joulescope` package is not installed",
                             "pip install 'formicary[power]' (or pip install joulescope).") from exc
    return joulescope


class JoulescopeSource(PowerSource):
    label = "measured"
    name = "joulescope"

    def __init__(self, device: Any = None, sampling_frequency: int = 100_000,
                 buffer_duration_s: int = 30) -> None:
        self._device = device  # injected in tests; otherwise the one connected instrument
        self.sampling_frequency = sampling_frequency
        self.buffer_duration_s = buffer_duration_s
        self._running = False

    def start(self) -> None:
        if self._device is None:
            js = _import_joulescope()
            try:
                self._device = js.scan_require_one(config="auto")
            except RuntimeError as exc:
                raise FormicaryError(f"no single Joulescope found: {exc}",
                                     "connect exactly one Joulescope over USB.") from exc
        dev = self._device
        dev.open()
        dev.parameter_set("sensor_power", "on")
        dev.parameter_set("i_range", "auto")
        dev.parameter_set("sampling_frequency", self.sampling_frequency)
        dev.parameter_set("buffer_duration", self.buffer_duration_s)  # 15, 30, 60 ... seconds
        dev.parameter_set("current_lsb", "gpi0")  # IN0 (the DUT sync line) into the current LSB field
        self._marker_list = []
        dev.start(stop_fn=None, duration=None)
        self._running = True

    def _sample_time_s(self) -> float:
        _, end_id = self._device.stream_buffer.sample_id_range
        return end_id / float(self.sampling_frequency)

    def now_s(self) -> float:
        # markers in the instrument's time base: the id of the newest sample
        return self._sample_time_s()

    def stop(self) -> PowerSamples:
        dev = self._device
        dev.stop()
        self._running = False
        try:
            start_id, end_id = dev.stream_buffer.sample_id_range
            data = dev.stream_buffer.samples_get(start_id, end_id, fields=FIELDS)
        finally:
            dev.close()
        sig = data["signals"]
        cur = np.asarray(sig["current"]["value"], dtype=np.float64)
        volt = np.asarray(sig["voltage"]["value"], dtype=np.float64)
        power = np.asarray(sig["power"]["value"], dtype=np.float64) if "power" in sig else cur * volt
        gpio = np.asarray(sig["current_lsb"]["value"]).astype(np.uint8) if "current_lsb" in sig else None
        t = (start_id + np.arange(cur.size)) / float(self.sampling_frequency)
        ok = np.isfinite(cur) & np.isfinite(volt) & np.isfinite(power)  # NaN = samples the USB link lost
        if not ok.all():
            t, cur, volt, power = t[ok], cur[ok], volt[ok], power[ok]
            gpio = gpio[ok] if gpio is not None else None
        return PowerSamples(self.name, "measured", t, power, current_a=cur, voltage_v=volt, gpio=gpio,
                            markers=list(self._markers()))
