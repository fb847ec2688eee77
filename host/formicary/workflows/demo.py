"""The main job end to end on the built-in default, as `formicary demo` runs it:

train the digits CNN → compile three variants (float32; int8; 50 % of the channels pruned + int8), each checked by TFLM →
build firmware for a virtual board → flash it (QEMU) → bench on the 400 validation digits (bit-exact check
against TFLM, accuracy, latency, per-layer times, modelled energy) → one HTML report with plots.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from formicary import progress

DEMO_BOARD = "qemu-m4"
MODEL_NAME = "digits_cnn"
# The pruned variant removes whole channels: the narrower model needs fewer instructions and less flash on the
# dense kernels. (Unstructured zeros saved nothing on the device: same kernels, same flash.)
PRUNE_STRUCTURE = "channel"
PRUNE_EPOCHS = 8


@dataclass
class DemoResult:
    out_dir: Path
    model_path: Path                      # the pruned int8 model (what `--compile-only` stops at)
    report_path: Path                     # its compile report
    report: dict[str, Any]
    benches: list[dict[str, Any]] = field(default_factory=list)
    html_report: Path | None = None
    store_path: Path | None = None
    seconds: float = 0.0


def run_main_job(out_dir: str | Path, *, seed: int = 0, board: str = DEMO_BOARD, compile_only: bool = False,
                 store: str | Path | None = None) -> DemoResult:
    from formicary.compile import compile_model

    start = time.perf_counter()
    out = Path(out_dir)
    main = train_and_compile(out, seed=seed)  # trains, saves data + model, compiles pruned 50 % int8 into out/compiled
    result = DemoResult(out_dir=out, model_path=main.model_path, report_path=main.report_path, report=main.report)
    if compile_only:
        result.seconds = time.perf_counter() - start
        return result

    keras_model, data = out / "digits_cnn.keras", out / "data"
    variants = {"float32": compile_model(keras_model, out / "compiled-float32", quantize="float32", seed=seed,
                                         val=str(data / "val.npz")).model_path,
                "int8": compile_model(keras_model, out / "compiled-int8", quantize="int8", seed=seed,
                                      calib=str(data / "calib.npz"), val=str(data / "val.npz")).model_path,
                "int8-pruned50": main.model_path}
    from formicary.bench.runner import run_bench
    from formicary.progress import BoardProgress
    from formicary.report import build_report
    from formicary.store import ResultStore

    result.store_path = Path(store) if store else out / "runs.db"
    with ResultStore(result.store_path) as st:
        for name, tflite in variants.items():
            progress.info(f"{name}: build for {board}, flash, bench on {data / 'val.npz'}")
            with BoardProgress() as show:
                bench = run_bench(tflite, board, data=data / "val.npz", warmup=1, profile=True, store=st,
                                  out_dir=out / "firmware" / f"{name}-{board}", label=MODEL_NAME, on_event=show)
            result.benches.append(bench)
        runs = [st.get_run(b["run_id"]) for b in result.benches]
    with progress.step("writing the report"):
        result.html_report = out / "report.html"
        build_report(runs, result.html_report, out / "report-png", title="formicary demo: digits CNN variants on "
                                                                         f"{board}")
    result.seconds = time.perf_counter() - start
    return result


def train_and_compile(out_dir: str | Path, seed: int = 0, epochs: int = 15, prune: float = 0.5,
                      prune_structure: str = PRUNE_STRUCTURE, prune_epochs: int = PRUNE_EPOCHS):
    """The main job on the built-in default: train the digits CNN, save it and its data splits in `out_dir`,
    then compile it (50 % of the channels pruned, int8, TFLM-checked) with validation accuracy. Returns the
    CompileResult."""
    from formicary.compile import CompileOptions, compile_model
    from formicary.model.zoo import digits_splits, train_digits_cnn

    out = Path(out_dir)
    splits = digits_splits(seed)
    paths = splits.save(out / "data")
    from formicary.model.keras_io import import_tensorflow, save_keras_model

    with progress.step("loading TensorFlow"):
        import_tensorflow()
    with progress.step(f"training the digits CNN ({epochs} epochs, {len(splits.train)} samples)"):
        model = train_digits_cnn(splits, epochs=epochs, seed=seed)
    model_path = save_keras_model(model, out / "digits_cnn.keras")
    opts = CompileOptions(train=str(paths["train"]), calib=str(paths["calib"]), val=str(paths["val"]),
                          prune=prune, prune_structure=prune_structure, quantize="int8", epochs=prune_epochs,
                          seed=seed)
    return compile_model(model_path, out / "compiled", opts)


def summary(result: DemoResult) -> dict[str, Any]:
    """The `formicary demo --json` document (keys documented in docs/report-json.md#demo)."""
    return {
        "model_path": str(result.model_path), "report_path": str(result.report_path), "report": result.report,
        "html_report": str(result.html_report) if result.html_report else None,
        "store_path": str(result.store_path) if result.store_path else None,
        "seconds": round(result.seconds, 1),
        "benches": [{"variant": b["model"]["variant"]["label"], "board": b["board"], "run_id": b.get("run_id"),
                     "model_path": b["model"]["path"], "model_bytes": b["model_bytes"],
                     "flash_bytes": b["flash_bytes"], "ram_bytes": b["ram_bytes"],
                     "latency": {k: b["latency"][k] for k in ("unit", "method", "median", "p99", "estimate_ms")},
                     "bit_exact": b["bit_exact"], "mismatches": b["mismatches"], "inputs": b["inputs"],
                     "accuracy": b["accuracy"], "energy": b["energy"]} for b in result.benches],
    }
