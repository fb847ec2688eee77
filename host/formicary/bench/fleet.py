"""`formicary fleet`: bench every model on every board of an inventory at once, one worker process per device.

Three phases:
1. the inventory (docs/fleet.md) is read and checked before anything runs;
2. every (model, board type) firmware is prepared once, here in the parent, so that two devices of the same
   board type never race on one build directory; a firmware that cannot be built fails only its devices;
3. one worker process per device (spawned, so a segfault, a hang or a dead QEMU stays in that process) runs
   `run_bench` for each model in turn, writing to the shared results store (SQLite WAL, safe for concurrent
   writers); at most `jobs` workers run at once. Each worker talks to the parent over its own pipe, so a worker
   killed mid-message cannot corrupt another's; its progress events feed the caller's `on_event` (one bar per
   device), and a device over its time budget is stopped (SIGTERM, then SIGKILL and its QEMU killed).

Boards in a labgrid lab (docs/lab.md) are devices too: `place = "lab/m4-1"` (the board from the place's `board`
tag when not given), or `place_tags = { board = "qemu-m4" }` with `count = 3` (claimed through labgrid
reservations, which queue while the places are held). Before phase 2 the places are resolved (phase 0); a
worker acquires its place once for all its models and releases it at the end. A place held by someone else is
reported as busy with its owner; the fleet waits up to `wait` seconds for it, then skips it (status
`skipped`); a lock is never taken over unless `steal`. Runs record the place and the lab host.

The result is plain data (keys in docs/fleet.md); a failed device is one entry with its error, never an exception.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from formicary.errors import FormicaryError

Event = dict[str, Any]
DEFAULT_DEVICE_TIMEOUT_S = 3600.0
TERM_GRACE_S = 10.0          # after SIGTERM a worker gets this long to record why it stopped, then SIGKILL
_DEVICE_KEYS = {"name", "board", "port", "host", "runs", "tags", "timeout", "place", "place_tags", "count"}  # host: SBCs
_LATENCY_KEYS = ("unit", "method", "median", "min", "p90", "p99", "max", "mean", "estimate_ms", "clock_hz")


@dataclass(frozen=True)
class Device:
    """One entry of the inventory: a worker id, the formicary board it is, and where to reach it."""
    name: str
    board: str
    port: str | None = None
    runs: int | None = None
    tags: tuple[str, ...] = ()
    timeout: float | None = None
    line: int | None = None  # of its [[device]] header, for messages
    place: str | None = None                      # a labgrid place (board may come from its tags)
    place_tags: tuple[tuple[str, str], ...] = ()  # or a tag filter, claimed `count` times by reservations
    count: int = 1


@dataclass(frozen=True)
class Inventory:
    path: Path
    devices: tuple[Device, ...] = field(default_factory=tuple)
    coordinator: str | None = None  # [lab] coordinator = "HOST:PORT"

    @property
    def uses_lab(self) -> bool:
        return any(d.place or d.place_tags for d in self.devices)


# ---- inventory -----------------------------------------------------------------------------------------------

def load_inventory(path: str | Path) -> Inventory:
    """Read and check an inventory TOML (a list of [[device]] tables); every problem is a FormicaryError that
    names the entry and, when known, its line."""
    from formicary.boards import load_board

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise FormicaryError(f"cannot read the inventory {path}: {exc.strerror or exc}.",
                             "pass the path of an inventory TOML file (see docs/fleet.md).") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise FormicaryError(f"{path} is not valid TOML: {exc}.",
                             "fix the TOML syntax at that line (see the example in docs/fleet.md).",
                             details={"inventory": str(path), "line": int(m.group(1)) if m else None}) from exc
    unknown = sorted(set(data) - {"device", "lab"})
    if unknown:
        raise FormicaryError(f"{path}: unknown top-level key(s) {', '.join(map(repr, unknown))}.",
                             "an inventory holds only [[device]] tables (name, board, optional port, runs, tags, "
                             "timeout, place, place_tags, count) and a [lab] table; see docs/fleet.md.",
                             details={"inventory": str(path)})
    lab = data.get("lab", {})
    if not isinstance(lab, dict) or set(lab) - {"coordinator"} or not isinstance(lab.get("coordinator", ""), str):
        raise FormicaryError(f"{path}: [lab] takes only coordinator = \"HOST:PORT\".",
                             "e.g. [lab]\ncoordinator = \"lab-server:20408\"", details={"inventory": str(path)})
    entries = data.get("device")
    if not isinstance(entries, list) or not entries:
        raise FormicaryError(f"{path} lists no devices.",
                             "add one [[device]] table per board, e.g.\n  [[device]]\n  name = \"m4-a\"\n"
                             "  board = \"qemu-m4\"", details={"inventory": str(path)})
    # [[device]] header lines, in order, so that a bad entry can be pointed at
    headers = [i + 1 for i, line in enumerate(text.splitlines()) if re.match(r"\s*\[\[\s*device\s*\]\]", line)]
    devices: list[Device] = []
    names: dict[str, int] = {}
    ports: dict[str, str] = {}
    for k, entry in enumerate(entries):
        line = headers[k] if len(headers) == len(entries) else None
        where = f"{path}" + (f":{line}" if line else "") + f": device #{k + 1}"

        def bad(cause: str, fix: str) -> FormicaryError:  # called within this iteration only
            info = {"inventory": str(path), "entry": k + 1, "line": line}  # noqa: B023
            return FormicaryError(f"{where}: {cause}", fix, details=info)  # noqa: B023

        if not isinstance(entry, dict):
            raise bad("is not a table.", "write each device as a [[device]] table.")
        extra = sorted(set(entry) - _DEVICE_KEYS)
        if extra:
            raise bad(f"unknown key(s) {', '.join(map(repr, extra))}.",
                      f"use only {', '.join(sorted(_DEVICE_KEYS))}.")
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise bad("needs a non-empty string `name` (the worker id).", "add name = \"…\", unique in the file.")
        where = f"{where} ({name!r})"
        if name in names:
            raise bad(f"the name {name!r} is already used by device #{names[name]}.",
                      "give every device a unique name.")
        names[name] = k + 1
        place = entry.get("place")
        place_tags = entry.get("place_tags")
        count = entry.get("count", 1)
        if place is not None and (not isinstance(place, str) or not place):
            raise bad("`place` must be a labgrid place name.", "e.g. place = \"lab/m4-1\".")
        if place_tags is not None and (not isinstance(place_tags, dict) or not place_tags
                                       or not all(isinstance(v, str) for v in place_tags.values())):
            raise bad("`place_tags` must be a table of tag = \"value\".", "e.g. place_tags = { board = \"qemu-m4\" }.")
        if place is not None and place_tags is not None:
            raise bad("has both `place` and `place_tags`.", "name one place, or a tag filter with `count`.")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1 or (count > 1 and place_tags is None):
            raise bad(f"`count` must be an integer >= 1 with `place_tags`, got {count!r}.",
                      "e.g. place_tags = { board = \"qemu-m4\" } and count = 3.")
        if (place or place_tags) and entry.get("port") is not None:
            raise bad("has both a `port` and a place.", "a place brings its own serial port: drop `port`.")
        board_name = entry.get("board")
        if board_name is None and (place or place_tags):
            board_name = (place_tags or {}).get("board", "").replace("_", "-") or None  # else: the place's tag
        board = None  # a place without a `board` gets its board from the place's tag (claim_places)
        if board_name is not None or not (place or place_tags):
            if not isinstance(board_name, str) or not board_name:
                raise bad("needs `board`, a formicary board name.", "add board = \"…\" (see `formicary boards`).")
            try:
                board = load_board(board_name)
            except FormicaryError as exc:
                raise bad(exc.cause, exc.fix or "") from exc
        port = entry.get("port")
        if "host" in entry:  # an SBC reached over SSH: its host stands where a serial port would
            if place or place_tags:
                raise bad("has both `host` and a place.", "a place brings its own link: drop `host`.")
            if not board.is_sbc:
                raise bad(f"`host` is for SBC boards; {board_name} is a microcontroller.",
                          "use port = \"/dev/ttyACM0\" (or a pyserial URL) for it.")
            if port is not None:
                raise bad("has both `port` and `host`.", "keep host = \"user@addr[:port]\" only.")
            port = entry["host"]
            if not isinstance(port, str) or not port.strip():
                raise bad("`host` must be a non-empty string.", "e.g. host = \"pi@10.0.0.7\".")
        if board is not None and board.is_sbc and port is None and not board.virtual \
                and not (board.sbc and board.sbc.host):
            raise bad(f"{board_name} is reached over SSH and has no `host`.",
                      "add host = \"user@addr[:port]\" (an ~/.ssh/config alias works too) for this device.")
        if port is not None and (not isinstance(port, str) or not port.strip()):
            raise bad("`port` must be a non-empty string (a device path or pyserial URL).",
                      "e.g. port = \"/dev/ttyACM0\" or \"socket://127.0.0.1:4000\"; omit it for a virtual board.")
        if port is None and board is not None and not (place or place_tags) and not board.virtual \
                and not board.is_sbc:
            raise bad(f"{board_name} is a real board and has no `port`.",
                      "add port = \"/dev/ttyACM0\" (or an rfc2217:// / socket:// URL) for this device.")
        if port is not None:
            if port in ports:
                raise bad(f"port {port!r} is already used by device {ports[port]!r}.",
                          "two workers cannot share one serial port: give each device its own.")
            ports[port] = name
        runs = entry.get("runs")
        if runs is not None and (isinstance(runs, bool) or not isinstance(runs, int) or runs < 1):
            raise bad(f"`runs` must be an integer >= 1, got {runs!r}.", "e.g. runs = 50, or omit it.")
        tags = entry.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise bad("`tags` must be a list of strings.", "e.g. tags = [\"lab-a\", \"usb-hub-2\"].")
        timeout = entry.get("timeout")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                    or timeout <= 0):
            raise bad(f"`timeout` must be a number of seconds > 0, got {timeout!r}.", "e.g. timeout = 600.")
        devices.append(Device(name=name, board=board_name or "", port=port, runs=runs, tags=tuple(tags),
                              timeout=float(timeout) if timeout is not None else None, line=line, place=place,
                              place_tags=tuple(sorted((place_tags or {}).items())), count=count))
    return Inventory(path=path, devices=tuple(devices), coordinator=lab.get("coordinator"))


# ---- places (phase 0) ----------------------------------------------------------------------------------------

def claim_places(inv: Inventory, coordinator: str | None, wait: float,
                 emit: Callable[[Event], None]) -> tuple[list[Device], list[tuple[Device, dict[str, Any]]], Any, list[str]]:
    """Resolve the inventory's places: (devices to bench, (device, error) to skip, the LabClient, reservation
    tokens to cancel at the end). Named places keep their name (a busy one is reported now and waited for by
    its worker); tag filters get `count` reservations each, polled until allocated or WAIT runs out."""
    from formicary.boards import load_board
    from formicary.lab.client import LabClient
    from formicary.lab.placeref import default_coordinator

    client = LabClient(coordinator or inv.coordinator or default_coordinator())
    devices: list[Device] = []
    skipped: list[tuple[Device, dict[str, Any]]] = []
    tokens: list[str] = []
    pending: list[tuple[Device, str]] = []

    def with_board(d: Device, info: Any) -> Device:
        board = d.board or info.board
        if not board:
            raise FormicaryError(f"device {d.name!r}: place {info.name} has no `board` tag and the inventory gives "
                                 "no board.", "add board = \"…\" to the device, or tag the place (board=…).")
        load_board(board)
        if info.board and info.board != board:
            raise FormicaryError(f"device {d.name!r}: place {info.name} holds a {info.board}, not a {board}.",
                                 "fix the device's board or its place.")
        return Device(**{**asdict(d), "board": board, "place": info.name, "place_tags": d.place_tags,
                         "tags": tuple(d.tags)})

    named = {d.place for d in inv.devices if d.place}
    try:
        for d in inv.devices:
            if d.place:
                info = client.place(d.place)
                dev = with_board(d, info)
                devices.append(dev)
                if info.acquired:
                    h = client.holder(info)
                    emit({"event": "busy", "device": dev.name, "board": dev.board, "place": info.name,
                          "owner": h["owner"], "stale": h["stale"], "note": h["note"], "wait_s": wait})
            elif d.place_tags:
                for k in range(d.count):
                    name = d.name if d.count == 1 else f"{d.name}-{k + 1}"
                    pending.append((Device(**{**asdict(d), "name": name, "count": 1, "tags": tuple(d.tags),
                                              "place_tags": d.place_tags}),
                                    client.reserve(dict(d.place_tags))))
                    tokens.append(pending[-1][1])
            else:
                devices.append(d)
        deadline = time.monotonic() + max(wait, 2.0)  # free places are allocated at once: a moment is enough
        reported: set[str] = set()
        while pending:
            still = []
            for d, token in pending:
                st = client.poll_reservation(token)
                if st["place"] in named:  # a place another device names: keep it reserved (ours), ask again
                    token = client.reserve(dict(d.place_tags))
                    tokens.append(token)
                    still.append((d, token))
                    deadline = max(deadline, time.monotonic() + 5.0)  # a loaded coordinator answers late
                elif st["place"]:
                    devices.append(with_board(d, client.place(st["place"], refresh=False)))
                else:
                    still.append((d, token))
                    if d.name not in reported:
                        reported.add(d.name)
                        tags = " ".join(f"{k}={v}" for k, v in d.place_tags)
                        holders = sorted({p.acquired for p in client.find_places(dict(d.place_tags)) if p.acquired})
                        emit({"event": "busy", "device": d.name, "board": d.board or "?", "place": f"[{tags}]",
                              "owner": ", ".join(holders) or "reserved", "wait_s": wait})
            pending = still
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(0.25)
        for d, token in pending:
            tags = " ".join(f"{k}={v}" for k, v in d.place_tags)
            holders = sorted({p.acquired for p in client.find_places(dict(d.place_tags)) if p.acquired})
            client.cancel_reservation(token)
            tokens.remove(token)
            skipped.append((d, {"cause": f"no free place with tags {tags} within {wait:g} s (held by "
                                         f"{', '.join(holders) or 'other reservations'}).",
                                "fix": "pass --wait SECONDS to queue longer, or free a place with those tags.",
                                "kept": "nothing: the device was skipped.", "run_id": None,
                                "owner": ", ".join(holders) or None}))
    except BaseException:
        for token in tokens:
            try:
                client.cancel_reservation(token)
            except FormicaryError:
                pass
        client.close()
        raise
    return devices, skipped, client, tokens


# ---- worker (runs in its own process) ------------------------------------------------------------------------

WORKER_COMMAND = "from formicary.bench.fleet import _worker_main; _worker_main()"


class _Channel:
    """The worker's side of its pipe to the parent: one JSON message per line."""

    def __init__(self, fd: int) -> None:
        self._out = os.fdopen(fd, "w", buffering=1, encoding="utf-8")

    def send(self, msg: list[Any]) -> None:
        self._out.write(json.dumps(msg, default=str) + "\n")

    def close(self) -> None:
        self._out.close()


