"""The host runner (formicary.mlperf) against the C DUT parser with a fake model, over a real socket:// URL."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from formicary.errors import FormicaryError
from formicary.mlperf.runner import (
    open_dut,
    read_labels,
    run_accuracy,
    run_mlperf,
    run_performance,
)


def test_identify_and_performance(socket_dut) -> None:
    dut_proc = socket_dut(input_bytes=16, lap_us=2500)
    with open_dut(dut_proc.url) as dut:
        assert dut.name() == "formicary-host"
        assert dut.profile() == {"profile": "MLPerf Tiny formicary-rt", "model": "fake-kws", "model_hash": "0123abcd"}
        perf = run_performance(dut, bytes(range(16)), n=8, warmup=2)
    assert perf["inferences"] == 8 and perf["warmup"] == 2
    # 8 invokes x 2500 µs + 7 µs for the timestamp read, from the DUT's own clock
    assert perf["latency"] == {"value": (8 * 2500 + 7) / 8, "unit": "us", "method": "dut m-lap-us / N"}
    assert perf["meets_min_duration"] is False
    assert len(perf["results"]) == 12 and perf["results"][sum(range(16)) % 12] == pytest.approx(0.996)


def test_performance_picks_n_for_min_duration(socket_dut) -> None:
    dut_proc = socket_dut(input_bytes=4, lap_us=20_000)
    with open_dut(dut_proc.url) as dut:
        perf = run_performance(dut, b"\x01\x02\x03\x04", n=None, warmup=1, min_duration_s=10.0)
    # 10 s / 20 ms (the DUT's virtual clock) = 500, plus at most the 1 % margin over the whole-µs probe lap
    assert 500 <= perf["inferences"] <= 506
    assert perf["duration"]["value"] >= 10.0 and perf["meets_min_duration"] is True


def test_accuracy_on_kws_inputs(socket_dut, kws_data_dir: Path) -> None:
    # the fake model predicts (sum of input bytes) % 12: the expected accuracy follows from the files alone,
    # so this checks the hex upload, the results parsing and the label handling end to end
    rows = read_labels(kws_data_dir)[:40]
    expected = sum(int(sum(p.read_bytes()) % 12 == label) for p, label in rows)
    dut_proc = socket_dut(input_bytes=490)
    with open_dut(dut_proc.url) as dut:
        acc = run_accuracy(dut, kws_data_dir, limit=40)
    assert acc["inputs"] == 40 and acc["correct"] == expected
    assert [p["prediction"] for p in acc["predictions"]] == [sum(p.read_bytes()) % 12 for p, _ in rows]


def test_run_mlperf_both_modes(socket_dut, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    lines = []
    for k in range(5):
        blob = bytes([k] * 8)
        (data / f"in{k}.bin").write_bytes(blob)
        lines.append(f"in{k}.bin,12,{(8 * k) % 12 if k != 3 else 1}")
    (data / "y_labels.csv").write_text("\n".join(lines) + "\n")
    dut_proc = socket_dut(input_bytes=8, lap_us=100)
    out = run_mlperf(dut_proc.url, data, mode="both", n=10, warmup=0)
    assert out["dut"]["name"] == "formicary-host"
    assert out["performance"]["latency"]["value"] == pytest.approx(100.7)
    assert out["accuracy"]["correct"] == 4 and out["accuracy"]["accuracy"]["value"] == 0.8
    json.dumps(out)  # plain data


def test_resync_after_garbage_on_the_line(socket_dut) -> None:
    dut_proc = socket_dut(input_bytes=4)
    dut_proc.inject(b"\x00\x17garbage that never ends" * 30)  # an over-long unterminated line
    with open_dut(dut_proc.url) as dut:
        assert dut.name() == "formicary-host"
        dut.load_input(b"\x00\x00\x00\x05")
        _, results = dut.infer(1, 0, timeout_s=10)
        assert results.index(max(results)) == 5


def test_dut_errors_become_formicary_errors(socket_dut) -> None:
    dut_proc = socket_dut(input_bytes=4, fail=True)
    with open_dut(dut_proc.url) as dut:
        with pytest.raises(FormicaryError, match="invoke failed"):
            dut.infer(1, 0, timeout_s=10)
        with pytest.raises(FormicaryError, match="larger than the model input"):
            dut.load_input(b"\x00" * 5)


def test_silent_port_times_out() -> None:
    import socket
    srv = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    try:
        with pytest.raises(FormicaryError, match="stopped answering"):
            open_dut(f"socket://127.0.0.1:{srv.getsockname()[1]}", line_timeout_s=0.5).close()
    finally:
        srv.close()


def test_cli_mlperf_with_port(socket_dut, tmp_path: Path) -> None:
    import subprocess
    import sys
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.bin").write_bytes(bytes([1, 2, 3, 4]))
    (data / "y_labels.csv").write_text("a.bin,12,10\n")
    model = tmp_path / "m.tflite"
    model.write_bytes(b"not really a model")
    dut_proc = socket_dut(input_bytes=4, lap_us=300)
    cli = [sys.executable, "-c", "from formicary.cli import main; main()", "mlperf", str(model), str(data)]
    # --port without --board: the DUT is used as it is (nothing built or flashed)
    proc = subprocess.run(cli + ["--port", dut_proc.url, "--runs", "5", "--json"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["accuracy"]["correct"] == 1 and out["performance"]["inferences"] == 5
    assert out["board"] is None and len(out["model"]["sha256"]) == 64
    neither = subprocess.run(cli + ["--json"], capture_output=True, text=True, timeout=120, check=False)
    fix = json.loads(neither.stdout)["error"]["fix"]
    assert neither.returncode == 2 and "--board" in fix and "--port" in fix


def _session(board, tmp_path: Path, model_hash: str, url: str, data: Path, kwargs: dict) -> dict:
    """An MLPerf session over the target layer's serial link (what `formicary mlperf --port` does)."""
    from formicary.mlperf.board import mlperf_session
    from formicary.target.firmware import Firmware

    fw = Firmware(project_dir=tmp_path, elf=tmp_path / "x.elf", tflite=tmp_path / "m.tflite", model_hash=model_hash,
                  flash_bytes=0, ram_bytes=0, arena_bytes=0, built=False, firmware_mode="mlperf")
    return mlperf_session(board, fw, data, port=url, baud=115200, line_timeout_s=5.0, **kwargs)


