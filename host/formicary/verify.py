"""`formicary verify`: run the generated C (host build) and the TFLM interpreter on the same inputs and
compare every output byte. Plain-data result with the keys documented for `--json`."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from formicary.errors import FormicaryError

FLOAT_RTOL, FLOAT_ATOL = 1e-4, 1e-5


def random_inputs(model, n: int, seed: int = 0) -> list[list[np.ndarray]]:
    """n input sets drawn uniformly over each input's integer range (standard normal for float inputs)."""
    rng = np.random.default_rng(seed)
    sets = []
    for _ in range(n):
        row = []
        for t in model.input_tensors:
            dt = np.dtype(t.np_dtype)
            if np.issubdtype(dt, np.integer):
                info = np.iinfo(dt)
                row.append(rng.integers(info.min, int(info.max) + 1, size=t.shape, dtype=np.int64).astype(dt))
            else:
                row.append(rng.standard_normal(t.shape).astype(dt))
        sets.append(row)
    return sets


def dataset_inputs(model, data_dir: str | Path) -> tuple[list[list[np.ndarray]], np.ndarray | None]:
    """Input sets (and labels) from an .npz or MLPerf-style .bin folder, shaped like the model input."""
    from formicary.data import fit_to_input, load_dataset

    if len(model.inputs) != 1:
        raise FormicaryError("--data works for single-input models only.", "use --inputs N for this model.")
    t = model.input_tensors[0]
    ds = fit_to_input(load_dataset(data_dir), (None, *t.shape[1:]), "--data")
    dt = np.dtype(t.np_dtype)
    x = ds.x
    if np.issubdtype(dt, np.integer) and not np.issubdtype(x.dtype, np.integer):
        raise FormicaryError(f"--data holds {x.dtype} samples but the model input is {dt}.",
                             "give quantized samples (e.g. MLPerf .bin files) for a quantized model.")
    sets = [[np.asarray(x[i], dtype=dt).reshape(t.shape)] for i in range(len(ds))]
    return sets, ds.y


def tflm_arena_isolated(model_bytes: bytes, timeout: float = 300) -> tuple[int | None, str | None]:
    """reference.measure_arena in a child process: the TFLM wheel can segfault for some arena sizes during the
    bisection (seen on a digits CNN at 3072 bytes), which must not take verify down with it.
    Returns (bytes, None) or (None, reason)."""
    import subprocess
    import sys

    code = ("import sys; from formicary.reference import measure_arena; "
            "print(measure_arena(sys.stdin.buffer.read()))")
    try:
        proc = subprocess.run([sys.executable, "-c", code], input=model_bytes, capture_output=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None, f"TFLM arena measurement timed out after {timeout} s"
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        return None, f"TFLM arena measurement failed (exit {proc.returncode}) {tail[0][:300]}".strip()
    return int(proc.stdout.decode().strip().splitlines()[-1]), None


def verify_model(model: str | Path | bytes, *, inputs: int | None = None, data: str | Path | None = None,
                 seed: int = 0, sanitize: bool = False, target: str = "host", input_sets=None,
                 measure_tflm_arena: bool = True, kernels: str | None = None) -> dict:
    """Compare formicary-rt (generated C, host build) with TFLM byte for byte.

    Inputs come from `input_sets` (list of per-invocation input lists), `data` (dataset folder/.npz) or
    `inputs` random sets (default 10). `sanitize` runs a standalone -fsanitize=address,undefined build.
    `kernels`: the kernel set to build with (default reference).
    """
    from formicary import native, reference
    from formicary.codegen import generate
    from formicary.tflite import read_model

    if target != "host":
        if sanitize or input_sets is not None:
            raise FormicaryError("--sanitize runs on the host only.", f"drop --sanitize for --target {target}.")
        return verify_on_board(model, target, inputs=inputs, data=data, seed=seed)
    from formicary.codegen.generate import read_model_bytes

    data_bytes = read_model_bytes(model)
    ir = read_model(data_bytes)
    labels = None
    if input_sets is not None:
        sets = [list(s) if not isinstance(s, np.ndarray) else [s] for s in input_sets]
    elif data is not None:
        sets, labels = dataset_inputs(ir, data)
        if inputs is not None:
            sets, labels = sets[:inputs], (None if labels is None else labels[:inputs])
    else:
        sets = random_inputs(ir, 10 if inputs is None else inputs, seed)
    if not sets:
        raise FormicaryError("no inputs to verify with.", "pass --inputs N (N >= 1) or --data DIR.")

    with tempfile.TemporaryDirectory(prefix="fm-verify-") as tmp:
        result = generate(data_bytes, Path(tmp) / "model", kernels=kernels)
        if sanitize:
            exe = native.build_executable(result, sanitize=True)
            ours = native.run_executable(exe, ir, sets)
        else:
            nm = native.load(result, ir)
            ours = [nm.run(s) for s in sets]
    ref = reference.run_tflm(data_bytes, sets)

    mismatches, max_abs, first_mismatch = 0, 0.0, None
    float_outputs = any(np.issubdtype(np.dtype(t.np_dtype), np.floating) for t in ir.output_tensors)
    within_tol = True
    for i, (a_row, b_row) in enumerate(zip(ours, ref)):
        same = True
        for a, b in zip(a_row, b_row):
            b = np.asarray(b).reshape(a.shape)
            if a.tobytes() != b.astype(a.dtype).tobytes():
                same = False
                max_abs = max(max_abs, float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))))
                if np.issubdtype(a.dtype, np.floating):
                    within_tol &= bool(np.allclose(a, b, rtol=FLOAT_RTOL, atol=FLOAT_ATOL))
                else:
                    within_tol = False
        if not same:
            mismatches += 1
            first_mismatch = i if first_mismatch is None else first_mismatch
    out: dict = {
        "bit_exact": mismatches == 0,
        "inputs": len(sets),
        "mismatches": mismatches,
        "max_abs_diff": max_abs,
        "arena_bytes": result.arena_bytes,
        "tflm_arena_bytes": None,
        "arena_lower_bound_bytes": result.arena_lower_bound_bytes,
        "accuracy": None,
        "target": target,
        "sanitize": sanitize,
        "model_hash": result.model_hash,
        "first_mismatch": first_mismatch,
        "method": {"compare": "every output byte vs the TFLM Python interpreter",
                   "tflm_arena_bytes": "smallest arena_size TFLM allocates and invokes with (host build, bisection)",
                   "unit": "bytes"},
    }
    if float_outputs:
        # float32 kernels are tolerance-checked (summation order differs from TFLM), not bit-exact
        out["tolerance"] = {"rtol": FLOAT_RTOL, "atol": FLOAT_ATOL, "ok": within_tol}
    if measure_tflm_arena:
        out["tflm_arena_bytes"], reason = tflm_arena_isolated(data_bytes)
        if reason:
            out["tflm_arena_error"] = reason
    if labels is not None:
        correct = sum(int(np.argmax(row[0].reshape(-1))) == int(y) for row, y in zip(ours, labels))
        tflm_correct = sum(int(np.argmax(np.asarray(row[0]).reshape(-1))) == int(y) for row, y in zip(ref, labels))
        out["accuracy"] = {"correct": correct, "total": len(labels), "value": correct / len(labels),
                           "tflm_correct": tflm_correct, "method": "argmax of output 0 vs labels"}
    return out


