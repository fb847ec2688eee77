"""Mixture-of-experts .tflite models built with the TF converter, as the export does: a gate (FC over the
flattened input, ARG_MAX) picks one of E experts through nested tf.cond (IF ops, one subgraph per branch;
E = 4 nests an IF inside each branch of the outer one). Experts are FC + softmax, or conv + relu + mean + FC +
softmax. Full-integer PTQ; the branches see float tensors at the IF boundaries (QUANTIZE/DEQUANTIZE inside).
The gate's index is a second output, so tests know the route TFLM took."""
from __future__ import annotations

import numpy as np

SIDE = 8  # input [1, 8, 8, 1]


def build_moe(tf, experts: int, conv: bool = False, seed: int = 0, calibration: int = 200) -> bytes:
    rng = np.random.default_rng(seed)
    n = SIDE * SIDE

    def var(*shape, scale=1.0):
        return tf.Variable((rng.normal(size=shape) * scale).astype(np.float32))

    class MoE(tf.Module):
        def __init__(self) -> None:
            self.gate = var(n, experts)
            if conv:
                self.kernels = [var(3, 3, 1, 4, scale=0.5) for _ in range(experts)]
                self.heads = [var(4, 10) for _ in range(experts)]
            else:
                self.heads = [var(n, 10, scale=0.3) for _ in range(experts)]

        @tf.function(input_signature=[tf.TensorSpec([1, SIDE, SIDE, 1], tf.float32)])
        def __call__(self, x):
            flat = tf.reshape(x, [1, n])
            idx = tf.argmax(tf.matmul(flat, self.gate), axis=1, output_type=tf.int32)[0]

            def expert(i):
                def run():
                    if conv:
                        h = tf.nn.relu(tf.nn.conv2d(x, self.kernels[i], 1, "SAME"))
                        return tf.nn.softmax(tf.matmul(tf.reduce_mean(h, axis=[1, 2]), self.heads[i]))
                    return tf.nn.softmax(tf.matmul(flat, self.heads[i]))
                return run

            def tree(lo: int, hi: int):
                if hi - lo == 1:
                    return expert(lo)
                if hi - lo == 2:
                    return lambda: tf.cond(tf.equal(idx, lo), expert(lo), expert(lo + 1))
                mid = (lo + hi) // 2
                return lambda: tf.cond(idx < mid, tree(lo, mid), tree(mid, hi))

            return tree(0, experts)(), idx

    module = MoE()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.__call__.get_concrete_function()], module)

    def representative():
        cal = np.random.default_rng(seed + 1)
        for _ in range(calibration):
            yield [cal.normal(size=(1, SIDE, SIDE, 1)).astype(np.float32)]

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


def covering_inputs(model: bytes, experts: int, count: int, seed: int = 0) -> tuple[list[np.ndarray], list[int]]:
    """`count` int8 inputs (random, then topped up) whose gate picks cover every expert; with TFLM's gate
    index for each."""
    from formicary.oracle.tflm import run_tflm

    rng = np.random.default_rng(seed)
    pool = [rng.integers(-128, 128, size=(1, SIDE, SIDE, 1), dtype=np.int8) for _ in range(count * 4)]
    outs = run_tflm(model, [[x] for x in pool])
    picks = [int(next(np.asarray(a) for a in o if np.asarray(a).dtype == np.int32).reshape(-1)[0]) for o in outs]
    chosen: list[int] = []
    for e in range(experts):  # one of each expert first, then the rest in order
        chosen += [i for i, p in enumerate(picks) if p == e][:1]
    chosen += [i for i in range(len(pool)) if i not in chosen][:max(count - len(chosen), 0)]
    return [pool[i] for i in chosen], [picks[i] for i in chosen]
