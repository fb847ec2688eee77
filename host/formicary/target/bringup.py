"""Bring a board to "running this firmware" and hand back a link to it.

Three ways to reach a board, behind one interface (`Target`), so that new ones (an SBC over SSH) plug in here
instead of copying the logic:
- `QemuTarget`: a virtual board started here with the ELF (paused until the host is attached, so no byte of the
  boot banner is lost) and killed when the link closes;
- `SerialTarget`: a board on a pyserial URL (`/dev/ttyACM0`, `socket://`, `rfc2217://`); when it answers with
  another model, or not at all, a real board is flashed with the firmware and the link opened again (a QEMU
  started elsewhere cannot be re-flashed over its serial port: its error is raised as it is);
- `RemoteTarget` (target/remote.py): a board in a labgrid lab, given as a place (`place:NAME[@COORDINATOR]`
  wherever a port is accepted), acquired for the link's lifetime and reached through `SerialTarget`.

A link speaks one protocol: `framed` (formicary's protocol, docs/protocol.md: a `device.Connection`) or `mlperf`
(the MLPerf Tiny / EEMBC text protocol: a `device.mlperf_dut.MlperfDut`). Both check the model hash the device
reports against the firmware's.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from formicary.boards import Board
from formicary.errors import FormicaryError
from formicary.target.firmware import Firmware

Event = dict[str, Any]
LINK_KINDS = ("framed", "mlperf")
MLPERF_LINE_TIMEOUT_S = 30.0  # QEMU on a loaded 2-core machine can stall for seconds between lines


@dataclass
class LinkOptions:
    """Timeouts of a link. framed: per command (`timeout`) and per RUN (`run_timeout`); mlperf: per line."""
    timeout: float = 2.0
    run_timeout: float = 60.0
    line_timeout: float | None = None


@dataclass
class Link:
    """An open link to a board running a known firmware. `handle` is a device.Connection (framed) or an
    MlperfDut (mlperf); `close()` closes it and stops what the target started (QEMU)."""
    kind: str
    url: str
    handle: Any
    flashed: bool = False
    baud: int | None = None
    place: str | None = None          # remote links: the labgrid place, its lab host (exporter) and coordinator
    lab_host: str | None = None
    coordinator: str | None = None
    _closers: list[Callable[[], None]] = field(default_factory=list)
    _health: Callable[[], None] | None = None

    def __getattr__(self, name: str) -> Any:
        """What the handle has and the link does not (e.g. a Connection's `qemu`): a link can stand for it."""
        if name.startswith("_") or name == "handle":
            raise AttributeError(name)
        return getattr(self.handle, name)

    def check_health(self) -> None:
        """Raise the better explanation of a silent board when there is one (e.g. its QEMU died)."""
        if self._health is not None:
            self._health()

    @property
    def session(self) -> Any:
        """The framed-protocol session (device.Session)."""
        if self.kind != "framed":
            raise AttributeError("only framed links have a session")
        return self.handle.session

    def close(self) -> None:
        try:
            self.handle.close()
        finally:
            for close in self._closers:
                close()

    def __enter__(self) -> "Link":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Target(Protocol):
    """A way to reach a board. `open` returns a link to the board running `firmware`, flashing it if needed."""
    board: Board

    def open(self, firmware: Firmware, kind: str, options: LinkOptions,
             on_event: Callable[[Event], None] | None = None) -> Link: ...


def _check_mlperf_model(dut: Any, model_hash: str, where: str) -> None:
    # m-model-[…] is the EEMBC model id (kws01, …), the same for every build of a task: the generated model's hash
    # is on its own line, m-model-hash-[…]
    runs = dut.profile().get("model_hash", "")
    if runs != model_hash:
        raise FormicaryError(
            f"the DUT on {where} runs model {runs or 'unknown'}, not {model_hash[:16]}… (this model's MLPerf build).",
            "flash the MLPerf build of this model (`formicary flash MODEL --board B --firmware mlperf`), "
            "or pass the model the DUT was built with.", details={"dut_model": runs, "expected": model_hash})


@dataclass
class QemuTarget:
    """A virtual board started on this machine for the lifetime of the link."""
    board: Board

    def open(self, firmware: Firmware, kind: str, options: LinkOptions,
             on_event: Callable[[Event], None] | None = None) -> Link:
        if on_event:
            on_event({"event": "flash", "board": self.board.name, "how": "qemu"})
        if kind == "framed":
            from formicary.device import connect_qemu

            conn = connect_qemu(self.board.name, firmware.elf, expect_model_hash=firmware.model_hash,
                                timeout=options.timeout, run_timeout=options.run_timeout)
            return Link(kind, conn.url, conn)
        return self._open_mlperf(firmware, options)

    def _open_mlperf(self, firmware: Firmware, options: LinkOptions) -> Link:
        import serial

        from formicary.device.mlperf_dut import DEFAULT_BAUD, MlperfDut
        from formicary.device.qemu import launch

        line_timeout = options.line_timeout or MLPERF_LINE_TIMEOUT_S
        q = launch(self.board, firmware.elf)
        try:
            port = serial.serial_for_url(q.url, baudrate=DEFAULT_BAUD, timeout=0.05)
            q.resume()  # attached first: the boot banner is not lost
            dut = MlperfDut(port, q.url, line_timeout)
            try:
                dut.sync(timeout_s=2 * line_timeout)
                _check_mlperf_model(dut, firmware.model_hash, q.url)
            except FormicaryError:
                dut.close()
                q.check_alive(grace=1.0)  # a dead QEMU is the better explanation of a silent DUT
                raise
        except BaseException:
            q.close()
            raise
        return Link("mlperf", q.url, dut, _closers=[q.close], _health=lambda: q.check_alive(grace=1.0))


@dataclass
class SerialTarget:
    """A board on a pyserial URL: a real board (flashed when it runs another model or stays silent), or a QEMU
    started elsewhere (`formicary flash`), which is only attached to."""
    board: Board
    port: str
    baud: int
    flash_on_mismatch: bool = True
    flash: Callable[[Firmware], None] | None = None  # how to flash (default: PlatformIO upload on this machine)

    def _attach(self, firmware: Firmware, kind: str, options: LinkOptions) -> Link:
        if kind == "framed":
            from formicary.device import connect_serial

            conn = connect_serial(self.port, baud=self.baud, expect_model_hash=firmware.model_hash,
                                  timeout=options.timeout, run_timeout=options.run_timeout)
            return Link(kind, self.port, conn, baud=self.baud)
        from formicary.device.mlperf_dut import open_dut

        line_timeout = options.line_timeout or (MLPERF_LINE_TIMEOUT_S if self.board.virtual else 5.0)
        dut = open_dut(self.port, self.baud, line_timeout)
        try:
            _check_mlperf_model(dut, firmware.model_hash, self.port)
        except BaseException:
            dut.close()
            raise
        return Link(kind, self.port, dut, baud=self.baud)

    def open(self, firmware: Firmware, kind: str, options: LinkOptions,
             on_event: Callable[[Event], None] | None = None) -> Link:
        from formicary.device.session import DeviceTimeout, ModelMismatchError

        # what "the board does not run this firmware" looks like on each protocol
        not_running = (ModelMismatchError, DeviceTimeout) if kind == "framed" else (FormicaryError,)
        try:
            return self._attach(firmware, kind, options)
        except not_running as exc:
            if self.board.virtual or not self.flash_on_mismatch:
                raise
            why = getattr(exc, "cause", str(exc))
        from formicary.target.flash import flash_firmware

        if on_event:
            on_event({"event": "flash", "board": self.board.name, "how": self.board.upload_protocol, "why": why})
        try:
            if self.flash is not None:
                self.flash(firmware)
            else:
                flash_firmware(firmware, self.board, port=self.port)
        except FormicaryError as flash_error:
            flash_error.details = {**(flash_error.details or {}), "why_flashed": why}
            raise
        link = self._attach(firmware, kind, options)
        link.flashed = True
        return link


def target_for(board: Board, port: str | None = None, *, baud: int | None = None,
               flash_on_mismatch: bool = True) -> Target:
    """The target that reaches BOARD: QEMU started here for a virtual board without a port, a labgrid place for
    `place:NAME[@COORDINATOR][?wait=S&steal=1]` (labgrid needed), else the port. A real board needs a port: its absence is an error that names
    the fix."""
    from formicary.lab import placeref

    if placeref.is_place(port):
        from formicary.lab import require_labgrid
        from formicary.target.remote import RemoteTarget

        ref = placeref.parse(port)
        require_labgrid(f"the place {ref.name}")
        return RemoteTarget(board, ref, baud, wait=ref.wait, steal=ref.steal, flash_on_mismatch=flash_on_mismatch)
    if port is None:
        if board.virtual:
            return QemuTarget(board)
        raise FormicaryError(f"{board.name} is a real board and no --port was given.",
                             "pass the board's serial port, e.g. --port /dev/ttyACM0 (or rfc2217://host:port).")
    return SerialTarget(board, port, baud or board.uart.baud, flash_on_mismatch)


def bring_up(board: Board, firmware: Firmware, *, port: str | None = None, baud: int | None = None,
             kind: str = "framed", options: LinkOptions | None = None, flash_on_mismatch: bool = True,
             on_event: Callable[[Event], None] | None = None) -> Link:
    """A link of KIND to BOARD running FIRMWARE (see the module docstring)."""
    if kind not in LINK_KINDS:
        raise FormicaryError(f"unknown link kind {kind!r}.", f"use one of: {', '.join(LINK_KINDS)}.")
    target = target_for(board, port, baud=baud, flash_on_mismatch=flash_on_mismatch)
    return target.open(firmware, kind, options or LinkOptions(), on_event)


__all__ = ["LINK_KINDS", "Link", "LinkOptions", "QemuTarget", "SerialTarget", "Target", "bring_up", "target_for"]
