"""`formicary fleet` on virtual boards in parallel: results merged in one store, runs overlapping in time, a
failing device reported without stopping the others, one build per (model, board type), and workers that are
killed or run out of time contained to their own device."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from datetime import datetime, timedelta

import numpy as np
import pytest

pytestmark = [pytest.mark.qemu, pytest.mark.shared, pytest.mark.usefixtures("arm_qemu_tools"),
              pytest.mark.xdist_group("fleet-qemu")]  # build_root is shared by the module
CLI = "from formicary.cli import main; main()"


@pytest.fixture(scope="module")
def build_root(tmp_path_factory):
    """Builds shared by the tests of this module (one per board type)."""
    return tmp_path_factory.mktemp("fleet-builds")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on exit: nothing listens there


def _interval(run: dict) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(run["started_at"]), datetime.fromisoformat(run["finished_at"])


def test_fleet_three_virtual_boards_and_a_dead_port(kws_model_path, kws_data_dir, tmp_path, build_root):
    from formicary.oracle.tflm import run_tflm
    from formicary.store import ResultStore

    port = _closed_port()
    inv = tmp_path / "fleet.toml"
    inv.write_text(f"""
[[device]]
name = "m4"
board = "qemu-m4"
tags = ["virtual"]

[[device]]
name = "m7"
board = "qemu-m7"

[[device]]
name = "f405"
board = "qemu-stm32f405"

[[device]]
name = "bench-nucleo"
board = "nucleo-f446re"
port = "socket://127.0.0.1:{port}"
""")
    store = tmp_path / "runs.db"
    r = subprocess.run([sys.executable, "-c", CLI, "fleet", str(inv), str(kws_model_path), "--data",
                        str(kws_data_dir), "--inputs", "10", "--runs", "20", "--store", str(store),
                        "--build-dir", str(build_root), "--json"],
                       check=False, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr  # one device failed
    res = json.loads(r.stdout)
    assert res["inventory"] == str(inv) and res["store_path"] == str(store)
    assert [d["name"] for d in res["devices"]] == ["m4", "m7", "f405", "bench-nucleo"]
    assert res["failed"] == 1 and res["failed_devices"] == 1 and res["seconds"] > 0
    by_dev = {x["device"]: x for x in res["results"]}
    assert set(by_dev) == {"m4", "m7", "f405", "bench-nucleo"}

    # the failing device: a clear error, nothing recorded, the others unaffected
    bad = by_dev["bench-nucleo"]
    assert bad["status"] == "failed" and bad["run_id"] is None and bad["latency"] is None
    assert f"127.0.0.1:{port}" in bad["error"]["cause"] and "Connection refused" in bad["error"]["cause"]
    assert bad["error"]["fix"] and bad["error"]["kept"]
    assert {d["name"]: d["status"] for d in res["devices"]} == {"m4": "ok", "m7": "ok", "f405": "ok",
                                                                "bench-nucleo": "failed"}
    # progress: one line per phase and device on a non-terminal stderr
    for name, board in (("m4", "qemu-m4"), ("m7", "qemu-m7"), ("f405", "qemu-stm32f405")):
        assert f"{name} [{board}]: kws_ref_model: start (20 inferences)" in r.stderr
        assert f"{name} [{board}]: kws_ref_model: done" in r.stderr
    assert "bench-nucleo [nucleo-f446re]: kws_ref_model: failed" in r.stderr

    # the three virtual boards: bit-exact, same predictions, recorded consistently in the one store
    files = sorted(kws_data_dir.glob("*.bin"))[:10]
    ref = run_tflm(kws_model_path.read_bytes(), [[np.fromfile(f, np.int8).reshape(1, 49, 10, 1)] for f in files])
    ref_pred = [int(np.argmax(o[0])) for o in ref]
    with ResultStore(store) as st:
        assert st.integrity_check() == "ok"
        listed = st.list_runs()
        assert sorted(x["board"] for x in listed) == ["qemu-m4", "qemu-m7", "qemu-stm32f405"]
        runs = {}
        for name in ("m4", "m7", "f405"):
            x = by_dev[name]
            assert x["status"] == "ok" and x["error"] is None
            assert x["bit_exact"] is True and x["mismatches"] == 0 and x["inputs"] == 10
            assert x["latency"]["unit"] == "instructions" and x["latency"]["count"] == 20
            run = st.get_run(x["run_id"])
            runs[name] = run
            assert run["status"] == "complete" and run["board"] == x["board"]
            assert run["extra"]["fleet"] == {"id": res["fleet_id"], "device": name, "port": None,
                                             "tags": ["virtual"] if name == "m4" else [],
                                             "inventory": str(inv)}
            assert len(run["latency"]["samples"]) == 20
            assert run["latency"]["median"] == pytest.approx(x["latency"]["median"])
            assert run["bit_exact"] is True and run["accuracy"] == pytest.approx(x["accuracy"])
            assert [o["input"] for o in run["outputs"]] == [f.name for f in files]
            assert [o["predicted"] for o in run["outputs"]] == ref_pred
        assert x["accuracy"] == pytest.approx(np.mean([p == int(f.stem.rsplit("_", 1)[1])
                                                       for p, f in zip(ref_pred, files)]))
        # same core, same code: the M4 and the STM32F405 retire the same instructions per inference, read
        # through SysTicks of 25 MHz (40 instructions a tick) and 168 MHz (~6): equal within both ticks
        assert abs(runs["m4"]["latency"]["median"] - runs["f405"]["latency"]["median"]) <= 40 + 6
    # parallel, not one after another: the runs together took less wall time than their durations added up.
    # (Not every pair must overlap: on 2 loaded cores a short bench can end just before the third one starts.)
    spans = [_interval(runs[n]) for n in ("m4", "m7", "f405")]
    wall = max(e for _, e in spans) - min(s for s, _ in spans)
    assert wall < sum((e - s for s, e in spans), timedelta(0)), spans


def test_same_board_type_builds_once(kws_model_path, tmp_path):
    """Two devices of one board type share one build. Run from a script on stdin, without a __main__ guard:
    the workers must not depend on re-running the caller's main module (multiprocessing's spawn would)."""
    from formicary.store import ResultStore

    inv = tmp_path / "fleet.toml"
    inv.write_text('[[device]]\nname = "a"\nboard = "qemu-m4"\n\n[[device]]\nname = "b"\nboard = "qemu-m4"\n')
    builds = tmp_path / "builds"
    script = f"""
