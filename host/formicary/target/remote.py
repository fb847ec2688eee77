"""`RemoteTarget`: a board in a labgrid lab, given as a place (`place:NAME[@COORDINATOR]`, formicary.lab.placeref).

For the duration of the link the place is acquired (queued up to `wait` seconds when someone holds it, never
taken over unless `steal`), its serial resource becomes a pyserial URL (`socket://` for a raw
`NetworkSerialPort`, `rfc2217://` otherwise) and the board is reached through `SerialTarget`, so protocol,
model-hash check and flash-on-mismatch stay in one place. Flashing goes through the place:
- a virtual board exported by `formicary lab export` has a `FormicaryQemuFlasher` resource: the ELF is sent to
  that lab host, which restarts the board's QEMU with it (formicary.lab.vboards);
- a real board is flashed with labgrid's drivers: `OpenOCDDriver` when the place has a debug probe
  (`USBDebugger`, `AlteraUSBBlaster` or their Network… forms), `FlashScriptDriver` when it has a
  `USBFlashableDevice` and a `flash_script` tag (see docs/lab.md).
The place is released in every exit path: errors while bringing the board up, `Link.close()` (which bench,
verify, mlperf and the HIL plugin call in `finally`), Ctrl-C. A board that stops answering gets the better
explanation from the coordinator: the lab host that went away, or the lab host's QEMU that died.
"""
from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from formicary.boards import Board
from formicary.errors import FormicaryError
from formicary.lab.placeref import PlaceRef
from formicary.target.bringup import Event, Link, LinkOptions, SerialTarget
from formicary.target.firmware import Firmware

PROBE_CLASSES = ("USBDebugger", "NetworkUSBDebugger", "AlteraUSBBlaster", "NetworkAlteraUSBBlaster")
FLASHABLE_CLASSES = ("USBFlashableDevice", "NetworkUSBFlashableDevice")
GONE_GRACE_S = 3.0   # the coordinator notices a dead exporter when its stream breaks: give it a moment


def serial_url(params: dict[str, Any]) -> str:
    """pyserial URL of a NetworkSerialPort's parameters."""
    scheme = "socket" if str(params.get("protocol", "rfc2217")) == "raw" else "rfc2217"
    return f"{scheme}://{params['host']}:{int(params['port'])}"


@dataclass
class RemoteTarget:
    """A board behind a labgrid place (see the module docstring)."""
    board: Board
    ref: PlaceRef
    baud: int | None = None
    wait: float = 0.0
    steal: bool = False
    flash_on_mismatch: bool = True

    def open(self, firmware: Firmware, kind: str, options: LinkOptions,
             on_event: Callable[[Event], None] | None = None) -> Link:
        from formicary.lab.client import LabClient

        client = LabClient(self.ref.coordinator)
        if on_event is not None:
            outer = on_event

            def on_event(event: Event) -> None:
                outer({"board": self.board.name, **event})
        acquired = False
        t0 = time.monotonic()
        try:
            if self.ref.held:  # the caller holds the place (a fleet worker): use it, leave releasing to it
                info = client.place(self.ref.name)
                if info.acquired != client.identity:
                    raise FormicaryError(f"place {info.name} is not held by {client.identity} any more "
                                         f"({info.acquired or 'nobody'} holds it).",
                                         "run again; someone released or took over the place mid-run.",
                                         details={"place": info.name, "owner": info.acquired})
            else:
                info = client.acquire(self.ref.name, wait=self.wait, steal=self.steal, on_event=on_event)
                acquired = True
            if on_event:
                on_event({"event": "acquired", "board": self.board.name, "place": info.name,
                          "lab_host": ",".join(info.lab_hosts), "seconds": round(time.monotonic() - t0, 3)})
            link = self._bring_up(client, info, firmware, kind, options, on_event)
        except BaseException:
            if acquired:
                _quiet(lambda: client.release(self.ref.name))
            elif not self.ref.held:  # interrupted while acquiring: the call may have gone through
                _quiet(lambda: client.release_if_mine(self.ref.name))
            client.close()
            raise

        def release() -> None:
            try:
                if not self.ref.held:
                    client.release(self.ref.name)
            finally:
                client.close()

        link._closers.append(release)
        return link

    # ---- bring-up ---------------------------------------------------------------------------------------------
    def _bring_up(self, client: Any, info: Any, firmware: Firmware, kind: str, options: LinkOptions,
                  on_event: Callable[[Event], None] | None) -> Link:
        from formicary.lab.client import FLASHER_CLASS, SERIAL_CLASSES

        if info.board and info.board != self.board.name:
            raise FormicaryError(f"place {info.name} holds a {info.board} (its `board` tag), not a {self.board.name}.",
                                 f"pass --board {info.board}, or another place.",
                                 details={"place": info.name, "tags": info.tags})
        serial = [r for r in info.resources if r.cls in SERIAL_CLASSES]
        if not serial:
            raise FormicaryError(f"place {info.name} has no serial port (NetworkSerialPort) among its resources "
                                 f"({', '.join(r.path for r in info.resources) or 'none'}).",
                                 "export the board's USB serial port on its lab host (USBSerialPort, served by "
                                 "ser2net; docs/lab.md) and add it to the place's matches.",
                                 details={"place": info.name})
        res = serial[0]
        url = serial_url(res.params)
        lab_host = res.exporter
        baud = self.baud or int(res.params.get("speed") or 0) or self.board.uart.baud
        flasher = next((r for r in info.resources if r.cls == FLASHER_CLASS), None)
        if flasher is not None:  # a virtual board on a lab host: put the image there first, unless it runs it
            from formicary.lab.vboards import remote_flash, remote_status

            digest = hashlib.sha256(firmware.elf.read_bytes()).hexdigest()
            status = remote_status(flasher.params)
            if status.get("sha256") != digest or not status.get("alive"):
                if on_event:
                    on_event({"event": "flash", "board": self.board.name, "how": f"lab host {lab_host} (QEMU)",
                              "place": info.name})
                remote_flash(flasher.params, firmware.elf)
            flash = None
        else:
            def flash(fw: Firmware) -> None:
                flash_with_labgrid(self.ref, info, fw, self.board)

        target = SerialTarget(self.board, url, baud, self.flash_on_mismatch and flasher is None, flash=flash)
        link = target.open(firmware, kind, options, on_event)
        link.place, link.lab_host, link.coordinator = info.name, lab_host, self.ref.coordinator
        health = _health(client, info.name, res.path, lab_host, flasher.params if flasher else None)
        link._health = health
        if kind == "framed":
            link.session.watchdog = health
        return link


