"""`formicary bench` end to end on virtual boards: statistics, the TFLM comparison, the store, and faults
(QEMU killed, a reset mid-run, a model too big for the board, a real board without a port)."""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from formicary.errors import FormicaryError

pytestmark = [pytest.mark.qemu, pytest.mark.usefixtures("arm_qemu_tools"),
              pytest.mark.xdist_group("bench-qemu")]  # one worker builds kws_build
REQUIRED_KEYS = {"board", "latency", "layers", "bit_exact", "mismatches", "accuracy", "inputs", "flash_bytes",
                 "ram_bytes", "energy", "schema", "model", "firmware", "settings", "outputs", "complete"}


@pytest.fixture(scope="module")
def kws_build(kws_model_path, tmp_path_factory):
    """One firmware build for the module: benches reuse it through the project directory."""
    from formicary.build import build_model

    out = tmp_path_factory.mktemp("kws-m4")
    build_model(kws_model_path, "qemu-m4", out)
    return out


def _json(output: str) -> dict:
    return json.loads(output[output.index("{"):])


@pytest.mark.shared
def test_bench_cli_kws(kws_build, kws_data_dir, kws_model_path, tmp_path):
    from formicary.cli import app
    from formicary.oracle.tflm import run_tflm
    from formicary.store import ResultStore
    from typer.testing import CliRunner

    store = tmp_path / "runs.db"
    r = CliRunner().invoke(app, ["bench", str(kws_build), "--board", "qemu-m4", "--data", str(kws_data_dir),
                                 "--inputs", "12", "--runs", "24", "--warmup", "2", "--profile",
                                 "--store", str(store), "--json"])
    assert r.exit_code == 0, r.output
    res = _json(r.stdout)
    assert REQUIRED_KEYS <= set(res)
    lat = res["latency"]
    assert lat["unit"] == "instructions" and "icount" in lat["method"]
    assert len(lat["samples"]) == 24 and res["settings"] == {"runs": 24, "warmup": 2, "profile": True,
                                                             "data": str(kws_data_dir), "labels_mapped_by": None}
    s = np.array(lat["samples"])
    assert lat["min"] == s.min() and lat["max"] == s.max()
    for key, q in (("median", 50), ("p90", 90), ("p99", 99)):
        assert lat[key] == pytest.approx(np.percentile(s, q))
    assert lat["estimate_ms"] == pytest.approx(lat["median"] / 25e6 * 1e3, rel=1e-4)
    # two timed runs per input, in input order: the same input gives the same count on a virtual board
    assert all(s[2 * i] == s[2 * i + 1] for i in range(12))
    # per-layer times add up to (nearly all of) the inference: the rest is the hook and loop overhead
    assert len(res["layers"]) == 13 and res["layers"][0]["op"] == "CONV_2D"
    layer_sum = sum(layer["median"] for layer in res["layers"])
    assert 0.97 * lat["median"] < layer_sum <= lat["median"]
    # the comparison is against an independent TFLM run
    files = [kws_data_dir / o["input"] for o in res["outputs"]]
    xs = [[np.fromfile(f, np.int8).reshape(1, 49, 10, 1)] for f in files]
    ref = run_tflm(kws_model_path.read_bytes(), xs)
    labels = [int(f.stem.rsplit("_", 1)[1]) for f in files]
    assert res["bit_exact"] is True and res["mismatches"] == 0 and res["inputs"] == 12
    assert res["accuracy"] == pytest.approx(np.mean([int(np.argmax(o[0])) == y for o, y in zip(ref, labels)]))
    assert [o["predicted"] for o in res["outputs"]] == [int(np.argmax(o[0])) for o in ref]
    # routes: the generated single-graph model has no fm_model_route(), so the firmware's weak default reports
    # subgraph 0 alone for every inference, and the routes summary has that one route
    assert lat["routes"] == [1] * 24 and [o["route"] for o in res["outputs"]] == [1] * 12
    (route,) = res["routes"]
    assert (route["mask"], route["names"], route["count"], route["share"]) == (1, ["main"], 24, 1.0)
    assert route["latency"]["median"] == lat["median"] and route["accuracy"] == res["accuracy"]
    assert res["subgraphs"] == [{"index": 0, "name": "main", "ops": 13, "inferences": 24, "share": 1.0}]
    assert {layer["subgraph"] for layer in res["layers"]} == {0}
    assert all(len(layer["samples"]) == 12 for layer in res["layers"])
    assert 0 < res["flash_bytes"] < 4 * 2**20 and 0 < res["ram_bytes"] < 32 * 1024
    assert res["macs"] == 2_656_768 and res["complete"] is True
    # the modelled energy breakdown follows this build's kernels and planned arena (docs/energy.md)
    em = res["energy_model"]
    assert em["method"] == "modelled" and em["board"] == "qemu-m4"
    assert em["kernels"] == res["firmware"]["kernels"] and em["arena_bytes"] == res["arena_bytes"]
    assert len(em["layers"]) == 13 and 0.9 < em["total"]["45nm"]["data_movement_share"] < 1.0
    # recorded, with the same samples
    with ResultStore(store) as st:
        run = st.get_run(res["run_id"])
    assert run["status"] == "complete" and run["latency"]["samples"] == lat["samples"]
    assert run["bit_exact"] is True and len(run["outputs"]) == 12
    assert run["latency"]["routes"] == [1] * 24 and run["routes"] == res["routes"]
    assert run["extra"]["energy_model"]["total"] == em["total"]


