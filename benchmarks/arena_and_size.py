#!/usr/bin/env python3
"""Arena bytes (formicary-rt vs TFLM vs the lower bound) and Cortex-M4 code size of formicary-rt per model.

usage: benchmarks/arena_and_size.py [MODEL.tflite ...]   (default: every .tflite in ../shared/models)
Prints one JSON document. Ratios are measured in the same run; nothing is hard-coded.

- arena_bytes: static arena formicary codegen plans (all intermediates);
- arena_lower_bound_bytes: max over ops of the summed size of live buffers (after RESHAPE aliasing);
- tflm_arena_bytes: smallest arena_size with which the TFLM Python interpreter allocates and invokes
  (host build, 64-bit pointers: a Cortex-M TFLM build needs somewhat less for its own bookkeeping);
- code size: arm-none-eabi-gcc 12 -mcpu=cortex-m4 -mthumb -O2 -ffunction-sections -fdata-sections, sizes from
  arm-none-eabi-size of each object (runtime + kernels the model uses; the model object holds weights in
  .text/.rodata and the arena in .bss), plus a --gc-sections link with fm_invoke as entry point.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CFLAGS = ["-std=c99", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-O2",
          "-ffunction-sections", "-fdata-sections", "-Wall", "-Wextra", "-Werror"]


def _size(path: Path) -> dict:
    out = subprocess.run(["arm-none-eabi-size", str(path)], capture_output=True, text=True, check=True).stdout
    text, data, bss = (int(v) for v in out.splitlines()[1].split()[:3])
    return {"text": text, "data": data, "bss": bss}


def code_size(result, tmp: Path) -> dict | None:
    if not shutil.which("arm-none-eabi-gcc"):
        return None
    incs = [f"-I{result.out_dir}", *(f"-I{d}" for d in result.include_dirs)]
    objs: dict[str, Path] = {}
    for src in [Path(result.out_dir) / "fm_model.c", *result.firmware_sources()]:
        obj = tmp / (src.stem + ".o")
        subprocess.run(["arm-none-eabi-gcc", *CFLAGS, *incs, "-c", str(src), "-o", str(obj)], check=True)
        objs[src.name] = obj
    per_object = {name: _size(obj) for name, obj in objs.items()}
    runtime = {k: sum(v[k] for n, v in per_object.items() if n != "fm_model.c") for k in ("text", "data", "bss")}
    elf = tmp / "model.elf"
    subprocess.run(["arm-none-eabi-gcc", *CFLAGS, "-nostartfiles", "--specs=nosys.specs", "-Wl,--gc-sections",
                    "-Wl,-e,fm_invoke", *map(str, objs.values()), "-o", str(elf)], check=True)
    return {"unit": "bytes", "method": "arm-none-eabi-size, gcc 12 -O2 cortex-m4 thumb",
            "runtime_and_kernels": runtime, "model_object": per_object["fm_model.c"], "per_object": per_object,
            "linked_gc_sections": _size(elf)}


def measure(model: Path) -> dict:
    from formicary.codegen import generate
    from formicary.bench.verify import tflm_arena_isolated

    with tempfile.TemporaryDirectory(prefix="fm-bench-") as tmp:
        result = generate(model, Path(tmp) / "gen")
        tflm, tflm_error = tflm_arena_isolated(model.read_bytes())
        sizes = code_size(result, Path(tmp))
    return {
        "model": str(model),
        "arena_bytes": result.arena_bytes,
        "arena_lower_bound_bytes": result.arena_lower_bound_bytes,
        "tflm_arena_bytes": tflm,
        "arena_vs_lower_bound": round(result.arena_bytes / max(result.arena_lower_bound_bytes, 1), 4),
        "arena_vs_tflm": round(result.arena_bytes / tflm, 4) if tflm else None,
        "tflm_arena_error": tflm_error,
        "const_bytes": result.const_bytes,
        "macs": sum(op.macs for op in result.ops),
        "code_size_cortex_m4": sizes,
        "units": {"arena": "bytes", "tflm_arena_bytes": "bytes, host TFLM interpreter, bisection"},
    }


def main(argv: list[str]) -> int:
    models = [Path(a) for a in argv] or sorted((ROOT.parent / "shared" / "models").glob("*.tflite"))
    if not models:
        print(json.dumps({"error": "no models given and none in ../shared/models"}))
        return 2
    results = [measure(m) for m in models]
    print(json.dumps({"models": results,
                      "target": {"arena_vs_lower_bound_max": 1.05},
                      "all_within_target": all(r["arena_vs_lower_bound"] <= 1.05 for r in results)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
