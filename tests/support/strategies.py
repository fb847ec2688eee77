"""Hypothesis strategies shared by the kernel tests (tests/kernels)."""
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


@st.composite
def conv_geometry(draw, depthwise: bool = False):
    kh, kw = draw(st.sampled_from([1, 1, 2, 3, 3, 5])), draw(st.sampled_from([1, 1, 2, 3, 3, 5]))
    if draw(st.booleans()):
        kw = kh  # square kernels are the common case
    dil = draw(st.sampled_from([1, 1, 1, 2, 3]))
    stride = 1 if dil > 1 else draw(st.sampled_from([1, 1, 2, 3]))
    stride_w = stride if draw(st.booleans()) or dil > 1 else draw(st.sampled_from([1, 2]))
    padding = draw(st.sampled_from(["SAME", "VALID"]))
    h = draw(st.integers(1, 10))
    w = draw(st.integers(1, 10))
    if padding == "VALID":
        h, w = max(h, (kh - 1) * dil + 1), max(w, (kw - 1) * dil + 1)
    cin = draw(st.integers(1, 8))
    n = draw(st.sampled_from([1, 1, 1, 2]))
    return {"kh": kh, "kw": kw, "dil": dil, "sh": stride, "sw": stride_w, "padding": padding, "shape": [n, h, w, cin]}


@st.composite
def broadcast_shapes(draw):
    """Two input shapes that broadcast, as Keras models produce them: equal NHWC shapes, per-channel
    ([1,1,1,C]), per-pixel ([1,H,W,1]), rank-2 [N,C] vs [1,C] and mixed-size broadcasts."""
    h, w, c = draw(st.integers(1, 7)), draw(st.integers(1, 7)), draw(st.integers(1, 9))
    kind = draw(st.sampled_from(["same", "same", "channel", "pixel", "rank2", "both", "scalar"]))
    a = [1, h, w, c]
    if kind == "same":
        b = list(a)
    elif kind == "channel":
        b = [1, 1, 1, c]
    elif kind == "pixel":
        b = [1, h, w, 1]
    elif kind == "rank2":
        a, b = [draw(st.integers(1, 4)), c], [1, c]
    elif kind == "both":
        a, b = [1, h, 1, c], [1, 1, w, c]
    else:
        b = [1]
    if draw(st.booleans()):
        a, b = b, a
    return a, b
