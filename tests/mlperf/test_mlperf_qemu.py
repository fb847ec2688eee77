"""The MLPerf firmware mode on a QEMU virtual board with the MLPerf Tiny KWS model, built, started and driven by
`formicary mlperf --board` (formicary.mlperf.board): the real parser, port, runtime and generated model."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from formicary.boards import load_board

from tests.support.kws_figures import kws_instruction_band

pytestmark = [pytest.mark.qemu, pytest.mark.slow, pytest.mark.shared, pytest.mark.usefixtures("arm_qemu_tools"),
              pytest.mark.xdist_group("mlperf-qemu")]  # one worker builds the MLPerf firmware


@pytest.fixture(scope="module")
def mlperf_build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlperf_qemu") / "kws-mlperf"


@pytest.fixture(scope="module")
def kws_both_modes(mlperf_build_dir: Path, kws_model_path: Path, kws_data_dir: Path) -> dict:
    from formicary.build import build_model
    from formicary.mlperf.board import run_mlperf_on_board

    build_model(kws_model_path, "qemu-m4", mlperf_build_dir, firmware_mode="mlperf")
    return run_mlperf_on_board(mlperf_build_dir, "qemu-m4", kws_data_dir, mode="both", min_duration_s=1.0)


def test_kws_accuracy_mode_matches_tflm(kws_both_modes: dict) -> None:
    acc = kws_both_modes["accuracy"]
    # issue 4's reference: formicary-rt is bit-exact with TFLM, which gets 183/200 on these inputs
    assert acc["inputs"] == 200 and acc["correct"] == 183
    assert kws_both_modes["dut"]["name"] == "formicary"
    assert kws_both_modes["dut"]["model"] == kws_both_modes["firmware"]["model_hash"]


def test_kws_performance_mode_is_labelled_virtual(kws_both_modes: dict) -> None:
    perf = kws_both_modes["performance"]
    assert perf["meets_min_duration"] and perf["inferences"] >= 10
    assert "QEMU virtual time" in perf["latency"]["method"] and "estimate" in perf["latency_estimate"]["method"]
    # the count `formicary bench` reports for KWS on qemu-m4 with its kernel set (dsp: ~3.7 M instructions at -O2,
    # README), plus the MLPerf loop's own overhead: a band a wrong clock or a lost timestamp falls far outside
    lo, hi = kws_instruction_band(load_board("qemu-m4").kernels, overhead=200_000)
    assert lo < perf["latency_instructions"]["value"] < hi
    assert perf["latency_estimate"]["value"] == pytest.approx(perf["latency_instructions"]["value"] / 25.0)
    # energy: qemu-m4's power model (3.3 V x 6 mA, STM32F405 at 25 MHz) x that time, and labelled modelled
    e = perf["energy"]
    assert e["method"] == "modelled" and "qemu-m4" in e["source"]
    assert e["uj_per_inference"] == pytest.approx(3.3 * 6.0e-3 * perf["latency_estimate"]["value"], rel=1e-6)


def test_kws_performance_is_deterministic_across_boots(kws_both_modes: dict, mlperf_build_dir: Path,
                                                       kws_data_dir: Path) -> None:
    from formicary.mlperf.board import run_mlperf_on_board

    n = kws_both_modes["performance"]["inferences"]
    again = run_mlperf_on_board(mlperf_build_dir, "qemu-m4", kws_data_dir, mode="performance", n=n,
                                min_duration_s=1.0)
    # -icount: a fresh QEMU with the same firmware and input counts the same virtual time (µs resolution)
    assert again["performance"]["duration"]["value"] == pytest.approx(
        kws_both_modes["performance"]["duration"]["value"], abs=2e-6)
    assert again["firmware"]["built"] is False


def test_cli_builds_starts_and_runs_the_model(kws_both_modes: dict, kws_model_path: Path, kws_data_dir: Path,
                                              tmp_path: Path) -> None:
    import os

    # a cold build cache (the user's default one, not the test run's): really built here
    env = {k: v for k, v in os.environ.items() if k != "FORMICARY_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    proc = subprocess.run([sys.executable, "-c", "from formicary.cli import main; main()", "mlperf",
                           str(kws_model_path), str(kws_data_dir), "--board", "qemu-m4", "--limit", "20",
                           "--runs", "5", "--json"], capture_output=True, text=True, timeout=600, check=False,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["board"] == "qemu-m4" and out["virtual"] is True and out["firmware"]["built"] is True
    assert out["performance"]["inferences"] == 5
    got = [p["prediction"] for p in out["accuracy"]["predictions"]]
    assert got == [p["prediction"] for p in kws_both_modes["accuracy"]["predictions"][:20]]
    assert out["dut"]["model"] == kws_both_modes["dut"]["model"]