def _health(client: Any, place: str, serial_path: str, lab_host: str,
            flasher: dict[str, Any] | None) -> Callable[[], None]:
    """The watchdog of a remote link: raises an error that names the lab host when it (or its QEMU) is gone."""
    def check() -> None:
        deadline = time.monotonic() + GONE_GRACE_S
        while True:
            try:
                info = client.place(place)
                present = any(r.path == serial_path for r in info.resources)
            except FormicaryError as exc:
                raise FormicaryError(f"lost the labgrid coordinator {client.coordinator} during the run on "
                                     f"place {place} (lab host {lab_host}): {exc.cause}",
                                     "check the coordinator and the lab host, then run again.",
                                     details={"place": place, "lab_host": lab_host}) from exc
            if not present:
                raise FormicaryError(
                    f"lab host {lab_host} went away during the run on place {place}: its exporter left the "
                    f"coordinator {client.coordinator}.",
                    f"check lab host {lab_host} (its exporter / `formicary lab export`, network, power), then run "
                    "again; what was measured before is kept.",
                    details={"place": place, "lab_host": lab_host, "resource": serial_path})
            if flasher is not None:
                from formicary.lab.vboards import remote_status

                try:
                    status = remote_status(flasher)
                except FormicaryError:
                    status = None
                if status is not None and not status.get("alive"):
                    raise FormicaryError(f"the QEMU of place {place} on lab host {lab_host} stopped during the run.",
                                         "run again (the next run restarts it with the firmware); if it keeps "
                                         "happening, see that lab host's log.",
                                         details={"place": place, "lab_host": lab_host})
                if status is None and time.monotonic() >= deadline:
                    raise FormicaryError(f"lab host {lab_host} went away during the run on place {place}: its "
                                         "flash service does not answer.",
                                         f"check lab host {lab_host}, then run again; what was measured before "
                                         "is kept.", details={"place": place, "lab_host": lab_host})
                if status is not None:
                    return
            else:
                return
            if time.monotonic() >= deadline:
                return
            time.sleep(0.2)

    return check


def flash_with_labgrid(ref: PlaceRef, info: Any, fw: Firmware, board: Board) -> None:
    """Flash a real board of place INFO with labgrid's own drivers (bound through a RemotePlace target)."""
    classes = {r.cls for r in info.resources}
    os.environ.setdefault("LG_COORDINATOR", ref.coordinator)
    try:
        from labgrid import Target
        from labgrid.driver import FlashScriptDriver, OpenOCDDriver
        from labgrid.resource.remote import RemotePlace
    except ImportError as exc:  # pragma: no cover - labgrid is there when a place was acquired
        from formicary.lab import INSTALL_FIX

        raise FormicaryError(f"flashing through labgrid needs labgrid ({exc}).", INSTALL_FIX) from exc
    target = Target(info.name)
    RemotePlace(target, name=info.name)
    try:
        if classes & set(PROBE_CLASSES):
            driver = OpenOCDDriver(target, name=None, board_config=info.tags.get("openocd_board"),
                                   interface_config=info.tags.get("openocd_interface"),
                                   config=info.tags.get("openocd_config") or [],
                                   load_commands=["init", "reset init", "program {filename} verify", "reset run",
                                                  "shutdown"])
            target.activate(driver)
            driver.load(str(fw.elf))
        elif classes & set(FLASHABLE_CLASSES) and info.tags.get("flash_script"):
            from labgrid.util.managedfile import ManagedFile

            device = next(r for r in target.resources if type(r).__name__ in FLASHABLE_CLASSES)
            image = ManagedFile(str(fw.elf), device)
            image.sync_to_resource()
            driver = FlashScriptDriver(target, name=None, script=info.tags["flash_script"],
                                       args=["{device.devnode}", image.get_remote_path()])
            target.activate(driver)
            driver.flash()
        else:
            raise FormicaryError(
                f"place {info.name} has no way to flash {board.name}: no debug probe "
                f"({', '.join(PROBE_CLASSES)}) and no USBFlashableDevice with a `flash_script` tag.",
                "export the board's debug probe on its lab host and add it to the place (docs/lab.md), or flash "
                "the board once by hand and pass --no-flash.", details={"place": info.name})
    except FormicaryError:
        raise
    except Exception as exc:
        raise FormicaryError(f"flashing {board.name} on place {info.name} through labgrid failed: "
                             f"{type(exc).__name__}: {exc}",
                             "check the probe on the lab host (openocd/flash script output above), then run "
                             "again.", details={"place": info.name}) from exc
    finally:
        target.cleanup()


def _quiet(fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception:  # noqa: BLE001 -- a clean-up failure must not hide the error being raised
        pass


__all__ = ["RemoteTarget", "flash_with_labgrid", "serial_url"]
