"""The MLPerf Tiny / EEMBC device-under-test text protocol over any pyserial URL (`/dev/tty…`, `socket://`,
`rfc2217://`): a link to a DUT, as `device.session` is for formicary's framed protocol.

Commands end in '%'; the DUT answers lines and ends every command with `m-ready`. A `m-timestamp-mode-…` line in
the middle of a command means the DUT rebooted; `e-[…]` lines are errors. Both become FormicaryError.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Self

from formicary.errors import FormicaryError

DEFAULT_BAUD = 115200
HEX_BYTES_PER_COMMAND = 32  # "db " + 64 hex + "%" = 68 characters: inside EEMBC's 80-character command buffer
_LAP = re.compile(r"^m-lap-us-(\d+)$")
_RESULTS = re.compile(r"^m-results-\[(.*)\]$")


@dataclass
class Reply:
    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def first(self, prefix: str) -> str | None:
        return next((ln[len(prefix):] for ln in self.lines if ln.startswith(prefix)), None)


class MlperfDut:
    """One DUT on a serial link. `command()` sends `text%` and returns the lines up to `m-ready`."""

    def __init__(self, port: Any, url: str = "", line_timeout_s: float = 5.0) -> None:
        self.port, self.url, self.line_timeout_s = port, url, line_timeout_s
        self._buf = b""

    def close(self) -> None:
        self.port.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _readline(self, deadline: float) -> str:
        while b"\n" not in self._buf:
            if time.monotonic() > deadline:
                raise FormicaryError(f"the DUT on {self.url or 'the serial port'} stopped answering",
                                     "check that it runs the MLPerf firmware mode at this baud rate.",
                                     details={"pending": self._buf[-200:].decode("ascii", "replace")})
            chunk = self.port.read(max(1, getattr(self.port, "in_waiting", 0) or 1))
            if chunk:
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode("ascii", "replace").strip()

    def sync(self, timeout_s: float = 10.0) -> None:
        """Skip boot chatter and garbage: '%' ends any partial command left in the DUT's line buffer, then
        everything up to the reply to a `name%` probe is discarded, so the next command starts in step."""
        deadline = time.monotonic() + timeout_s
        self._buf = b""
        self.port.write(b"%name%")
        while not self._readline(deadline).startswith("m-name-"):
            pass
        while self._readline(deadline) != "m-ready":
            pass

    def command(self, text: str, timeout_s: float | None = None) -> Reply:
        if "%" in text:
            raise ValueError("a command cannot contain '%'")
        self.port.write(text.encode("ascii") + b"%")
        deadline = time.monotonic() + (timeout_s if timeout_s is not None else self.line_timeout_s)
        reply = Reply()
        while True:
            line = self._readline(deadline)
            if not line:
                continue
            if line == "m-ready":
                return reply
            if line.startswith("m-timestamp-mode-"):
                raise FormicaryError(f"the DUT restarted during `{text}%`",
                                     "check its power supply and reset line; results so far are kept.",
                                     partial={"lines": reply.lines})
            if line.startswith("e-"):
                reply.errors.append(line[2:].strip("[]"))
            reply.lines.append(line)

    def checked(self, text: str, timeout_s: float | None = None) -> Reply:
        reply = self.command(text, timeout_s)
        if reply.errors:
            raise FormicaryError(f"the DUT rejected `{text[:40]}%`: {'; '.join(reply.errors)}",
                                 "see docs/mlperf.md for the commands the firmware accepts.",
                                 details={"lines": reply.lines})
        return reply

    def name(self) -> str:
        return (self.checked("name").first("m-name-dut-[") or "").rstrip("]")

    def profile(self) -> dict[str, str]:
        """{"profile", "model" (the EEMBC model id, e.g. kws01), "model_hash" (formicary firmware only, else "")}"""
        r = self.checked("profile")
        return {"profile": (r.first("m-profile-[") or "").rstrip("]"),
                "model": (r.first("m-model-[") or "").rstrip("]"),
                "model_hash": (r.first("m-model-hash-[") or "").rstrip("]")}

    def load_input(self, data: bytes) -> None:
        r = self.checked(f"db load {len(data)}")
        if r.first("m-[Expecting ") is None:
            raise FormicaryError("the DUT did not acknowledge `db load`", "is this an MLPerf Tiny DUT?")
        done = False
        for off in range(0, len(data), HEX_BYTES_PER_COMMAND):
            r = self.checked("db " + data[off:off + HEX_BYTES_PER_COMMAND].hex())
            done = any(ln == "m-load-done" for ln in r.lines)
        if not done:
            raise FormicaryError("the DUT did not confirm the input load (no m-load-done)",
                                 "the input size may not match the model input.")

    def infer(self, n: int, warmup: int, timeout_s: float) -> tuple[list[int], list[float]]:
        """Returns (the m-lap-us timestamps, the m-results values)."""
        r = self.checked(f"infer {n} {warmup}", timeout_s=timeout_s)
        laps = [int(m.group(1)) for ln in r.lines if (m := _LAP.match(ln))]
        results = _parse_results(r.lines)
        if "m-infer-done" not in r.lines:
            raise FormicaryError("the DUT did not finish the inferences (no m-infer-done)", None,
                                 details={"lines": r.lines})
        return laps, results

    def results(self) -> list[float]:
        return _parse_results(self.checked("results").lines)


def _parse_results(lines: list[str]) -> list[float]:
    for ln in lines:
        m = _RESULTS.match(ln)
        if m:
            body = m.group(1).strip()
            try:
                return [float(x) for x in body.split(",")] if body else []
            except ValueError as exc:
                raise FormicaryError(f"malformed results line from the DUT: {ln[:80]}", None) from exc
    return []


def open_dut(url: str, baud: int = DEFAULT_BAUD, line_timeout_s: float = 5.0, sync: bool = True) -> MlperfDut:
    import serial

    try:
        port = serial.serial_for_url(url, baudrate=baud, timeout=0.05)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise FormicaryError(f"cannot open {url}: {exc}", "check the port name or URL (e.g. socket://host:port).") from exc
    dut = MlperfDut(port, url, line_timeout_s)
    if sync:
        try:
            dut.sync(timeout_s=2 * line_timeout_s)
        except FormicaryError:
            dut.close()
            raise
    return dut