def _one_input_data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir(parents=True)
    (data / "a.bin").write_bytes(bytes([0, 0, 0, 7]))
    (data / "y_labels.csv").write_text("a.bin,12,7\n")
    return data


def test_board_session_checks_the_model_the_dut_runs(socket_dut, tmp_path: Path) -> None:
    from formicary.boards import load_board

    data = _one_input_data(tmp_path)
    kwargs = {"mode": "accuracy", "n": None, "warmup": 0, "min_duration_s": 0.0, "limit": None, "progress": None}
    board = load_board("qemu-m4")  # virtual: a mismatch is reported, never "fixed" by flashing
    # the generated model's hash (m-model-hash-[…]) is what is checked, not the EEMBC model id (m-model-[…])
    with pytest.raises(FormicaryError, match="runs model 0123abcd") as err:
        _session(board, tmp_path, "0123abcd" * 8, socket_dut(input_bytes=4).url, data, kwargs)
    assert err.value.details["dut_model"] == "0123abcd"
    out = _session(board, tmp_path, "0123abcd", socket_dut(input_bytes=4).url, data, kwargs)
    assert out["dut"]["model"] == "fake-kws" and out["accuracy"]["correct"] == 1


def test_board_run_refuses_a_bench_project(tmp_path: Path) -> None:
    from formicary.mlperf.board import run_mlperf_on_board

    project = tmp_path / "proj"
    project.mkdir()
    (project / "formicary-build.json").write_text(json.dumps({"board": "qemu-m4", "elf": "x.elf"}))
    with pytest.raises(FormicaryError, match="holds bench firmware") as err:
        run_mlperf_on_board(project, "qemu-m4", _one_input_data(tmp_path))
    assert "--firmware mlperf" in err.value.fix
    with pytest.raises(FormicaryError, match="real board and no --port"):
        run_mlperf_on_board(project, "nucleo-f446re", tmp_path / "data")
    with pytest.raises(FormicaryError, match="cannot measure a QEMU virtual board"):
        run_mlperf_on_board(project, "qemu-m4", tmp_path / "data", power_source=ConstantHostPower().src)


