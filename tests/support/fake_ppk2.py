"""A simulated Nordic PPK2 on a pseudo-terminal, speaking the protocol `ppk2-api` uses over USB CDC serial:
single-byte commands with arguments (GET_META_DATA 0x19 -> calibration text ending in "END",
REGULATOR_SET 0x0D b1 b2, SET_POWER_MODE 0x11 m, DEVICE_RUNNING_SET 0x0C on, AVERAGE_START 0x06,
AVERAGE_STOP 0x07) and, while measuring, a stream of 4-byte little-endian samples at 100 kHz:
bits 0..13 ADC code, 14..16 measurement range, 18..23 a counter, 24..31 the digital inputs D0..D7.

The waveform is defined per sample index (current in amps, D0 level), so what ppk2-api decodes is exactly
predictable whatever the host's scheduling. Calibration: R per range as below, gain 1, offset 0.
"""
from __future__ import annotations

import os
import select
import threading
import tty
from collections.abc import Callable

import numpy as np

R = {0: 1031.64, 1: 101.65, 2: 10.15, 3: 0.94, 4: 0.043}
ADC_MULT = 1.8 / 163840
ARG_BYTES = {0x19: 0, 0x06: 0, 0x07: 0, 0x0D: 2, 0x11: 1, 0x0C: 1, 0x20: 0}
METADATA = ("Calibrated: 0\n" + "".join(f"R{k}: {v}\n" for k, v in R.items())
            + "".join(f"GS{k}: 0\nGI{k}: 1\nO{k}: 0\nS{k}: 0\nI{k}: 0\nUG{k}: 1\n" for k in R)
            + "HW: 9173\nIA: 56\nEND\n")


def encode(current_a: np.ndarray, logic: np.ndarray, counter0: int) -> bytes:
    """Samples as the PPK2 sends them, each in the lowest range whose 14-bit ADC holds it."""
    out = np.zeros(current_a.size, dtype=np.uint32)
    done = np.zeros(current_a.size, dtype=bool)
    for rng in range(5):
        code = np.rint(current_a * R[rng] / ADC_MULT / 4.0)
        fits = ~done & (code < 2 ** 14) & (code >= 0)
        if rng == 4:
            fits = ~done
            code = np.clip(code, 0, 2 ** 14 - 1)
        out[fits] = code[fits].astype(np.uint32) | (rng << 14)
        done |= fits
    counter = (np.arange(current_a.size, dtype=np.uint32) + counter0) & 0x3F
    out |= counter << 18
    out |= logic.astype(np.uint32) << 24
    return out.astype("<u4").tobytes()


class FakePpk2:
    def __init__(self, waveform: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], chunk: int = 1000,
                 period_s: float = 0.01) -> None:
        self.waveform, self.chunk, self.period_s = waveform, chunk, period_s
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.port = os.ttyname(self.slave)
        self.commands: list[tuple[int, bytes]] = []
        self.measuring = False
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pending = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], self.period_s)
            if ready:
                try:
                    pending += os.read(self.master, 4096)
                except OSError:
                    return
                while pending:
                    cmd = pending[0]
                    need = ARG_BYTES.get(cmd, 0)
                    if len(pending) < 1 + need:
                        break
                    args, pending = pending[1:1 + need], pending[1 + need:]
                    self.commands.append((cmd, args))
                    if cmd == 0x19:
                        os.write(self.master, METADATA.encode())
                    elif cmd == 0x06:
                        self.measuring = True
                    elif cmd == 0x07:
                        self.measuring = False
            if self.measuring:
                idx = np.arange(self.sent, self.sent + self.chunk)
                cur, logic = self.waveform(idx)
                data = encode(cur, logic, self.sent)
                try:
                    os.write(self.master, data)  # blocks when the host lags: the stream is never lossy here
                except OSError:
                    return
                self.sent += self.chunk

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass
