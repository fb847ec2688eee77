"""A labgrid lab on loopback, started and stopped here: a coordinator and two lab hosts (`formicary lab export`,
each a labgrid-exporter with two virtual boards) on 127.0.0.1, places created through the API. A fleet over
places on both hosts gives the local fleet's results; a place another user holds is reported busy with its
owner, skipped or waited for; a lab host killed mid-bench leaves an incomplete run, a released place and an
error that names it; a client killed hard leaves a stale acquisition that the next run explains."""
from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from formicary.errors import FormicaryError

pytestmark = [pytest.mark.qemu, pytest.mark.shared, pytest.mark.usefixtures("arm_qemu_tools"),
              pytest.mark.xdist_group("lab-loopback")]
HOSTS = {"host-a": ("a1", "a2"), "host-b": ("b1", "b2")}
HOLDER = """
import sys
from formicary.lab.client import LabClient
c = LabClient(sys.argv[1])
c.acquire(sys.argv[2])
print("held", c.identity, flush=True)
sys.stdin.readline()
c.release(sys.argv[2])
c.close()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read_line(proc: subprocess.Popen, timeout: float) -> str:
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    if not sel.select(timeout):
        raise AssertionError(f"no output from {proc.args} within {timeout} s")
    return proc.stdout.readline()


def _start_host(root: Path, coordinator: str, name: str, boards: tuple[str, ...]) -> subprocess.Popen:
    cfg = root / f"{name}.toml"
    cfg.write_text(f'name = "{name}"\ncoordinator = "{coordinator}"\naddress = "127.0.0.1"\n'
                   + "".join(f'[[board]]\nname = "{b}"\nboard = "qemu-m4"\n' for b in boards))
    proc = subprocess.Popen([sys.executable, "-c", "from formicary.cli import main; main()", "lab", "export",
                             str(cfg), "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    ready = json.loads(_read_line(proc, 30))
    assert ready["event"] == "ready" and [b["name"] for b in ready["boards"]] == list(boards)
    return proc


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@dataclass
class Lab:
    coordinator: str
    root: Path
    hosts: dict[str, subprocess.Popen]
    client: object

    def wait_resources(self, exporter: str, n: int) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            self.client.sync()
            if sum(r.exporter == exporter for r in self.client.resources()) >= n:
                return
            time.sleep(0.1)
        raise AssertionError(f"{exporter} did not export {n} resources")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    pytest.importorskip("labgrid.remote.client", reason="labgrid is not installed: pip install -e '.[lab]'")
    exe = shutil.which("labgrid-coordinator", path=os.path.dirname(sys.executable)) or \
        shutil.which("labgrid-coordinator")
    if exe is None:
        pytest.skip("labgrid-coordinator not found beside the Python running the tests")
    from formicary.lab.admin import apply_places
    from formicary.lab.client import LabClient

    root = tmp_path_factory.mktemp("lab")
    port = _free_port()
    coordinator = f"127.0.0.1:{port}"
    with open(root / "coordinator.log", "wb") as log:
        coord = subprocess.Popen([exe, "-l", coordinator], cwd=root, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    hosts: dict[str, subprocess.Popen] = {}
    client = None
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and coord.poll() is None, "labgrid-coordinator did not start"
                time.sleep(0.1)
        for name, boards in HOSTS.items():
            hosts[name] = _start_host(root, coordinator, name, boards)
        client = LabClient(coordinator)
        lab = Lab(coordinator, root, hosts, client)
        for name, boards in HOSTS.items():
            lab.wait_resources(name, 2 * len(boards))
        apply_places(client, [{"name": f"lab/{b}", "tags": {"board": "qemu-m4", "lab": name[-1]},
                               "matches": [f"{name}/{b}/*"], "comment": None}
                              for name, boards in HOSTS.items() for b in boards])
        yield lab
    finally:
        if client is not None:
            client.close()
        for proc in hosts.values():
            _stop(proc)
        _stop(coord)


def _inventory(path: Path, lab: Lab, body: str) -> Path:
    path.write_text(f'[lab]\ncoordinator = "{lab.coordinator}"\n{body}')
    return path


def test_fleet_over_places_on_two_hosts_gives_the_local_results(lab, kws_model_path, tmp_path):
    from formicary.bench.fleet import run_fleet
    from formicary.bench.runner import run_bench
    from formicary.store import ResultStore

    settings = {"inputs": 3, "runs": 6, "store": tmp_path / "runs.db"}
    ref = run_bench(kws_model_path, "qemu-m4", **settings)  # the same board here, for reference
    remote = run_fleet(_inventory(tmp_path / "lab.toml", lab, """
[[device]]
name = "a"
place = "lab/a1"

[[device]]
name = "b"
place = "lab/b1"

[[device]]
name = "pool"
place_tags = { board = "qemu-m4" }
count = 2
"""), [kws_model_path], **settings)
    assert remote["failed"] == 0 and remote["skipped"] == 0, remote["results"]
    by_dev = {r["device"]: r for r in remote["results"]}
    assert sorted(by_dev) == ["a", "b", "pool-1", "pool-2"]
    assert by_dev["a"]["place"] == "lab/a1" and by_dev["b"]["place"] == "lab/b1"
    assert {by_dev["pool-1"]["place"], by_dev["pool-2"]["place"]} == {"lab/a2", "lab/b2"}  # named ones excluded
    assert {r["lab_host"] for r in remote["results"]} == {"host-a", "host-b"}
    for r in remote["results"]:  # same firmware, same inputs, virtual time: the same numbers as at home
        assert r["bit_exact"] is True and r["latency"]["median"] == ref["latency"]["median"]
        assert r["latency"]["min"] == ref["latency"]["min"] and r["latency"]["max"] == ref["latency"]["max"]
        assert r["latency"]["count"] == len(ref["latency"]["samples"])
    with ResultStore(settings["store"]) as st:
        runs = {st.get_run(r["run_id"])["lab"]["place"]: st.get_run(r["run_id"]) for r in remote["results"]}
        assert st.get_run(ref["run_id"])["lab"] is None
    assert set(runs) == {"lab/a1", "lab/a2", "lab/b1", "lab/b2"}
    assert all(run["lab"]["host"] == "host-" + place[-2] and run["status"] == "complete"
               and run["extra"]["fleet"]["place"] == place for place, run in runs.items())
    places = lab.client.places(refresh=True)
    assert not any(p.acquired or p.reservation for p in places.values())  # all released, reservations gone


def test_a_place_held_by_someone_else_is_busy_then_skipped_or_waited_for(lab, kws_model_path, tmp_path):
    from formicary.bench.fleet import run_fleet

    inv = _inventory(tmp_path / "one.toml", lab, '[[device]]\nname = "a2"\nplace = "lab/a2"\n')
    other = subprocess.Popen([sys.executable, "-c", HOLDER, lab.coordinator, "lab/a2"],
                             env={**os.environ, "LG_USERNAME": "alice"}, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        held = _read_line(other, 20).split()
        assert held[0] == "held" and held[1].endswith("/alice")
        from formicary.lab.admin import apply_places

        again = apply_places(lab.client, [{"name": "lab/a2", "tags": {"board": "qemu-m4", "lab": "a"},
                                           "matches": ["host-a/a2/*"], "comment": None}])
        assert again == [{"place": "lab/a2", "changed": []}]  # idempotent, even while someone holds it
        settings = {"inputs": 2, "runs": 2, "store": tmp_path / "runs.db"}
        skipped = run_fleet(inv, [kws_model_path], **settings)  # wait 0: skipped at once, never stolen
        (res,) = skipped["results"]
        assert res["status"] == "skipped" and skipped["skipped_devices"] == 1 and skipped["failed"] == 0
        assert res["error"]["owner"] == held[1] and "busy" in res["error"]["cause"]
        assert "--wait" in res["error"]["fix"] and res["run_id"] is None
        assert lab.client.place("lab/a2").acquired == held[1]

        events = []

        def on_event(event: dict) -> None:  # alice lets go once the fleet has said it is waiting for her
            events.append(event)
            if event.get("event") == "busy" and other.poll() is None and other.stdin and not other.stdin.closed:
                other.stdin.write("\n")
                other.stdin.close()

        waited = run_fleet(inv, [kws_model_path], wait=30, on_event=on_event, **settings)
        assert waited["failed"] == 0 and waited["skipped"] == 0 and waited["results"][0]["bit_exact"] is True
        busy = [e for e in events if e.get("event") == "busy"]
        assert busy and busy[0]["owner"] == held[1] and busy[0]["place"] == "lab/a2"
        assert other.wait(timeout=10) == 0
    finally:
        if other.poll() is None:
            other.kill()
    assert lab.client.place("lab/a2").acquired is None


def test_a_lab_host_killed_mid_bench(lab, kws_model_path, tmp_path):
    from formicary.bench.runner import run_bench
    from formicary.lab.placeref import place_port
    from formicary.store import ResultStore

    host = _start_host(lab.root, lab.coordinator, "host-c", ("c1",))
    try:
        lab.wait_resources("host-c", 2)
        lab.client.ensure_place("lab/c1", tags={"board": "qemu-m4"}, matches=["host-c/c1/*"])

        def on_event(event: dict) -> None:
            if event.get("event") == "inference" and event["done"] >= 3 and host.poll() is None:
                os.killpg(host.pid, signal.SIGKILL)  # the lab host's export process, its exporter and QEMU

        with pytest.raises(FormicaryError) as err:
            run_bench(kws_model_path, "qemu-m4", port=place_port("lab/c1", lab.coordinator), runs=400, inputs=2,
                      store=tmp_path / "runs.db", on_event=on_event)
    finally:
        _stop(host)
    e = err.value
    assert "lab host host-c went away" in e.cause and "lab/c1" in e.cause, e.cause
    run_id = e.details["run_id"]
    with ResultStore(tmp_path / "runs.db") as st:
        run = st.get_run(run_id)
    assert run["status"] == "incomplete" and "host-c" in run["incomplete_reason"]
    assert len(run["latency"]["samples"]) >= 3 and run["lab"] == {"place": "lab/c1", "host": "host-c",
                                                                   "coordinator": lab.coordinator}
    assert lab.client.place("lab/c1").acquired is None  # released although its lab host is gone


def test_a_client_killed_hard_leaves_a_stale_acquisition_that_is_explained(lab, kws_model_path):
    from formicary.bench.runner import run_bench
    from formicary.lab.placeref import place_port

    holder = subprocess.Popen([sys.executable, "-c", HOLDER, lab.coordinator, "lab/b2"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert _read_line(holder, 20).startswith("held")
    holder.kill()  # SIGKILL: no release
    holder.wait()
    with pytest.raises(FormicaryError) as err:
        run_bench(kws_model_path, "qemu-m4", port=place_port("lab/b2", lab.coordinator), runs=2, inputs=2,
                  store=False)
    e = err.value
    assert "stale acquisition" in e.cause and f"process {holder.pid}" in e.cause and e.details["stale"] is True
    assert f"formicary lab release lab/b2 --coordinator {lab.coordinator}" in e.fix
    r = subprocess.run([sys.executable, "-c", "from formicary.cli import main; main()", "lab", "release", "lab/b2",
                        "--coordinator", lab.coordinator, "--json"], capture_output=True, text=True, timeout=60,
                       check=False)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["released"] is True and lab.client.place("lab/b2").acquired is None
