#!/usr/bin/env python3
"""What `formicary build --optimize speed` (-O2, the default) buys over `--optimize size` (-Os), measured.

usage: benchmarks/optimize_levels.py [MODEL.tflite ...] [--board qemu-m4] [--inputs 10]
       (default model: ../shared/models/kws_ref_model.tflite with inputs from ../shared/data/kws01)
Prints one JSON document. Each model is built both ways for the board, benched on the same inputs in the same
run (QEMU -icount: retired instructions, deterministic), and checked bit-exact with TFLM both ways; the ratios
are speed/size. Nothing is hard-coded or cached: every build is fresh (a temporary folder).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def measure(model: Path, board: str, data: Path | None, inputs: int, tmp: Path) -> dict:
    from formicary.bench.runner import run_bench
    from formicary.build import OPTIMIZE_FLAGS, build_model

    levels = {}
    for level in OPTIMIZE_FLAGS:
        out = tmp / f"{model.stem}-{level}"
        built = build_model(model, board, out, optimize=level)
        bench = run_bench(out, board, data=data, inputs=inputs, store=False)
        lat = bench["latency"]
        levels[level] = {"flags": OPTIMIZE_FLAGS[level] or ["-Os (platform default)"],
                         "flash_bytes": built.flash_bytes, "ram_bytes": built.ram_bytes,
                         "latency_median": lat["median"], "latency_unit": lat["unit"],
                         "latency_method": lat["method"], "bit_exact": bench["bit_exact"],
                         "inputs": len(bench["inputs"]) if isinstance(bench["inputs"], list) else bench["inputs"]}
    speed, size = levels["speed"], levels["size"]
    return {"model": str(model), "board": board, "levels": levels,
            "ratios": {"latency_speed_over_size": speed["latency_median"] / size["latency_median"],
                       "flash_speed_minus_size_bytes": speed["flash_bytes"] - size["flash_bytes"]}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", type=Path)
    ap.add_argument("--board", default="qemu-m4")
    ap.add_argument("--data", type=Path, default=None, help="labelled inputs (default: ../shared KWS data "
                                                             "for the default model, random inputs otherwise)")
    ap.add_argument("--inputs", type=int, default=10)
    args = ap.parse_args(argv)
    models, data = args.models, args.data
    if not models:
        kws = SHARED / "models" / "kws_ref_model.tflite"
        if not kws.is_file():
            print(f"no model given and {kws} is missing: pass a .tflite", file=sys.stderr)
            return 2
        models, data = [kws], data or SHARED / "data" / "kws01"
    with tempfile.TemporaryDirectory(prefix="fm-opt-") as tmp:
        results = [measure(m, args.board, data, args.inputs, Path(tmp)) for m in models]
    print(json.dumps({"benchmark": "optimize_levels", "results": results}, indent=2))
    return 0 if all(lv["bit_exact"] for r in results for lv in r["levels"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
