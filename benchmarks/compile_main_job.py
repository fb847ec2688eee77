#!/usr/bin/env python3
"""Benchmark the main job: wall time and peak memory (RSS) of `formicary demo` in a fresh process, as a user
runs it. Prints JSON.

Default: the compile part only (`--compile-only`: train the digits CNN, prune 50 %, int8, TFLM check), target 90 s.
`--full`: the whole main job (3 variants built, flashed to qemu-m4, benched on 400 inputs, HTML report), target
180 s, with the compile-only run measured in the same invocation as the baseline (`full_over_compile` ratio).

Usage: python benchmarks/compile_main_job.py [--repeat N] [--full] [--target-seconds S]
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


def run_once(out_dir: Path, full: bool = False) -> dict:
    cmd = [sys.executable, "-c", "from formicary.cli import main; import sys; sys.argv[0] = 'formicary'; main()",
           "demo", "-o", str(out_dir), "--json"] + ([] if full else ["--compile-only"])
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # wait4 gives this child's own resource usage (RUSAGE_CHILDREN would mix in earlier runs).
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    stdout, stderr = proc.stdout.read(), proc.stderr.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"`formicary demo` failed (exit {proc.returncode}):\n{stderr[-3000:]}{stdout[-2000:]}")
    doc = json.loads(stdout)
    report = doc["report"]
    return {"wall_seconds": round(wall, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
            "steps": report["compile"]["steps"], "accuracy": report.get("accuracy"),
            "model_bytes": report.get("model_bytes"),
            "benches": [{k: b[k] for k in ("variant", "latency", "bit_exact", "accuracy")}
                        for b in doc.get("benches", [])]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--full", action="store_true", help="the whole main job, with compile-only as baseline")
    ap.add_argument("--target-seconds", type=float, default=None)
    args = ap.parse_args()
    target = args.target_seconds or (180.0 if args.full else 90.0)
    runs, baseline = [], []
    with tempfile.TemporaryDirectory(prefix="formicary-bench-") as tmp:
        for i in range(args.repeat):
            runs.append(run_once(Path(tmp) / f"run{i}", full=args.full))
            if args.full:
                baseline.append(run_once(Path(tmp) / f"base{i}"))
    walls = sorted(r["wall_seconds"] for r in runs)
    median = walls[len(walls) // 2]
    extra = {}
    if baseline:
        base = sorted(r["wall_seconds"] for r in baseline)[len(baseline) // 2]
        extra = {"baseline_compile_only_seconds": base, "full_over_compile": round(median / base, 2),
                 "benches": runs[-1]["benches"]}
    print(json.dumps({
        "benchmark": "main_job_full" if args.full else "compile_main_job",
        "command": "formicary demo -o DIR --json" + ("" if args.full else " --compile-only"),
        "wall_time": {"median": median, "runs": walls, "unit": "s",
                      "method": "time.perf_counter around a fresh `formicary demo` process (TF import included)"},
        "peak_memory": {"max": max(r["peak_rss_mib"] for r in runs), "unit": "MiB",
                        "method": "ru_maxrss of the demo process from os.wait4"},
        "cpu_time": {"runs": [r["cpu_seconds"] for r in runs], "unit": "s", "method": "ru_utime + ru_stime"},
        "target_seconds": target,
        "within_target": median < target,
        **extra,
        "machine": {"cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2),
                    "python": platform.python_version(), "platform": platform.platform()},
        "last_run": {k: runs[-1][k] for k in ("steps", "accuracy", "model_bytes")},
    }, indent=2))


if __name__ == "__main__":
    main()
