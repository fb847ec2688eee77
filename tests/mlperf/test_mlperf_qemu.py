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
def kws_mlperf_elf(mlperf_build_dir: Path, kws_model_path: Path) -> Path:
    from formicary.build import build_model

    return build_model(kws_model_path, "qemu-m4", mlperf_build_dir, firmware_mode="mlperf").elf


@pytest.fixture(scope="module")
def kws_both_modes(kws_mlperf_elf: Path, mlperf_build_dir: Path, kws_data_dir: Path) -> dict:
    from formicary.mlperf.board import run_mlperf_on_board

    return run_mlperf_on_board(mlperf_build_dir, "qemu-m4", kws_data_dir, mode="both", min_duration_s=1.0)


def test_kws_accuracy_mode_matches_tflm(kws_both_modes: dict) -> None:
    acc = kws_both_modes["accuracy"]
    # issue 4's reference: formicary-rt is bit-exact with TFLM, which gets 183/200 on these inputs
    assert acc["inputs"] == 200 and acc["correct"] == 183
    assert kws_both_modes["dut"]["name"] == "formicary"
    # m-model-[kws01]: the EEMBC id the MLCommons runner keys its test scripts by; the hash on its own line
    assert kws_both_modes["dut"]["model"] == "kws01" == kws_both_modes["firmware"]["mlperf_model_id"]
    assert kws_both_modes["dut"]["model_hash"] == kws_both_modes["firmware"]["model_hash"]


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


@pytest.fixture
def runner_pty(kws_mlperf_elf: Path, tmp_path: Path):
    """The MLPerf firmware on a detached qemu-m4 (as `formicary flash --firmware mlperf` starts it), reached through
    a pty made by socat, as docs/mlperf.md tells users of the official runner to do."""
    import os
    import shutil
    import signal
    import time

    from formicary.device.qemu import launch_detached

    if shutil.which("socat") is None:
        pytest.skip("socat is not installed (apt-get install socat): it makes the pty the official runner opens")
    q = launch_detached("qemu-m4", kws_mlperf_elf)
    link = tmp_path / "ttyDUT"
    socat = subprocess.Popen(["socat", f"pty,raw,echo=0,link={link}", f"tcp:127.0.0.1:{q.url.rsplit(':', 1)[1]}"],
                             start_new_session=True, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not link.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert link.exists(), "socat made no pty"
        # A user starts the runner on a board that has booted: its banner is out before the runner opens the port
        # (and pyserial's open discards it). Wait for the banner here, so the client below sees what that user's
        # runner sees, whatever the timing of this machine.
        fd = os.open(link, os.O_RDONLY | os.O_NOCTTY)
        try:
            seen = b""
            while b"m-ready" not in seen and time.monotonic() < deadline:
                seen += os.read(fd, 256)
        finally:
            os.close(fd)
        assert b"m-init-done" in seen, seen
        yield link
    finally:
        for pid in (socat.pid, q.pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        socat.wait(timeout=10)


def test_runner_style_client_through_a_pty(runner_pty: Path, kws_both_modes: dict, kws_data_dir: Path) -> None:
    """The MLCommons runner's side of the protocol, as it behaves on the wire (tests/support/eembc_runner_client.py):
    identification keys its test scripts, inputs go in 31-byte `db` commands, `infer N W` results parse."""
    from tests.support.eembc_runner_client import RunnerStyleDut

    dut = RunnerStyleDut(str(runner_pty))
    try:
        dut.identify()
        assert dut.name == "formicary"
        assert dut.profile == "MLPerf Tiny v1.0 / formicary-rt"
        # the runner does `Script(test_script.get(dut.get_model()))`: the model string must be a test-script key
        test_scripts = {"kws01": {"model": "kws01"}, "vww01": {}, "ic01": {}, "ad01": {}}
        assert dut.model == "kws01" and test_scripts.get(dut.model) is not None

        by_input = {p["input"]: p for p in kws_both_modes["accuracy"]["predictions"]}
        for name in sorted(by_input)[:3]:
            data = (kws_data_dir / name).read_bytes()
            assert "m-load-done" in dut.load(data)
            res = dut.infer(1, 0)
            # the same scores formicary's own runner read in accuracy mode (183/200, as TFLM: the test above)
            assert res["results"] == pytest.approx(by_input[name]["scores"], abs=1e-9)
            assert res["elapsed_time"] > 0

        # the reference firmware's defaults and formats, which other EEMBC hosts rely on
        lines = dut.infer(2, None)["lines"]
        assert "m-warmup-start-10" in lines and "m-infer-start-2" in lines
        printed = [ln for ln in dut.send_command("db print") if ln.startswith("m-buffer-")]
        assert all(len(ln[len("m-buffer-"):].split("-")) == 8 for ln in printed[:-1])
        assert bytes.fromhex("".join(ln[len("m-buffer-"):].replace("-", "") for ln in printed)) == data
    finally:
        dut.close()
