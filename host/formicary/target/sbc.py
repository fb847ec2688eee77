"""Run a model on a Linux single-board computer: SSH in, copy the on-board agent (formicary/target/sbc_agent.py),
the model and the inputs, run the agent with the board's Python and read its JSON lines as they come.

`open_sbc()` reaches the board: `--host user@addr[:port]` (or the board file's `host`), or, for the virtual SBC
(`qemu-aarch64`) without --host, a VirtualSbc booted here for the lifetime of the link. `SbcLink.run_agent()`
yields the agent's events; the failures of the board (no runtime, no Python, full disk, a dropped connection)
each become one FormicaryError with its fix.
"""
from __future__ import annotations

import contextlib
import io
import json
import platform
import posixpath
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from formicary.boards import Board
from formicary.errors import FormicaryError
from formicary.target.ssh import SshConnection, SshTarget, connect, parse_host, quote

Event = dict[str, Any]


def agent_source() -> bytes:
    """The agent as shipped in the package (a resource, so an installed wheel has it too)."""
    return resources.files("formicary.target").joinpath("sbc_agent.py").read_bytes()


def pip_advice(python: str, version: str, machine: str) -> str:
    """The pip command that gives PYTHON (VERSION, on MACHINE) a TFLite runtime, from the wheels PyPI has."""
    try:
        minor = int(version.split(".")[1])
    except (IndexError, ValueError):
        minor = 0
    venv = ("python3 -m venv --system-site-packages ~/tflite && ~/tflite/bin/pip install {pkgs}"
            " (Debian/Raspberry Pi OS refuse pip in the system Python, PEP 668), then pass --python ~/tflite/bin/python3")
    if machine in ("aarch64", "arm64", "x86_64"):
        if minor <= 11:
            pkgs = '"tflite-runtime==2.14.0" "numpy<2"'
            return (f"Python {version} on {machine}: tflite-runtime 2.14 has a wheel (needs numpy<2): "
                    + venv.format(pkgs=pkgs) + "; or ai-edge-litert (needs numpy>=2)")
        return (f"Python {version} on {machine}: tflite-runtime has no wheel for it, ai-edge-litert does: "
                + venv.format(pkgs="ai-edge-litert"))
    if machine.startswith("armv7") or machine.startswith("armv6"):
        return (f"Python {version} on {machine} (32-bit): neither ai-edge-litert nor recent tflite-runtime ship 32-bit "
                "Arm wheels on PyPI; install a 64-bit OS (aarch64) where the board can, or a tflite-runtime "
                "armv7l wheel from piwheels.org: " + venv.format(pkgs="--extra-index-url https://www.piwheels.org/simple tflite-runtime"))
    return f"Python {version} on {machine}: " + venv.format(pkgs="ai-edge-litert")


@dataclass
class AgentRequest:
    """What the agent runs: per-input runs (warm-ups before the first input only), runtime and its options."""
    sets: Sequence[Sequence[np.ndarray]]
    runs: Sequence[int]
    warmup: int = 1
    runtime: str | None = None              # force one; default: the board's order
    runtimes: Sequence[str] = ()
    threads: int | None = None
    xnnpack: bool | None = None             # None: the runtime's default
    profile: bool = False
    sensor: str | None = None               # none | auto | ina219[:bus:addr:shunt] | ina226[...] | hwmon[:path] | pmic
    pause_after_input: float = 0.0          # tests only


