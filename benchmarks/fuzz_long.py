#!/usr/bin/env python3
"""Long libFuzzer runs of the firmware's byte parsers under ASan + UBSan (the suite runs them for seconds only).

usage: benchmarks/fuzz_long.py [--runs 1000000] [--harness frames|mlperf ...] [--keep DIR]
Prints one JSON document. Harnesses:
  frames  tests/fuzz/fuzz_app.c: the receive path (COBS/CRC frame parser + command dispatcher), built by
          tests/fuzz/build.sh, seeded with one valid frame per command (tests/fuzz/make_corpus.py)
  mlperf  tests/mlperf/fuzz_mlperf.c: the MLPerf Tiny DUT line parser (firmware/mlperf/fm_mlperf.c), seeded with
          the host runner's commands
Each harness runs `-runs=N` executions with a fixed seed (-seed=1) in one process; any sanitizer report, abort,
leak or timeout stops it and counts as a crash (the reproducer is kept with --keep). Reported per harness:
executions, seconds, exec/s, crashes, corpus size (seed files and after the run), coverage (cov, ft).
Baseline measured in the same run: an empty harness built with the same flags, so exec/s can be read as a ratio
on a loaded machine. Needs clang with its libFuzzer runtime (Debian 12: apt-get install clang libclang-rt-14-dev).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAN = ["-g", "-O1", "-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
WARN = ["-std=c11", "-Wall", "-Wextra", "-Werror"]
MLPERF_SEEDS = {
    "session": b"name%profile%db load 4%db 01020304%infer 2 1%results%",
    "energy": b"\x01name%timestamp%db load 490%db " + b"00" * 245 + b"%db print%infer 1 0%",
    "errors": b"infer 0%db 00%db load 2%db 0g%" + b"A" * 300 + b"%help%",
}
EMPTY = "#include <stddef.h>\n#include <stdint.h>\n" \
        "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);\n" \
        "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n"


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def build(name: str, work: Path) -> tuple[Path, Path]:
    """(executable, seed corpus folder) of a harness."""
    exe, seeds = work / f"fuzz_{name}", work / f"seeds_{name}"
    seeds.mkdir()
    if name == "frames":
        _run([str(ROOT / "tests" / "fuzz" / "build.sh"), str(exe)])
        _run([sys.executable, str(ROOT / "tests" / "fuzz" / "make_corpus.py"), str(seeds)],
             env={**os.environ, "PYTHONPATH": str(ROOT / "host")})
    elif name == "mlperf":
        mlperf = ROOT / "firmware" / "mlperf"
        _run(["clang", *SAN, *WARN, f"-I{mlperf}", str(ROOT / "tests" / "mlperf" / "fuzz_mlperf.c"),
              str(mlperf / "fm_mlperf.c"), "-o", str(exe)])
        for seed_name, data in MLPERF_SEEDS.items():
            (seeds / seed_name).write_bytes(data)
    else:  # baseline
        src = work / "empty.c"
        src.write_text(EMPTY)
        _run(["clang", *SAN, *WARN, str(src), "-o", str(exe)])
        (seeds / "one").write_bytes(b"\0")
    return exe, seeds


def _folder(path: Path) -> dict:
    files = [p for p in path.iterdir() if p.is_file()]
    return {"files": len(files), "bytes": sum(p.stat().st_size for p in files)}


def fuzz(name: str, runs: int, work: Path, max_len: int) -> dict:
    exe, seeds = build(name, work)
    corpus = work / f"corpus_{name}"
    shutil.copytree(seeds, corpus)
    artifacts = work / f"artifacts_{name}"
    artifacts.mkdir()
    cmd = [str(exe), f"-runs={runs}", "-seed=1", f"-max_len={max_len}", "-timeout=10", "-rss_limit_mb=2048",
           "-print_final_stats=1", f"-artifact_prefix={artifacts}/", str(corpus)]
    start, cpu0 = time.perf_counter(), os.times()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env={
        **os.environ, "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1", "UBSAN_OPTIONS": "print_stacktrace=1"})
    seconds, cpu1 = time.perf_counter() - start, os.times()
    log = proc.stderr
    stats = dict(re.findall(r"^stat::(\w+):\s+(\d+)", log, re.M))
    done = re.search(r"Done (\d+) runs in (\d+) second", log)
    executions = int(stats.get("number_of_executed_units", done.group(1) if done else 0))
    cov = [(int(c), int(f)) for c, f in re.findall(r"cov: (\d+) ft: (\d+)", log)]
    crashes = sorted(p.name for p in artifacts.iterdir())
    if proc.returncode != 0 and not crashes:
        crashes = [f"exit code {proc.returncode} without a reproducer"]
    cpu = (cpu1.children_user - cpu0.children_user) + (cpu1.children_system - cpu0.children_system)
    return {
        "harness": name, "command": " ".join(cmd[:1] + cmd[1:-2]) + " CORPUS", "exit_code": proc.returncode,
        "executions": executions, "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2),
        "exec_per_s": round(executions / seconds) if seconds else None,
        "exec_per_cpu_s": round(executions / cpu) if cpu else None,
        "libfuzzer_exec_per_s": int(stats["average_exec_per_sec"]) if "average_exec_per_sec" in stats else None,
        "crashes": len(crashes), "crash_files": crashes,
        "corpus_seeds": _folder(seeds), "corpus_after": _folder(corpus),
        "new_units_added": int(stats.get("new_units_added", 0)),
        "cov": max((c for c, _ in cov), default=None), "ft": max((f for _, f in cov), default=None),
        "peak_rss_mb": int(stats["peak_rss_mb"]) if "peak_rss_mb" in stats else None,
        "log_tail": log.strip().splitlines()[-3:] if crashes else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=1_000_000)
    ap.add_argument("--harness", action="append", choices=["frames", "mlperf"])
    ap.add_argument("--keep", type=Path, help="keep builds, corpora and crash reproducers in this folder")
    args = ap.parse_args()
    if shutil.which("clang") is None:
        raise SystemExit("clang not installed (Debian 12: apt-get install clang libclang-rt-14-dev)")
    harnesses = args.harness or ["frames", "mlperf"]
    work = args.keep or Path(tempfile.mkdtemp(prefix="fm-fuzz-long-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        load_before = os.getloadavg()
        results = [fuzz(h, args.runs, work, 4096 if h == "frames" else 2048) for h in harnesses]
        baseline = fuzz("baseline", min(args.runs, 1_000_000), work, 64)
        for r in results:
            r["exec_per_cpu_s_vs_empty_harness"] = (round(r["exec_per_cpu_s"] / baseline["exec_per_cpu_s"], 4)
                                                    if r["exec_per_cpu_s"] and baseline["exec_per_cpu_s"] else None)
        clang = subprocess.run(["clang", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
        print(json.dumps({
            "runs_requested": args.runs, "clang": clang, "cpus": os.cpu_count(),
            "flags": {"frames": "tests/fuzz/build.sh (-fsanitize=fuzzer,address,undefined)",
                      "mlperf": " ".join(SAN + WARN), "baseline": " ".join(SAN + WARN)},
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "harnesses": results, "baseline_empty_harness": {k: baseline[k] for k in (
                "executions", "seconds", "cpu_seconds", "exec_per_s", "exec_per_cpu_s")},
            "ok": all(r["crashes"] == 0 and r["executions"] >= args.runs for r in results),
        }, indent=2))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
