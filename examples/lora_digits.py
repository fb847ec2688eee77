"""LoRA on the digits CNN: adapt it to digits rotated by 90° at rank 4 and 8, against full fine-tuning.

The base is formicary's digits CNN (formicary.model.zoo.train_digits_cnn) trained on upright digits; the new task
is the same ten classes rotated by 90° (np.rot90 on every 8×8 image), where the base guesses (~10-20 % accuracy),
so the adapters must really learn. Per seed: accuracy (float Keras and int8 in the TFLM interpreter, on the rotated
validation split), trainable parameters and training time (wall seconds) of full fine-tuning and of LoRA rank 4
and 8; the merge check; the rank-4 adapters kept separate (op list, host formicary-rt bit-exact with TFLM).

With --board (default qemu-m4), for the first seed: the merged and the separate rank-4 models verified on the board
(bit-exact, accuracy on the rotated validation split), benched with per-layer instruction counts (the separate
adapters' instruction overhead), and the flash of one base + N adapters against N fully fine-tuned models
(N = 1, 2, 4, 8) from the two real firmware images (see `flash_table` for how N > 1 is computed: no firmware that
switches between adapters at run time is built; several models per program is issue 18).

    python examples/lora_digits.py --seeds 0 1 2 --json > lora.json
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

NS = (1, 2, 4, 8)


def rotated(ds, k: int = 1):
    from formicary.data import Dataset

    return Dataset(np.ascontiguousarray(np.rot90(ds.x, k, axes=(1, 2))), ds.y, f"{ds.source} rotated {90 * k}°")


def limit(ds, n: int | None):
    from formicary.data import Dataset

    return ds if not n else Dataset(ds.x[:n], ds.y[:n], ds.source)


def accuracies(model: Any, calib, val) -> tuple[dict[str, float], bytes]:
    """Float accuracy (Keras) and int8 accuracy (TFLM) on `val`; also the int8 .tflite."""
    from formicary.compile.pipeline import keras_accuracy, tflm_accuracy
    from formicary.model.convert import convert

    tfl = convert(model, "int8", calib.x)
    return {"float": keras_accuracy(model, val), "int8_tflm": tflm_accuracy(tfl, val)}, tfl


def opcodes(tfl: bytes) -> list[str]:
    from formicary.tflite import read_model

    return [op.opcode for op in read_model(tfl).operators]


def op_shapes(tfl: bytes) -> list[tuple]:
    """(opcode, input/weight/output shapes) of every op: what "the base's op set and shapes" means."""
    from formicary.tflite import read_model

    ir = read_model(tfl)
    return [(op.opcode, *(tuple(ir.tensors[t].shape) for t in (*op.inputs, *op.outputs) if t >= 0))
            for op in ir.operators]


def full_finetune(base: Any, tune) -> tuple[Any, dict[str, Any]]:
    import tf_keras as keras

    from formicary.shrink import fit

    model = keras.models.clone_model(base)
    model.set_weights(base.get_weights())
    start = time.perf_counter()
    fit(model, tune)
    return model, {"trainable_params": int(sum(int(np.prod(w.shape)) for w in model.trainable_weights)),
                   "train_seconds": round(time.perf_counter() - start, 3)}


def run_seed(seed: int, args, out_dir: Path) -> dict[str, Any]:
    from formicary.bench.verify import verify_model
    from formicary.model.keras_io import make_deterministic
    from formicary.model.zoo import digits_splits, train_digits_cnn
    from formicary.progress import step
    from formicary.shrink import FineTune
    from formicary.shrink.lora import info_of, lora_train

    splits = digits_splits(seed=seed)
    train, calib, val = rotated(limit(splits.train, args.train_limit)), rotated(splits.calib), \
        rotated(limit(splits.val, args.val_limit))
    with step(f"seed {seed}: base digits CNN ({args.base_epochs} epochs, upright digits)"):
        base = train_digits_cnn(splits, epochs=args.base_epochs, seed=seed)
    base_acc, base_tfl = accuracies(base, calib, val)
    from formicary.compile.pipeline import keras_accuracy

    upright = keras_accuracy(base, limit(splits.val, args.val_limit))
    row: dict[str, Any] = {"seed": seed, "train_samples": len(train), "val_samples": len(val),
                           "base": {**base_acc, "float_upright": upright}}
    tune = FineTune(train, epochs=args.epochs, batch_size=32, learning_rate=args.lr)

    make_deterministic(seed)
    with step(f"seed {seed}: full fine-tuning ({args.epochs} epochs)"):
        full, facts = full_finetune(base, tune)
    full_acc, full_tfl = accuracies(full, calib, val)
    row["full"] = {**facts, **full_acc}

    row["lora"] = {}
    for rank in args.ranks:
        make_deterministic(seed)
        with step(f"seed {seed}: LoRA rank {rank} ({args.epochs} epochs)"):
            adapters = lora_train(base, tune, rank, alpha=args.alpha)
        merged = adapters.merged()
        err, tol = adapters.check(merged, train.x)
        info = info_of(adapters, merged=True, error=err, tolerance=tol)
        acc, tfl = accuracies(merged, calib, val)
        entry = {"trainable_params": info["trainable_params"], "full_finetune_params": info["full_finetune_params"],
                 "train_seconds": info["train_seconds"], "merge_max_abs_error": err, "merge_tolerance": tol, **acc,
                 "same_ops_as_base": op_shapes(tfl) == op_shapes(base_tfl)}
        if rank == args.ranks[0]:
            sep = adapters.separate()
            sep_err, _ = adapters.check(sep, train.x)
            sep_acc, sep_tfl = accuracies(sep, calib, val)
            host = verify_model(sep_tfl, inputs=args.verify_inputs, sanitize=True, measure_tflm_arena=False) \
                if args.verify_inputs else {"bit_exact": None, "inputs": 0}
            entry["separate"] = {**sep_acc, "export_max_abs_error": sep_err, "ops": opcodes(sep_tfl),
                                 "host_bit_exact": host["bit_exact"], "host_inputs": host["inputs"]}
            if seed == args.seeds[0]:
                (out_dir / f"lora{rank}_merged.tflite").write_bytes(tfl)
                (out_dir / f"lora{rank}_separate.tflite").write_bytes(sep_tfl)
                (out_dir / "full.tflite").write_bytes(full_tfl)
                np.savez(out_dir / "val_rotated.npz", x=val.x, y=val.y)
                # A second adapter for the same base (another task: digits rotated by 270°), to see which
                # bytes two adapter models really share once each is converted on its own.
                make_deterministic(seed + 1000)
                other = lora_train(base, FineTune(rotated(limit(splits.train, args.train_limit), 3),
                                                  epochs=args.epochs, learning_rate=args.lr), rank, alpha=args.alpha)
                from formicary.model.convert import convert

                other_tfl = convert(other.separate(), "int8", rotated(splits.calib, 3).x)
                (out_dir / f"lora{rank}_separate_b.tflite").write_bytes(other_tfl)
        row["lora"][str(rank)] = entry
    return row


# ---- device: verify, bench, flash -----------------------------------------------------------------------------

def elf_symbols(elf: Path) -> dict[str, int]:
    """Sizes of the model's constant symbols in a firmware ELF: fm_op<i>_* (weights, biases, requantization
    tables, parameter structs as the codegen emits them) and fm_const_t<j> (TFLite-layout constant tensors)."""
    out = subprocess.run(["arm-none-eabi-nm", "-S", str(elf)], capture_output=True, text=True, check=True).stdout
    sizes = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) == 4 and re.fullmatch(r"fm_op\d+_\w+|fm_const_t\d+", f[3]):
            sizes[f[3]] = int(f[1], 16)
    return sizes


def c_declarations(tfl: bytes, kernels: str) -> dict[str, str]:
    """name -> the C text of every model constant the codegen emits for `tfl` with this kernel set."""
    from formicary.codegen import generate

    with tempfile.TemporaryDirectory() as tmp:
        generate(tfl, Path(tmp) / "m", kernels=kernels)
        src = (Path(tmp) / "m" / "fm_model.c").read_text()
    return {m.group(1): m.group(0) for m in
            re.finditer(r"static const [\w ]+? (fm_op\d+_\w+|fm_const_t\d+)\b.*?;\n", src, re.DOTALL)}


def adapter_ops(tfl: bytes) -> set[int]:
    """Indices of the ops an adapter added (outputs named after the adapter layers: *_lora_a/_lora_b/_lora_add)."""
    from formicary.tflite import read_model

    ir = read_model(tfl)
    return {op.index for op in ir.operators if re.search(r"_lora_(a|b|add)/", ir.tensors[op.outputs[0]].name)}


def owner_op(symbol: str, tfl: bytes) -> int:
    from formicary.tflite import read_model

    m = re.fullmatch(r"fm_op(\d+)_\w+", symbol)
    if m:
        return int(m.group(1))
    t = int(symbol[len("fm_const_t"):])
    return next(op.index for op in read_model(tfl).operators if t in op.inputs)


def flash_table(merged_flash: int, sep_flash: int, merged_syms: dict[str, int], sep_syms: dict[str, int],
                sep_tfl: bytes, sep_decl: dict[str, str], other_decl: dict[str, str]) -> dict[str, Any]:
    """Flash of one base + N adapters vs N fully fine-tuned models, from the two measured firmware images.

    N = 1 is measured (firmware flash of the merged and of the separate build). For N > 1 nothing is built: a
    program holding several models (issue 18) shares the runtime and kernel code and adds each further model's
    constant data. So N fully fine-tuned models = merged flash + (N-1) x the merged model's constant data; one base
    + N adapters = separate flash + (N-1) x one adapter's own bytes, where an adapter's own bytes are all constant
    data of the separate build except what a second adapter of the same base (converted on its own) emits
    byte-identically (the base ops' int8 weights): the adapter ops' weights, biases, requantization tables and
    parameter structs, plus the base ops' requantization data that differ because calibration differs."""
    adapters = adapter_ops(sep_tfl)
    model_bytes = sum(merged_syms.values())
    # Every byte of the adapter ops is the adapter's own; a base op's symbol is shared only when a second adapter's
    # build emits it byte for byte (its int8 weights; its requantization depends on the calibrated activations).
    adapter_op_bytes = sum(n for s, n in sep_syms.items() if owner_op(s, sep_tfl) in adapters)
    shared = {s: n for s, n in sep_syms.items() if owner_op(s, sep_tfl) not in adapters
              and sep_decl.get(s) is not None and sep_decl.get(s) == other_decl.get(s)}
    per_adapter = sum(sep_syms.values()) - sum(shared.values())
    rows = []
    for n in NS:
        full = merged_flash + (n - 1) * model_bytes
        lora = sep_flash + (n - 1) * per_adapter
        rows.append({"n": n, "full_models_bytes": full, "base_plus_adapters_bytes": lora,
                     "saving_bytes": full - lora, "ratio": round(lora / full, 3),
                     "measured": n == 1})
    return {"merged_flash_bytes": merged_flash, "separate_flash_bytes": sep_flash,
            "merged_model_data_bytes": model_bytes, "separate_model_data_bytes": sum(sep_syms.values()),
            "shared_base_bytes": sum(shared.values()), "adapter_bytes": per_adapter,
            "adapter_op_bytes": adapter_op_bytes, "base_requant_bytes_per_adapter": per_adapter - adapter_op_bytes,
            "rows": rows,
            "method": ("N=1: firmware flash_bytes of the merged and of the separate build (bench). N>1 computed: "
                       "full = merged flash + (N-1) x merged model constant data; LoRA = separate flash + (N-1) x "
                       "adapter bytes (the adapter ops' constant data, plus the base ops' constant data that a "
                       "second, separately converted adapter of the same base does not emit byte for byte). "
                       "Constant data = ELF symbol sizes fm_op<i>_* and fm_const_t<j> (arm-none-eabi-nm). "
                       "No multi-adapter firmware is built (issue 18).")}


def device(args, out_dir: Path, rank: int) -> dict[str, Any]:
    from formicary.bench.runner import run_bench
    from formicary.bench.verify import verify_model
    from formicary.boards import load_board
    from formicary.progress import step
    from formicary.target.firmware import prepare_firmware

    board = load_board(args.board)
    data = out_dir / "val_rotated.npz"
    res: dict[str, Any] = {"board": args.board}
    builds = {}
    for kind in ("merged", "separate"):
        path = out_dir / f"lora{rank}_{kind}.tflite"
        with step(f"verify {path.name} on {args.board} ({args.device_inputs} rotated digits)"):
            v = verify_model(path, target=args.board, data=data, inputs=args.device_inputs, kernels=args.kernels)
        with step(f"bench {path.name} on {args.board} (per-layer instructions)"):
            b = run_bench(path, board, data=data, inputs=args.bench_inputs, profile=True, store=False,
                          kernels=args.kernels)
        builds[kind] = prepare_firmware(path, board, kernels=args.kernels)
        res[kind] = {"bit_exact": v["bit_exact"], "inputs": v["inputs"],
                     "accuracy": (v["accuracy"] or {}).get("value"), "instructions": b["latency"]["median"],
                     "unit": b["latency"]["unit"], "flash_bytes": b["flash_bytes"], "kernels": b["firmware"]["kernels"],
                     "layers": [{"op": la["op"], "name": la["name"], "median": la["median"]} for la in b["layers"]]}
    sep_tfl = (out_dir / f"lora{rank}_separate.tflite").read_bytes()
    adapters = adapter_ops(sep_tfl)
    layers = res["separate"]["layers"]
    res["overhead"] = {
        "merged_instructions": res["merged"]["instructions"], "separate_instructions": res["separate"]["instructions"],
        "extra_instructions": res["separate"]["instructions"] - res["merged"]["instructions"],
        "ratio": round(res["separate"]["instructions"] / res["merged"]["instructions"], 3),
        "adapter_op_instructions": sum(la["median"] for i, la in enumerate(layers) if i in adapters),
        "by_op": {"ADD": sum(la["median"] for i, la in enumerate(layers) if i in adapters and la["op"] == "ADD"),
                  "low_rank": sum(la["median"] for i, la in enumerate(layers) if i in adapters and la["op"] != "ADD")}}
    kernels = res["separate"]["kernels"]
    res["flash"] = flash_table(
        res["merged"]["flash_bytes"], res["separate"]["flash_bytes"], elf_symbols(builds["merged"].elf),
        elf_symbols(builds["separate"].elf), sep_tfl, c_declarations(sep_tfl, kernels),
        c_declarations((out_dir / f"lora{rank}_separate_b.tflite").read_bytes(), kernels))
    res["flash"]["kernels"] = kernels
    return res


def summary(rows: list[dict[str, Any]], ranks: list[int]) -> dict[str, Any]:
    def stat(values):
        v = np.asarray(values, dtype=float)
        return {"mean": round(float(v.mean()), 4), "min": round(float(v.min()), 4), "max": round(float(v.max()), 4)}

    out = {"base": {k: stat([r["base"][k] for r in rows]) for k in ("float", "int8_tflm")},
           "full": {k: stat([r["full"][k] for r in rows]) for k in ("float", "int8_tflm", "train_seconds")}}
    out["full"]["trainable_params"] = rows[0]["full"]["trainable_params"]
    for rank in ranks:
        e = [r["lora"][str(rank)] for r in rows]
        out[f"lora{rank}"] = {k: stat([x[k] for x in e]) for k in ("float", "int8_tflm", "train_seconds")}
        out[f"lora{rank}"]["trainable_params"] = e[0]["trainable_params"]
    sep = [r["lora"][str(ranks[0])]["separate"] for r in rows]
    out[f"lora{ranks[0]}sep"] = {k: stat([x[k] for x in sep]) for k in ("float", "int8_tflm")}
    return out


def human(doc: dict[str, Any]) -> str:
    lines = [f"task: {doc['task']}", "",
             f"{'method':17} {'trainable':>9}  {'float acc':21} {'int8 TFLM acc':21} train s"]
    s = doc["summary"]

    def fmt(x):
        return f"{x['mean']:.3f}" + (f" [{x['min']:.3f}-{x['max']:.3f}]" if x["min"] != x["max"] else "")

    lines.append(f"{'base (no tuning)':17} {'-':>9}  {fmt(s['base']['float']):21} {fmt(s['base']['int8_tflm']):21} -")
    for key, name in [("full", "full fine-tune"), *[(f"lora{r}", f"LoRA rank {r}") for r in doc["settings"]["ranks"]]]:
        lines.append(f"{name:17} {s[key]['trainable_params']:>9}  {fmt(s[key]['float']):21} "
                     f"{fmt(s[key]['int8_tflm']):21} {s[key]['train_seconds']['mean']:.2f}")
    r0 = doc["settings"]["ranks"][0]
    sep = s[f"lora{r0}sep"]
    lines.append(f"{'LoRA ' + str(r0) + ' separate':17} {'':>9}  {fmt(sep['float']):21} {fmt(sep['int8_tflm']):21}")
    dev = doc.get("device")
    if dev:
        o = dev["overhead"]
        lines += ["", (f"{dev['board']} ({dev['merged']['kernels']} kernels), rank {r0}: merged "
                  f"{o['merged_instructions']:.0f} instructions, separate {o['separate_instructions']:.0f} "
                  f"(+{o['extra_instructions']:.0f}, x{o['ratio']}); device accuracy merged "
                  f"{dev['merged']['accuracy']:.3f} / separate {dev['separate']['accuracy']:.3f} "
                  f"(bit-exact: {dev['merged']['bit_exact']} / {dev['separate']['bit_exact']})"),
                  "", "N   N full models   base + N adapters   (bytes of flash; N>1 computed from measured parts)"]
        for row in dev["flash"]["rows"]:
            lines.append(f"{row['n']:<3} {row['full_models_bytes']:>15,} {row['base_plus_adapters_bytes']:>19,}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--ranks", type=int, nargs="+", default=[4, 8])
    p.add_argument("--alpha", type=float, default=None, help="LoRA alpha (default: the rank, scale 1)")
    p.add_argument("--base-epochs", type=int, default=15)
    p.add_argument("--epochs", type=int, default=10, help="fine-tuning epochs (full and LoRA alike)")
    p.add_argument("--lr", type=float, default=3e-3, help="fine-tuning learning rate (full and LoRA alike)")
    p.add_argument("--train-limit", type=int, default=None, help="use only the first N training digits")
    p.add_argument("--val-limit", type=int, default=None, help="use only the first N validation digits")
    p.add_argument("--verify-inputs", type=int, default=10,
                   help="inputs of the host bit-exactness check of the separate adapters (0: skip)")
    p.add_argument("--board", default="qemu-m4", help="board for verify/bench/flash, or 'none'")
    p.add_argument("--kernels", default=None, help="kernel set on the board (default: the board's)")
    p.add_argument("--device-inputs", type=int, default=400, help="rotated validation digits verified on the board")
    p.add_argument("--bench-inputs", type=int, default=20)
    p.add_argument("--out", type=Path, default=None, help="folder for the .tflite files (default: a temp folder)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    import formicary  # noqa: F401 - sets TF_USE_LEGACY_KERAS before TensorFlow loads

    with tempfile.TemporaryDirectory(prefix="lora-digits-") as tmp:
        out_dir = args.out or Path(tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        rows = [run_seed(seed, args, out_dir) for seed in args.seeds]
        doc: dict[str, Any] = {
            "task": "sklearn digits rotated by 90° (base trained upright); accuracy on the rotated validation split",
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "json"},
            "seeds": rows, "summary": summary(rows, args.ranks)}
        if args.board != "none":
            doc["device"] = device(args, out_dir, args.ranks[0])
    print(json.dumps(doc, indent=2) if args.json else human(doc))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "host"))
    sys.exit(main())
