"""The lab-host side of virtual boards: QEMU boards exported through labgrid, re-flashable from a client.

`formicary lab export HOST.toml` runs on a lab host, in the foreground (a systemd unit in a real lab):
- every `[[board]]` gets a fixed TCP port for its UART; the QEMU behind it listens there (`wait=on`: the guest
  starts when the first client connects, so no output is lost), exported to the coordinator as a
  `NetworkSerialPort` (protocol raw: clients open `socket://HOST:PORT`);
- the firmware reaches that QEMU through a small flash service on the lab host (one TCP port for all its
  boards), exported beside each board as a `FormicaryQemuFlasher` resource (host, port, slot, board). A client
  that holds the place sends the ELF; the service checks it, stops the board's QEMU and starts a new one with
  the image on the same UART port: the exporter-side equivalent of a flash script, without SSH;
- `labgrid-exporter` runs as a child with a generated YAML config, so the coordinator sees the resources.

Everything this process starts dies with it (Linux PR_SET_PDEATHSIG): killing the lab host's export process is
what "the lab host went away" looks like to clients (their link breaks, the coordinator drops the resources).

Wire format of the flash service (one request per connection): a JSON line
`{"op": "flash", "slot": S, "size": N, "sha256": H}` then N bytes of ELF, or `{"op": "status", "slot": S}`;
the answer is one JSON line (`{"ok": true, "sha256": H, "alive": true}` or `{"ok": false, "error": "…"}`).
"""
from __future__ import annotations

import hashlib
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from formicary.errors import FormicaryError

MAX_ELF_BYTES = 64 << 20
FLASH_TIMEOUT_S = 30.0


@dataclass
class Slot:
    name: str
    board: str
    port: int
    elf: Path | None = None
    sha256: str | None = None
    process: subprocess.Popen | None = None
    log: Path | None = None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class HostConfig:
    name: str
    coordinator: str
    address: str
    flash_port: int
    slots: list[Slot] = field(default_factory=list)


def _free_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def load_host_config(path: str | Path) -> HostConfig:
    """Read a lab-host file (docs/lab.md): name, coordinator, address, flash_port, [[board]] name/board/port."""
    from formicary.boards import load_board
    from formicary.lab.placeref import default_coordinator, normalize_coordinator

    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise FormicaryError(f"cannot read the lab-host file {path}: {exc}.",
                             "see the example in docs/lab.md.") from exc
    unknown = sorted(set(data) - {"name", "coordinator", "address", "flash_port", "board"})
    if unknown:
        raise FormicaryError(f"{path}: unknown key(s) {', '.join(unknown)}.",
                             "use name, coordinator, address, flash_port and [[board]] tables.")
    address = str(data.get("address", "127.0.0.1"))
    cfg = HostConfig(name=str(data.get("name") or socket.gethostname()),
                     coordinator=normalize_coordinator(str(data.get("coordinator") or default_coordinator())),
                     address=address, flash_port=int(data.get("flash_port") or 0))
    seen = set()
    for k, b in enumerate(data.get("board") or []):
        if not isinstance(b, dict) or not b.get("name") or not b.get("board"):
            raise FormicaryError(f"{path}: board #{k + 1} needs `name` and `board`.",
                                 "e.g. [[board]] name = \"m4-1\" board = \"qemu-m4\".")
        board = load_board(str(b["board"]))
        if not board.virtual:
            raise FormicaryError(f"{path}: board {b['name']!r} is {board.name}, a real board.",
                                 "export real boards with labgrid-exporter directly (USBSerialPort and a debug "
                                 "probe; docs/lab.md); this file is for virtual boards.")
        if b["name"] in seen:
            raise FormicaryError(f"{path}: board name {b['name']!r} appears twice.", "give every board its own name.")
        seen.add(b["name"])
        cfg.slots.append(Slot(name=str(b["name"]), board=board.name, port=int(b.get("port") or 0)))
    if not cfg.slots:
        raise FormicaryError(f"{path} lists no [[board]].", "add one [[board]] table per virtual board.")
    return cfg


