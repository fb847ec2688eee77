"""Hypothesis strategies shared by the kernel tests (imported by test modules in this folder)."""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

ACTIVATIONS = ("NONE", "RELU", "RELU6")


@st.composite
def value_range(draw) -> tuple[float, float]:
    """A calibration range; sometimes one-sided so the zero point lands at an end (-128 or 127)."""
    kind = draw(st.sampled_from(["mixed", "mixed", "mixed", "positive", "negative", "tiny"]))
    a = draw(st.floats(0.05, 12.0))
    b = draw(st.floats(0.05, 12.0))
    if kind == "positive":
        return 0.0, a
    if kind == "negative":
        return -a, 0.0
    if kind == "tiny":
        return -a / 100.0, b / 100.0
    return -a, b


def uniform_sampler(shapes, ranges):
    """Calibration sampler: one array per input, uniform in its range, plus the range ends so the
    calibrated min/max are exactly the drawn ones."""
    def sample(rng: np.random.Generator) -> list[np.ndarray]:
        out = []
        for shape, (lo, hi) in zip(shapes, ranges):
            x = rng.uniform(lo, hi, size=shape).astype(np.float32)
            flat = x.reshape(-1)
            flat[0], flat[-1] = lo, hi
            out.append(x)
        return out
    return sample


def apply_activation(tf, y, act: str):
    if act == "RELU":
        return tf.nn.relu(y)
    if act == "RELU6":
        return tf.nn.relu6(y)
    return y


seeds = st.integers(0, 2 ** 31 - 1)
