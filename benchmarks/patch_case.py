#!/usr/bin/env python3
"""The patch-based execution case (docs/memory.md, "Patch-based execution"): a MobileNetV1-style int8 net at
112x112x3 (tests/support/netmodels.mobilenet_v1, widths 16-32-32-48-64) whose TFLM arena does not fit the 128 KB
SRAM of nucleo-f446re while formicary-rt's patch plan does.

usage: benchmarks/patch_case.py [--board qemu-m4] [--kernels reference,dsp] [--no-bench] [--budget 10]
                               [--target 120000]
Prints one JSON document: TFLM arena (TFLM Python interpreter, bisection); per kernel set formicary-rt's arena
under liveness, in-place, `auto` and `patch` (10 % MAC budget, and the cheapest plan fitting --target bytes), as
codegen plans it by default (inputs not preserved); bit-exactness of the patch plan vs TFLM (host, ASan/UBSan);
and the bench firmware (inputs preserved, so its plans are the firmware builds') under liveness, in-place and
patch on the virtual board: retired instructions of one inference (-icount shift=0), bit-exactness, RAM.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HW, WIDTH = 112, (16, 32, 32, 48, 64)
SRAM = 131_072  # nucleo-f446re


def _model(path: Path) -> Path:
    from tests.support.netmodels import mobilenet_v1

    path.write_bytes(mobilenet_v1(HW, WIDTH, classes=2, seed=0))
    return path


_BENCH_CHILD = r"""
import json, sys
from formicary.bench.runner import run_bench
plan, model, board, kernels = sys.argv[1:5]
r = run_bench(model, board, runs=3, warmup=1, inputs=1, profile=True, store=False, kernels=kernels,
              run_timeout=600.0, memory_plan=plan)
print(json.dumps({k: r[k] for k in ("bit_exact", "latency", "layers", "ram_bytes", "memory") if k in r}))
"""


def _bench(plan: str, model: Path, board: str, kernels: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _BENCH_CHILD, plan, str(model), board, kernels],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--board", default="qemu-m4")
    ap.add_argument("--kernels", default="reference,dsp")
    ap.add_argument("--budget", type=float, default=10.0)
    ap.add_argument("--target", type=int, default=120_000)
    ap.add_argument("--no-bench", action="store_true")
    a = ap.parse_args()
    from formicary.bench.verify import tflm_arena_isolated, verify_model
    from formicary.codegen import generate

    with tempfile.TemporaryDirectory(prefix="fm-patch-case-") as tmp:
        tmp = Path(tmp)
        model = _model(tmp / f"mobilenet_v1_{HW}.tflite")
        data = model.read_bytes()
        tflm, reason = tflm_arena_isolated(data)
        report: dict = {"model": f"mobilenet_v1({HW}, {list(WIDTH)}) int8, input {HW}x{HW}x3",
                        "sram_bytes": SRAM, "tflm_arena_bytes": tflm, "tflm_arena_error": reason, "kernels": {}}
        for k in a.kernels.split(","):
            live = generate(data, tmp / f"live-{k}", kernels=k, memory_plan="liveness")
            inplace = generate(data, tmp / f"inplace-{k}", kernels=k, memory_plan="in-place")
            auto = generate(data, tmp / f"auto-{k}", kernels=k)
            patch = generate(data, tmp / f"patch-{k}", kernels=k, memory_plan="patch", patch_budget_pct=a.budget)
            fit = generate(data, tmp / f"fit-{k}", kernels=k, memory_plan="patch", patch_target_bytes=a.target)
            v = verify_model(data, inputs=3, sanitize=True, kernels=k, memory_plan="patch",
                             measure_tflm_arena=False)
            row = {"liveness_arena_bytes": live.arena_bytes, "in_place_arena_bytes": inplace.arena_bytes,
                   "auto": {"plan": auto.memory_plan, "arena_bytes": auto.arena_bytes, "patch": auto.patch},
                   "patch_arena_bytes": patch.arena_bytes,
                   "patch": patch.patch, "patch_fit_arena_bytes": fit.arena_bytes, "patch_fit": fit.patch,
                   "total_macs": sum(o.macs for o in live.ops),
                   "patch_bit_exact_host_sanitized": v["bit_exact"],
                   "fits": {"tflm": tflm is not None and tflm <= SRAM, "liveness": live.arena_bytes <= SRAM,
                            "patch": patch.arena_bytes <= SRAM, "patch_fit": fit.arena_bytes <= SRAM}}
            if not a.no_bench:
                board: dict = {"board": a.board, "bit_exact": {}, "firmware_ram_bytes": {}, "memory": {},
                               "layers": {}, "instructions": {}}
                for plan in ("liveness", "in-place", "patch"):
                    b = _bench(plan, model, a.board, k)
                    board["instructions"][plan] = b["latency"]["mean"]
                    board["bit_exact"][plan] = b["bit_exact"]
                    board["firmware_ram_bytes"][plan] = b.get("ram_bytes")
                    board["memory"][plan] = b.get("memory")
                    board["layers"][plan] = b.get("layers")
                base = board["instructions"]["liveness"]
                board["extra_pct"] = {p: round(100.0 * (v / base - 1), 2) for p, v in board["instructions"].items()}
                row["board"] = board
            report["kernels"][k] = row
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