def _worker_main() -> None:
    """Entry point of a worker process (a fresh interpreter: nothing of the caller's __main__ is re-run).

    The spec comes as JSON on stdin; messages go to the parent on the original stdout, which is then pointed at
    stderr so that nothing printed by a library can corrupt the message stream."""
    spec = json.loads(sys.stdin.read())
    channel = _Channel(os.dup(1))
    os.dup2(2, 1)
    _device_worker(channel, spec)


def _device_worker(conn: _Channel, spec: dict[str, Any]) -> None:
    """Bench each model of `spec` on one device, one after another; report over `conn`.

    Messages: ["event", model_index, event], ["qemu", pid], ["result", model_index, entry]."""
    from formicary.bench.runner import run_bench
    from formicary.store import ResultStore

    device = spec["device"]

    def on_timeout(signum, frame):  # the parent's per-device budget ran out: end the run cleanly, recorded
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: the clean-up must not be interrupted again
        raise FormicaryError(f"device {device['name']!r} ran out of its fleet time budget "
                             f"({spec['timeout']:g} s) and was stopped.",
                             "raise `timeout` for this device in the inventory (or --timeout), or use fewer "
                             "--runs/--inputs.")

    signal.signal(signal.SIGTERM, on_timeout)
    port = device["port"]
    lab_client = None
    if device.get("place"):  # hold the place for all the models, release it at the end whatever happens
        from formicary.lab.placeref import place_port

        lab = spec["lab"]
        try:
            from formicary.lab.client import LabClient

            lab_client = LabClient(lab["coordinator"])
            lab_client.acquire(device["place"], wait=lab["wait"], steal=lab["steal"],
                               on_event=lambda e: conn.send(["event", None, {**e, "worker_pid": os.getpid()}]))
        except FormicaryError as exc:
            owner = (exc.details or {}).get("owner")
            busy = "busy" in exc.cause
            for job in spec["jobs"]:
                conn.send(["result", job["index"], {
                    "status": "skipped" if busy else "failed", "bench": None,
                    "error": {"cause": exc.cause, "fix": exc.fix, "owner": owner, "run_id": None,
                              "kept": "nothing: the place was not acquired, no run recorded."}}])
            if lab_client is not None:
                lab_client.close()
            conn.close()
            return
        port = place_port(device["place"], lab["coordinator"], held=True)
    tagger: list[ResultStore] = []

    def tag(run_id: int) -> None:
        # which device of which fleet made the run: kept by the store as `extra.fleet`
        if not tagger:
            tagger.append(ResultStore(spec["store"]))
        tagger[0].update_run(run_id, {"fleet": {"id": spec["fleet_id"], "device": device["name"],
                                                "port": device["port"], "tags": list(device["tags"]),
                                                "inventory": spec["inventory"],
                                                **({"place": device["place"]} if device.get("place") else {})}})

    try:
        for job in spec["jobs"]:
            idx = job["index"]

            def forward(event: Event, idx: int = idx) -> None:
                event = dict(event)
                c = event.pop("connection", None)  # in-process object: only its QEMU pid leaves the worker
                qemu = getattr(c, "qemu", None)
                if qemu is not None:
                    conn.send(["qemu", int(qemu.pid)])
                if event.get("event") == "start" and event.get("run_id") is not None:
                    tag(int(event["run_id"]))
                conn.send(["event", idx, {**event, "worker_pid": os.getpid()}])

            entry: dict[str, Any]
            try:
                result = run_bench(job["project_dir"], device["board"], port=port,
                                   runs=device["runs"] or spec["runs"], warmup=spec["warmup"], data=spec["data"],
                                   inputs=spec["inputs"], profile=spec["profile"], store=spec["store"],
                                   on_event=forward)
                entry = {"status": "ok", "bench": _summary(result), "error": None}
            except FormicaryError as exc:
                entry = {"status": "failed", "bench": _summary(exc.partial) if exc.partial else None,
                         "error": {"cause": exc.cause, "fix": exc.fix,
                                   "kept": (exc.details or {}).get("kept"),
                                   "run_id": (exc.details or {}).get("run_id")}}
            except Exception as exc:  # noqa: BLE001 -- a bug must cost this model only, and say what it was
                entry = {"status": "failed", "bench": None,
                         "error": {"cause": f"{type(exc).__name__}: {exc}",
                                   "fix": "report this bug with the inventory and the command line.",
                                   "kept": None, "run_id": None}}
            conn.send(["result", idx, entry])
            if entry["error"] and "fleet time budget" in entry["error"]["cause"]:
                break  # the parent marks the models that were not run
    except KeyboardInterrupt:
        pass  # Ctrl-C: run_bench has marked the run incomplete; the parent reports the interruption
    finally:
        for st in tagger:
            st.close()
        if lab_client is not None:
            try:
                lab_client.release(device["place"])
            except FormicaryError:
                pass  # the parent releases it when this worker is gone
            lab_client.close()
        conn.close()


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    """The part of a bench result a fleet reports (samples and per-input verdicts stay in the store)."""
    lat = result.get("latency") or {}
    return {"run_id": result.get("run_id"), "complete": result.get("complete"),
            "latency": {k: lat.get(k) for k in _LATENCY_KEYS if k in lat} | {"count": len(lat.get("samples") or [])}
            if lat else None,
            "bit_exact": result.get("bit_exact"), "mismatches": result.get("mismatches"),
            "inputs": result.get("inputs"), "accuracy": result.get("accuracy"), "energy": result.get("energy"),
            "started_at": result.get("started_at"), "finished_at": result.get("finished_at"),
            "flash_bytes": result.get("flash_bytes"), "ram_bytes": result.get("ram_bytes"), "lab": result.get("lab")}


