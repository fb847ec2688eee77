"""The fake model the device tests run (tests/device/fixtures/fake_model) and a transport to a host-built device
process speaking the protocol on stdin/stdout."""
from __future__ import annotations

import os
import select
import subprocess
from pathlib import Path

import numpy as np

FAKE_MODEL_DIR = Path(__file__).resolve().parents[1] / "device" / "fixtures" / "fake_model"
FAKE_IN, FAKE_OUT = 1000, 12


def fake_expected(x: np.ndarray) -> np.ndarray:
    """What tests/device/fixtures/fake_model/fm_model.c computes, in numpy."""
    x = np.asarray(x, dtype=np.int8).astype(np.int64).reshape(-1)
    i = np.arange(x.size)[:, None]
    j = np.arange(FAKE_OUT)[None, :]
    w = ((7 * i + 13 * j) % 17) - 8
    acc = (x[:, None] * w).sum(axis=0)
    return np.clip((acc + 128) >> 8, -128, 127).astype(np.int8)


def fake_input(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-128, 128, FAKE_IN, dtype=np.int64).astype(np.int8)


class PipeTransport:
    """Transport to a host process speaking the protocol on stdin/stdout."""

    def __init__(self, argv: list[str]) -> None:
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0:abort_on_error=1")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self.url = "pipe"

    def write(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def read(self, max_bytes: int, timeout: float) -> bytes:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], max(timeout, 0))
        if not ready:
            return b""
        data = os.read(self.proc.stdout.fileno(), max_bytes)
        if not data:
            from formicary.errors import FormicaryError
            raise FormicaryError(f"host device exited with code {self.proc.wait()}")
        return data

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()  # type: ignore[union-attr]
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        # a sanitizer report makes the process exit non-zero: fail loudly
        assert self.proc.returncode == 0, f"host device exited with {self.proc.returncode} (sanitizer report?)"