def exporter_yaml(cfg: HostConfig) -> str:
    """labgrid-exporter's config: one resource group per board (its UART and its flash service)."""
    lines = []
    for s in cfg.slots:
        lines += [f"{s.name}:",
                  "  NetworkSerialPort:",
                  f"    host: '{cfg.address}'", f"    port: {s.port}", "    speed: 115200", "    protocol: raw",
                  "  FormicaryQemuFlasher:",
                  f"    host: '{cfg.address}'", f"    port: {cfg.flash_port}", f"    slot: '{s.name}'",
                  f"    board: '{s.board}'"]
    return "\n".join(lines) + "\n"


def _exporter_command(cfg: HostConfig, yaml_path: Path) -> list[str]:
    exe = shutil.which("labgrid-exporter", path=os.path.dirname(sys.executable)) or shutil.which("labgrid-exporter")
    if exe is None:
        from formicary.lab import INSTALL_FIX

        raise FormicaryError("labgrid-exporter is not installed.", INSTALL_FIX)
    return [exe, "--coordinator", cfg.coordinator, "--name", cfg.name, "--hostname", cfg.address, str(yaml_path)]


class VirtualLabHost:
    """Runs the boards, the flash service and labgrid-exporter of one lab host until stopped."""

    def __init__(self, cfg: HostConfig, workdir: Path | None = None) -> None:
        self.cfg = cfg
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"formicary-lab-{cfg.name}-"))
        self.exporter: subprocess.Popen | None = None
        self.server: socket.socket | None = None
        self._stop = False

    # ---- boards -----------------------------------------------------------------------------------------------
    def _start_qemu(self, slot: Slot) -> None:
        from formicary.boards import load_board
        from formicary.device.qemu import QEMU, _listening, dying_with_parent, qemu_command
        from formicary.toolchain import require

        require(QEMU, "qemu-system-arm")
        self._stop_qemu(slot)
        assert slot.elf is not None
        slot.log = self.workdir / f"{slot.name}.qemu.log"
        cmd = dying_with_parent(qemu_command(load_board(slot.board), slot.elf, slot.port, paused=False,
                                             monitor_stdio=False, host=self.cfg.address) + ["-monitor", "none"])
        with open(slot.log, "wb") as fp:
            slot.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=fp, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and slot.alive() and not _listening(slot.port):
            time.sleep(0.01)
        if not slot.alive() or not _listening(slot.port):
            tail = slot.log.read_text(errors="replace")[-800:]
            self._stop_qemu(slot)
            raise RuntimeError(f"QEMU for {slot.name} did not start: {tail}")

    @staticmethod
    def _stop_qemu(slot: Slot) -> None:
        if slot.process is None:
            return
        try:
            os.killpg(slot.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        slot.process.wait(timeout=5)
        slot.process = None

    # ---- flash service ----------------------------------------------------------------------------------------
    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(FLASH_TIMEOUT_S)
        buf = b""
        while b"\n" not in buf and len(buf) < 4096:
            chunk = conn.recv(4096)
            if not chunk:
                return
            buf += chunk
        head, _, rest = buf.partition(b"\n")
        try:
            req = json.loads(head)
            slot = next((s for s in self.cfg.slots if s.name == req.get("slot")), None)
            if slot is None:
                raise ValueError(f"no board {req.get('slot')!r} on lab host {self.cfg.name}")
            if req.get("op") == "status":
                answer = {"ok": True, "sha256": slot.sha256 if slot.alive() else None, "alive": slot.alive(),
                          "board": slot.board}
            elif req.get("op") == "flash":
                size = int(req["size"])
                if not 0 < size <= MAX_ELF_BYTES:
                    raise ValueError(f"image size {size} out of range")
                data = bytearray(rest)
                while len(data) < size:
                    chunk = conn.recv(min(1 << 20, size - len(data)))
                    if not chunk:
                        raise ValueError("connection closed before the whole image arrived")
                    data += chunk
                digest = hashlib.sha256(data).hexdigest()
                if digest != req.get("sha256"):
                    raise ValueError("image corrupted in transit (sha256 differs)")
                if data[:4] != b"\x7fELF":
                    raise ValueError("not an ELF image")
                elf = self.workdir / f"{slot.name}-{digest[:16]}.elf"
                elf.write_bytes(bytes(data))
                if slot.elf is not None and slot.elf != elf:
                    slot.elf.unlink(missing_ok=True)
                slot.elf, slot.sha256 = elf, digest
                self._start_qemu(slot)
                answer = {"ok": True, "sha256": digest, "alive": True, "board": slot.board}
            else:
                raise ValueError(f"unknown op {req.get('op')!r}")
        except Exception as exc:  # noqa: BLE001 -- one bad request must not stop the lab host
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        try:
            conn.sendall(json.dumps(answer).encode() + b"\n")
        except OSError:
            pass

    # ---- lifecycle --------------------------------------------------------------------------------------------
    def start(self) -> dict[str, Any]:
        """Bind the ports, start labgrid-exporter; returns what is exported (printed as the `ready` line)."""
        from formicary.device.qemu import dying_with_parent

        for s in self.cfg.slots:
            if not s.port:
                s.port = _free_port(self.cfg.address)
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind((self.cfg.address, self.cfg.flash_port))
        self.server.listen(8)
        self.cfg.flash_port = self.server.getsockname()[1]
        yaml_path = self.workdir / "exporter.yaml"
        yaml_path.write_text(exporter_yaml(self.cfg))
        log = open(self.workdir / "labgrid-exporter.log", "wb")  # noqa: SIM115 -- lives as long as the exporter
        self.exporter = subprocess.Popen(dying_with_parent(_exporter_command(self.cfg, yaml_path)),
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        return {"event": "ready", "name": self.cfg.name, "coordinator": self.cfg.coordinator,
                "address": self.cfg.address, "flash_port": self.cfg.flash_port, "pid": os.getpid(),
                "exporter_pid": self.exporter.pid, "workdir": str(self.workdir),
                "boards": [{"name": s.name, "board": s.board, "port": s.port} for s in self.cfg.slots]}

    def serve_forever(self) -> int:
        """Answer flash requests until SIGTERM/SIGINT or until labgrid-exporter exits (its exit code)."""
        assert self.server is not None and self.exporter is not None

        def stop(signum: int, frame: Any) -> None:
            self._stop = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        sel = selectors.DefaultSelector()
        sel.register(self.server, selectors.EVENT_READ)
        code = 0
        try:
            while not self._stop:
                if self.exporter.poll() is not None:
                    code = self.exporter.returncode or 1
                    break
                for _key, _ in sel.select(timeout=0.2):
                    conn, _addr = self.server.accept()
                    with conn:
                        self._handle(conn)  # QEMUs are started from this (main) thread: PDEATHSIG needs that
        finally:
            self.close()
        return code

    def close(self) -> None:
        for s in self.cfg.slots:
            self._stop_qemu(s)
        if self.exporter is not None and self.exporter.poll() is None:
            self.exporter.terminate()
            try:
                self.exporter.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.exporter.kill()
        if self.server is not None:
            self.server.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


# ---- client side --------------------------------------------------------------------------------------------

def _request(host: str, port: int, head: dict[str, Any], payload: bytes = b"", timeout: float = FLASH_TIMEOUT_S
             ) -> dict[str, Any]:
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(json.dumps(head).encode() + b"\n" + payload)
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
    except OSError as exc:
        raise FormicaryError(f"the flash service of the virtual board at {host}:{port} is unreachable: {exc}.",
                             "check that `formicary lab export` still runs on that lab host.") from exc
    try:
        return json.loads(buf)
    except ValueError as exc:
        raise FormicaryError(f"the flash service at {host}:{port} gave no answer.",
                             "check the lab host's `formicary lab export` log.") from exc


def remote_status(params: dict[str, Any]) -> dict[str, Any]:
    return _request(str(params["host"]), int(params["port"]), {"op": "status", "slot": params["slot"]}, timeout=10)


def remote_flash(params: dict[str, Any], elf: Path) -> dict[str, Any]:
    """Send ELF to a lab host's flash service: it restarts the board's QEMU with it."""
    data = Path(elf).read_bytes()
    head = {"op": "flash", "slot": params["slot"], "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    answer = _request(str(params["host"]), int(params["port"]), head, data)
    if not answer.get("ok"):
        raise FormicaryError(f"the lab host refused the image for {params['slot']}: {answer.get('error')}.",
                             "see the lab host's `formicary lab export` output.", details={"answer": answer})
    return answer


def main(argv: list[str] | None = None) -> int:
    """`python -m formicary.lab.vboards HOST.toml`: what `formicary lab export` runs."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("config")
    args = ap.parse_args(argv)
    host = VirtualLabHost(load_host_config(args.config))
    print(json.dumps(host.start()), flush=True)
    return host.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
