#!/usr/bin/env python3
"""Kernel sets compared on the virtual boards: per-layer retired instructions of every set against the reference
kernels, measured in the same run, plus flash and code size.

usage: python benchmarks/kernels.py [--boards qemu-m4,qemu-m7,qemu-m55] [--models kws,ds_cnn,...] [--json OUT]
       [--sets reference,dsp,helium]

Models: the MLPerf Tiny KWS model (../shared/models/kws_ref_model.tflite; skipped with a note when absent) and
models built here from seeded random weights (instruction counts do not depend on the values): a depthwise-
separable CNN, a residual CNN, and formicary's digits CNN (model/zoo.py), trained a few epochs, in float32 and int8.
Boards: qemu-m4, qemu-m7, qemu-m55. Sets: per board, the reference set and every set that runs on the board's
core (KernelSet.cores in host/formicary/codegen/sets/: dsp on M4/M7/M55, helium on M55) and has kernel files of its own
(a set without any is the reference set under another name, and is listed under `skipped`).

Each (model, board, set) is built at -O2 and benched once through formicary's Python API (`run_bench`, profile
on: per-layer instructions from SysTick under QEMU -icount shift=0; retired instructions, not cycles) and checked
against TFLM on the same input (int8 bit for bit, float32 within formicary's tolerance). Prints one table per model and board; `--json` writes the document whose
keys benchmarks/README.md documents. CMSIS-NN's figures (../shared/notes/anchors.md) are included as an external
reference, labelled as such: they are not measured by this script.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
KWS = SHARED / "models" / "kws_ref_model.tflite"
BOARDS = ("qemu-m4", "qemu-m7", "qemu-m55")
MODELS = ("kws", "ds_cnn", "residual_cnn", "digits_f32", "digits_int8")
CODE_SIZE_TARGET_BYTES = 12 * 1024  # issue 11: runtime + the KWS op set with the DSP kernels <= 12 KB text at -O2

# External reference: Arm CMSIS-NN v7.0.0-43 on the MLPerf Tiny KWS model, measured on these machines with
# formicary's counting method (SysTick under -icount shift=0, per-op hooks, same startup/linker/flags, -O2) and
# recorded in ../shared/notes/anchors.md. NOT measured by this script.
CMSIS_NN_KWS = {
    "label": "external reference, not measured by this script",
    "source": "shared/notes/anchors.md: Arm CMSIS-NN v7.0.0-43, MLPerf Tiny KWS, retired instructions (QEMU "
              "-icount shift=0, SysTick around each op), same startup code, linker script and flags (-O2)",
    "macs": 2656768,
    "layers": [
        {"layer": "CONV_2D 10x4, stride 2, 1 input channel", "macs": 320000,
         "instructions": {"cortex-m4": 1118240, "cortex-m7": 1135600, "cortex-m55": 306312}},
        {"layer": "DEPTHWISE_CONV_2D 3x3, 64 ch (each of 4)", "macs": 72000,
         "instructions": {"cortex-m4": 561080, "cortex-m7": 561080, "cortex-m55": 168781}},
        {"layer": "CONV_2D 1x1, 64->64 (each of 4)", "macs": 512000,
         "instructions": {"cortex-m4": 1069120, "cortex-m7": 1051160, "cortex-m55": 203000}},
        {"layer": "AVERAGE_POOL_2D 25x5", "macs": None,
         "instructions": {"cortex-m4": 50840, "cortex-m7": 50800, "cortex-m55": 13156}},
        {"layer": "FULLY_CONNECTED 64->12", "macs": 768,
         "instructions": {"cortex-m4": 2280, "cortex-m7": 2280, "cortex-m55": 750}},
        {"layer": "SOFTMAX 12", "macs": None,
         "instructions": {"cortex-m4": 6520, "cortex-m7": 6600, "cortex-m55": 6969}},
    ],
    "whole_inference": {"cortex-m4": 7699160, "cortex-m7": 7644960, "cortex-m55": 1815000},
    "instr_per_mac": {"cortex-m4": 2.90, "cortex-m7": 2.88, "cortex-m55": 0.68},
}


# ----------------------------------------------------------------------------------------------- models
def _convert(keras_model, calib, int8: bool) -> bytes:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    if int8:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([x[None]] for x in calib)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return conv.convert()


def _ds_cnn(keras):
    """Depthwise-separable CNN (the DS-CNN / MobileNet family): 32x32x3 -> 10 classes."""
    L = keras.layers
    x_in = keras.Input((32, 32, 3))
    x = L.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x_in)
    for ch, stride in ((32, 1), (64, 2), (64, 1)):
        x = L.DepthwiseConv2D(3, strides=stride, padding="same", activation="relu")(x)
        x = L.Conv2D(ch, 1, activation="relu")(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(x_in, L.Dense(10, activation="softmax")(x))


def _residual_cnn(keras):
    """Residual CNN (ResNet-8 style, smaller): two identity blocks with ADD, one strided block."""
    L = keras.layers
    x_in = keras.Input((32, 32, 3))
    x = L.Conv2D(16, 3, padding="same", activation="relu")(x_in)
    for ch, stride in ((16, 1), (32, 2)):
        y = L.Conv2D(ch, 3, strides=stride, padding="same", activation="relu")(x)
        y = L.Conv2D(ch, 3, padding="same")(y)
        if stride != 1 or ch != x.shape[-1]:
            x = L.Conv2D(ch, 1, strides=stride)(x)
        x = L.ReLU()(L.Add()([x, y]))
    x = L.AveragePooling2D(4)(x)
    x = L.Flatten()(x)
    return keras.Model(x_in, L.Dense(10, activation="softmax")(x))


def build_models(names: list[str], out: Path, notes: list[str]) -> dict[str, Path]:
    """.tflite files for the requested models (built ones into `out`)."""
    import numpy as np

    paths: dict[str, Path] = {}
    if "kws" in names:
        if KWS.is_file():
            paths["kws"] = KWS
        else:
            notes.append(f"kws skipped: {KWS} not found (needs ../shared beside the repository)")
    built = [n for n in names if n != "kws"]
    if not built:
        return paths
    import formicary  # noqa: F401 - sets TF_USE_LEGACY_KERAS before TensorFlow loads
    import tf_keras as keras

    rng = np.random.default_rng(0)
    for name, builder in (("ds_cnn", _ds_cnn), ("residual_cnn", _residual_cnn)):
        if name in built:
            keras.utils.set_random_seed(1)
            model = builder(keras)
            calib = rng.uniform(0, 1, (32, 32, 32, 3)).astype(np.float32)
            paths[name] = out / f"{name}_int8.tflite"
            paths[name].write_bytes(_convert(model, calib, int8=True))
    if {"digits_f32", "digits_int8"} & set(built):
        from formicary.model.zoo import digits_splits, train_digits_cnn

        splits = digits_splits(0)
        model = train_digits_cnn(splits, epochs=5, seed=0)
        for name, int8 in (("digits_f32", False), ("digits_int8", True)):
            if name in built:
                paths[name] = out / f"{name}.tflite"
                paths[name].write_bytes(_convert(model, splits.calib.x[:100], int8=int8))
    return paths


# ------------------------------------------------------------------------------------------------ sets
def sets_for_board(board, wanted: list[str] | None, skipped: list[dict]) -> list[str]:
    from formicary.bench.kernel_check import set_runs_on
    from formicary.codegen import kernel_sets

    out = [kernel_sets.REFERENCE]
    for name in kernel_sets.available_kernel_sets():
        if name == kernel_sets.REFERENCE or (wanted and name not in wanted):
            continue
        if not set_runs_on(name, board.core):
            continue
        own = [f for k in kernel_sets.kernel_set(name).chain() if k.name != kernel_sets.REFERENCE for f in k.files()]
        if not own:
            skipped.append({"board": board.name, "kernels": name,
                            "reason": "no kernel files of its own yet: identical to the reference set"})
            continue
        out.append(name)
    return out


def text_bytes(elf: Path) -> int:
    """.text of an ELF (code + read-only data placed in it by the linker script)."""
    size = shutil.which("arm-none-eabi-size")
    out = subprocess.run([size, "-A", "-d", str(elf)], capture_output=True, text=True, check=True).stdout
    return sum(int(p[1]) for p in (ln.split() for ln in out.splitlines()) if len(p) >= 2 and p[0] == ".text")


def code_size(board, kernels: str, model: Path, tmp: Path) -> dict[str, Any]:
    """Text bytes of formicary-rt's runtime + the kernels `model` needs from `kernels`, each file compiled alone at
    -O2 for the board's core (arm-none-eabi-size `text`: code and read-only data, before the linker's
    --gc-sections: an upper bound on what a firmware links)."""
    from formicary.codegen import generate
    from formicary.resources import firmware_dir

    fw = firmware_dir()
    r = generate(model, tmp / f"size-{board.name}-{kernels}", kernels=kernels)
    gcc, size = shutil.which("arm-none-eabi-gcc"), shutil.which("arm-none-eabi-size")
    flags = list(board.cpu_flags) + ["-O2", "-std=c11", "-ffunction-sections", "-fdata-sections",
                                     "-I", str(fw / "runtime" / "include"), "-I", str(fw / "kernels" / "include")]
    files: dict[str, int] = {}
    for rel, src in zip(r.kernel_sources, r.firmware_sources()):
        obj = tmp / f"{board.name}-{kernels}-{Path(rel).stem}.o"
        subprocess.run([gcc, *flags, "-c", str(src), "-o", str(obj)], check=True, capture_output=True)
        line = subprocess.run([size, str(obj)], capture_output=True, text=True, check=True).stdout.splitlines()[1]
        files[rel] = int(line.split()[0])
    total = sum(files.values())
    return {"text_bytes": total, "files": files, "target_bytes": CODE_SIZE_TARGET_BYTES,
            "within_target": total <= CODE_SIZE_TARGET_BYTES, "flags": flags[:len(board.cpu_flags) + 2],
            "method": "each file compiled alone (-ffunction-sections), arm-none-eabi-size text column summed"}


# ----------------------------------------------------------------------------------------------- bench
def bench_one(model: Path, board, kernels: str, tmp: Path) -> dict[str, Any]:
    from formicary.bench.runner import run_bench
    from formicary.codegen import generate

    gen = generate(model, tmp / f"gen-{model.stem}-{board.name}-{kernels}", kernels=kernels)
    r = run_bench(model, board.name, runs=1, warmup=0, inputs=1, profile=True, store=False, kernels=kernels,
                  out_dir=tmp / f"fw-{model.stem}-{board.name}-{kernels}")
    total = int(r["latency"]["median"])
    macs = int(r["macs"])
    return {
        "kernels": kernels, "bit_exact": bool(r["bit_exact"]),
        # int8: the same as bit_exact; float32: within formicary's float tolerance of TFLM (summation order differs)
        "matches_reference": r["mismatches"] == 0, "instructions": total,
        "instr_per_mac": round(total / macs, 3) if macs else None,
        "flash_bytes": int(r["flash_bytes"]),
        "const_bytes": gen.const_bytes,
        "packed_bytes": sum(o.packed_bytes for o in gen.ops),
        "replaced_bytes": sum(o.replaced_bytes for o in gen.ops),
        "arena_bytes": int(r["arena_bytes"]),
        "layers": [{"index": L["index"], "op": L["op"], "name": L.get("name"), "macs": int(L.get("macs") or 0),
                    "instructions": int(L["median"])} for L in r["layers"]],
    }


def _elf_of(tmp: Path, model: Path, board: str, kernels: str) -> Path:
    return tmp / f"fw-{model.stem}-{board}-{kernels}" / ".pio" / "build" / board / "program.elf"


def run(models: list[str], boards: list[str], sets: list[str] | None, json_out: Path | None) -> dict[str, Any]:
    from formicary.boards import load_board

    notes: list[str] = []
    skipped: list[dict] = []
    doc: dict[str, Any] = {
        "benchmark": "kernels", "schema": 1,
        "method": {"instructions": "QEMU retired instructions under -icount shift=0, read through SysTick around "
                                   "the inference and each op (profile firmware); one inference per (model, board, "
                                   "set) on the same random input; instructions, not cycles",
                   "optimize": "-O2 (formicary build --optimize speed)",
                   "bit_exact": "output of that inference vs the TFLM Python interpreter, every byte"},
        "models": [], "code_size": [], "skipped": skipped, "notes": notes,
        "external_reference": {"cmsis_nn_kws": CMSIS_NN_KWS},
    }
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fm-kbench-") as tmp_name:
        tmp = Path(tmp_name)
        paths = build_models(models, tmp, notes)
        board_objs = [load_board(b) for b in boards]
        board_sets = {b.name: sets_for_board(b, sets, skipped) for b in board_objs}
        for name, path in paths.items():
            entry: dict[str, Any] = {"name": name, "path": str(path) if name == "kws" else None, "boards": {}}
            for b in board_objs:
                results = {}
                for k in board_sets[b.name]:
                    res = bench_one(path, b, k, tmp)
                    elf = _elf_of(tmp, path, b.name, k)
                    res["text_bytes"] = text_bytes(elf) if elf.is_file() else None
                    results[k] = res
                ref = results["reference"]
                for res in results.values():
                    res["speedup_vs_reference"] = round(ref["instructions"] / res["instructions"], 3)
                    for L, R in zip(res["layers"], ref["layers"]):
                        L["instr_per_mac"] = round(L["instructions"] / L["macs"], 3) if L["macs"] else None
                        L["speedup_vs_reference"] = round(R["instructions"] / L["instructions"], 3) \
                            if L["instructions"] else None
                entry["macs"] = sum(L["macs"] for L in ref["layers"])
                entry["boards"][b.name] = {"core": b.core, "sets": results}
                print_table(name, b, results)
            doc["models"].append(entry)
        if "kws" in paths:
            for b in board_objs:
                for k in board_sets[b.name]:
                    doc["code_size"].append({"board": b.name, "core": b.core, "kernels": k, "model": "kws",
                                             **code_size(b, k, paths["kws"], tmp)})
        else:
            notes.append("code_size skipped: it is measured on the KWS op set, and kws was not run "
                         "(not in --models, or missing)")
    doc["seconds"] = round(time.perf_counter() - start, 1)
    for c in doc["code_size"]:
        print(f"code size {c['board']} {c['kernels']}: runtime + KWS kernels {c['text_bytes']:,} B text at -O2 "
              f"(target {c['target_bytes']:,} B: {'met' if c['within_target'] else 'NOT met'})")
    for s in skipped:
        print(f"skipped {s['kernels']} on {s['board']}: {s['reason']}")
    for n in notes:
        print(f"note: {n}")
    if json_out:
        json_out.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {json_out}")
    return doc


def _x(value: float | None) -> str:
    """A ratio for the table; '-' where there is none (a layer that took no instructions in one set)."""
    return "-" if value is None else f"{value:.2f}"


def print_table(model: str, board, results: dict[str, dict]) -> None:
    sets = list(results)
    ref = results["reference"]
    head = ["#", "op", "MACs"] + [f"{k} instr" for k in sets] + [f"{k} i/MAC" for k in sets] + \
        [f"{k} x" for k in sets if k != "reference"]
    rows = []
    for i, L in enumerate(ref["layers"]):
        row = [str(L["index"]), L["op"], f"{L['macs']:,}"]
        row += [f"{results[k]['layers'][i]['instructions']:,}" for k in sets]
        row += [f"{results[k]['layers'][i]['instr_per_mac']:.2f}" if results[k]['layers'][i]['instr_per_mac']
                else "-" for k in sets]
        row += [_x(results[k]['layers'][i]['speedup_vs_reference']) for k in sets if k != "reference"]
        rows.append(row)
    total = ["all", "whole inference", f"{sum(L['macs'] for L in ref['layers']):,}"]
    total += [f"{results[k]['instructions']:,}" for k in sets]
    total += [f"{results[k]['instr_per_mac']:.2f}" if results[k]["instr_per_mac"] else "-" for k in sets]
    total += [_x(results[k]['speedup_vs_reference']) for k in sets if k != "reference"]
    rows.append(total)
    widths = [max(len(h), *(len(r[c]) for r in rows)) for c, h in enumerate(head)]
    def verdict(r: dict) -> str:
        return "bit-exact" if r["bit_exact"] else "within float tolerance" if r["matches_reference"] else "MISMATCH"

    print(f"\n{model} on {board.name} ({board.core}); vs TFLM: "
          + ", ".join(f"{k} {verdict(r)}" for k, r in results.items())
          + "; flash/text: " + ", ".join(f"{k} {r['flash_bytes']:,}/{r['text_bytes'] or 0:,} B" for k, r in
                                         results.items()))
    print("  ".join(h.rjust(w) if c != 1 else h.ljust(w) for c, (h, w) in enumerate(zip(head, widths))))
    for r in rows:
        print("  ".join(v.rjust(w) if c != 1 else v.ljust(w) for c, (v, w) in enumerate(zip(r, widths))))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--boards", default=",".join(BOARDS))
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {', '.join(MODELS)}")
    ap.add_argument("--sets", default=None, help="comma-separated kernel sets besides reference (default: all "
                                                 "applicable ones with files)")
    ap.add_argument("--json", type=Path, default=None, help="write the JSON document here")
    args = ap.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        print(f"unknown model(s) {unknown}: use {', '.join(MODELS)}", file=sys.stderr)
        return 2
    if not shutil.which("arm-none-eabi-gcc") or not shutil.which("qemu-system-arm"):
        print("needs arm-none-eabi-gcc and qemu-system-arm (apt-get install gcc-arm-none-eabi "
              "libnewlib-arm-none-eabi qemu-system-arm)", file=sys.stderr)
        return 2
    sets = [s for s in args.sets.split(",") if s] if args.sets else None
    doc = run(models, [b for b in args.boards.split(",") if b], sets, args.json)
    return 0 if all(r["matches_reference"] for m in doc["models"] for b in m["boards"].values()
                    for r in b["sets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
