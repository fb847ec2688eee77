#!/usr/bin/env python3
"""Mixture of experts on the digits task, measured: E experts with top-1 routing (only one expert runs per input)
against two dense baselines, all int8, in TFLM and (with --board) on a virtual board.

    python examples/moe_digits.py --out /tmp/moe --json > moe.json

What it does:
1. sklearn digits, split with seed 0 (formicary.model.zoo.digits_splits): train (1,197, or the first
   --train-samples), calib (200), val (400).
2. For every seed: the MoE (`formicary moe` = formicary.shrink.moe.moe_files: --experts × --expert on a shared
   --stem, top-1, exported with one IF subgraph per expert), and two dense baselines trained from scratch by the
   real `formicary compile` pipeline (built-in `cnn` at the width that matches):
   (a) "same MACs": the same multiply-accumulates per inference as stem + gate + one expert;
   (b) "same params": the same total number of parameters as the whole mixture.
   Accuracy (float, int8 TFLM), parameters, model bytes (flash-relevant), MACs per inference (and the MoE's MACs
   if all experts ran), the expert-usage histogram (train, val, val in TFLM).
3. With --board (default qemu-m4): every model benched on the board on the 400 val digits (`formicary bench
   MODEL --board B --data val.npz`): accuracy on the device, retired instructions per inference, arena, flash,
   modelled energy, and for the MoE the device's route histogram and latency per route (bench `routes`). The MoE
   needs formicary-rt's multi-subgraph code generation (moe-rt); a formicary without it refuses the model, and
   this script then says so in `board.error` (the baselines are benched either way).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("moe-digits"), help="working directory")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (MoE and baselines)")
    p.add_argument("--train-samples", type=int, default=0, help="training samples (first N; 0 = all 1,197)")
    p.add_argument("--epochs", type=int, default=30, help="training epochs (MoE and baselines)")
    p.add_argument("--experts", type=int, default=4, help="number of experts")
    p.add_argument("--expert", default="builtin:cnn@0.5", help="expert architecture (built-in)")
    p.add_argument("--stem", default="8", help="MoE stem conv channels ('none' for none)")
    p.add_argument("--balance-weight", type=float, default=0.5, help="load-balancing loss weight")
    p.add_argument("--gate-noise", type=float, default=0.3, help="routing noise (std) while training")
    p.add_argument("--board", default="qemu-m4", help="virtual board to bench on; 'none' to skip")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    return p.parse_args(argv)


def _width_for(target: int, key: str) -> tuple[str, int]:
    """The built-in cnn width (steps of 1/64) whose MACs or params (`key`) are closest to `target`."""
    from formicary.model.students import build_builtin
    from formicary.model.zoo import DIGITS_CLASSES
    from formicary.shrink.moe import model_macs

    best: tuple[float, str, int] | None = None
    for step in range(4, 257):
        w = step / 64
        m = build_builtin(f"builtin:cnn@{w:g}", (8, 8, 1), DIGITS_CLASSES)
        value = model_macs(m) if key == "macs" else m.count_params()
        if best is None or abs(value - target) < best[0]:
            best = (abs(value - target), f"builtin:cnn@{w:g}", value)
    assert best is not None
    return best[1], best[2]


def _dense(spec: str, out: Path, data: dict[str, Path], args: argparse.Namespace, seed: int) -> dict[str, Any]:
    from formicary.compile import compile_model
    from formicary.model.students import build_builtin
    from formicary.oracle.tflm import measure_arena
    from formicary.shrink.moe import model_macs

    result = compile_model(spec, out, train=str(data["train"]), calib=str(data["calib"]), val=str(data["val"]),
                           epochs=args.epochs, seed=seed)
    rep = result.report
    m = build_builtin(spec, (8, 8, 1), 10)
    return {"arch": spec, "model_path": str(result.model_path), "params": int(m.count_params()),
            "macs_per_inference": model_macs(m), "analysis_macs": int(rep["macs"]),
            "model_bytes": int(rep["model_bytes"]), "tflm_arena_bytes": measure_arena(result.model_path),
            "float_accuracy": rep["accuracy"]["float"],
            "tflm_int8_accuracy": rep["accuracy"]["quantized"]}


def _moe(out: Path, data: dict[str, Path], args: argparse.Namespace, seed: int) -> dict[str, Any]:
    from formicary.shrink.moe import MoEOptions, moe_files

    opts = MoEOptions(experts=args.experts, expert=args.expert, stem=args.stem, balance_weight=args.balance_weight,
                      gate_noise=args.gate_noise, epochs=args.epochs, seed=seed)
    d = moe_files(data["train"], out, opts, val=data["val"], calib=data["calib"]).to_dict()
    c = d["costs"]
    return {"arch": f"{args.experts} x {args.expert}, stem {args.stem}, top-1", "model_path": d["model_path"],
            "params": c["total_params"], "macs_per_inference": c["macs_per_inference"],
            "macs_all_experts": c["macs_all_experts"], "params_per_expert": c["params_per_expert"],
            "gate_params": c["gate_params"], "stem_params": c["stem_params"], "model_bytes": d["model_bytes"],
            "tflm_arena_bytes": d["tflm_arena_bytes"], "float_accuracy": d["accuracy"]["float"],
            "tflm_int8_accuracy": d["accuracy"]["int8_tflm"], "usage": d["usage"],
            "route_agreement": d["route_agreement"],
            "subgraphs": [sg["name"] for sg in d["export"]["subgraphs"]]}


def _bench(tflite: str, board: str, val: Path, out: Path) -> dict[str, Any]:
    from formicary.bench.runner import run_bench
    from formicary.errors import FormicaryError

    try:
        b = run_bench(tflite, board, data=val, warmup=1, store=False, out_dir=out)
    except FormicaryError as err:
        # the MoE's IF subgraphs need formicary-rt's multi-subgraph codegen (issue 13, moe-rt)
        return {"error": err.cause, "fix": err.fix}
    energy = b.get("energy") or {}
    em = b.get("energy_model") or {}
    return {"accuracy": b["accuracy"], "instructions_median": b["latency"]["median"],
            "latency_unit": b["latency"]["unit"], "bit_exact": b.get("bit_exact"), "arena_bytes": b.get("arena_bytes"),
            "flash_bytes": b.get("flash_bytes"), "energy_uj_modelled": energy.get("uj_per_inference"),
            "energy_model_total": em.get("total"), "routes": b.get("routes"), "inputs": b["inputs"]}


def _stats(values: list[float | None]) -> dict[str, float | None]:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"mean": None, "std": None, "min": None, "max": None}
    return {"mean": round(statistics.fmean(vals), 4), "std": round(statistics.pstdev(vals), 4) if len(vals) > 1
            else 0.0, "min": min(vals), "max": max(vals)}


MODELS = ("moe", "same_macs", "same_params")


def run(argv: list[str] | None = None) -> dict[str, Any]:
    args = _args(argv)
    from formicary.model.zoo import digits_splits

    start = time.perf_counter()
    out = args.out
    splits = digits_splits(0)
    paths = splits.save(out / "data")
    n = len(splits.train) if args.train_samples <= 0 else min(args.train_samples, len(splits.train))
    if n < len(splits.train):
        paths["train"] = out / "data" / f"train{n}.npz"
        np.savez(paths["train"], x=splits.train.x[:n], y=splits.train.y[:n])
    board = None if args.board in ("none", "") else args.board
    rows = []
    for seed in range(args.seeds):
        row: dict[str, Any] = {"seed": seed, "moe": _moe(out / f"seed{seed}" / "moe", paths, args, seed)}
        if seed == 0:
            same_macs, _ = _width_for(row["moe"]["macs_per_inference"], "macs")
            same_params, _ = _width_for(row["moe"]["params"], "params")
        row["same_macs"] = _dense(same_macs, out / f"seed{seed}" / "same_macs", paths, args, seed)
        row["same_params"] = _dense(same_params, out / f"seed{seed}" / "same_params", paths, args, seed)
        if board:
            for k in MODELS:
                row[k]["board"] = _bench(row[k]["model_path"], board, paths["val"], out / f"seed{seed}" / k / "fw")
        rows.append(row)
        print(f"seed {seed}: TFLM int8 moe {row['moe']['tflm_int8_accuracy']:.4f}, same MACs "
              f"{row['same_macs']['tflm_int8_accuracy']:.4f}, same params {row['same_params']['tflm_int8_accuracy']:.4f}",
              file=sys.stderr)
    summary: dict[str, Any] = {}
    for k in MODELS:
        first = rows[0][k]
        summary[k] = {"arch": first["arch"], "params": first["params"], "macs_per_inference": first["macs_per_inference"],
                      "model_bytes": first["model_bytes"], "tflm_arena_bytes": first["tflm_arena_bytes"],
                      "float": _stats([r[k]["float_accuracy"] for r in rows]),
                      "tflm_int8": _stats([r[k]["tflm_int8_accuracy"] for r in rows])}
        if board:
            ok = [r[k]["board"] for r in rows if "error" not in r[k]["board"]]
            summary[k]["board"] = ({"accuracy": _stats([b["accuracy"] for b in ok]),
                                    "instructions_median": ok[0]["instructions_median"],
                                    "arena_bytes": ok[0]["arena_bytes"], "flash_bytes": ok[0]["flash_bytes"],
                                    "energy_uj_modelled": ok[0]["energy_uj_modelled"]} if ok else
                                   {"error": rows[0][k]["board"]["error"]})
    summary["moe"]["macs_all_experts"] = rows[0]["moe"]["macs_all_experts"]
    summary["moe"]["usage_val_tflm"] = [r["moe"]["usage"]["val_tflm"] for r in rows]
    doc = {"task": {"data": "sklearn digits, digits_splits(seed=0)", "train_samples": n, "val_samples": len(splits.val),
                    "calib_samples": len(splits.calib), "epochs": args.epochs, "seeds": list(range(args.seeds)),
                    "experts": args.experts, "expert": args.expert, "stem": args.stem,
                    "balance_weight": args.balance_weight, "gate_noise": args.gate_noise, "board": board},
           "seeds": rows, "summary": summary, "seconds": round(time.perf_counter() - start, 1)}
    return doc


def main(argv: list[str] | None = None) -> None:
    doc = run(argv)
    if "--json" in (argv if argv is not None else sys.argv[1:]):
        print(json.dumps(doc, indent=2))
        return
    s = doc["summary"]
    print(f"{'model':12} {'arch':40} {'params':>7} {'MACs/inf':>9} {'bytes':>7} {'float':>8} {'TFLM int8':>10}")
    for k in MODELS:
        m = s[k]
        print(f"{k:12} {m['arch']:40} {m['params']:>7,} {m['macs_per_inference']:>9,} {m['model_bytes']:>7,} "
              f"{m['float']['mean']:>8.2%} {m['tflm_int8']['mean']:>10.2%}")
        if "board" in m:
            b = m["board"]
            print("    board: " + (b["error"] if "error" in b else
                                   f"accuracy {b['accuracy']['mean']:.2%}, {b['instructions_median']:,} instructions, "
                                   f"arena {b['arena_bytes']:,} B, flash {b['flash_bytes']:,} B, "
                                   f"{b['energy_uj_modelled']} µJ (modelled)"))
    print(f"MoE expert usage on val (TFLM), per seed: {s['moe']['usage_val_tflm']}")


if __name__ == "__main__":
    main()