@dataclass
class SbcLink:
    """An open SSH connection to an SBC, with the Python and work folder the agent uses there."""
    board: Board
    conn: SshConnection
    python: str
    workdir: str
    url: str
    virtual: bool = False
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        try:
            self.conn.close()
        finally:
            for close in self._closers:
                close()

    def __enter__(self) -> "SbcLink":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- copying ----------------------------------------------------------------------------------------
    def _disk_error(self, what: str, exc: BaseException, need: int) -> FormicaryError:
        """Why a copy failed: a full disk (checked with df) or something else."""
        free = None
        try:
            rc, out, _ = self.conn.run(f"df -Pk {quote(self.workdir)} | tail -1")
            if rc == 0 and out.split():
                free = int(out.split()[3]) * 1024
        except (FormicaryError, ValueError, IndexError):
            pass
        if free is not None and free < need:
            return FormicaryError(
                f"the board's disk is full: {self.workdir} on {self.url} has {free:,} bytes free and copying "
                f"{what} needs {need:,} ({exc}).",
                "free space on the board (e.g. `sudo apt clean`, old files in /tmp), or pass --workdir on a "
                "filesystem with room (e.g. --workdir /tmp/formicary).",
                details={"free_bytes": free, "needed_bytes": need, "workdir": self.workdir})
        return FormicaryError(f"copying {what} to {self.url}:{self.workdir} failed: {exc}.",
                              "check that the SSH user may write there, or pass --workdir DIR.",
                              details={"workdir": self.workdir})

    def put(self, name: str, data: bytes) -> str:
        path = posixpath.join(self.workdir, name)
        sftp = self.conn.sftp()
        try:
            with sftp.open(path, "wb") as f:
                f.write(data)
            size = sftp.stat(path).st_size
        except OSError as exc:
            raise self._disk_error(name, exc, len(data)) from exc
        if size != len(data):  # some servers acknowledge a write the disk could not hold
            raise self._disk_error(name, OSError(f"{size} of {len(data)} bytes written"), len(data))
        return path

    def prepare(self, model: Path, request: AgentRequest) -> str:
        """Copy the agent, the model, the inputs and the request; returns the request's path on the board."""
        rc, _, err = self.conn.run(f"mkdir -p {quote(self.workdir)}")
        if rc != 0:
            raise FormicaryError(f"cannot create {self.workdir} on {self.url}: {err.strip()}",
                                 "pass --workdir DIR with a folder the SSH user may write.")
        buf = io.BytesIO()
        arrays = {f"x{k}_{i}": np.ascontiguousarray(t) for k, s in enumerate(request.sets) for i, t in enumerate(s)}
        np.savez(buf, count=np.int64(len(request.sets)), **arrays)
        agent = self.put("sbc_agent.py", agent_source())
        model_path = self.put("model.tflite", model.read_bytes())
        inputs = self.put("inputs.npz", buf.getvalue())
        req = {"model": model_path, "inputs": inputs, "runs": [int(n) for n in request.runs],
               "warmup": int(request.warmup), "runtime": request.runtime,
               "runtimes": list(request.runtimes or self.board.sbc.runtimes), "threads": request.threads,
               "xnnpack": request.xnnpack, "profile": request.profile, "sensor": request.sensor,
               "pause_after_input": request.pause_after_input}
        self.put("request.json", json.dumps(req).encode())
        return agent

    # ---- running ----------------------------------------------------------------------------------------
    def run_agent(self, model: Path, request: AgentRequest, timeout: float = 120.0) -> Iterator[Event]:
        """Copy everything and run the agent; yields its events (hello, inference, outputs, power, done).
        `timeout`: the longest silence between two events. Errors raise FormicaryError; events already yielded
        are the caller's to keep."""
        agent = self.prepare(model, request)
        cmd = f"cd {quote(self.workdir)} && exec {quote(self.python)} {quote(agent)} request.json"
        try:
            chan, lines = self.conn.stream(cmd, timeout)
        except Exception as exc:  # noqa: BLE001 - paramiko's and the socket's, one message
            raise self.conn.dropped(f"when starting the agent: {exc}") from exc
        finished = False
        seen = 0
        try:
            for line in lines:
                line = line.strip()
                if not line:
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    continue  # a runtime's own chatter on stdout
                if event.get("event") == "error":
                    raise self._agent_error(event)
                if event.get("event") == "inference":
                    seen += 1
                if event.get("event") == "done":
                    finished = True
                yield event
        except FormicaryError:
            raise
        except Exception as exc:  # noqa: BLE001 - socket.timeout, EOFError, SSHException, OSError
            raise self.conn.dropped(f"after {seen} timed inference(s): {type(exc).__name__}: {exc}") from exc
        if finished:
            return
        status = chan.recv_exit_status() if chan.exit_status_ready() else None
        err = ""
        with contextlib.suppress(Exception):
            err = chan.makefile_stderr("r").read().decode(errors="replace")[-1500:]
        if status is None or status == -1:
            raise self.conn.dropped(f"after {seen} timed inference(s) (the agent's output ended without a result)")
        if status == 127 or "No such file or directory" in err and self.python in err:
            raise FormicaryError(f"there is no Python at {self.python} on {self.url}.",
                                 "install python3 and python3-numpy on the board, or pass --python PATH.")
        raise FormicaryError(f"the agent on {self.url} stopped with exit status {status} after {seen} timed "
                             f"inference(s): {err.strip() or 'no message'}",
                             "run it by hand on the board to see more (the files are in "
                             f"{self.workdir}: `{self.python} sbc_agent.py request.json`).")

    def _agent_error(self, event: Event) -> FormicaryError:
        kind, msg = event.get("kind"), event.get("message", "")
        py, ver, mach = event.get("executable") or self.python, event.get("python", "?"), event.get("machine", "?")
        if kind == "no_runtime":
            tried = "; ".join(f"{t['runtime']}: {t['error']}" for t in event.get("tried", []))
            alt = [p for p in dict.fromkeys([self.board.sbc.python, *self.board.sbc.alt_pythons])
                   if p != self.python] if self.board.sbc else []
            other = f" (this board's other Pythons: {', '.join(alt)}: pass --python PATH)" if alt else ""
            return FormicaryError(
                f"no TFLite runtime in {py} (Python {ver}, {mach}) on {self.url}: tried {tried}.",
                "install one on the board: " + pip_advice(py, ver, mach) + other,
                details={"tried": event.get("tried"), "python": ver, "machine": mach})
        if kind == "no_numpy":
            return FormicaryError(f"{py} on {self.url} has no numpy (the agent needs it): {msg}",
                                  "install it on the board (`sudo apt install python3-numpy`) or pass --python.")
        if kind == "sensor":
            return FormicaryError(f"the power sensor on {self.url}: {msg}",
                                  "check the sensor (i2cdetect -y 1, /sys/class/hwmon) and --sensor, or drop "
                                  "--sensor for modelled energy.")
        if kind == "option":
            return FormicaryError(f"{msg}.", "drop the option or use another runtime (--runtime).")
        if kind == "memory":
            return FormicaryError(f"the board ran out of memory ({self.url}).",
                                  "use a smaller model or fewer threads, or close what else runs on the board.")
        return FormicaryError(f"the agent on {self.url} failed: {msg}",
                              f"run it by hand on the board: `{self.python} sbc_agent.py request.json` in "
                              f"{self.workdir}.")