# ---- parent --------------------------------------------------------------------------------------------------

@dataclass
class _Worker:
    device: Device
    process: subprocess.Popen
    log: Any                            # the worker's stderr, for the message when it dies
    deadline: float
    budget: float
    buffer: bytes = b""
    current: int | None = None          # model index being benched
    run_ids: dict[int, int] = field(default_factory=dict)
    qemu_pids: set[int] = field(default_factory=set)
    term_at: float | None = None
    killed: bool = False


def run_fleet(inventory: str | Path | Inventory, models: Sequence[str | Path], *, data: str | Path | None = None,
              inputs: int | None = None, runs: int | None = None, warmup: int = 1, profile: bool = False,
              store: str | Path | None = None, jobs: int | None = None, build_dir: str | Path | None = None,
              timeout: float = DEFAULT_DEVICE_TIMEOUT_S, memory_plan: str | None = None,
              on_event: Callable[[Event], None] | None = None, coordinator: str | None = None,
              wait: float = 0.0, steal: bool = False) -> dict[str, Any]:
    """Bench every model on every device of INVENTORY in parallel and return the fleet result (docs/fleet.md).

    runs: timed inferences per bench (a device's own `runs` wins); store: results store path (None = default);
    jobs: devices benched at once (default: all); build_dir: root of the per-(model, board) builds (default:
    the bench build cache); timeout: seconds per device for all its models (a device's own `timeout` wins);
    memory_plan: codegen's arena plan for every build (default auto).
    on_event receives the bench events of every device with `device` and `model` added, plus `failed`.
    Places (labgrid): coordinator (default: the inventory's [lab], else LG_COORDINATOR); wait: seconds to queue
    for a busy place before skipping it; steal: take over a held place (never done otherwise).
    """
    from formicary.store import ResultStore
    from formicary.store.results import now_iso

    t0 = time.monotonic()
    inv = inventory if isinstance(inventory, Inventory) else load_inventory(inventory)
    if not models:
        raise FormicaryError("no model given.", "pass one or more models: formicary fleet INVENTORY.toml MODEL…")
    model_paths = [Path(m).expanduser().resolve() for m in models]
    for given, m in zip(models, model_paths):
        if not m.exists():
            raise FormicaryError(f"model {given} does not exist.", "pass a .tflite/.keras/.h5 model file.")
    if len(set(model_paths)) != len(model_paths):
        raise FormicaryError("the same model is given twice.", "pass each model once.")
    if jobs is not None and jobs < 1:
        raise FormicaryError(f"--jobs must be at least 1, got {jobs}.", "pass --jobs 1 or more (or omit it).")
    if timeout <= 0:
        raise FormicaryError(f"--timeout must be > 0 seconds, got {timeout}.", "e.g. --timeout 600.")
    data_path = str(Path(data).expanduser().resolve()) if data is not None else None
    if data_path is not None and not Path(data_path).exists():
        raise FormicaryError(f"--data {data} does not exist.", "pass a folder of MLPerf .bin inputs or a .npz.")
    with ResultStore(store) as st:  # created/migrated once here, before the writers start
        store_path = str(st.path)
    fleet_id = uuid.uuid4().hex
    started_at = now_iso()

    def emit(event: Event) -> None:
        if on_event:
            on_event(event)

    results: dict[tuple[str, int], dict[str, Any]] = {}

    def record(dev: Device, idx: int, status: str, bench: dict[str, Any] | None,
               error: dict[str, Any] | None) -> None:
        b = bench or {}
        run_id = b.get("run_id")
        if run_id is None and error:
            run_id = error.get("run_id")
        results[(dev.name, idx)] = {
            "device": dev.name, "board": dev.board, "model": str(model_paths[idx]), "model_name":
            model_paths[idx].stem, "status": status, "run_id": run_id, "place": dev.place,
            "lab_host": (b.get("lab") or {}).get("host"), "latency": b.get("latency"),
            "bit_exact": b.get("bit_exact"), "mismatches": b.get("mismatches"), "inputs": b.get("inputs"),
            "accuracy": b.get("accuracy"), "energy": b.get("energy"), "started_at": b.get("started_at"),
            "finished_at": b.get("finished_at"), "error": error}
        if error:
            emit({"event": "failed", "device": dev.name, "board": dev.board, "model": model_paths[idx].stem,
                  "message": ("skipped: " if status == "skipped" else "") + error["cause"]})

    # -- phase 0: places of a labgrid lab resolved to devices (reservations for tag filters)
    lab_client, tokens, all_devices = None, [], list(inv.devices)
    lab_spec = None
    if inv.uses_lab:
        devices, skipped, lab_client, tokens = claim_places(inv, coordinator, wait, emit)
        lab_spec = {"coordinator": lab_client.coordinator, "wait": wait, "steal": steal}
        inv = Inventory(path=inv.path, devices=tuple(devices), coordinator=inv.coordinator)
        all_devices = [*devices, *(d for d, _ in skipped)]
        for d, err in skipped:
            for idx in range(len(model_paths)):
                record(d, idx, "skipped", None, err)
    try:
        return _run_devices(inv, all_devices, model_paths, record, results, emit, builds_root=build_dir,
                            runs=runs, warmup=warmup, data_path=data_path, inputs=inputs, profile=profile,
                            store_path=store_path, jobs=jobs, timeout=timeout, fleet_id=fleet_id,
                            started_at=started_at, t0=t0, lab_spec=lab_spec, lab_client=lab_client,
                            memory_plan=memory_plan)
    finally:
        if lab_client is not None:
            for token in tokens:
                try:
                    lab_client.cancel_reservation(token)
                except FormicaryError:
                    pass
            lab_client.close()


