#!/usr/bin/env python3
"""Benchmark the main job's compile: wall time and peak memory (RSS) of `formicary demo` (train the digits CNN,
prune to 50 %, int8, TFLM check, report), run in a fresh process as a user would. Prints JSON.

Usage: python benchmarks/compile_main_job.py [--repeat N] [--target-seconds 90]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_once(out_dir: Path) -> dict:
    cmd = [sys.executable, "-c", "from formicary.cli import main; import sys; sys.argv[0] = 'formicary'; main()",
           "demo", "-o", str(out_dir), "--compile-only", "--json"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # wait4 gives this child's own resource usage (RUSAGE_CHILDREN would mix in earlier runs).
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    stdout, stderr = proc.stdout.read(), proc.stderr.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"`formicary demo` failed (exit {proc.returncode}):\n{stderr[-3000:]}{stdout[-2000:]}")
    report = json.loads(stdout)["report"]
    return {"wall_seconds": round(wall, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
            "steps": report["compile"]["steps"], "accuracy": report.get("accuracy"),
            "model_bytes": report.get("model_bytes")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--target-seconds", type=float, default=90.0)
    args = ap.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="formicary-bench-") as tmp:
        for i in range(args.repeat):
            runs.append(run_once(Path(tmp) / f"run{i}"))
    walls = sorted(r["wall_seconds"] for r in runs)
    median = walls[len(walls) // 2]
    print(json.dumps({
        "benchmark": "compile_main_job",
        "command": "formicary demo -o DIR --json",
        "wall_time": {"median": median, "runs": walls, "unit": "s",
                      "method": "time.perf_counter around a fresh `formicary demo` process (TF import included)"},
        "peak_memory": {"max": max(r["peak_rss_mib"] for r in runs), "unit": "MiB",
                        "method": "ru_maxrss of the demo process from os.wait4"},
        "cpu_time": {"runs": [r["cpu_seconds"] for r in runs], "unit": "s", "method": "ru_utime + ru_stime"},
        "target_seconds": args.target_seconds,
        "within_target": median < args.target_seconds,
        "machine": {"cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2),
                    "python": platform.python_version(), "platform": platform.platform()},
        "last_run": {k: runs[-1][k] for k in ("steps", "accuracy", "model_bytes")},
    }, indent=2))


if __name__ == "__main__":
    main()