def test_verify_cli_on_a_virtual_board(kws_build):
    """`formicary verify MODEL --target BOARD` on a microcontroller: none of the SBC-only options is set, so none
    is refused (they once were: verify passed a default sensor setting as if the user had given it)."""
    from formicary.cli import app
    from typer.testing import CliRunner

    r = CliRunner().invoke(app, ["verify", str(kws_build), "--target", "qemu-m4", "--inputs", "2", "--json"])
    assert r.exit_code == 0, r.output
    res = _json(r.stdout)
    assert res["bit_exact"] and res["inputs"] == 2 and res["target"] == "qemu-m4"
    assert res["latency"]["unit"] == "instructions"


def test_two_benches_give_identical_counts(kws_build):
    from formicary.bench.runner import run_bench

    a = run_bench(kws_build, "qemu-m4", runs=3, inputs=1, store=False)
    b = run_bench(kws_build, "qemu-m4", runs=3, inputs=1, store=False)
    assert len(set(a["latency"]["samples"])) == 1
    assert a["latency"]["samples"] == b["latency"]["samples"]
    assert a["bit_exact"] and b["bit_exact"]  # random inputs still compared with TFLM


def test_qemu_killed_mid_bench_keeps_results(kws_build, tmp_path):
    from formicary.bench.runner import run_bench
    from formicary.store import ResultStore

    store = tmp_path / "runs.db"
    state = {}

    def on_event(e):
        if e["event"] == "connected":
            state["pid"] = e["connection"].qemu.pid
        if e["event"] == "inference" and e["done"] == 4:
            os.killpg(state["pid"], signal.SIGKILL)

    with pytest.raises(FormicaryError) as err:
        run_bench(kws_build, "qemu-m4", runs=10, inputs=10, warmup=0, store=store, on_event=on_event)
    assert "QEMU" in err.value.cause or "qemu" in err.value.cause.lower()
    partial = err.value.partial
    assert partial["complete"] is False and partial["incomplete_reason"]
    assert len(partial["latency"]["samples"]) >= 4 and partial["inputs"] >= 3
    assert "kept" in err.value.details["kept"]
    with ResultStore(store) as st:
        run = st.get_run(partial["run_id"])
    assert run["status"] == "incomplete" and run["incomplete_reason"] == partial["incomplete_reason"]
    assert run["latency"]["samples"] == partial["latency"]["samples"]
    # each kept sample keeps its route (single-subgraph model: 1), in the result and the store alike
    assert partial["latency"]["routes"] == run["latency"]["routes"] == [1] * len(run["latency"]["samples"])
    assert len(run["outputs"]) == partial["inputs"]


