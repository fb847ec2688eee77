#!/usr/bin/env python3
"""Knowledge distillation on the digits task, measured: a small student distilled from a 10× larger teacher vs the
same student trained on the labels alone (same seed, epochs, data), both int8, in TFLM and on a virtual board.

    python examples/distill_digits.py --out /tmp/distill --json > distill.json

What it does (every model goes through the real `formicary compile` pipeline, `formicary.compile.compile_model`):
1. sklearn digits, split with seed 0 (formicary.model.zoo.digits_splits); the first --train-samples of the
   training split are the only training data anyone sees (teacher and students); calib (200) and val (400) as
   `formicary demo` uses them.
2. The teacher (--teacher, default builtin:cnn@1 = the digits CNN's shape) is trained once on the labels
   (seed 0) and saved as a Keras model (`--save-keras`).
3. For every seed: the student (--student, default builtin:cnn@0.25) distilled from the teacher
   (`--distill-from`), and the same student trained on the labels only; same seed = same initial weights and batch
   order. Both compiled to int8 (TFLM accuracy on val = `compile --val`).
4. With --board (default qemu-m4): every model benched on the board on the 400 val digits
   (`formicary bench ... --data val.npz`): accuracy on the device and retired instructions per inference.
5. --sweep: float accuracy over a grid of temperatures × alphas (how the defaults were chosen), no board.
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
    p.add_argument("--out", type=Path, default=Path("distill-digits"), help="working directory")
    p.add_argument("--seeds", type=int, default=5, help="student seeds 0..N-1")
    p.add_argument("--train-samples", type=int, default=300, help="training samples (first N of the train split)")
    p.add_argument("--epochs", type=int, default=40, help="training epochs (teacher and students)")
    p.add_argument("--teacher", default="builtin:cnn@1", help="teacher architecture (built-in)")
    p.add_argument("--student", default="builtin:cnn@0.25", help="student architecture (built-in)")
    p.add_argument("--temperature", type=float, default=None, help="distillation temperature (library default)")
    p.add_argument("--alpha", type=float, default=None, help="distillation alpha (library default)")
    p.add_argument("--board", default="qemu-m4", help="virtual board to bench on; 'none' to skip")
    p.add_argument("--sweep", action="store_true", help="also sweep T x alpha (float accuracy, all seeds)")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    return p.parse_args(argv)


def _compile(model: str, out: Path, data: dict[str, Path], args: argparse.Namespace, seed: int,
             **extra: Any) -> dict[str, Any]:
    from formicary.compile import compile_model

    result = compile_model(model, out, train=str(data["train"]), calib=str(data["calib"]), val=str(data["val"]),
                           epochs=args.epochs, seed=seed, **extra)
    rep = result.report
    return {"model_path": str(result.model_path), "macs": int(rep["macs"]), "model_bytes": int(rep["model_bytes"]),
            "float_accuracy": rep["accuracy"]["float"], "tflm_int8_accuracy": rep["accuracy"]["quantized"],
            "compile": rep["compile"]}


def _bench(tflite: str, board: str, val: Path, out: Path) -> dict[str, Any]:
    from formicary.bench.runner import run_bench

    b = run_bench(tflite, board, data=val, warmup=1, store=False, out_dir=out)
    return {"accuracy": b["accuracy"], "instructions_median": b["latency"]["median"],
            "latency_unit": b["latency"]["unit"], "bit_exact": b["bit_exact"], "mismatches": b["mismatches"],
            "inputs": b["inputs"], "variant": b["model"]["variant"]["label"], "flash_bytes": b["flash_bytes"]}


def _stats(values: list[float]) -> dict[str, float | None]:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"mean": None, "std": None, "min": None, "max": None}
    return {"mean": round(statistics.fmean(vals), 4), "std": round(statistics.pstdev(vals), 4) if len(vals) > 1
            else 0.0, "min": min(vals), "max": max(vals)}


def _sweep(data: dict[str, Path], args: argparse.Namespace, teacher_keras: Path) -> list[dict[str, Any]]:
    """Float accuracy of the student for T x alpha (alpha 0 = labels only), every seed: how the defaults were
    picked. Uses the library directly (no conversion), same splits and training loop as compile."""
    import tf_keras

    from formicary.compile.pipeline import keras_accuracy
    from formicary.data import load_dataset
    from formicary.model import keras_io
    from formicary.model.students import build_builtin
    from formicary.shrink.distill import StudentTraining, teacher_logits, train_student

    train, val = load_dataset(data["train"]), load_dataset(data["val"])
    keras_io.make_deterministic(0)
    teacher = keras_io.load_keras_model(keras_io.identify(teacher_keras))
    soft, _ = teacher_logits(teacher, train.x)
    rows = []
    grid = [(None, 0.0)] + [(t, a) for t in (2.0, 4.0, 8.0) for a in (0.5, 0.7, 0.9)]
    for temperature, alpha in grid:
        accs = []
        for seed in range(args.seeds):
            tf_keras.utils.set_random_seed(seed)
            student = build_builtin(args.student, keras_io.input_shape(teacher), int(teacher.outputs[0].shape[-1]))
            how = StudentTraining(train, args.epochs, seed=seed, temperature=temperature or 1.0, alpha=alpha)
            train_student(student, how, soft if temperature else None)
            accs.append(keras_accuracy(student, val))
        rows.append({"temperature": temperature, "alpha": alpha, "float_accuracy": accs, **_stats(accs)})
        print(f"sweep T={temperature} alpha={alpha}: {accs}", file=sys.stderr)
    return rows


def run(argv: list[str] | None = None) -> dict[str, Any]:
    args = _args(argv)
    from formicary.model.zoo import digits_splits

    start = time.perf_counter()
    out = args.out
    splits = digits_splits(0)
    paths = splits.save(out / "data")
    n = min(args.train_samples, len(splits.train))
    paths["train"] = out / "data" / f"train{n}.npz"
    np.savez(paths["train"], x=splits.train.x[:n], y=splits.train.y[:n])
    board = None if args.board in ("none", "") else args.board
    distill = {k: v for k, v in (("temperature", args.temperature), ("distill_alpha", args.alpha)) if v is not None}

    teacher_keras = out / "teacher" / "teacher.keras"
    teacher = _compile(args.teacher, out / "teacher", paths, args, 0, save_keras=str(teacher_keras))
    if board:
        teacher["board"] = _bench(teacher["model_path"], board, paths["val"], out / "teacher" / "fw")
    rows = []
    for seed in range(args.seeds):
        row: dict[str, Any] = {"seed": seed}
        for mode in ("distilled", "labels"):
            extra = {"distill_from": str(teacher_keras), **distill} if mode == "distilled" else {}
            r = _compile(args.student, out / f"seed{seed}" / mode, paths, args, seed, **extra)
            if board:
                r["board"] = _bench(r["model_path"], board, paths["val"], out / f"seed{seed}" / mode / "fw")
            row[mode] = r
        d, b = row["distilled"], row["labels"]
        row["tflm_gain_points"] = round((d["tflm_int8_accuracy"] - b["tflm_int8_accuracy"]) * 100, 2)
        row["distillation_wins_tflm"] = d["tflm_int8_accuracy"] > b["tflm_int8_accuracy"]
        if board:
            row["board_gain_points"] = round((d["board"]["accuracy"] - b["board"]["accuracy"]) * 100, 2)
            row["distillation_wins_board"] = d["board"]["accuracy"] > b["board"]["accuracy"]
        rows.append(row)
        print(f"seed {seed}: distilled {d['tflm_int8_accuracy']:.4f} vs labels {b['tflm_int8_accuracy']:.4f} "
              f"(TFLM int8)", file=sys.stderr)

    stage = next(s for s in rows[0]["distilled"]["compile"]["provenance"] if s["stage"] == "distill")
    student_macs = rows[0]["labels"]["macs"]
    summary: dict[str, Any] = {
        "teacher_macs": teacher["macs"], "student_macs": student_macs,
        "macs_ratio": round(teacher["macs"] / student_macs, 2),
        "student_within_quarter": student_macs * 4 <= teacher["macs"],  # the bound: ≤ 1/4 of the MACs
        "tflm_int8": {"distilled": _stats([r["distilled"]["tflm_int8_accuracy"] for r in rows]),
                      "labels": _stats([r["labels"]["tflm_int8_accuracy"] for r in rows]),
                      "gain_points": _stats([r["tflm_gain_points"] for r in rows]),
                      "wins": sum(r["distillation_wins_tflm"] for r in rows)},
        "float": {"distilled": _stats([r["distilled"]["float_accuracy"] for r in rows]),
                  "labels": _stats([r["labels"]["float_accuracy"] for r in rows])},
    }
    if board:
        summary["board"] = {"distilled": _stats([r["distilled"]["board"]["accuracy"] for r in rows]),
                            "labels": _stats([r["labels"]["board"]["accuracy"] for r in rows]),
                            "gain_points": _stats([r["board_gain_points"] for r in rows]),
                            "wins": sum(r["distillation_wins_board"] for r in rows),
                            "instructions_median": {"teacher": teacher["board"]["instructions_median"],
                                                    "student": rows[0]["labels"]["board"]["instructions_median"]}}
    for r in rows:  # the full compile reports are on disk; keep the JSON readable
        for mode in ("distilled", "labels"):
            r[mode].pop("compile")
    teacher.pop("compile")
    doc = {"task": {"data": "sklearn digits, digits_splits(seed=0)", "train_samples": n, "val_samples": len(splits.val),
                    "calib_samples": len(splits.calib), "epochs": args.epochs, "seeds": list(range(args.seeds)),
                    "teacher": args.teacher, "teacher_seed": 0, "student": args.student,
                    "temperature": stage["temperature"], "alpha": stage["alpha"], "board": board},
           "teacher": teacher, "seeds": rows, "summary": summary,
           "sweep": _sweep(paths, args, teacher_keras) if args.sweep else None,
           "seconds": round(time.perf_counter() - start, 1)}
    return doc


def main(argv: list[str] | None = None) -> None:
    doc = run(argv)
    if "--json" in (argv if argv is not None else sys.argv[1:]):
        print(json.dumps(doc, indent=2))
        return
    s = doc["summary"]
    print(f"teacher {doc['task']['teacher']}: {s['teacher_macs']:,} MACs; student {doc['task']['student']}: "
          f"{s['student_macs']:,} MACs ({s['macs_ratio']}x fewer)"
          + ("" if s["student_within_quarter"] else "  (NOT within 1/4 of the teacher's MACs)"))
    print(f"teacher int8: TFLM {doc['teacher']['tflm_int8_accuracy']:.2%}"
          + (f", {doc['task']['board']} {doc['teacher']['board']['accuracy']:.2%}" if doc["task"]["board"] else ""))
    for r in doc["seeds"]:
        d, b = r["distilled"], r["labels"]
        line = f"seed {r['seed']}: TFLM int8 distilled {d['tflm_int8_accuracy']:.2%} vs labels {b['tflm_int8_accuracy']:.2%}"
        if doc["task"]["board"]:
            line += f"; board {d['board']['accuracy']:.2%} vs {b['board']['accuracy']:.2%}"
        print(line + ("" if r["distillation_wins_tflm"] else "  (distillation does NOT win on this seed)"))
    t = s["tflm_int8"]
    print(f"mean ± std over {len(doc['seeds'])} seeds (TFLM int8): distilled {t['distilled']['mean']:.2%} ± "
          f"{t['distilled']['std']:.2%}, labels {t['labels']['mean']:.2%} ± {t['labels']['std']:.2%}; "
          f"distillation wins {t['wins']}/{len(doc['seeds'])}")


if __name__ == "__main__":
    main()