def verify_on_board(model: str | Path, board: str, *, inputs: int | None = None, data: str | Path | None = None,
                    seed: int = 0, port: str | None = None) -> dict:
    """The comparison part of `formicary bench` on a (virtual) board: one run per input, nothing recorded.

    Same keys as the host verify where they apply; `latency` adds the on-device statistics."""
    from formicary.bench.runner import run_bench

    r = run_bench(model, board, port=port, runs=None, warmup=0, data=data, inputs=inputs, seed=seed, store=False)
    first = next((i for i, o in enumerate(r["outputs"]) if not o["match_reference"]), None)
    out: dict = {
        "bit_exact": bool(r["bit_exact"]), "inputs": r["inputs"], "mismatches": r["mismatches"],
        "max_abs_diff": max((o.get("max_abs_diff", 0.0) for o in r["outputs"]), default=0.0),
        "accuracy": None, "target": board, "sanitize": False, "first_mismatch": first,
        "model_hash": r["model"]["sha256"], "arena_bytes": r["arena_bytes"],
        "flash_bytes": r["flash_bytes"], "ram_bytes": r["ram_bytes"],
        "latency": {k: r["latency"][k] for k in ("unit", "method", "min", "median", "max", "estimate_ms", "clock_hz")},
        "method": {"compare": f"every output byte read back from {board} vs the TFLM Python interpreter",
                   "unit": "bytes"},
    }
    if r["model"]["variant"]["quantization"] == "float32":
        out["tolerance"] = {"rtol": FLOAT_RTOL, "atol": FLOAT_ATOL, "ok": r["mismatches"] == 0}
    labelled = [o for o in r["outputs"] if o["label"] is not None]
    if labelled:
        correct = sum(o["predicted"] == o["label"] for o in labelled)
        out["accuracy"] = {"correct": correct, "total": len(labelled), "value": correct / len(labelled),
                           "tflm_correct": sum(o["reference_predicted"] == o["label"] for o in labelled),
                           "method": f"argmax of output 0 on {board} vs labels"}
    return out
