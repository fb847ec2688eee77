"""Drives a DUT speaking the MLPerf Tiny / EEMBC protocol over any pyserial URL (`/dev/tty…`, `socket://`,
`rfc2217://`): performance mode (`infer N W`, timed by the DUT's `m-lap-us` timestamps) and accuracy mode
(`db load` + `db HEX` per input from an MLPerf `.bin` folder with `y_labels.csv`, `infer 1 0`, `m-results`).

Commands end in '%'; the DUT answers lines and ends every command with `m-ready`. A `m-timestamp-mode-…` line in
the middle of a command means the DUT rebooted; `e-[…]` lines are errors. Both become FormicaryError.
"""
from __future__ import annotations

import csv
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
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
        r = self.checked("profile")
        return {"profile": (r.first("m-profile-[") or "").rstrip("]"), "model": (r.first("m-model-[") or "").rstrip("]")}

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


def _lap_delta_us(a: int, b: int) -> int:
    return (b - a) % 2 ** 32  # the DUT's microsecond timer is 32 bits and may wrap


def read_labels(data_dir: Path) -> list[tuple[Path, int]]:
    csv_path = data_dir / "y_labels.csv"
    if not csv_path.is_file():
        raise FormicaryError(f"{data_dir} has no y_labels.csv", "pass an MLPerf Tiny data folder (.bin + y_labels.csv).")
    rows = []
    with csv_path.open(newline="") as fh:
        for row in csv.reader(fh):
            if len(row) >= 3 and row[0].strip():
                rows.append((data_dir / row[0].strip(), int(row[2])))
    if not rows:
        raise FormicaryError(f"{csv_path} lists no inputs", "rows are `file,n_classes,label`.")
    return rows


def run_performance(dut: MlperfDut, input_bytes: bytes, n: int | None = None, warmup: int = 1,
                    min_duration_s: float = 10.0, power_source: Any = None,
                    timeout_s: float = 600.0) -> dict[str, Any]:
    """MLPerf performance mode: load one input, run `infer N W` for >= min_duration_s, time with m-lap-us.

    With `power_source` (a formicary.bench.power PowerSource) the inference window is marked in its trace and
    `energy` is added (serial-marker synchronisation; a GPIO-recording instrument gives tighter windows).
    """
    from formicary.bench.energy import required_inferences

    dut.load_input(input_bytes)
    if n is None:
        laps, _ = dut.infer(1, 0, timeout_s=timeout_s)
        if len(laps) < 2:
            raise FormicaryError("the DUT printed no m-lap-us timestamps", "is it in performance timestamp mode?")
        one = max(_lap_delta_us(laps[0], laps[1]), 1) * 1e-6
        n = required_inferences(one, min_duration_s=min_duration_s, min_inferences=10)
        expected = n * one
    else:
        expected = 0.0
    if power_source is not None:
        power_source.start()
        power_source.mark("start")
    laps, results = dut.infer(n, warmup, timeout_s=max(timeout_s, 3 * expected + 10))
    samples = None
    if power_source is not None:
        power_source.mark("stop")
        samples = power_source.stop()
    if len(laps) < 2:
        raise FormicaryError("the DUT printed no m-lap-us timestamps", "is it in performance timestamp mode?")
    total_us = _lap_delta_us(laps[0], laps[-1])
    out: dict[str, Any] = {
        "mode": "performance", "inferences": n, "warmup": warmup,
        "duration": {"value": total_us * 1e-6, "unit": "s", "method": "dut m-lap-us"},
        "latency": {"value": total_us / n, "unit": "us", "method": "dut m-lap-us / N"},
        "throughput": {"value": (n / (total_us * 1e-6)) if total_us else math.inf, "unit": "inferences/s"},
        "meets_min_duration": total_us * 1e-6 >= min_duration_s,
        "results": results,
    }
    if samples is not None:
        from formicary.bench.energy import energy_per_inference, windows_from_markers
        res = energy_per_inference(samples, windows_from_markers(samples, n), min_duration_s=min_duration_s)
        out["energy"] = res.to_json()
        out["power_samples"] = samples.to_json()
    return out


