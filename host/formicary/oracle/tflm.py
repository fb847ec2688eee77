"""The oracle: the TFLite Micro interpreter (`tflite-micro` on PyPI), i.e. what a microcontroller computes.

TFLM reports real causes only on the C-level stderr, while Python sees a bare "failed to allocate tensors";
every call here captures fd 2 so that errors can name the actual reason. No TensorFlow import.
"""
from __future__ import annotations

import contextlib
import functools
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from formicary.errors import FormicaryError

# Big enough for any model we expect on a microcontroller; only used when no arena size is asked for.
DEFAULT_ARENA_BYTES = 64 * 1024 * 1024


@dataclass
class CapturedStderr:
    text: str = ""


@contextlib.contextmanager
def capture_c_stderr() -> Iterator[CapturedStderr]:
    """Redirect the process's fd 2 (where TFLM's C++ code prints) into a buffer for the duration."""
    captured = CapturedStderr()
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            captured.text = tmp.read().decode("utf-8", "replace")


def _model_bytes(model: bytes | str | Path) -> bytes:
    return Path(model).read_bytes() if isinstance(model, (str, Path)) else bytes(model)


def _tflm_reason(stderr: str) -> str:
    """The lines of TFLM's stderr that explain a failure, without allocator chatter."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and "RecordingMicroAllocator" not in ln]
    return "; ".join(lines[:6]) if lines else "no reason printed by TFLM"


_FIXES = [
    (re.compile(r"[Hh]ybrid|dynamic range|Type FLOAT32.*INT8|not supported.*weight", re.S),
     "quantize to full integer (`--quantize int8` with `--calib DATA`): TFLM does not run dynamic-range models."),
    (re.compile(r"FLOAT16|float16", re.S), "do not use float16 weights: quantize to int8 or keep float32."),
    (re.compile(r"[Ss]parsity|sparse", re.S), "strip the sparse tensor format; TFLM only runs dense tensors."),
    (re.compile(r"[Dd]idn't find op|not found in|unsupported op|Failed to get registration", re.S),
     "replace the unsupported op (see `formicary inspect` for the op list) or export without it."),
]


def _fix_for(reason: str) -> str:
    for pattern, fix in _FIXES:
        if pattern.search(reason):
            return fix
    return "run `formicary inspect MODEL` to see the ops and quantization TFLM refused."


def _make_interpreter(data: bytes, arena_size: int):
    from tflite_micro.python.tflite_micro import runtime

    refuse_known_aborts(data)
    return runtime.Interpreter.from_bytes(data, arena_size=arena_size)


def refuse_known_aborts(data: bytes) -> None:
    """FormicaryError for a model TFLM's Prepare would abort on (see `_prepare_abort`); called before any in-process
    interpreter exists, so no caller's `except` around the TFLM calls can blur the cause."""
    reason = _prepare_abort(data)
    if reason is not None:
        raise FormicaryError(f"TFLite Micro cannot run this model: {reason}; its Prepare would abort the whole "
                             "program (TFLITE_CHECK), so formicary does not call it.",
                             "calibrate with real data (`--calib DATA`) that covers the layer's range, or train the "
                             "model further: near-constant values give the layer this degenerate scale.")


@functools.lru_cache(maxsize=64)
def _prepare_abort(data: bytes) -> str | None:
    """A known TFLM Prepare check that aborts the process instead of failing (the wheel dies with SIGABRT and no
    message), found in the flatbuffer before TFLM sees it. Today: int8 SOFTMAX, whose
    QuantizeMultiplierGreaterThanOne needs beta x input scale x 2^26 > 1 (a random or untrained classifier's
    logits can get a scale near 1e-9), and int8 ADD/SUB with a degenerate output scale (a RELU over all-negative
    calibration values gets ~1e-8)."""
    from formicary.tflite import read_model

    try:
        ir = read_model(data)
    except Exception:  # noqa: BLE001 - a malformed model: TFLM reports it itself, with its own reason
        return None
    def scale(graph, index: int) -> float | None:
        t = graph.tensors[index] if index >= 0 else None
        if t is None or t.dtype != "int8" or t.quant is None or not len(t.quant.scale):
            return None
        return float(np.float32(t.quant.scale[0]))

    for graph in ir.subgraphs or [ir]:
        for op in graph.operators:
            if op.opcode == "SOFTMAX" and op.inputs:
                s_in, beta = scale(graph, op.inputs[0]), float(np.float32(op.options.get("beta", 1.0)))
                if s_in is not None and not min(beta * s_in * float(1 << 26), float(2 ** 31 - 1)) > 1.0:
                    return (f"SOFTMAX (op {op.index}) has int8 input scale {s_in:.3g}; TFLM needs beta x scale x "
                            "2^26 > 1")
            elif op.opcode in ("ADD", "SUB") and len(op.inputs) == 2 and op.outputs:
                # QuantizeMultiplierSmallerThanOneExp on 2 x the larger input scale / (2^20 x output scale)
                s1, s2, so = scale(graph, op.inputs[0]), scale(graph, op.inputs[1]), scale(graph, op.outputs[0])
                if None not in (s1, s2, so) and so > 0 and not 2.0 * max(s1, s2) / (float(1 << 20) * so) < 1.0:
                    return (f"{op.opcode} (op {op.index}) has int8 output scale {so:.3g}; TFLM needs twice the larger "
                            "input scale / (2^20 x output scale) < 1")
    return None


def _zero_inputs(interp) -> list[np.ndarray]:
    inputs = []
    i = 0
    while True:
        try:
            d = interp.get_input_details(i)
        except Exception:  # noqa: BLE001 - the binding signals "no such input" by raising
            return inputs
        inputs.append(np.zeros(tuple(d["shape"]), dtype=d["dtype"]))
        i += 1


