"""A DUT client that behaves as the MLCommons MLPerf Tiny runner (`benchmark/runner/` of mlcommons/tiny) does on the
wire, written from its documented behaviour, so the interoperability test catches what would break the official
runner without shipping or patching it:

- pyserial port at 115200 8N1 with a 0.1 s read timeout, read one byte at a time by a background thread; '\\r' and
  '\\0' dropped, a line ends at '\\n';
- a command is the text followed by the delimiter '%'; its reply is every line up to and including the first one
  that *contains* "m-ready" (so a boot banner still queued counts as the reply to the first command: the runner
  retries a command up to 3 times when the reply lacks what it asked for);
- name: `^m-(name)-dut-\\[([^]]+)]$`; profile: `^m-(model|profile)-\\[([^]]+)]$`, the model string being the key of
  the test script (`kws01`, `vww01`, `ic01`, `ad01`);
- inputs: `db load N`, then `db HEX` of 31 bytes a command; `infer N W` (always with W: the firmware's default is
  10 warm-ups); results from `^m-results-\\[([^]]+)\\]$`, time from the two `^m-lap-us-([0-9]+)$` lines.
"""
from __future__ import annotations

import queue
import re
import threading
from typing import Any

BYTES_PER_DB_COMMAND = 31  # the runner's chunk without a power manager (26 with one)


class RunnerStyleDut:
    def __init__(self, port: str, baud: int = 115200, timeout_s: float = 5.0) -> None:
        import serial

        self._port = serial.Serial(port, baud, timeout=0.1)
        self._lines: queue.Queue[str] = queue.Queue()
        self._running = True
        self._timeout_s = timeout_s
        self._thread = threading.Thread(target=self._read_loop, daemon=True)
        self._thread.start()
        self.model: str | None = None
        self.profile: str | None = None
        self.name: str | None = None

    def _read_loop(self) -> None:
        msg = ""
        while self._running:
            ch = self._port.read(1).decode(errors="replace")
            if ch and ch not in "\n\r\0":
                msg += ch
            elif ch == "\n":
                self._lines.put(msg)
                msg = ""

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=2)
        self._port.close()

    def send_command(self, command: str, timeout_s: float | None = None) -> list[str]:
        self._port.write((command + "%").encode())
        lines: list[str] = []
        while True:
            try:
                line = self._lines.get(timeout=timeout_s or self._timeout_s)
            except queue.Empty:
                raise RuntimeError(f"No response to command {command}") from None
            if line:
                lines.append(line)
            if "m-ready" in line:
                return lines

    def _retry(self, method: Any, retries: int = 3) -> None:
        for _ in range(retries):
            if method():
                return

    def _get_name(self) -> bool:
        for ln in self.send_command("name"):
            m = re.match(r"^m-(name)-dut-\[([^]]+)]$", ln)
            if m:
                self.name = m.group(2)
                return True
        return False

    def _get_profile(self) -> bool:
        found = False
        for ln in self.send_command("profile"):
            m = re.match(r"^m-(model|profile)-\[([^]]+)]$", ln)
            if m:
                setattr(self, m.group(1), m.group(2))
                found = True
        return found

    def identify(self) -> None:
        """What the runner's init_dut does: name, model, profile (each retried up to 3 times)."""
        self._retry(self._get_name)
        self._retry(self._get_profile)

    def load(self, data: bytes) -> list[str]:
        self.send_command(f"db load {len(data)}")
        result: list[str] = []
        for i in range(0, len(data), BYTES_PER_DB_COMMAND):
            result = self.send_command("db " + "".join(f"{b:02x}" for b in data[i:i + BYTES_PER_DB_COMMAND]))
        return result

    def infer(self, number: int, warmups: int | None) -> dict[str, Any]:
        command = f"infer {number}" + ("" if warmups is None else f" {warmups}")
        lines = self.send_command(command, timeout_s=60)
        result: dict[str, Any] = {"lines": lines}
        for ln in lines:
            m = re.match(r"^m-results-\[([^]]+)\]$", ln)
            if m:
                result["results"] = [float(x) for x in m.group(1).split(",") if x.strip()]
                continue
            m = re.match(r"^m-lap-us-([0-9]+)$", ln)
            if m:
                result["end_time" if "start_time" in result else "start_time"] = int(m.group(1))
        if "start_time" in result and "end_time" in result:
            result["elapsed_time"] = result["end_time"] - result["start_time"]
        return result
