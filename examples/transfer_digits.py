"""Transfer learning, measured: pretrain the digits CNN on digits 0-4, adapt it to digits 5-9 from a few labelled
examples per class, and compare with the same architecture trained from scratch on the same examples.

    python examples/transfer_digits.py --seeds 0 1 2 3 4 --json > transfer.json

Data: scikit-learn digits, split once (formicary.model.zoo.digits_splits(seed=0)): the base is pretrained on the
train split's 0-4 digits; per seed, PER_CLASS labelled 5-9 digits are drawn from the train split (seeded); the
calibration split's 5-9 images (unlabelled) calibrate int8; the validation split's 5-9 digits (never trained on)
measure accuracy: float (TensorFlow), int8 (TFLM interpreter, via `formicary compile`) and on the device
(`formicary bench --board qemu-m4`, labels remapped to class indices 0-4 = digits 5-9).

Fairness: both models see the same examples, batch size and number of epochs (= adapt's head epochs + its
fine-tuning epochs); scratch uses the learning rate formicary's digits trainer uses (3e-3) and Glorot-initialised
weights seeded like the adapted model's head. A longer scratch budget can be added with --scratch-long-epochs.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

OLD, NEW = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)
SCRATCH_LR = 3e-3  # formicary.model.zoo.train_digits_cnn's rate


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="few-shot draws / training seeds")
    ap.add_argument("--per-class", type=int, default=20, help="labelled examples per new class (<= 20)")
    ap.add_argument("--pretrain-epochs", type=int, default=15)
    ap.add_argument("--epochs", type=int, default=30, help="adapt: head epochs")
    ap.add_argument("--fine-tune-epochs", type=int, default=0, help="adapt: top-block epochs afterwards")
    ap.add_argument("--freeze-until", default="auto")
    ap.add_argument("--scratch-long-epochs", type=int, default=0,
                    help="also train scratch for this many epochs (0: only the same budget)")
    ap.add_argument("--board", default="qemu-m4")
    ap.add_argument("--no-device", action="store_true", help="skip the board runs (TFLM int8 only)")
    ap.add_argument("--out", type=Path, default=Path("transfer-digits"))
    ap.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    return ap.parse_args(argv)


def _save(path: Path, x: np.ndarray, y: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if y is None:
        np.savez(path, x=x)
    else:
        np.savez(path, x=x, y=y)
    return path


def _mask(y: np.ndarray, labels: tuple[int, ...]) -> np.ndarray:
    return np.isin(y, labels)


def pretrain(splits: Any, out: Path, epochs: int) -> tuple[Path, float]:
    import tf_keras as keras

    from formicary.model.keras_io import make_deterministic, quiet_native_logs
    from formicary.model.zoo import build_digits_cnn
    from formicary.shrink.transfer import replace_head

    make_deterministic(0)
    model = replace_head(build_digits_cnn(), len(OLD))
    model.compile(optimizer=keras.optimizers.Adam(SCRATCH_LR), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    tr, va = _mask(splits.train.y, OLD), _mask(splits.val.y, OLD)
    with quiet_native_logs():
        model.fit(splits.train.x[tr], splits.train.y[tr], epochs=epochs, batch_size=32, verbose=0)
        acc = float(model.evaluate(splits.val.x[va], splits.val.y[va], verbose=0)[1])
    path = out / "base_digits0-4.keras"
    model.save(path)
    return path, round(acc, 4)


def few_shot(splits: Any, seed: int, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    idx = np.concatenate([rng.choice(np.flatnonzero(splits.train.y == c), per_class, replace=False) for c in NEW])
    return splits.train.x[idx], splits.train.y[idx]


def scratch(x: np.ndarray, y: np.ndarray, epochs: int, seed: int, batch: int, path: Path) -> Path:
    import tf_keras as keras

    from formicary.model.keras_io import make_deterministic, quiet_native_logs
    from formicary.model.zoo import build_digits_cnn
    from formicary.shrink.transfer import replace_head

    make_deterministic(seed)
    model = replace_head(build_digits_cnn(), len(NEW))
    model.compile(optimizer=keras.optimizers.Adam(SCRATCH_LR), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    with quiet_native_logs():
        model.fit(x, y - NEW[0], epochs=epochs, batch_size=batch, shuffle=True, verbose=0)
    model.save(path)
    return path


def measure(model: Path, out: Path, calib: Path, val_idx: Path, board: str | None) -> dict[str, Any]:
    """int8 accuracy in TFLM (formicary compile) and on the board (formicary bench)."""
    from formicary.compile import compile_model

    res = compile_model(model, out, calib=str(calib), val=str(val_idx))
    acc = res.report["accuracy"]
    row: dict[str, Any] = {"float": acc["float"], "int8_tflm": acc["quantized"], "device": None,
                           "device_bit_exact": None, "variant": None, "tflite": str(res.model_path)}
    if board:
        cmd = [sys.executable, "-m", "formicary.cli", "bench", str(res.model_path), "--board", board, "--data",
               str(val_idx), "--no-store", "--json"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
        bench = json.loads(proc.stdout)
        if "error" in bench:
            raise RuntimeError(f"bench failed: {bench['error']}")
        row.update({"device": round(float(bench["accuracy"]), 4), "device_bit_exact": bench["bit_exact"],
                    "device_mismatches": bench["mismatches"], "device_inputs": bench["inputs"],
                    "variant": bench["model"]["variant"]["label"]})
    return row


def _stats(values: list[float | None]) -> dict[str, float | None]:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    return {"mean": round(statistics.fmean(vals), 4), "std": round(statistics.pstdev(vals), 4),
            "min": round(min(vals), 4), "max": round(max(vals), 4), "n": len(vals)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from formicary.model.zoo import digits_splits
    from formicary.shrink.transfer import AdaptOptions, adapt_files

    started = time.perf_counter()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    splits = digits_splits(seed=0)
    base, base_acc = pretrain(splits, out, args.pretrain_epochs)
    cal = _mask(splits.calib.y, NEW)
    calib = _save(out / "calib_5-9_unlabelled.npz", splits.calib.x[cal])
    va = _mask(splits.val.y, NEW)
    val = _save(out / "val_5-9.npz", splits.val.x[va], splits.val.y[va])                  # digits 5..9
    val_idx = _save(out / "val_5-9_as_0-4.npz", splits.val.x[va], splits.val.y[va] - NEW[0])  # class indices
    board = None if args.no_device else args.board
    budget = args.epochs + args.fine_tune_epochs
    batch = AdaptOptions().batch_size
    runs = []
    for seed in args.seeds:
        d = out / f"seed{seed}"
        x, y = few_shot(splits, seed, args.per_class)
        few = _save(d / "few.npz", x, y)
        opts = AdaptOptions(classes=len(NEW), freeze_until=args.freeze_until, epochs=args.epochs,
                            fine_tune_epochs=args.fine_tune_epochs, seed=seed)
        adapted = adapt_files(base, few, d / "adapted.keras", opts, val=val)
        transfer = adapted.stages[-1]
        row = {"seed": seed, "examples": len(y),
               "adapted": {**measure(adapted.model_path, d / "adapted", calib, val_idx, board),
                           "train_seconds": transfer["train_seconds"], "freeze_until": transfer["freeze_until"],
                           "trainable_params": transfer["trainable_params"]}}
        t0 = time.perf_counter()
        s_path = scratch(x, y, budget, seed, batch, d / "scratch.keras")
        row["scratch"] = {**measure(s_path, d / "scratch", calib, val_idx, board),
                          "train_seconds": round(time.perf_counter() - t0, 3), "epochs": budget}
        if args.scratch_long_epochs:
            s_long = scratch(x, y, args.scratch_long_epochs, seed, batch, d / "scratch_long.keras")
            row["scratch_long"] = {**measure(s_long, d / "scratch_long", calib, val_idx, board),
                                   "epochs": args.scratch_long_epochs}
        runs.append(row)
    kinds = [k for k in ("adapted", "scratch", "scratch_long") if k in runs[0]]
    summary: dict[str, Any] = {k: {m: _stats([r[k][m] for r in runs]) for m in ("float", "int8_tflm", "device")}
                               for k in kinds}
    # paired per seed (same examples): how much transfer gains over scratch, and on how many seeds it wins
    for m in ("int8_tflm", "device"):
        deltas = [r["adapted"][m] - r["scratch"][m] for r in runs if r["adapted"][m] is not None]
        summary.setdefault("adapted_minus_scratch", {})[m] = {
            **_stats(deltas), "wins": sum(d > 0 for d in deltas), "ties": sum(d == 0 for d in deltas)}
    return {
        "config": {"seeds": args.seeds, "per_class": args.per_class, "pretrain_epochs": args.pretrain_epochs,
                   "epochs": args.epochs, "fine_tune_epochs": args.fine_tune_epochs,
                   "freeze_until": args.freeze_until, "scratch_epochs": budget, "scratch_lr": SCRATCH_LR,
                   "scratch_long_epochs": args.scratch_long_epochs or None, "batch_size": batch,
                   "board": board, "data": "sklearn digits, digits_splits(seed=0)"},
        "base": {"path": str(base), "classes": list(OLD), "val_accuracy_float": base_acc},
        "val": {"path": str(val_idx), "samples": int(va.sum()), "labels": list(NEW), "chance": 1 / len(NEW)},
        "runs": runs, "summary": summary, "wall_seconds": round(time.perf_counter() - started, 1),
    }


def _pct(s: dict[str, float | None]) -> str:
    if s["mean"] is None:
        return "-"
    return f"{s['mean']:.1%} ± {s['std']:.1%} (min {s['min']:.1%})"


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"base (digits 0-4) float accuracy: {result['base']['val_accuracy_float']:.1%}")
    print(f"held-out digits 5-9: {result['val']['samples']} samples; {args.per_class} labelled per class; "
          f"seeds {args.seeds}")
    for kind, s in result["summary"].items():
        if kind == "adapted_minus_scratch":
            continue
        print(f"{kind:13s} float {_pct(s['float'])} | int8 TFLM {_pct(s['int8_tflm'])} | "
              f"{args.board} {_pct(s['device'])}")
    gain = result["summary"]["adapted_minus_scratch"]["int8_tflm"]
    print(f"adapted - scratch (int8 TFLM, paired by seed): {gain['mean']:+.1%} ± {gain['std']:.1%}, adapted wins on "
          f"{gain['wins']} of {gain['n']} seeds ({gain['ties']} ties)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