def _run_devices(inv: Inventory, all_devices: list[Device], model_paths: list[Path], record: Callable[..., None],
                 results: dict[tuple[str, int], dict[str, Any]], emit: Callable[[Event], None], *,
                 builds_root: str | Path | None, runs: int | None, warmup: int, data_path: str | None,
                 inputs: int | None, profile: bool, store_path: str, jobs: int | None, timeout: float,
                 fleet_id: str, started_at: str, t0: float, lab_spec: dict[str, Any] | None,
                 lab_client: Any, memory_plan: str | None = None) -> dict[str, Any]:
    """Phases 2 and 3 of run_fleet (the module docstring) over the resolved devices."""
    from multiprocessing.connection import wait

    from formicary.boards import load_board
    from formicary.store.results import now_iso
    from formicary.target.firmware import prepare_firmware

    build_dir = builds_root

    # -- phase 2: one firmware per (model, board type), built here so that no two workers share a build dir
    builds: list[dict[str, Any]] = []
    projects: dict[tuple[int, str], str] = {}
    for idx, model in enumerate(model_paths):
        for board_name in dict.fromkeys(d.board for d in inv.devices):
            users = [d for d in inv.devices if d.board == board_name]

            def fan_out(event: Event, users=users, model=model) -> None:
                for d in users:
                    emit({**event, "device": d.name, "model": model.stem})

            board = load_board(board_name)
            if board.is_sbc:  # no firmware: the .tflite itself goes to the board's TFLite runtime
                if model.suffix != ".tflite":
                    err = {"cause": f"{model.name} is not a .tflite: {board_name} runs models in a TFLite runtime.",
                           "fix": "compile it first (`formicary compile`) and pass the .tflite."}
                    builds.append({"model": str(model), "board": board_name, "project_dir": None, "built": False,
                                   "error": err})
                    for d in users:
                        record(d, idx, "failed", None, {**err, "kept": "nothing: no run recorded.", "run_id": None})
                    continue
                projects[(idx, board_name)] = str(model)
                builds.append({"model": str(model), "board": board_name, "project_dir": None, "built": False,
                               "sbc": True, "flash_bytes": None, "ram_bytes": None, "error": None})
                continue
            try:
                fw = prepare_firmware(model, board, cache_dir=build_dir, on_event=fan_out,
                                      memory_plan=memory_plan)
            except FormicaryError as exc:
                builds.append({"model": str(model), "board": board_name, "project_dir": None, "built": False,
                               "error": {"cause": exc.cause, "fix": exc.fix}})
                for d in users:
                    record(d, idx, "failed", None, {"cause": exc.cause, "fix": exc.fix,
                                                    "kept": "nothing: the firmware was not built, no run recorded.",
                                                    "run_id": None})
                continue
            projects[(idx, board_name)] = str(fw.project_dir)
            builds.append({"model": str(model), "board": board_name, "project_dir": str(fw.project_dir),
                           "built": fw.built, "flash_bytes": fw.flash_bytes, "ram_bytes": fw.ram_bytes,
                           "error": None})

    # -- phase 3: one worker process per device
    pending = [d for d in inv.devices if any((i, d.board) in projects for i in range(len(model_paths)))]
    running: dict[str, _Worker] = {}
    max_jobs = jobs or max(1, len(inv.devices))

    def start(dev: Device) -> None:
        budget = dev.timeout or timeout
        spec = {"device": {"name": dev.name, "board": dev.board, "port": dev.port, "runs": dev.runs,
                           "tags": list(dev.tags), "place": dev.place}, "lab": lab_spec,
                "jobs": [{"index": i, "project_dir": projects[(i, dev.board)]}
                         for i in range(len(model_paths)) if (i, dev.board) in projects],
                "runs": runs, "warmup": warmup, "data": data_path, "inputs": inputs, "profile": profile,
                "store": store_path, "fleet_id": fleet_id, "inventory": str(inv.path), "timeout": budget}
        log = tempfile.TemporaryFile()  # noqa: SIM115 -- closed in finish() (or on Ctrl-C)
        # a fresh interpreter per device: a crash or hang stays there, and the caller's __main__ is never re-run
        # (as multiprocessing's spawn would do); same process group, so a terminal's Ctrl-C reaches it too
        proc = subprocess.Popen([sys.executable, "-c", WORKER_COMMAND], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=log)
        try:
            proc.stdin.write(json.dumps(spec).encode())
            proc.stdin.close()
        except OSError:
            pass  # it died at once: reported with its log when its pipe closes
        running[dev.name] = _Worker(device=dev, process=proc, log=log, deadline=time.monotonic() + budget,
                                    budget=budget)

    def handle(w: _Worker, msg: list) -> None:
        kind = msg[0]
        if kind == "qemu":
            w.qemu_pids.add(msg[1])
        elif kind == "event":
            idx, event = msg[1], msg[2]
            if idx is None:  # about the device, not a model (its place: busy, acquired)
                emit({**event, "device": w.device.name, "board": w.device.board})
                return
            w.current = idx
            if event.get("event") == "start" and event.get("run_id") is not None:
                w.run_ids[idx] = int(event["run_id"])
            emit({**event, "device": w.device.name, "board": w.device.board, "model": model_paths[idx].stem})
        elif kind == "result":
            idx, entry = msg[1], msg[2]
            w.current = None
            record(w.device, idx, entry["status"], entry["bench"], entry["error"])

    def drain(w: _Worker) -> bool:
        """Handle the complete messages waiting (call when readable); False once the worker's end is closed."""
        try:
            data = os.read(w.process.stdout.fileno(), 1 << 16)
        except OSError:
            data = b""
        w.buffer += data
        *lines, w.buffer = w.buffer.split(b"\n")
        for line in lines:
            try:
                msg = json.loads(line)
            except ValueError:  # a message cut by a crash: the exit is reported instead
                continue
            handle(w, msg)
        return bool(data)

    def finish(w: _Worker) -> None:
        while drain(w):
            pass
        try:
            w.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            w.process.kill()
            w.process.wait()
        w.process.stdout.close()
        w.log.seek(0)
        log = [ln for ln in w.log.read().decode(errors="replace").splitlines() if ln.strip()][-15:]
        w.log.close()
        for pid in w.qemu_pids:  # a worker killed hard could not close its QEMU (non-Linux: no PDEATHSIG)
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        code = w.process.returncode
        if w.device.place and lab_client is not None and code != 0:  # a worker killed hard kept its place
            with contextlib.suppress(FormicaryError):
                info = lab_client.place(w.device.place)
                if info.acquired == lab_client.identity:
                    lab_client.release(w.device.place)
        for idx in range(len(model_paths)):
            if (w.device.name, idx) in results or (idx, w.device.board) not in projects:
                continue
            if w.term_at is not None:
                cause = (f"device {w.device.name!r} ran out of its fleet time budget ({w.budget:g} s)"
                         + (" while benchmarking this model." if idx == w.current else
                            " before this model was run."))
                fix = ("raise `timeout` for this device in the inventory (or --timeout), or use fewer "
                       "--runs/--inputs.")
            else:
                how = (f"was killed by signal {signal.Signals(-code).name}" if code is not None and code < 0
                       else f"exited with code {code}")
                said = f" (its last words: {log[-1].strip()})" if log else ""
                cause = (f"the worker process of device {w.device.name!r} {how} "
                         + ("while benchmarking this model" if idx == w.current else "before this model was run")
                         + f"{said}.")
                fix = "run `formicary bench` on this board alone to see the failure; report it if it persists."
            run_id = w.run_ids.get(idx)
            kept = (f"run {run_id} in {store_path} keeps what was measured (marked incomplete/interrupted)."
                    if run_id is not None else "nothing: no run was recorded for this model.")
            record(w.device, idx, "failed", None, {"cause": cause, "fix": fix, "kept": kept, "run_id": run_id,
                                                   "log": log})

    try:
        while pending or running:
            while pending and len(running) < max_jobs:
                start(pending.pop(0))
            now = time.monotonic()
            wait_for = min([0.5] + [max(0.0, (w.term_at + TERM_GRACE_S if w.term_at else w.deadline) - now)
                                    for w in running.values()])
            ready = wait([w.process.stdout for w in running.values()], timeout=wait_for)
            for name, w in list(running.items()):
                alive = True
                if w.process.stdout in ready:
                    alive = drain(w)
                if not alive or w.process.poll() is not None:
                    finish(w)
                    del running[name]
                    continue
                now = time.monotonic()
                if w.term_at is None and now > w.deadline:
                    w.term_at = now
                    w.process.terminate()  # SIGTERM: the worker records the run as incomplete and stops
                elif w.term_at is not None and now > w.term_at + TERM_GRACE_S and not w.killed:
                    w.killed = True
                    w.process.kill()
    except BaseException:
        # Ctrl-C (or a bug here): stop every worker; runs already recorded stay in the store, marked incomplete.
        # On a terminal's Ctrl-C the workers got SIGINT too: give them a moment to record why they stopped.
        end = time.monotonic() + TERM_GRACE_S / 2
        for w in running.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                w.process.wait(timeout=max(0.0, end - time.monotonic()))
        for w in running.values():
            if w.process.poll() is None:
                w.process.terminate()
        for w in running.values():
            try:
                w.process.wait(timeout=TERM_GRACE_S / 2)
            except subprocess.TimeoutExpired:
                w.process.kill()
            for pid in w.qemu_pids:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            w.log.close()
        raise

    ordered = [results[(d.name, i)] for d in all_devices for i in range(len(model_paths)) if (d.name, i) in results]
    devices = []
    for d in all_devices:
        mine = [r for r in ordered if r["device"] == d.name]
        failed = sum(r["status"] == "failed" for r in mine)
        skipped = sum(r["status"] == "skipped" for r in mine)
        devices.append({**{k: v for k, v in asdict(d).items() if k not in ("line", "place_tags", "count")},
                        "tags": list(d.tags), "place_tags": dict(d.place_tags) or None,
                        "status": "failed" if failed else "skipped" if skipped else "ok", "failed": failed,
                        "run_ids": [r["run_id"] for r in mine if r["run_id"] is not None]})
    return {
        "inventory": str(inv.path), "fleet_id": fleet_id, "store_path": store_path,
        "models": [str(m) for m in model_paths],
        "settings": {"runs": runs, "warmup": warmup, "data": data_path, "inputs": inputs, "profile": profile,
                     "jobs": max_jobs, "timeout": timeout},
        "devices": devices, "builds": builds, "results": ordered,
        "failed": sum(r["status"] == "failed" for r in ordered),
        "failed_devices": sum(d["status"] == "failed" for d in devices),
        "skipped": sum(r["status"] == "skipped" for r in ordered),
        "skipped_devices": sum(d["status"] == "skipped" for d in devices),
        "lab": ({"coordinator": lab_spec["coordinator"], "wait": lab_spec["wait"], "steal": lab_spec["steal"]}
                if lab_spec else None),
        "mismatched": sum(1 for r in ordered if r["status"] == "ok" and r["mismatches"]),
        "started_at": started_at, "finished_at": now_iso(), "seconds": round(time.monotonic() - t0, 3),
    }


__all__ = ["DEFAULT_DEVICE_TIMEOUT_S", "Device", "Inventory", "load_inventory", "run_fleet"]
