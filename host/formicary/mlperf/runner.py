"""MLPerf Tiny performance and accuracy modes over a DUT link (`formicary.device.mlperf_dut`): performance
(`infer N W`, timed by the DUT's `m-lap-us` timestamps) and accuracy (`db load` + `db HEX` per input from an
MLPerf `.bin` folder with `y_labels.csv`, `infer 1 0`, `m-results`)."""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from formicary.device.mlperf_dut import DEFAULT_BAUD, MlperfDut, open_dut
from formicary.errors import FormicaryError

__all__ = ["DEFAULT_BAUD", "MlperfDut", "open_dut", "read_labels", "run_accuracy", "run_mlperf", "run_modes",
           "run_performance"]


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

    With `power_source` (a formicary.power PowerSource) the inference window is marked in its trace and
    `energy` is added (serial-marker synchronisation; a GPIO-recording instrument gives tighter windows).
    """
    from formicary.power.energy import required_inferences

    dut.load_input(input_bytes)
    if n is None:
        laps, _ = dut.infer(1, 0, timeout_s=timeout_s)
        if len(laps) < 2:
            raise FormicaryError("the DUT printed no m-lap-us timestamps", "is it in performance timestamp mode?")
        one = max(_lap_delta_us(laps[0], laps[1]), 1) * 1e-6
        # the probe lap is read in whole µs and a window's inferences vary a little: plan 1 % over the minimum so
        # the timed window does not fall short of it by a rounding (2,818 x 3,548.5 µs = 9.9997 s did)
        n = required_inferences(one * 0.99, min_duration_s=min_duration_s, min_inferences=10)
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
        from formicary.power.energy import energy_per_inference, windows_from_markers
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
    A `power_source` (formicary.power) measures energy over the performance run."""
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