import json
from formicary.bench.fleet import run_fleet
events = []
res = run_fleet({str(inv)!r}, [{str(kws_model_path)!r}], inputs=3, runs=6, store={str(tmp_path / "r.db")!r},
                build_dir={str(builds)!r}, on_event=events.append)
print(json.dumps({{"res": res, "events": [{{k: v for k, v in e.items() if k != "value"}} for e in events]}},
                 default=repr))
"""
    r = subprocess.run([sys.executable, "-"], input=script, check=False, capture_output=True, text=True,
                       timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    res, events = out["res"], out["events"]
    assert res["failed"] == 0 and [x["status"] for x in res["results"]] == ["ok", "ok"]
    assert len(res["builds"]) == 1 and res["builds"][0]["built"] is True
    assert [p.name for p in builds.iterdir()] == [res["builds"][0]["project_dir"].rsplit("/", 1)[1]]
    # one build, announced on both devices' bars; each device then ran its own QEMU
    assert sorted(e["device"] for e in events if e["event"] == "build") == ["a", "b"]
    urls = {e["device"]: e["url"] for e in events if e["event"] == "connected"}
    assert set(urls) == {"a", "b"} and urls["a"] != urls["b"]
    assert all("connection" not in e for e in events)
    with ResultStore(tmp_path / "r.db") as st:
        got = {st.get_run(x["run_id"])["extra"]["fleet"]["device"]: st.get_run(x["run_id"])
               for x in res["results"]}
    assert set(got) == {"a", "b"} and all(run["status"] == "complete" and run["bit_exact"] for run in got.values())
    assert got["a"]["latency"]["samples"] == got["b"]["latency"]["samples"]  # same firmware, same inputs


def test_killed_worker_and_timeout_stay_contained(kws_model_path, tmp_path, build_root):
    """One worker SIGKILLed mid-run (as a segfault would end it), one over its time budget: both are reported
    with what was kept, and the third device finishes normally."""
    from formicary.bench.fleet import run_fleet
    from formicary.store import ResultStore

    inv = tmp_path / "fleet.toml"
    inv.write_text('[[device]]\nname = "victim"\nboard = "qemu-m4"\nruns = 60\n\n'
                   '[[device]]\nname = "slow"\nboard = "qemu-m4"\nruns = 20000\ntimeout = 8\n\n'
                   '[[device]]\nname = "fine"\nboard = "qemu-m4"\n')
    killed: list[int] = []
    urls: dict[str, str] = {}

    def on_event(e: dict) -> None:
        if e["event"] == "connected":
            urls[e["device"]] = e["url"]
        # after the first input's results are committed, in the middle of the second input's runs
        if e["device"] == "victim" and e["event"] == "inference" and e["done"] == 23 and not killed:
            killed.append(e["worker_pid"])
            os.kill(e["worker_pid"], signal.SIGKILL)

    res = run_fleet(inv, [kws_model_path], inputs=3, runs=6, store=tmp_path / "r.db", build_dir=build_root,
                    on_event=on_event)
    by_dev = {x["device"]: x for x in res["results"]}
    assert killed and res["failed"] == 2
    assert by_dev["fine"]["status"] == "ok" and by_dev["fine"]["bit_exact"] is True

    victim = by_dev["victim"]
    assert victim["status"] == "failed"
    assert "was killed by signal SIGKILL while benchmarking this model" in victim["error"]["cause"]
    assert victim["run_id"] is not None and str(victim["run_id"]) in victim["error"]["kept"]

    slow = by_dev["slow"]
    assert slow["status"] == "failed" and "time budget (8 s)" in slow["error"]["cause"]
    assert slow["run_id"] is not None and "kept" in slow["error"]["kept"]
    with ResultStore(tmp_path / "r.db") as st:
        v = st.get_run(victim["run_id"])
        assert v["status"] == "interrupted"  # its writer died without finishing: rows kept up to the kill
        assert len(v["latency"]["samples"]) >= 20 and len(v["outputs"]) >= 1
        s = st.get_run(slow["run_id"])
        assert s["status"] == "incomplete" and "time budget" in s["incomplete_reason"]
        assert 0 < len(s["latency"]["samples"]) < 20000
        assert st.get_run(by_dev["fine"]["run_id"])["status"] == "complete"
    # the killed worker's QEMU did not outlive it: nothing listens on its serial port any more
    host, port = urls["victim"].removeprefix("socket://").split(":")
    with socket.socket() as s, pytest.raises(OSError):
        s.settimeout(2)
        s.connect((host, int(port)))
