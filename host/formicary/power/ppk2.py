"""Nordic Power Profiler Kit II through `ppk2-api`.

The PPK2 streams 4-byte samples at 100 kHz: bits 0..13 ADC, 14..16 measurement range, 24..31 the eight digital
inputs (D0..D7). The DUT's sync line goes to D0 (configurable), which `windows_from_gpio` turns into inference
windows. Source-meter mode powers the DUT at `supply_mv`, so power = current x supply voltage; in ampere-meter
mode pass the DUT's supply voltage as `supply_mv`. Not run on real hardware here: tested through the real
`ppk2-api` code against a simulated PPK2 on a pseudo-terminal that speaks its command/metadata/sample protocol.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Literal

import numpy as np
from formicary.power.sources import PowerSamples, PowerSource
from formicary.errors import FormicaryError

SAMPLE_RATE_HZ = 100_000


def _ppk2_api() -> Any:
    try:
        from ppk2_api.ppk2_api import PPK2_API
    except ImportError as exc:
        raise FormicaryError("the `ppk2-api` package is not installed",
                             "pip install 'formicary[power]' (or pip install ppk2-api).") from exc
    return PPK2_API


class Ppk2Source(PowerSource):
    label = "measured"
    name = "ppk2"

    def __init__(self, port: str | None = None, supply_mv: int = 3300,
                 mode: Literal["source", "ampere"] = "source", sync_channel: int = 0,
                 poll_s: float = 0.01) -> None:
        if not 0 <= sync_channel <= 7:
            raise ValueError("sync_channel is a PPK2 digital input 0..7")
        self.port, self.supply_mv, self.mode = port, supply_mv, mode
        self.sync_channel, self.poll_s = sync_channel, poll_s
        self._api: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._current: list[float] = []
        self._bits: list[int] = []
        self._lock = threading.Lock()
        self._running = False
        self._error: BaseException | None = None

    def _open(self) -> Any:
        api_cls = _ppk2_api()
        port = self.port
        if port is None:
            found = api_cls.list_devices()
            if len(found) != 1:
                raise FormicaryError(f"found {len(found)} PPK2 devices", "pass the PPK2 serial port explicitly.")
            port = found[0]
        try:
            api = api_cls(port, timeout=1, write_timeout=1)
        except Exception as exc:  # pyserial raises SerialException subclasses of OSError/IOError
            raise FormicaryError(f"cannot open PPK2 on {port}: {exc}", "check the USB cable and the port name.") from exc
        if not api.get_modifiers():
            raise FormicaryError(f"no PPK2 calibration metadata from {port}",
                                 "is this the PPK2's data port? Unplug and replug the PPK2.")
        return api

    def start(self) -> None:
        self._api = api = self._open()
        if self.mode == "source":
            api.use_source_meter()
        else:
            api.use_ampere_meter()
        api.set_source_voltage(self.supply_mv)
        if self.mode == "source":
            api.toggle_DUT_power("ON")
        self._current, self._bits, self._marker_list = [], [], []
        self._stop.clear()
        api.start_measuring()
        self._running = True
        self._thread = threading.Thread(target=self._reader, name="ppk2-reader", daemon=True)
        self._thread.start()

    def _reader(self) -> None:
        try:
            while not self._stop.is_set():
                self._drain()
                time.sleep(self.poll_s)
            self._drain()
        except BaseException as exc:  # noqa: BLE001 - surfaced by stop()
            self._error = exc

    def _drain(self) -> None:
        raw = self._api.get_data()
        if raw:
            samples_ua, bits = self._api.get_samples(raw)
            with self._lock:
                self._current.extend(samples_ua)
                self._bits.extend(bits)

    def now_s(self) -> float:
        with self._lock:
            return len(self._current) / SAMPLE_RATE_HZ  # markers in sample time

    def stop(self) -> PowerSamples:
        api = self._api
        api.stop_measuring()
        time.sleep(max(self.poll_s, 0.02))
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._running = False
        try:
            api.ser.close()
        except Exception:  # noqa: BLE001, S110 - closing a vanished port must not hide the data
            pass
        if self._error is not None:
            raise FormicaryError(f"PPK2 stream failed: {self._error}", "check the USB connection.") from self._error
        with self._lock:
            cur = np.asarray(self._current, dtype=np.float64) * 1e-6  # ppk2-api returns microamps
            bits = np.asarray(self._bits, dtype=np.uint8)
        n = min(cur.size, bits.size)
        cur, bits = cur[:n], bits[:n]
        t = np.arange(n) / SAMPLE_RATE_HZ
        volt = np.full(n, self.supply_mv / 1000.0)
        gpio = (bits >> self.sync_channel) & 1
        return PowerSamples(self.name, "measured", t, cur * volt, current_a=cur, voltage_v=volt, gpio=gpio,
                            markers=list(self._markers()))