def test_board_session_measures_energy_with_a_power_source(socket_dut, tmp_path: Path) -> None:
    from formicary.boards import load_board
    from formicary.mlperf.board import _add_modelled_energy

    kwargs = {"mode": "performance", "n": 20, "warmup": 0, "min_duration_s": 0.0, "limit": None,
              "progress": None, "power_source": ConstantHostPower().src}
    board = load_board("nucleo-l4r5zi")
    out = _session(board, tmp_path, "0123abcd", socket_dut(input_bytes=4, lap_us=100).url,
                   _one_input_data(tmp_path), kwargs)
    _add_modelled_energy(out, board)  # a measured figure is never replaced by the model
    e = out["performance"]["energy"]
    assert e["method"] == "measured" and e["source"] == "constant-10mW" and e["inferences"] == 20
    # without a monitor: the board model x the DUT's µs at the board clock, as cycles
    out = _session(board, tmp_path, "0123abcd", socket_dut(input_bytes=4, lap_us=100).url,
                   _one_input_data(tmp_path / "b"), {**kwargs, "power_source": None})
    _add_modelled_energy(out, board)
    e, p = out["performance"]["energy"], board.power
    assert e["method"] == "modelled"
    assert e["uj_per_inference"] == pytest.approx(
        p.supply_v * p.active_current_ma * 1e-3 * out["performance"]["latency"]["value"], rel=1e-6)


class ConstantHostPower:
    """A PowerSource stand-in sampling a constant 10 mW on the host clock (exercises the marker windows)."""
    label = "measured"

    def __init__(self) -> None:
        from formicary.power.sources import PowerSource

        class _Src(PowerSource):
            label = "measured"
            name = "constant-10mW"

            def start(self_inner) -> None:
                import time as _t
                self_inner._t0 = _t.perf_counter()
                self_inner._marker_list = []
                self_inner._running = True

            def stop(self_inner):
                import numpy as np

                from formicary.power.sources import PowerSamples
                end = self_inner.now_s() + 1e-3
                t = np.arange(0.0, end, 1e-4)
                self_inner._running = False
                return PowerSamples(self_inner.name, "measured", t, np.full(t.size, 0.010),
                                    markers=list(self_inner._markers()))
        self.src = _Src()


def test_performance_with_power_source(socket_dut) -> None:
    dut_proc = socket_dut(input_bytes=4, lap_us=100)
    src = ConstantHostPower().src
    with open_dut(dut_proc.url) as dut:
        perf = run_performance(dut, b"\x00\x01\x02\x03", n=50, warmup=0, power_source=src, min_duration_s=0.0)
    e = perf["energy"]
    assert e["method"] == "measured" and e["source"] == "constant-10mW" and e["inferences"] == 50
    # 10 mW over the marker window (the serial round trip, host clock) / 50
    assert e["uj_per_inference"] == pytest.approx(10e-3 * e["duration_s"] / 50 * 1e6, rel=1e-6)
    assert e["duration_s"] > 0 and perf["power_samples"]["method"] == "measured"


def test_runner_shim_lists_the_pty_as_the_devices_yaml_dut(tmp_path: Path) -> None:
    """docs/mlperf.md's shim: with FORMICARY_DUT_PORT set, the official runner's scan (comports() with a vid, matched
    against devices.yaml's usb VID: PID) finds the pty; without it, nothing changes."""
    import os
    import subprocess
    import sys

    import formicary.mlperf

    shim = Path(formicary.mlperf.__file__).parent / "runner_shim"
    scan = ("from serial.tools import list_ports\n"
            "devices = [{'name': 'l4r5zi', 'type': 'dut', 'usb': {0x0483: 0x374B}}]\n"
            "found = [(p.device, d['name']) for p in list_ports.comports(True) if p.vid\n"
            "         for d in devices for vid, pid in d['usb'].items() if (p.vid, p.pid) == (vid, pid)]\n"
            "print(found)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shim), os.environ.get("PYTHONPATH", "")])}
    pty = str(tmp_path / "ttyDUT")
    out = subprocess.run([sys.executable, "-c", scan], env={**env, "FORMICARY_DUT_PORT": pty},
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == repr([(pty, "l4r5zi")])
    out = subprocess.run([sys.executable, "-c", scan], env=env, capture_output=True, text=True, check=True).stdout
    assert pty not in out
