"""Virtual boards: start QEMU with firmware, hand back a serial URL, and kill it reliably.

QEMU runs in its own process group with `-icount shift=0` (one retired instruction = 1 ns of virtual time, so
SysTick readings are exact instruction counts and repeat run to run), its first UART on a TCP server socket
(`wait=on` so the guest cannot start before we listen, `nodelay=on` for a 0.5 ms round trip) and `-S` so the
CPU stays paused until the host is attached and sends the monitor command `cont`: no byte of output is lost.
"""
from __future__ import annotations

import argparse
import functools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from formicary.boards import Board, load_board
from formicary.errors import FormicaryError
from formicary.toolchain import require

QEMU = "qemu-system-arm"


def _listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:port, without connecting (a connection would be taken by QEMU's
    wait=on server as its serial client)."""
    want = f":{port:04X}"
    try:
        with open("/proc/net/tcp") as fp:
            next(fp)
            for line in fp:
                parts = line.split()
                if parts[1].endswith(want) and parts[3] == "0A":  # 0A = LISTEN
                    return True
        return False
    except OSError:  # no procfs: give QEMU a moment instead
        time.sleep(0.2)
        return True


def dying_with_parent(cmd: list[str]) -> list[str]:
    """`cmd` prefixed so that Linux kills it when the thread that started it dies (PR_SET_PDEATHSIG, SIGKILL
    included): a bench, fleet worker or test killed at any moment, even between launch and close, leaves no QEMU
    behind. They run in their own process group (for clean kills), which group signals alone would not reach.

    util-linux's `setpriv --pdeathsig` sets it after the fork, so Popen needs no Python `preexec_fn`: that forces
    a real fork() in a process whose other threads may hold locks (labgrid's gRPC runs atfork handlers there and
    crashed children with SIGSEGV), where setpriv lets Popen use vfork. Without setpriv (non-Linux), close() and
    the fleet's pid list still apply."""
    setpriv = _setpriv()
    return [setpriv, "--pdeathsig", "KILL", "--", *cmd] if setpriv else list(cmd)


@functools.cache
def _setpriv() -> str | None:
    if not sys.platform.startswith("linux"):
        return None
    path = shutil.which("setpriv")
    if path is None:
        return None
    probe = subprocess.run([path, "--pdeathsig", "KILL", "--", "true"], capture_output=True)
    return path if probe.returncode == 0 else None  # util-linux older than 2.33 has no --pdeathsig


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class QemuInstance:
    """A running virtual board. `url` is a pyserial URL for its UART; `close()` kills the process group."""
    board: Board
    elf: Path
    url: str
    port: int
    process: subprocess.Popen
    log_path: Path
    paused: bool = True
    _closed: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def check_alive(self, grace: float = 0.0) -> None:
        """Raise a clear FormicaryError when QEMU has exited (killed, crashed, bad ELF...).

        `grace`: how long to wait for an exit in progress (a dying QEMU closes its socket a moment before
        the process is gone)."""
        try:
            code = self.process.wait(timeout=grace) if grace > 0 else self.process.poll()
        except subprocess.TimeoutExpired:
            code = None
        if code is None:
            return
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        tail = self.log_tail()
        try:  # QEMU's own one-line reasons ("qemu: fatal: Lockup ...", "qemu-system-arm: Could not load ...")
            said = [m.group(0).strip() for m in re.finditer(r"qemu(?:-system-arm)?: (?!warning|info|-serial).*",
                                                              self.log_path.read_text(errors="replace"))][:3]
        except OSError:
            said = []
        reason = f": {'; '.join(said)}" if said else ""
        raise FormicaryError(
            f"QEMU ({self.board.qemu_machine}, virtual board {self.board.name}) {how}{reason}.",
            "run again; if it keeps happening, run the QEMU command in details.command by hand to see why.",
            details={"board": self.board.name, "exit_code": code, "qemu_messages": said, "qemu_log": tail,
                     "command": " ".join(self.process.args) if isinstance(self.process.args, list) else None})

    def watchdog(self) -> None:
        """For Session(watchdog=...): called after a timeout or a broken connection."""
        self.check_alive(grace=1.0)

    def monitor(self, command: str) -> None:
        """Send an HMP monitor command (e.g. `cont`, `system_reset`, `stop`)."""
        self.check_alive()
        assert self.process.stdin is not None
        try:
            self.process.stdin.write((command + "\n").encode())
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            self.check_alive()
            raise

    def resume(self) -> None:
        if self.paused:
            self.monitor("cont")
            self.paused = False

    def reset(self) -> None:
        """Press the virtual reset button."""
        self.monitor("system_reset")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill QEMU's whole process group (used by fault tests to simulate a crash)."""
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.alive():
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=3)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                self.kill(signal.SIGKILL)
        try:
            self.process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            pass
        if self.process.stdin:
            try:
                self.process.stdin.close()
            except OSError:
                pass
        self.log_path.unlink(missing_ok=True)  # errors have already copied what matters into their details

    def __enter__(self) -> "QemuInstance":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def qemu_command(board: Board, elf: Path, port: int, *, paused: bool = True, monitor_stdio: bool = True,
                 host: str = "127.0.0.1") -> list[str]:
    """`host`: the address the UART listens on (a lab host exporting the board listens on its public one)."""
    cmd = [QEMU, "-machine", board.qemu_machine or "", "-nographic", "-nodefaults",
           "-icount", "shift=0",
           "-serial", f"tcp:{host}:{port},server=on,wait=on,nodelay=on",
           "-kernel", str(elf)]
    if monitor_stdio:
        cmd += ["-monitor", "stdio"]
    if paused:
        cmd.append("-S")
    return cmd