def test_reset_mid_bench_is_detected_and_recorded(kws_build, tmp_path):
    from formicary.bench.runner import run_bench
    from formicary.device.session import DeviceResetError
    from formicary.store import ResultStore

    store = tmp_path / "runs.db"
    state = {}

    def on_event(e):
        if e["event"] == "connected":
            state["conn"] = e["connection"]
        if e["event"] == "inference" and e["done"] == 3:
            state["conn"].qemu.reset()

    with pytest.raises(DeviceResetError) as err:
        run_bench(kws_build, "qemu-m4", runs=8, inputs=8, warmup=0, store=store, on_event=on_event)
    with ResultStore(store) as st:
        run = st.get_run(err.value.partial["run_id"])
    assert run["status"] == "incomplete" and "reset" in run["incomplete_reason"]
    assert 3 <= len(run["latency"]["samples"]) < 8


def test_garbage_on_the_line_during_bench_is_survived(kws_build):
    """Random bytes are written into the device's receive path between commands: the firmware answers
    with error frames, the host resyncs, and every accepted output is still bit-exact."""
    from formicary.bench.runner import run_bench

    rng = np.random.default_rng(1)

    def on_event(e):
        if e["event"] == "input":
            t = e_conn["conn"].session.t
            t.write(bytes(rng.integers(1, 256, 64, dtype=np.uint8)) + b"\x00")
        if e["event"] == "connected":
            e_conn["conn"] = e["connection"]

    e_conn: dict = {}
    res = run_bench(kws_build, "qemu-m4", runs=6, inputs=6, store=False, on_event=on_event)
    assert res["bit_exact"] is True and res["inputs"] == 6
    stats = e_conn["conn"].session.stats
    assert stats.device_framing_errors + stats.stale_frames > 0  # the garbage really reached the device


def _big_fc_model(path: Path, n_in: int = 1200, n_out: int = 1000) -> Path:
    """A 1.2 MB fully-connected layer: more than the 1 MB of flash of an STM32F405."""
    from tests.support.tfl_builder import Op, T, build

    rng = np.random.default_rng(0)
    ts = [T((1, n_in), scale=[0.02], zero_point=[0]),
          T((n_out, n_in), scale=[0.01], zero_point=[0], data=rng.integers(-127, 128, (n_out, n_in)).astype(np.int8)),
          T((n_out,), "int32", data=np.zeros(n_out, np.int32)),
          T((1, n_out), scale=[0.5], zero_point=[0])]
    path.write_bytes(build(ts, [Op("FULLY_CONNECTED", [0, 1, 2], [3], "FullyConnectedOptions", {})], [0], [3]))
    return path


def test_model_larger_than_the_board_fails_before_flashing(tmp_path):
    from formicary.cli import app
    from typer.testing import CliRunner

    model = _big_fc_model(tmp_path / "big.tflite")
    store = tmp_path / "runs.db"
    r = CliRunner().invoke(app, ["bench", str(model), "--board", "qemu-stm32f405", "--store", str(store),
                                 "--build-dir", str(tmp_path / "b"), "--json"])
    assert r.exit_code != 0
    err = r.exception
    assert isinstance(err, FormicaryError), r.output
    assert "does not fit qemu-stm32f405" in err.cause and "FLASH by" in err.cause
    overflow = err.details["overflow_bytes"]["FLASH"]
    assert 150_000 < overflow < 300_000  # 1.2 MB of weights + firmware vs 1 MB of flash
    assert not store.exists() or "running" not in store.read_bytes().decode(errors="ignore")


def test_real_board_without_port_is_a_clear_error(tmp_path):
    from formicary.bench.runner import run_bench

    with pytest.raises(FormicaryError) as err:
        run_bench(tmp_path / "missing.tflite", "nucleo-f446re", store=False)
    assert "no --port" in err.value.cause and "/dev/tty" in err.value.fix


@pytest.mark.shared
def test_bench_over_the_port_of_a_flashed_virtual_board(kws_build):
    """`formicary flash` leaves a detached QEMU and prints its URL; bench talks to it like to a real board."""
    from formicary.bench.runner import run_bench
    from formicary.target.flash import flash

    flashed = flash(kws_build, "qemu-m4")
    try:
        res = run_bench(kws_build, "qemu-m4", port=flashed["url"], runs=2, inputs=2, store=False)
    finally:
        os.killpg(flashed["qemu_pid"], signal.SIGKILL)
    assert res["bit_exact"] and len(res["latency"]["samples"]) == 2
