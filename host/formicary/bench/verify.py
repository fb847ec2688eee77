"""`formicary verify`: run the generated C (host build, or the firmware on a board) and the TFLM interpreter on the
same inputs and compare every output (formicary.oracle.compare: bit-exact for integers, one float tolerance).
Plain-data result with the keys documented for `--json`."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from formicary.errors import FormicaryError

def tflm_arena_isolated(model_bytes: bytes, timeout: float = 300) -> tuple[int | None, str | None]:
    """reference.measure_arena in a child process: the TFLM wheel can segfault for some arena sizes during the
    bisection (seen on a digits CNN at 3072 bytes), which must not take verify down with it.
    Returns (bytes, None) or (None, reason)."""
    import subprocess
    import sys

    code = ("import sys; from formicary.oracle.tflm import measure_arena; "
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
                 measure_tflm_arena: bool = True, port: str | None = None, baud: int | None = None,
                 kernels: str | None = None, memory_plan: str | None = None, sbc: dict | None = None) -> dict:
    """Compare formicary-rt (generated C, host build) with TFLM byte for byte.

    Inputs come from `input_sets` (list of per-invocation input lists), `data` (dataset folder/.npz) or
    `inputs` random sets (default 10). `sanitize` runs a standalone -fsanitize=address,undefined build.
    `kernels`: the kernel set to build with (default reference). `memory_plan`: codegen's arena plan
    (codegen.generate.MEMORY_PLANS; default auto).
    """
    from formicary.oracle import tflm as reference
    from formicary.target import host as native
    from formicary.codegen import generate
    from formicary.oracle.compare import match, tolerance_record
    from formicary.oracle.inputs import model_inputs
    from formicary.tflite import read_model

    if target != "host":
        if sanitize or input_sets is not None or not isinstance(model, (str, Path)):
            raise FormicaryError("--sanitize runs on the host only.", f"drop --sanitize for --target {target}.")
        return verify_on_board(model, target, inputs=inputs, data=data, seed=seed, port=port, baud=baud,
                               kernels=kernels, memory_plan=memory_plan, sbc=sbc)
    from formicary.codegen.generate import read_model_bytes

    data_bytes = read_model_bytes(model)
    ir = read_model(data_bytes)
    labels = None
    if input_sets is not None:
        sets = [list(s) if not isinstance(s, np.ndarray) else [s] for s in input_sets]
    else:
        given = model_inputs(ir, data, inputs, seed=seed)
        sets = given.sets
        labels = given.labels if data is not None and given.labels and given.labels[0] is not None else None
        if labels is not None and isinstance(model, (str, Path)):
            from formicary.model.provenance import class_label_map, compiled_stages, to_class_indices

            labels = to_class_indices(labels, class_label_map(compiled_stages(model))) or labels
    if not sets:
        raise FormicaryError("no inputs to verify with.", "pass --inputs N (N >= 1) or --data DIR.")

    with tempfile.TemporaryDirectory(prefix="fm-verify-") as tmp:
        result = generate(data_bytes, Path(tmp) / "model", kernels=kernels, memory_plan=memory_plan)
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
        m = match(a_row, b_row)
        if not m.bit_exact:
            mismatches += 1
            max_abs = max(max_abs, m.max_abs_diff)
            within_tol &= m.within_tolerance
            first_mismatch = i if first_mismatch is None else first_mismatch
    out: dict = {
        "bit_exact": mismatches == 0,
        "inputs": len(sets),
        "mismatches": mismatches,
        "max_abs_diff": max_abs,
        "arena_bytes": result.arena_bytes,
        "tflm_arena_bytes": None,
        "arena_lower_bound_bytes": result.arena_lower_bound_bytes,
        "patch": result.patch,
        "accuracy": None,
        "target": target,
        "kernels": result.kernel_set,
        "memory_plan": result.memory_plan,
        "plans": result.plans,
        "sanitize": sanitize,
        "model_hash": result.model_hash,
        "first_mismatch": first_mismatch,
        "method": {"compare": "every output byte vs the TFLM Python interpreter",
                   "tflm_arena_bytes": "smallest arena_size TFLM allocates and invokes with (host build, bisection)",
                   "unit": "bytes"},
    }
    if float_outputs:
        # float32 kernels are tolerance-checked (summation order differs from TFLM), not bit-exact
        out["tolerance"] = tolerance_record(within_tol)
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
                    seed: int = 0, port: str | None = None, baud: int | None = None,
                    kernels: str | None = None, memory_plan: str | None = None, sbc: dict | None = None) -> dict:
    """The comparison part of `formicary bench` on a (virtual) board: one run per input, nothing recorded.

    Same keys as the host verify where they apply; `latency` adds the on-device statistics."""
    from formicary.bench.runner import run_bench
    from formicary.oracle.compare import tolerance_record

    from formicary.boards import load_board

    if load_board(board).is_sbc:  # verify compares outputs: no power sensor is read on the board
        sbc = {"sensor": "none", **(sbc or {})}
    r = run_bench(model, board, port=port, baud=baud, runs=None, warmup=0, data=data, inputs=inputs, seed=seed, store=False,
                  kernels=kernels, memory_plan=memory_plan, sbc=sbc)
    first = next((i for i, o in enumerate(r["outputs"]) if not o["match_reference"]), None)
    out: dict = {
        "bit_exact": bool(r["bit_exact"]), "inputs": r["inputs"], "mismatches": r["mismatches"],
        "max_abs_diff": max((o.get("max_abs_diff", 0.0) for o in r["outputs"]), default=0.0),
        "accuracy": None, "target": board, "sanitize": False, "first_mismatch": first,
        "kernels": (r.get("firmware") or {}).get("kernels"),
        "memory_plan": (r.get("firmware") or {}).get("memory_plan"),
        "model_hash": r["model"]["sha256"], "arena_bytes": r["arena_bytes"],
        "flash_bytes": r["flash_bytes"], "ram_bytes": r["ram_bytes"],
        "latency": {k: r["latency"][k] for k in ("unit", "method", "min", "median", "max", "estimate_ms", "clock_hz")},
        "method": {"compare": f"every output byte read back from {board} vs the TFLM Python interpreter",
                   "unit": "bytes"},
    }
    if r.get("reference"):  # an SBC: a TFLite runtime, compared with the stated host reference and tolerance
        out["reference"] = r["reference"]
        out["runtime"] = {k: r["firmware"].get(k) for k in ("runtime", "runtime_version", "threads", "xnnpack")}
        out["method"]["compare"] = (f"outputs read back from {board} vs the {r['reference']['what']}: "
                                    f"{r['reference']['tolerance']['rule']}")
        out["tolerance"] = {"ok": r["mismatches"] == 0, **r["reference"]["tolerance"]}
    if r["model"]["variant"]["quantization"] == "float32":
        out["tolerance"] = tolerance_record(r["mismatches"] == 0)
    labelled = [o for o in r["outputs"] if o["label"] is not None]
    if labelled:
        correct = sum(o["predicted"] == o["label"] for o in labelled)
        out["accuracy"] = {"correct": correct, "total": len(labelled), "value": correct / len(labelled),
                           "tflm_correct": sum(o["reference_predicted"] == o["label"] for o in labelled),
                           "method": f"argmax of output 0 on {board} vs labels"}
    return out
