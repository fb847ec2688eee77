"""The SBC path on the virtual SBC (qemu-aarch64: Debian bookworm arm64 under qemu-system-aarch64, booted once per
session by the `virtual_sbc` fixture of tests/conftest.py): the KWS bench against the host reference, a dropped
connection, and the board's failures, each one clear error. Latencies here are emulated time."""
from __future__ import annotations

import subprocess

import pytest

from formicary.errors import FormicaryError
from tests.conftest import KWS_DATA, KWS_MODEL

pytestmark = [pytest.mark.xdist_group("virtual_sbc"), pytest.mark.slow,
              pytest.mark.skipif(not KWS_MODEL.is_file(), reason="needs ../shared (KWS model and data)")]
BOARD = "qemu-aarch64"
TFLITE_RUNTIME = "/opt/tflite-runtime/bin/python3"
LITERT = "/opt/litert/bin/python3"


def _bench(ep, **kw):
    from formicary.bench.sbc import run_sbc_bench

    opts = {"sensor": "none", "data": KWS_DATA, "inputs": 20, "store": False, "threads": 1}
    opts.update(kw)
    return run_sbc_bench(KWS_MODEL, BOARD, host=f"{ep.user}@{ep.host}:{ep.port}", key=ep.key_path,
                         known_hosts=ep.known_hosts, **opts)


@pytest.mark.parametrize("python, runtime, xnnpack", [
    (TFLITE_RUNTIME, "tflite_runtime", None),  # the board file's Python, the runtime's defaults
    (LITERT, "ai_edge_litert", False),
])
def test_kws_on_the_virtual_sbc_matches_the_host_reference(virtual_sbc, tmp_path, python, runtime, xnnpack) -> None:
    from formicary.store import ResultStore

    store = ResultStore(tmp_path / "runs.db")
    r = _bench(virtual_sbc, python=python, xnnpack=xnnpack, store=store)
    assert r["complete"] and r["virtual"] and r["latency"]["emulated"] is True
    assert r["firmware"]["runtime"] == runtime and r["sbc"]["machine"] == "aarch64"
    assert r["latency"]["unit"] == "ms" and len(r["latency"]["samples"]) == 20
    assert 0.1 < r["latency"]["median"] < 500
    # the board's predictions are the host reference's (TFLM) on every input
    assert r["mismatches"] == 0
    assert [o["predicted"] for o in r["outputs"]] == [o["reference_predicted"] for o in r["outputs"]]
    assert r["accuracy"] >= 0.75
    if runtime == "tflite_runtime":  # measured: tflite-runtime 2.14 on aarch64 agrees with TFLM byte for byte
        assert r["bit_exact"] is True
    else:  # measured: ai-edge-litert 2.3's aarch64 kernels are a few steps off on some outputs (max 30 of 200)
        assert max(o.get("max_abs_diff", 0) for o in r["outputs"]) <= 40
    assert "EMULATED" in r["energy"]["source"] and r["energy"]["method"] == "modelled"
    assert store.get_run(r["run_id"])["status"] == "complete"


def test_dropped_connection_on_the_virtual_sbc(virtual_sbc, tmp_path) -> None:
    from formicary.store import ResultStore

    store = ResultStore(tmp_path / "runs.db")
    seen = {}

    def on_event(ev):
        if ev["event"] == "connected":
            seen["c"] = ev["connection"]
        if ev["event"] == "input" and ev["done_inputs"] == 2:
            seen["c"].drop()

    with pytest.raises(FormicaryError) as e:
        _bench(virtual_sbc, python=TFLITE_RUNTIME, inputs=6, store=store, on_event=on_event, _pause_after_input=0.5,
               run_timeout=30)
    err = e.value
    assert "dropped" in err.cause and "stored incomplete" in err.cause
    assert err.partial["inputs"] == 2 and err.partial["complete"] is False
    got = store.get_run(err.details["run_id"])
    assert got["status"] == "incomplete" and len(got["latency"]["samples"]) == len(err.partial["latency"]["samples"])


def test_board_without_a_runtime(virtual_sbc) -> None:
    with pytest.raises(FormicaryError) as e:
        _bench(virtual_sbc, python="/usr/bin/python3", inputs=1)
    err = e.value
    assert "no TFLite runtime in /usr/bin/python3 (Python 3.11" in err.cause and "aarch64" in err.cause
    assert "tflite-runtime==2.14.0" in err.fix and "--python" in err.fix


def test_wrong_host_key(virtual_sbc, tmp_path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    kind, key = (tmp_path / "k.pub").read_text().split()[:2]
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[{virtual_sbc.host}]:{virtual_sbc.port} {kind} {key}\n")
    from formicary.bench.sbc import run_sbc_bench

    with pytest.raises(FormicaryError) as e:
        run_sbc_bench(KWS_MODEL, BOARD, host=f"root@{virtual_sbc.host}:{virtual_sbc.port}", key=virtual_sbc.key_path,
                      known_hosts=wrong, inputs=1, store=False)
    assert "host key" in e.value.cause and "ssh-keygen -R" in e.value.fix


def test_refused_login(virtual_sbc, tmp_path, monkeypatch) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    from formicary.bench.sbc import run_sbc_bench

    with pytest.raises(FormicaryError) as e:
        run_sbc_bench(KWS_MODEL, BOARD, host=f"root@{virtual_sbc.host}:{virtual_sbc.port}", key=tmp_path / "k",
                      known_hosts=virtual_sbc.known_hosts, inputs=1, store=False)
    assert "refused the login" in e.value.cause and "ssh-copy-id" in e.value.fix


def test_full_disk_on_the_board(virtual_sbc) -> None:
    with pytest.raises(FormicaryError) as e:
        _bench(virtual_sbc, python=TFLITE_RUNTIME, workdir="/mnt/full/fm", inputs=1)
    assert "disk is full" in e.value.cause and "/mnt/full" in e.value.cause and "--workdir" in e.value.fix
