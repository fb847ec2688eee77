"""Session fixtures for the compiler tests: TensorFlow imported once, the digits CNN trained once (by the real
`formicary demo` pipeline), compile runs cached by their options so several tests share one run."""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

# Python code run by CLI subprocesses: the real CLI entry point.
CLI_PRELUDE = "import sys\nfrom formicary.cli import main\nsys.argv[0] = 'formicary'\nmain()\n"


@pytest.fixture(scope="session")
def tf():
    import tensorflow

    return tensorflow


@dataclass
class Digits:
    root: Path
    model: Path            # tf_keras .keras, trained
    train: Path
    calib: Path
    val: Path
    demo: object           # the CompileResult of the demo (prune 50 %, int8)
    demo_seconds: float


@pytest.fixture(scope="session")
def digits(tmp_path_factory, tf) -> Digits:
    """Train the digits CNN once and compile it as `formicary demo` does (seed 0)."""
    import time

    from formicary.workflows.demo import train_and_compile

    root = tmp_path_factory.mktemp("digits")
    start = time.perf_counter()
    result = train_and_compile(root / "demo", seed=0)
    seconds = time.perf_counter() - start
    d = root / "demo"
    return Digits(root, d / "digits_cnn.keras", d / "data" / "train.npz", d / "data" / "calib.npz",
                  d / "data" / "val.npz", result, seconds)


@pytest.fixture(scope="session")
def compiled(digits, tmp_path_factory):
    """compile(**options) → CompileResult, cached per option set for the whole session."""
    from formicary.compile import compile_model

    cache: dict = {}

    def run(model: Path | None = None, **options):
        key = (str(model or digits.model), json.dumps(options, sort_keys=True, default=str))
        if key not in cache:
            out = tmp_path_factory.mktemp("compiled")
            cache[key] = compile_model(model or digits.model, out, **options)
        return cache[key]

    return run


@pytest.fixture(scope="session")
def digits_h5(digits, tf, tmp_path_factory) -> Path:
    import tf_keras

    path = tmp_path_factory.mktemp("h5") / "digits.h5"
    tf_keras.models.load_model(digits.model).save(path)
    return path


@pytest.fixture(scope="session")
def digits_savedmodel(digits, tf, tmp_path_factory) -> Path:
    import tf_keras

    path = tmp_path_factory.mktemp("sm") / "digits_savedmodel"
    tf_keras.models.load_model(digits.model).save(path, save_format="tf")
    return path


@pytest.fixture(scope="session")
def cli():
    """Run the real `formicary` CLI in a subprocess: cli("compile", ...) → CompletedProcess."""
    import subprocess

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", CLI_PRELUDE, *args], capture_output=True, text=True,
                              timeout=timeout)

    return run


@pytest.fixture(scope="session")
def kernels_of():
    return kernel_tensors


def kernel_tensors(model_bytes: bytes) -> dict[str, np.ndarray]:
    """Constant weight tensors (input 1) of CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED ops, by op index."""
    from formicary.tflite import read_model

    ir = read_model(model_bytes)
    out = {}
    for op in ir.operators:
        if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            w = ir.tensors[op.inputs[1]]
            if w.data is not None:
                out[f"{op.index}:{op.opcode}"] = np.asarray(w.data)
    return out
