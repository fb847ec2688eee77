"""Single-op (or small) models built in-process with tf.function + TFLiteConverter (no Keras overhead), and the
checks every kernel test makes: the generated C in a sanitized host build against the TFLM interpreter, bit for
bit (int8) or within a tolerance (float32)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class Built:
    """A converted single-op (or small) model and the opcodes it contains."""
    model: bytes
    opcodes: list[str]
    input_dtypes: list[np.dtype]
    input_quant: list[tuple[float, int] | None]


class OpModels:
    """Builds .tflite models from a Python function of tf tensors (constants captured as numpy)."""

    def __init__(self, tf) -> None:
        self.tf = tf

    def convert(self, fn: Callable, input_shapes: Sequence[Sequence[int]], *, int8: bool,
                calib: Callable[[np.random.Generator], list[np.ndarray]] | None = None, n_calib: int = 16,
                seed: int = 0, float_io: bool = False) -> Built:
        tf = self.tf
        sig = [tf.TensorSpec(list(s), tf.float32) for s in input_shapes]
        func = tf.function(fn, input_signature=sig)
        conv = tf.lite.TFLiteConverter.from_concrete_functions([func.get_concrete_function()], func)
        if int8:
            rng = np.random.default_rng(seed)
            samples = [calib(rng) for _ in range(n_calib)]

            def rep():
                for s in samples:
                    yield [np.asarray(a, np.float32) for a in s]

            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = rep
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            if not float_io:
                conv.inference_input_type = tf.int8
                conv.inference_output_type = tf.int8
        model = conv.convert()
        return describe(model)


def describe(model: bytes) -> Built:
    from formicary.tflite import read_model

    ir = read_model(model)
    quant = []
    for t in ir.input_tensors:
        quant.append((float(t.quant.scale[0]), int(t.quant.zero_point[0])) if t.quant is not None and
                     t.quant.scale.size else None)
    return Built(model, [op.opcode for op in ir.operators], [np.dtype(t.np_dtype) for t in ir.input_tensors], quant)


def input_sets(built: Built, rng: np.random.Generator, n: int = 3, float_scale: float = 3.0) -> list[list[np.ndarray]]:
    """Inputs for each invocation: int8 inputs uniform over the whole int8 range (negative values and
    saturation included), float inputs normal with the given scale."""
    from formicary.tflite import read_model

    ir = read_model(built.model)
    sets = []
    for _ in range(n):
        row = []
        for t in ir.input_tensors:
            if t.dtype == "int8":
                row.append(rng.integers(-128, 128, size=t.shape).astype(np.int8))
            else:
                row.append((rng.standard_normal(t.shape) * float_scale).astype(np.float32))
        sets.append(row)
    return sets


def assert_bit_exact(built: Built, sets: list[list[np.ndarray]], op: str | None = None,
                     kernels: str | None = None) -> dict:
    """Generated C (sanitized host build, kernels of set `kernels`, default reference) vs TFLM: every output
    byte equal."""
    from formicary.bench.verify import verify_model

    if op is not None:
        assert op in built.opcodes, f"converter did not produce {op}: {built.opcodes}"
    r = verify_model(built.model, input_sets=sets, sanitize=True, measure_tflm_arena=False, kernels=kernels)
    assert r["bit_exact"], (f"{r['mismatches']}/{r['inputs']} input sets differ, max |diff| "
                            f"{r['max_abs_diff']} (ops {built.opcodes}, kernels {kernels or 'reference'})")
    return r


def assert_close(built: Built, sets: list[list[np.ndarray]], op: str | None = None, rtol: float = 1e-5,
                 atol: float = 1e-5, kernels: str | None = None) -> None:
    """float32: generated C vs TFLM within |a - b| <= atol + rtol * max|b| (summation order differs)."""
    import tempfile
    from pathlib import Path

    from formicary.codegen import generate
    from formicary.oracle import tflm as reference
    from formicary.target import host as native
    from formicary.tflite import read_model

    if op is not None:
        assert op in built.opcodes, f"converter did not produce {op}: {built.opcodes}"
    ir = read_model(built.model)
    with tempfile.TemporaryDirectory(prefix="fm-k2-") as tmp:
        result = generate(built.model, Path(tmp) / "model", kernels=kernels)
        exe = native.build_executable(result, sanitize=True)
        ours = native.run_executable(exe, ir, sets)
    ref = reference.run_tflm(built.model, sets)
    for row_a, row_b in zip(ours, ref):
        for a, b in zip(row_a, row_b):
            b = np.asarray(b, np.float64).reshape(a.shape)
            a = a.astype(np.float64)
            assert np.all(np.isfinite(a)), "non-finite output"
            tol = atol + rtol * max(1.0, float(np.max(np.abs(b))) if b.size else 1.0)
            diff = float(np.max(np.abs(a - b))) if a.size else 0.0
            assert diff <= tol, f"max |diff| {diff} > {tol} (ops {built.opcodes}, kernels {kernels or 'reference'})"
