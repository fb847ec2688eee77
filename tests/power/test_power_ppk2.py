"""Ppk2Source through the real `ppk2-api` code against a simulated PPK2 on a pseudo-terminal."""
from __future__ import annotations

import time

import numpy as np
import pytest
from formicary.power.energy import energy_per_inference, windows_from_gpio

pytest.importorskip("ppk2_api.ppk2_api", reason="ppk2-api package not installed")

from formicary.power.ppk2 import Ppk2Source

from tests.support.fake_ppk2 import FakePpk2

FS = 100_000


def waveform(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # 2 mA idle; inference windows of 5000 samples (50 ms) at 20 mA starting at samples 5000 and 15000, D0 high
    active = ((idx >= 5_000) & (idx < 10_000)) | ((idx >= 15_000) & (idx < 20_000))
    return np.where(active, 20e-3, 2e-3), active.astype(np.uint8)


def test_ppk2_source_streams_and_syncs_on_d0() -> None:
    fake = FakePpk2(waveform)
    try:
        src = Ppk2Source(port=fake.port, supply_mv=3300, mode="source", sync_channel=0)
        src.start()
        deadline = time.monotonic() + 30
        while src.now_s() < 0.26 and time.monotonic() < deadline:
            time.sleep(0.02)
        samples = src.stop()
    finally:
        fake.close()
    cmds = [c for c, _ in fake.commands]
    assert cmds[0] == 0x19 and 0x06 in cmds and cmds[-1] == 0x07           # metadata, start ... stop
    assert (0x11, bytes([2])) in fake.commands                              # source-meter mode
    assert (0x0D, bytes([3 + (3300 - 800 + 32) // 256, (3300 - 800 + 32) % 256])) in fake.commands
    assert (0x0C, bytes([1])) in fake.commands                              # DUT power on
    assert len(samples) >= 20_000 and samples.label == "measured"
    wins = windows_from_gpio(samples, 5)
    assert [(round(w.start_s * FS), round(w.end_s * FS)) for w in wins] == [(5_000, 10_000), (15_000, 20_000)]
    res = energy_per_inference(samples, wins, min_duration_s=0.1)
    # 20 mA x 3.3 V x 0.1 s / 10 inferences = 660 µJ; ADC quantisation (~4 µA in range 2) is far below 0.5 %
    assert res.uj_per_inference == pytest.approx(660.0, rel=5e-3)
    idle = samples.current_a[1_000:4_000]
    assert np.median(idle) == pytest.approx(2e-3, rel=5e-3)


def test_ppk2_missing_port_is_a_clear_error() -> None:
    from formicary.errors import FormicaryError
    with pytest.raises(FormicaryError, match="cannot open PPK2"):
        Ppk2Source(port="/dev/nonexistent-ppk2").start()