def run_accuracy(dut: MlperfDut, data_dir: Path, limit: int | None = None, timeout_s: float = 60.0,
                 progress: Any = None) -> dict[str, Any]:
    """MLPerf accuracy mode: every input once (`infer 1 0`), top-1 against y_labels.csv."""
    rows = read_labels(Path(data_dir))[:limit] if limit else read_labels(Path(data_dir))
    predictions, correct = [], 0
    for k, (path, label) in enumerate(rows):
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise FormicaryError(f"cannot read {path}: {exc}", "keep y_labels.csv and the .bin files together.",
                                 partial={"predictions": predictions}) from exc
        try:
            dut.load_input(data)
            _, results = dut.infer(1, 0, timeout_s=timeout_s)
        except FormicaryError as err:
            err.partial = {"predictions": predictions, "correct": correct, "done": k}
            raise
        if not results:
            raise FormicaryError(f"no m-results for {path.name}", None, partial={"predictions": predictions})
        pred = max(range(len(results)), key=results.__getitem__)
        correct += int(pred == label)
        predictions.append({"input": path.name, "label": label, "prediction": pred, "scores": results})
        if progress is not None:
            progress(k + 1, len(rows))
    return {"mode": "accuracy", "inputs": len(rows), "correct": correct,
            "accuracy": {"value": correct / len(rows), "unit": "top-1", "method": "dut m-results argmax"},
            "predictions": predictions}


def run_modes(dut: MlperfDut, data_dir: Path, mode: str = "both", n: int | None = None, warmup: int = 1,
              min_duration_s: float = 10.0, limit: int | None = None, progress: Any = None,
              power_source: Any = None) -> dict[str, Any]:
    """Identify a connected DUT and run the requested modes: {"dut", "performance"?, "accuracy"?}.
    A `power_source` (formicary.bench.power) measures energy over the performance run."""
    if mode not in ("performance", "accuracy", "both"):
        raise FormicaryError(f"unknown mode {mode!r}", "use performance, accuracy or both.")
    rows = read_labels(Path(data_dir))
    out: dict[str, Any] = {"dut": {"name": dut.name(), **dut.profile()}}
    if mode in ("performance", "both"):
        out["performance"] = run_performance(dut, rows[0][0].read_bytes(), n=n, warmup=warmup,
                                             min_duration_s=min_duration_s, power_source=power_source)
    if mode in ("accuracy", "both"):
        try:
            out["accuracy"] = run_accuracy(dut, Path(data_dir), limit=limit, progress=progress)
        except FormicaryError as err:  # keep the performance result and the predictions made so far
            err.partial = {**out, "accuracy": err.partial}
            raise
    return out


def run_mlperf(url: str, data_dir: Path | None, mode: str = "both", baud: int = DEFAULT_BAUD,
               n: int | None = None, warmup: int = 1, min_duration_s: float = 10.0, limit: int | None = None,
               progress: Any = None, power_source: Any = None) -> dict[str, Any]:
    """Connect to the DUT at `url`, identify it, and run the requested modes. Returns a plain dict."""
    if mode not in ("performance", "accuracy", "both"):
        raise FormicaryError(f"unknown mode {mode!r}", "use performance, accuracy or both.")
    if data_dir is None:
        raise FormicaryError("no data given", "pass an MLPerf Tiny data folder (.bin files + y_labels.csv).")
    read_labels(Path(data_dir))  # a bad data folder fails before the port is touched
    with open_dut(url, baud) as dut:
        return {"port": url, "baud": baud, **run_modes(dut, Path(data_dir), mode, n=n, warmup=warmup,
                                                        min_duration_s=min_duration_s, limit=limit,
                                                        progress=progress, power_source=power_source)}
