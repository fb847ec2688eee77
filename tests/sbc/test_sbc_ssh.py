"""The SSH target and the SBC bench against a loopback sshd: this machine plays the board, the agent runs under
the venv's Python (ai_edge_litert). The same cases run on the virtual SBC in test_sbc_virtual.py; these need no
VM image and cover the host side (host keys, logins, disks, drops, the store) in a few seconds."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from formicary.errors import FormicaryError
from formicary.target.ssh import parse_host
from tests.conftest import KWS_DATA, KWS_MODEL

pytestmark = [pytest.mark.xdist_group("sbc_loopback")]
needs_kws = pytest.mark.skipif(not KWS_MODEL.is_file(), reason="needs ../shared (KWS model and data)")


def test_parse_host_forms() -> None:
    t = parse_host("pi@10.0.0.7:2222")
    assert (t.user, t.host, t.port) == ("pi", "10.0.0.7", 2222)
    assert (parse_host("rpi5").user, parse_host("rpi5").port) == (None, None)  # an ~/.ssh/config alias
    v6 = parse_host("root@[fe80::1]:22")
    assert (v6.host, v6.port) == ("fe80::1", 22)
    for bad in ("pi@", "@x", "pi@host:99999", "pi@host:ssh"):
        with pytest.raises(FormicaryError) as e:
            parse_host(bad)
        assert e.value.fix


def _bench(lb, *, board="rpi-4", key=None, known=None, **kw):
    from formicary.bench.sbc import run_sbc_bench

    opts = {"python": lb.python, "sensor": "none", "data": KWS_DATA, "inputs": 12, "store": False}
    opts.update(kw)
    return run_sbc_bench(KWS_MODEL, board, host=f"{lb.user}@{lb.host}:{lb.port}", key=key or lb.key_path,
                         known_hosts=known or lb.known_hosts, **opts)


@needs_kws
def test_kws_bench_matches_tflm_and_is_stored(loopback_sshd, tmp_path) -> None:
    from formicary.store import ResultStore

    store = ResultStore(tmp_path / "runs.db")
    r = _bench(loopback_sshd, xnnpack=False, threads=1, store=store, runs=24)
    assert r["complete"] and r["latency"]["unit"] == "ms" and r["latency"]["method"] == "perf_counter"
    assert len(r["latency"]["samples"]) == 24 and all(0 < s < 1000 for s in r["latency"]["samples"])
    assert r["firmware"]["runtime"] == "ai_edge_litert" and r["firmware"]["xnnpack"] == "off"
    # XNNPACK off, x86-64: ai_edge_litert's builtin kernels agree with TFLM byte for byte (measured: 200/200)
    assert r["bit_exact"] is True and r["mismatches"] == 0 and r["reference"]["name"] == "tflm"
    assert all(o["predicted"] == o["reference_predicted"] for o in r["outputs"])
    assert r["accuracy"] >= 0.75  # MLPerf Tiny KWS reference model on its own test inputs
    assert r["ram_bytes"] > 10_000_000 and r["model_bytes"] == KWS_MODEL.stat().st_size
    e = r["energy"]
    assert e["method"] == "modelled" and "wall-clock" in e["source"]
    assert e["uj_per_inference"] == pytest.approx(5.1 * 600.0 * float(np.mean(r["latency"]["samples"])), rel=1e-6)
    got = store.get_run(r["run_id"])
    assert got["status"] == "complete" and got["latency"]["samples"] == pytest.approx(r["latency"]["samples"])
    assert got["latency"]["unit"] == "ms" and got["ram_bytes"] == r["ram_bytes"]


@needs_kws
def test_dropped_connection_keeps_what_was_collected(loopback_sshd, tmp_path) -> None:
    from formicary.store import ResultStore

    store = ResultStore(tmp_path / "runs.db")
    conn = {}

    def on_event(ev):
        if ev["event"] == "connected":
            conn["c"] = ev["connection"]
        if ev["event"] == "input" and ev["done_inputs"] == 3:
            conn["c"].drop()  # the cable is pulled while the agent pauses after its 3rd input

    with pytest.raises(FormicaryError) as e:
        _bench(loopback_sshd, store=store, on_event=on_event, _pause_after_input=0.3, run_timeout=20)
    err = e.value
    assert "dropped" in err.cause and "stored incomplete" in err.cause and err.fix
    part = err.partial
    assert part["complete"] is False and part["inputs"] == 3 and len(part["latency"]["samples"]) >= 3
    got = store.get_run(err.details["run_id"])
    assert got["status"] == "incomplete" and "dropped" in got["incomplete_reason"]
    assert len(got["latency"]["samples"]) == len(part["latency"]["samples"])


def test_wrong_host_key(loopback_sshd) -> None:
    with pytest.raises(FormicaryError) as e:
        _bench(loopback_sshd, known=loopback_sshd.wrong_known_hosts, inputs=1)
    assert "host key" in e.value.cause and "ssh-keygen -R" in e.value.fix


def test_unknown_host_key(loopback_sshd, tmp_path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    from formicary.target.ssh import SshTarget, connect

    with pytest.raises(FormicaryError) as e:
        connect(SshTarget(loopback_sshd.host, loopback_sshd.port, loopback_sshd.user, loopback_sshd.key_path, empty,
                          config_path=tmp_path / "no-config"))
    assert "not in known_hosts" in e.value.cause and "ssh-keyscan" in e.value.fix


def test_refused_login(loopback_sshd, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/id_* and no agent to fall back on
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    with pytest.raises(FormicaryError) as e:
        _bench(loopback_sshd, key=loopback_sshd.other_key, inputs=1)
    assert "refused the login" in e.value.cause and "ssh-copy-id" in e.value.fix


def test_nothing_listening(loopback_sshd) -> None:
    from formicary.target.ssh import SshTarget, connect

    with pytest.raises(FormicaryError) as e:
        connect(SshTarget("127.0.0.1", 1, "root"), timeout=3)
    assert "cannot reach" in e.value.cause and "--host" in e.value.fix


@needs_kws
def test_no_runtime_names_the_pip_command(loopback_sshd) -> None:
    with pytest.raises(FormicaryError) as e:
        _bench(loopback_sshd, runtime="tflite_runtime", inputs=1)  # the only one tried, and absent here
    err = e.value
    assert "no TFLite runtime" in err.cause and "tflite_runtime" in err.cause
    assert "pip install" in err.fix and "Python 3." in err.fix


@needs_kws
def test_full_disk(loopback_sshd, tmp_path) -> None:
    full = tmp_path / "full"
    full.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(full)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        with pytest.raises(FormicaryError) as e:
            _bench(loopback_sshd, workdir=str(full / "fm"), inputs=1)
        assert "disk is full" in e.value.cause and "--workdir" in e.value.fix
    finally:
        subprocess.run(["umount", "-l", str(full)])


def test_agent_is_a_package_resource() -> None:
    from formicary.target.sbc import agent_source

    src = agent_source().decode()
    imports = {line.split()[1].split(".")[0] for line in src.splitlines()
               if line.startswith(("import ", "from ")) and not line.startswith("from __future__")}
    import sys

    assert imports <= set(sys.stdlib_module_names), imports - set(sys.stdlib_module_names)  # numpy: lazily


def test_pip_advice_per_python_and_arch() -> None:
    from formicary.target.sbc import pip_advice

    assert "tflite-runtime==2.14.0" in pip_advice("/usr/bin/python3", "3.11.2", "aarch64")
    assert "ai-edge-litert" in pip_advice("/usr/bin/python3", "3.12.1", "aarch64")
    assert "tflite-runtime==" not in pip_advice("/usr/bin/python3", "3.12.1", "aarch64")
    assert "piwheels" in pip_advice("/usr/bin/python3", "3.11.2", "armv7l")


@needs_kws
def test_hil_dut_on_an_sbc(loopback_sshd) -> None:
    from formicary.boards import load_board
    from formicary.bench.runner import load_inputs
    from formicary.hil.plugin import SbcDut
    from formicary.target.sbc import open_sbc

    lb = loopback_sshd
    b = load_board("rpi-5")
    link = open_sbc(b, f"{lb.user}@{lb.host}:{lb.port}", python=lb.python, key=lb.key_path,
                    known_hosts=lb.known_hosts)
    dut = SbcDut(b, KWS_MODEL, KWS_MODEL, link, sbc={"xnnpack": False})
    try:
        x = load_inputs(KWS_MODEL, KWS_DATA, 1).sets[0]
        r = dut.run(x, runs=3, warmup=1)
        assert r.unit == "ms" and r.method == "perf_counter" and len(r.latencies) == 3
        checked = dut.check(x)  # TFLM, byte for byte: XNNPACK is off
        assert checked.outputs[0].tobytes() == r.outputs[0].tobytes()
    finally:
        dut.close()


def test_fleet_inventory_takes_sbc_hosts(tmp_path) -> None:
    from formicary.bench.fleet import load_inventory

    inv = tmp_path / "fleet.toml"
    inv.write_text('[[device]]\nname = "pi4"\nboard = "rpi-4"\nhost = "pi@10.0.0.7"\n\n'
                   '[[device]]\nname = "vm"\nboard = "qemu-aarch64"\n')
    devices = load_inventory(inv).devices
    assert [(d.board, d.port) for d in devices] == [("rpi-4", "pi@10.0.0.7"), ("qemu-aarch64", None)]
    for body, words in (('board = "rpi-5"\n', "no `host`"), ('board = "qemu-m4"\nhost = "pi@x"\n', "microcontroller"),
                        ('board = "rpi-5"\nhost = "pi@x"\nport = "/dev/ttyACM0"\n', "both")):
        inv.write_text(f'[[device]]\nname = "d"\n{body}')
        with pytest.raises(FormicaryError, match=words):
            load_inventory(inv)


@needs_kws
def test_energy_measured_by_a_sensor_on_the_board(loopback_sshd, tmp_path) -> None:
    """The agent samples an ina2xx hwmon device (a recorded tree: 2.5 W) during the timed runs."""
    d = tmp_path / "hwmon0"
    d.mkdir()
    (d / "name").write_text("ina226\n")
    (d / "power1_input").write_text("2500000\n")  # µW
    r = _bench(loopback_sshd, sensor=f"hwmon:{d}", inputs=2, runs=200)
    e = r["energy"]
    assert e["method"] == "measured" and "ina226" in e["source"] and r["sbc"]["sensor"].startswith("hwmon ina226")
    # constant 2.5 W integrated over the timed windows (the invokes and the agent's loop between them)
    assert e["inferences"] == 200
    assert e["uj_per_inference"] == pytest.approx(2.5 * e["duration_s"] / 200 * 1e6, rel=1e-6)
    assert e["duration_s"] >= sum(r["latency"]["samples"]) / 1e3
    assert r["power_samples"] and all(w == pytest.approx(2.5) for _, w in r["power_samples"])


def test_ssh_config_alias_is_honoured(loopback_sshd, tmp_path) -> None:
    """HostName, Port, User, IdentityFile and UserKnownHostsFile come from ~/.ssh/config for an alias."""
    from formicary.target.ssh import SshTarget, connect

    lb = loopback_sshd
    cfg = tmp_path / "config"
    cfg.write_text(f"Host my-pi\n  HostName {lb.host}\n  Port {lb.port}\n  User {lb.user}\n"
                   f"  IdentityFile {lb.key_path}\n  UserKnownHostsFile {lb.known_hosts}\n")
    conn = connect(SshTarget("my-pi", config_path=cfg))
    try:
        rc, out, _ = conn.run("echo $((6 * 7))")
        assert rc == 0 and out.strip() == "42" and conn.where == f"{lb.user}@{lb.host}:{lb.port}"
    finally:
        conn.close()


@needs_kws
def test_energy_from_a_host_side_monitor(loopback_sshd) -> None:
    """A Joulescope/PPK2-style monitor on the host: windows from the host's markers around the agent's run."""
    import time

    from formicary.power.sources import PowerSamples, PowerSource

    class ConstantMonitor(PowerSource):  # 1.5 W, sampled every ms on the host clock
        label, name = "measured", "test-monitor"

        def start(self) -> None:
            self._t0, self._running = time.perf_counter(), True

        def stop(self) -> PowerSamples:
            self._running = False
            end = self.now_s() + 0.01
            t = np.arange(0.0, end, 0.001)
            return PowerSamples(self.name, "measured", t, np.full(t.size, 1.5), markers=list(self._markers()))

    r = _bench(loopback_sshd, inputs=2, runs=50, power=ConstantMonitor())
    e = r["energy"]
    assert e["method"] == "measured" and e["source"] == "test-monitor" and "SSH round trip" in e["sync"]
    assert e["inferences"] == 51  # the warm-up ran inside the host's window too
    assert e["uj_per_inference"] == pytest.approx(1.5 * e["duration_s"] / 51 * 1e6, rel=1e-3)
