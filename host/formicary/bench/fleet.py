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
_DEVICE_KEYS = {"name", "board", "port", "host", "runs", "tags", "timeout"}  # host: SBCs (user@addr[:port])
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


@dataclass(frozen=True)
class Inventory:
    path: Path
    devices: tuple[Device, ...] = field(default_factory=tuple)


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
    unknown = sorted(set(data) - {"device"})
    if unknown:
        raise FormicaryError(f"{path}: unknown top-level key(s) {', '.join(map(repr, unknown))}.",
                             "an inventory holds only [[device]] tables (name, board, optional port, runs, tags, "
                             "timeout); see docs/fleet.md.", details={"inventory": str(path)})
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
        board_name = entry.get("board")
        if not isinstance(board_name, str) or not board_name:
            raise bad("needs `board`, a formicary board name.", "add board = \"…\" (see `formicary boards`).")
        try:
            board = load_board(board_name)
        except FormicaryError as exc:
            raise bad(exc.cause, exc.fix or "") from exc
        port = entry.get("port")
        if "host" in entry:  # an SBC reached over SSH: its host stands where a serial port would
            if not board.is_sbc:
                raise bad(f"`host` is for SBC boards; {board_name} is a microcontroller.",
                          "use port = \"/dev/ttyACM0\" (or a pyserial URL) for it.")
            if port is not None:
                raise bad("has both `port` and `host`.", "keep host = \"user@addr[:port]\" only.")
            port = entry["host"]
            if not isinstance(port, str) or not port.strip():
                raise bad("`host` must be a non-empty string.", "e.g. host = \"pi@10.0.0.7\".")
        if board.is_sbc and port is None and not board.virtual and not (board.sbc and board.sbc.host):
            raise bad(f"{board_name} is reached over SSH and has no `host`.",
                      "add host = \"user@addr[:port]\" (an ~/.ssh/config alias works too) for this device.")
        if port is not None and (not isinstance(port, str) or not port.strip()):
            raise bad("`port` must be a non-empty string (a device path or pyserial URL).",
                      "e.g. port = \"/dev/ttyACM0\" or \"socket://127.0.0.1:4000\"; omit it for a virtual board.")
        if port is None and not board.virtual and not board.is_sbc:
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
        devices.append(Device(name=name, board=board_name, port=port, runs=runs, tags=tuple(tags),
                              timeout=float(timeout) if timeout is not None else None, line=line))
    return Inventory(path=path, devices=tuple(devices))


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
    tagger: list[ResultStore] = []

    def tag(run_id: int) -> None:
        # which device of which fleet made the run: kept by the store as `extra.fleet`
        if not tagger:
            tagger.append(ResultStore(spec["store"]))
        tagger[0].update_run(run_id, {"fleet": {"id": spec["fleet_id"], "device": device["name"],
                                                "port": device["port"], "tags": list(device["tags"]),
                                                "inventory": spec["inventory"]}})

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
                result = run_bench(job["project_dir"], device["board"], port=device["port"],
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
            "flash_bytes": result.get("flash_bytes"), "ram_bytes": result.get("ram_bytes")}


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
              timeout: float = DEFAULT_DEVICE_TIMEOUT_S,
              on_event: Callable[[Event], None] | None = None) -> dict[str, Any]:
    """Bench every model on every device of INVENTORY in parallel and return the fleet result (docs/fleet.md).

    runs: timed inferences per bench (a device's own `runs` wins); store: results store path (None = default);
    jobs: devices benched at once (default: all); build_dir: root of the per-(model, board) builds (default:
    the bench build cache); timeout: seconds per device for all its models (a device's own `timeout` wins).
    on_event receives the bench events of every device with `device` and `model` added, plus `failed`.
    """
    from multiprocessing.connection import wait

    from formicary.target.firmware import prepare_firmware
    from formicary.boards import load_board
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
            model_paths[idx].stem, "status": status, "run_id": run_id, "latency": b.get("latency"),
            "bit_exact": b.get("bit_exact"), "mismatches": b.get("mismatches"), "inputs": b.get("inputs"),
            "accuracy": b.get("accuracy"), "energy": b.get("energy"), "started_at": b.get("started_at"),
            "finished_at": b.get("finished_at"), "error": error}
        if error:
            emit({"event": "failed", "device": dev.name, "board": dev.board, "model": model_paths[idx].stem,
                  "message": error["cause"]})

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
                fw = prepare_firmware(model, board, cache_dir=build_dir, on_event=fan_out)
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
                           "tags": list(dev.tags)},
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

    ordered = [results[(d.name, i)] for d in inv.devices for i in range(len(model_paths)) if (d.name, i) in results]
    devices = []
    for d in inv.devices:
        mine = [r for r in ordered if r["device"] == d.name]
        failed = sum(r["status"] == "failed" for r in mine)
        devices.append({**{k: v for k, v in asdict(d).items() if k != "line"}, "tags": list(d.tags),
                        "status": "failed" if failed else "ok", "failed": failed,
                        "run_ids": [r["run_id"] for r in mine if r["run_id"] is not None]})
    return {
        "inventory": str(inv.path), "fleet_id": fleet_id, "store_path": store_path,
        "models": [str(m) for m in model_paths],
        "settings": {"runs": runs, "warmup": warmup, "data": data_path, "inputs": inputs, "profile": profile,
                     "jobs": max_jobs, "timeout": timeout},
        "devices": devices, "builds": builds, "results": ordered,
        "failed": sum(r["status"] == "failed" for r in ordered),
        "failed_devices": sum(d["status"] == "failed" for d in devices),
        "mismatched": sum(1 for r in ordered if r["status"] == "ok" and r["mismatches"]),
        "started_at": started_at, "finished_at": now_iso(), "seconds": round(time.monotonic() - t0, 3),
    }


__all__ = ["DEFAULT_DEVICE_TIMEOUT_S", "Device", "Inventory", "load_inventory", "run_fleet"]