def _virtual_sbc():  # helper A's module; imported late so a tree without it still works for real boards
    from formicary.target.virtual_sbc import VirtualSbc

    return VirtualSbc(boot_timeout=600.0)  # ~20 s idle; minutes when the host's cores are busy


def open_sbc(board: Board, host: str | None = None, *, python: str | None = None, workdir: str | None = None,
             key: Path | None = None, known_hosts: Path | None = None,
             on_event: Callable[[Event], None] | None = None) -> SbcLink:
    """An SSH link to BOARD: `host` (user@addr[:port]), else the board file's, else (virtual SBC) a VirtualSbc
    booted for the lifetime of the link."""
    if board.sbc is None:
        raise FormicaryError(f"{board.name} is not a single-board computer.", "use an SBC board (`formicary boards`).")
    spec = host or board.sbc.host
    closers: list[Callable[[], None]] = []
    if spec:
        target = parse_host(spec)
        target = SshTarget(target.host, target.port, target.user, key, known_hosts)
    elif board.virtual:
        vm = _virtual_sbc()
        if on_event:
            on_event({"event": "flash", "board": board.name, "how": "booting the virtual SBC"})
        ep = vm.__enter__()
        closers.append(lambda: vm.__exit__(None, None, None))
        target = SshTarget(ep.host, ep.port, ep.user, Path(ep.key_path), Path(ep.known_hosts))
    else:
        raise FormicaryError(f"{board.name} is reached over SSH and no --host was given.",
                             "pass --host user@addr[:port] (an alias of ~/.ssh/config works too).")
    try:
        conn = connect(target)
    except BaseException:
        for close in closers:
            close()
        raise
    wd = workdir or board.sbc.workdir
    return SbcLink(board, conn, python or board.sbc.python, wd, conn.where, board.virtual, closers)


def host_runtime() -> dict[str, str]:
    return {"python": platform.python_version(), "machine": platform.machine()}


__all__ = ["AgentRequest", "SbcLink", "agent_source", "open_sbc", "pip_advice"]
