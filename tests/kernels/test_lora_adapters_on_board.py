"""LoRA adapters kept separate (shrink/lora.py, separate=True) on qemu-m4 with the board's dsp kernels: the base op
with a linear activation, the low-rank pair without bias (k×k CONV_2D to r channels then 1×1 CONV_2D, or two
FULLY_CONNECTED) and the ADD with the fused ReLU run bit-exact with TFLM, and their instruction cost shows per op."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.qemu, pytest.mark.usefixtures("arm_qemu_tools")]


def adapter_model(opmodels) -> bytes:
    """conv 3×3 stride 2 (2→8) + rank-2 adapter, flatten, FC (128→6) + rank-2 adapter, ReLU after each ADD."""
    tf = opmodels.tf
    rng = np.random.default_rng(7)
    w = rng.normal(0, 0.3, (3, 3, 2, 8)).astype(np.float32)
    bias = rng.normal(0, 0.1, 8).astype(np.float32)
    a = rng.normal(0, 0.3, (3, 3, 2, 2)).astype(np.float32)
    b = rng.normal(0, 0.3, (1, 1, 2, 8)).astype(np.float32)
    fw = rng.normal(0, 0.1, (128, 6)).astype(np.float32)
    fa = rng.normal(0, 0.1, (128, 2)).astype(np.float32)
    fb = rng.normal(0, 0.3, (2, 6)).astype(np.float32)

    def fn(x):
        base = tf.nn.bias_add(tf.nn.conv2d(x, w, 2, "SAME"), bias)
        low = tf.nn.conv2d(tf.nn.conv2d(x, a, 2, "SAME"), b, 1, "VALID")   # A keeps the stride
        y = tf.reshape(tf.nn.relu(base + low), (1, 128))
        return tf.nn.relu(tf.matmul(y, fw) + tf.matmul(tf.matmul(y, fa), fb))

    built = opmodels.convert(fn, [(1, 8, 8, 2)], int8=True,
                             calib=lambda g: [g.normal(size=(1, 8, 8, 2)).astype(np.float32)])
    assert built.opcodes == ["CONV_2D", "CONV_2D", "CONV_2D", "ADD", "RESHAPE",
                             "FULLY_CONNECTED", "FULLY_CONNECTED", "FULLY_CONNECTED", "ADD"], built.opcodes
    return built.model


def test_separate_lora_adapter_ops_bit_exact_on_qemu_m4(opmodels, tmp_path):
    from formicary.bench.runner import run_bench

    path = tmp_path / "adapters.tflite"
    path.write_bytes(adapter_model(opmodels))
    r = run_bench(path, "qemu-m4", inputs=4, runs=4, warmup=0, profile=True, store=False, out_dir=tmp_path / "fw")
    assert r["bit_exact"] and r["mismatches"] == 0 and r["inputs"] == 4
    assert r["firmware"]["kernels"] == "dsp"
    layers = {la["index"]: la for la in r["layers"]}
    assert all(layers[i]["median"] > 0 for i in (1, 2, 3, 6, 7, 8))   # every adapter op ran and was timed