def _invoke(interp, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    for i, x in enumerate(inputs):
        interp.set_input(np.ascontiguousarray(x), i)
    interp.invoke()
    outputs = []
    i = 0
    while True:
        try:
            outputs.append(np.array(interp.get_output(i), copy=True))
        except Exception:  # noqa: BLE001
            return outputs
        i += 1


def check_tflm(model: bytes | str | Path) -> None:
    """Load the model in TFLM and invoke it once on zeros; FormicaryError with TFLM's own reason if it cannot."""
    data = _model_bytes(model)
    refuse_known_aborts(data)
    with capture_c_stderr() as err:
        try:
            interp = _make_interpreter(data, DEFAULT_ARENA_BYTES)
            _invoke(interp, _zero_inputs(interp))
            return
        except Exception as exc:  # noqa: BLE001
            python_msg = str(exc)
    reason = _tflm_reason(err.text)
    raise FormicaryError(f"TFLite Micro cannot run this model: {reason} ({python_msg}).", _fix_for(reason),
                         details={"tflm_stderr": err.text})


def run_tflm(model: bytes | str | Path, batches: Sequence[Sequence[np.ndarray]] | Sequence[np.ndarray]
             ) -> list[list[np.ndarray]]:
    """Run each input set through TFLM. `batches` is a list of per-invocation input lists (or single arrays)."""
    data = _model_bytes(model)
    refuse_known_aborts(data)
    with capture_c_stderr() as err:
        try:
            interp = _make_interpreter(data, DEFAULT_ARENA_BYTES)
            results = []
            for item in batches:
                inputs = [item] if isinstance(item, np.ndarray) else list(item)
                results.append(_invoke(interp, inputs))
            return results
        except Exception as exc:  # noqa: BLE001
            python_msg = str(exc)
    reason = _tflm_reason(err.text)
    raise FormicaryError(f"TFLite Micro failed running the model: {reason} ({python_msg}).", _fix_for(reason))


def tflm_input_details(model: bytes | str | Path) -> list[dict]:
    data = _model_bytes(model)
    with capture_c_stderr():
        interp = _make_interpreter(data, DEFAULT_ARENA_BYTES)
    out = []
    i = 0
    while True:
        try:
            out.append(interp.get_input_details(i))
        except Exception:  # noqa: BLE001
            return out
        i += 1


def _runs_with_arena(data: bytes, arena: int) -> bool:
    try:
        interp = _make_interpreter(data, arena)
        _invoke(interp, _zero_inputs(interp))
        return True
    except Exception:  # noqa: BLE001
        return False


def _runs_with_arena_isolated(model_file: Path, arena: int) -> bool:
    """`_runs_with_arena` in a fresh Python process: TFLM's constructor segfaults for some too-small arenas, even
    above the total its recording allocator reports (e.g. a 64-32-10 int8 MLP: reports 1680 B, runs with 2128 B,
    crashes with 2064 B), and a probe must not take the caller down with it. A crash counts as "does not run".

    Not a fork of this process: a forked child of a process whose other threads are busy (labgrid's gRPC, measured:
    21 of 500 children crashed before doing anything) can die for reasons of its own, which would read as "does
    not run" and inflate the arena."""
    probe = subprocess.run([sys.executable, "-m", "formicary.oracle.tflm_probe", str(model_file), str(arena)],
                           stdin=subprocess.DEVNULL, capture_output=True)
    if probe.returncode not in (0, 1) and probe.returncode >= 0:
        raise FormicaryError(f"the TFLM arena probe failed: {probe.stderr.decode(errors='replace')[-400:]}",
                             "check that formicary and tflite-micro import in this Python.")
    return probe.returncode == 0


_ARENA_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")


def measure_arena(model: bytes | str | Path) -> int:
    """Smallest `arena_size` (bytes) with which the TFLM interpreter allocates and invokes the model.

    TFLM has no getter for it: its recording allocator prints the total to fd 2, which we read after one
    run with a large arena, then confirm by allocating and invoking with exactly that size (stepping up by the
    arena's 16-byte alignment if needed). We never probe below the recorded total: the TFLM constructor
    segfaults for some arena sizes that are too small, so a bisection would crash the process; as some sizes
    above the total crash too, every probe runs in a child process (`_runs_with_arena_isolated`).
    """
    data = _model_bytes(model)
    check_tflm(data)
    with capture_c_stderr() as err:
        interp = _make_interpreter(data, DEFAULT_ARENA_BYTES)
        _invoke(interp, _zero_inputs(interp))
        interp.print_allocations()
    match = _ARENA_TOTAL.search(err.text)
    if not match:
        raise FormicaryError("the TFLM interpreter did not report its arena use.",
                             "this tflite-micro build lacks the recording allocator; pin the version in pyproject.toml.")
    total = int(match.group(1))
    with tempfile.TemporaryDirectory(prefix="formicary-arena-") as tmp:
        model_file = Path(tmp) / "model.tflite"
        model_file.write_bytes(data)
        return _smallest_arena(model_file, total)


def _smallest_arena(model_file: Path, total: int) -> int:
    """Smallest arena from `total` up with which TFLM runs the model (probed in child processes)."""
    # Grow the margin until it runs, then bisect down to the recorded total (never below it, see above).
    bad, margin = total - 1, 0
    while not _runs_with_arena_isolated(model_file, total + margin):
        bad = total + margin
        margin = margin * 2 if margin else 16
        if margin > max(total, 4096):
            raise FormicaryError(f"TFLM reported a {total} B arena but did not run with {total + margin // 2} B.",
                                 "report this model as a bug.")
    good = total + margin
    while good - bad > 1:
        mid = (good + bad) // 2
        if _runs_with_arena_isolated(model_file, mid):
            good = mid
        else:
            bad = mid
    return good