def launch(board: Board | str, elf: str | Path, *, start_timeout: float = 10.0, attempts: int = 3) -> QemuInstance:
    """Start QEMU for a virtual board, paused, listening for the serial connection.

    Connect to `instance.url` first, then call `instance.resume()` (the Session does it via `on_connect`).
    QEMU dies with the thread that launched it (Linux PR_SET_PDEATHSIG): launch from a thread that outlives the
    session, e.g. the main thread; `launch_detached` is for QEMUs that must outlive this process.
    """
    board = load_board(board) if isinstance(board, str) else board
    if not board.virtual or not board.qemu_machine:
        raise FormicaryError(f"board {board.name} is not a virtual board.",
                             "flash it with `formicary flash` and pass its serial port with --port.")
    require(QEMU, "qemu-system-arm")
    elf = Path(elf)
    if not elf.is_file():
        raise FormicaryError(f"firmware {elf} does not exist.", "build it first (`formicary build`).")
    last_error: FormicaryError | None = None
    for _ in range(attempts):  # the free port can be taken between our probe and QEMU's bind: retry
        port = _free_port()
        log_fd, log_name = tempfile.mkstemp(prefix=f"formicary-qemu-{board.name}-", suffix=".log")
        cmd = dying_with_parent(qemu_command(board, elf, port))
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=log_fd, stderr=subprocess.STDOUT,
                                start_new_session=True)
        os.close(log_fd)
        inst = QemuInstance(board=board, elf=elf, url=f"socket://127.0.0.1:{port}", port=port, process=proc,
                            log_path=Path(log_name))
        deadline = time.monotonic() + start_timeout
        while time.monotonic() < deadline:
            if not inst.alive():
                break
            if _listening(port):
                return inst
            time.sleep(0.01)
        try:
            inst.check_alive()
            inst.close()
            last_error = FormicaryError(f"QEMU did not open its serial port within {start_timeout:.0f} s.",
                                       "the machine may be overloaded; run again.")
        except FormicaryError as exc:
            last_error = exc
            # retried: the port taken between our probe and QEMU's bind, or a start killed by a signal (seen once
            # in CI with a forked child, before vfork); anything QEMU itself reported is final
            if "Address already in use" not in inst.log_tail() and not (inst.process.returncode or 0) < 0:
                break
    assert last_error is not None
    raise last_error


@dataclass(frozen=True)
class DetachedQemu:
    board: str
    pid: int
    url: str
    log_path: str


def launch_detached(board: Board | str, elf: str | Path) -> DetachedQemu:
    """Start a virtual board that outlives this process (`formicary flash`); connect later with its URL.

    No -S here: with `wait=on` the guest only starts once the first client connects, so no output is lost.
    Stop it with `kill -- -PID` (it leads its own process group).
    """
    board = load_board(board) if isinstance(board, str) else board
    if not board.virtual:
        raise FormicaryError(f"board {board.name} is not a virtual board.", "use --port with a real board.")
    require(QEMU, "qemu-system-arm")
    elf = Path(elf)
    if not elf.is_file():
        raise FormicaryError(f"firmware {elf} does not exist.", "build it first (`formicary build`).")
    port = _free_port()
    log = Path(tempfile.gettempdir()) / f"formicary-qemu-{board.name}-{port}.log"
    with open(log, "wb") as fp:
        proc = subprocess.Popen(qemu_command(board, elf, port, paused=False, monitor_stdio=False)
                                + ["-monitor", "none"], stdin=subprocess.DEVNULL, stdout=fp,
                                stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and proc.poll() is None and not _listening(port):
        time.sleep(0.02)
    if proc.poll() is not None or not _listening(port):
        raise FormicaryError(f"QEMU for {board.name} did not start.", "see details.qemu_log.",
                             details={"qemu_log": log.read_text(errors="replace")[-2000:]})
    return DetachedQemu(board=board.name, pid=proc.pid, url=f"socket://127.0.0.1:{port}", log_path=str(log))


def main(argv: list[str] | None = None) -> int:
    """`python -m formicary.device.qemu --board B --elf E`: start a detached virtual board, print its URL.
    Used by the dev-platform's `upload` target."""
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--board", required=True)
    ap.add_argument("--elf", required=True)
    args = ap.parse_args(argv)
    try:
        q = launch_detached(args.board, args.elf)
    except FormicaryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"virtual board {q.board} running (process group {q.pid}); serial: {q.url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
