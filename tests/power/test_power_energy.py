"""Energy integration, window detection and the modelled source (no instrument, no TensorFlow)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from formicary.power.energy import (
    energy_per_inference,
    integrate_j,
    required_inferences,
    windows_from_gpio,
    windows_from_markers,
)
from formicary.power.modelled import ModelledSource, modelled_energy
from formicary.power.sources import InferenceWindow, PowerSamples
from formicary.errors import FormicaryError


@dataclass(frozen=True)
class Power:
    supply_v: float
    active_current_ma: float
    source: str


def test_integrate_interpolates_window_edges() -> None:
    t = np.linspace(0.0, 1.0, 11)
    s = PowerSamples("x", "measured", t, 2.0 * t)  # P = 2t W -> E(a,b) = b^2 - a^2
    assert integrate_j(s, 0.25, 0.75) == pytest.approx(0.75 ** 2 - 0.25 ** 2)
    assert integrate_j(s, 0.0, 1.0) == pytest.approx(1.0)
    with pytest.raises(FormicaryError, match="outside the power trace"):
        integrate_j(s, 0.5, 1.5)


def test_required_inferences_follows_mlperf_rule() -> None:
    assert required_inferences(0.05) == 200          # 10 s / 50 ms
    assert required_inferences(5.0) == 10            # at least 10 inferences
    assert required_inferences(0.003, min_duration_s=1.0, min_inferences=1) == 334
    with pytest.raises(ValueError):
        required_inferences(0.0)


def _trace(level_mode: bool) -> PowerSamples:
    fs = 10_000
    t = np.arange(0, 2.0, 1 / fs)
    gpio = np.zeros(t.size, dtype=np.uint8)
    p = np.full(t.size, 0.001)
    for a, b in [(0.2, 0.7), (1.0, 1.5)]:
        on = (t >= a) & (t < b)
        p[on] = 0.030
        if level_mode:
            gpio[on] = 1
        else:  # active-low 1 ms timestamp pulses at start and end
            gpio[:] = gpio  # keep dtype
    if not level_mode:
        gpio[:] = 1
        for edge in (0.2, 0.7, 1.0, 1.5):
            gpio[(t >= edge) & (t < edge + 0.001)] = 0
    return PowerSamples("sim", "measured", t, p, gpio=gpio)


def test_windows_from_gpio_level_and_pulse() -> None:
    for level in (True, False):
        s = _trace(level)
        wins = windows_from_gpio(s, 25, mode="level" if level else "pulse", active_low=not level)
        assert [(round(w.start_s, 4), round(w.end_s, 4)) for w in wins] == [(0.2, 0.7), (1.0, 1.5)]
        res = energy_per_inference(s, wins, min_duration_s=10.0)
        # 30 mW x 1 s / 50 inferences = 600 µJ (edges interpolate against the idle samples: < 0.1 % off)
        assert res.uj_per_inference == pytest.approx(600.0, rel=1e-3)
        assert not res.meets_min_duration and res.to_json()["meets_min_duration"] is False
    with pytest.raises(FormicaryError, match="expected 3"):
        windows_from_gpio(_trace(True), [1, 2, 3])


def test_windows_from_markers() -> None:
    s = _trace(True)
    s.markers = [("start", 0.2), ("stop", 0.7)]
    res = energy_per_inference(s, windows_from_markers(s, 10), min_duration_s=0.5)
    assert res.uj_per_inference == pytest.approx(30e-3 * 0.5 / 10 * 1e6, rel=1e-3)
    assert res.meets_min_duration
    s.markers = [("start", 0.2)]
    with pytest.raises(FormicaryError, match="pair up"):
        windows_from_markers(s, 10)


def test_modelled_energy_is_power_times_time_and_says_so() -> None:
    power = Power(3.3, 10.0, "datasheet table 5")  # 33 mW
    # 250_000 instructions at 25 MHz = 10 ms each -> 330 µJ
    out = modelled_energy(power, 25_000_000, [250_000] * 5, board_name="qemu-m4", energy_floor_uj=12.5)
    assert out["method"] == "modelled" and out["unit"] == "uJ"
    assert out["uj_per_inference"] == pytest.approx(330.0)
    assert out["inferences"] == 5 and out["energy_floor_uj"] == 12.5
    assert "qemu-m4" in out["source"] and "datasheet table 5" in out["source"]
    src = ModelledSource(power, 25_000_000)
    src.start()
    src.add_inferences([100_000, 300_000])
    samples = src.stop()
    assert samples.label == "modelled"
    js = samples.to_json()
    assert js["method"] == "modelled" and js["power"][0] == pytest.approx(33.0)
    res = energy_per_inference(samples, src.windows(), min_duration_s=0)
    assert res.uj_per_inference == pytest.approx(33e-3 * 0.016 / 2 * 1e6)
    with pytest.raises(FormicaryError, match="no power model"):
        ModelledSource(None, 25_000_000, "x")


def test_power_samples_json_decimates() -> None:
    t = np.arange(10_000) / 1000.0
    s = PowerSamples("sim", "measured", t, np.full(t.size, 0.002))
    js = s.to_json(max_points=100)
    assert len(js["t"]) == 100 and js["decimation"] == 100 and js["power"][3] == pytest.approx(2.0)
    with pytest.raises(ValueError):
        PowerSamples("bad", "measured", [0.0, 0.0], [1.0, 1.0])


def test_window_dataclass() -> None:
    assert InferenceWindow(1.0, 1.5, 3).duration_s == 0.5


def test_modelled_energy_from_a_board_definition() -> None:
    from formicary.boards import load_board

    board = load_board("qemu-stm32f405")
    if board.power is None:
        pytest.skip("qemu-stm32f405 has no [power] table yet")
    out = modelled_energy(board.power, board.clock_hz, [board.clock_hz // 100] * 4, board.name)  # 10 ms each
    assert out["uj_per_inference"] == pytest.approx(board.power.supply_v * board.power.active_current_ma * 10.0)
    assert out["method"] == "modelled" and board.power.source in out["source"]
