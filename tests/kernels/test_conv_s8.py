"""int8 compute kernels (codegen worker's) vs TFLM, bit for bit, over random geometry and quantization:
CONV_2D (strides, dilation, SAME/VALID, 1x1, fused ReLU/ReLU6), DEPTHWISE_CONV_2D (depth multiplier,
dilation), FULLY_CONNECTED (batches), AVERAGE_POOL_2D and SOFTMAX."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.opmodels import assert_bit_exact, input_sets
from tests.support.strategies import (
    ACTIVATIONS,
    apply_activation,
    conv_geometry,
    seeds,
    uniform_sampler,
    value_range,
)

pytestmark = pytest.mark.tf

N = 20


def weights(rng, shape, kind):
    """Weights with varied per-channel ranges (per-channel scales differ) and sometimes an all-zero channel."""
    w = rng.standard_normal(shape).astype(np.float32)
    w *= rng.uniform(0.05, 3.0, size=shape[-1]).astype(np.float32)
    if kind == "zero_channel" and shape[-1] > 1:
        w[..., 0] = 0.0
    return w


@settings(max_examples=N)
@given(g=conv_geometry(), cout=st.integers(1, 9), act=st.sampled_from(ACTIVATIONS), r=value_range(),
       bias=st.booleans(), kind=st.sampled_from(["normal", "zero_channel"]), seed=seeds)
def test_conv2d_s8(opmodels, g, cout, act, r, bias, kind, seed):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    w = weights(rng, [g["kh"], g["kw"], g["shape"][3], cout], kind)
    b = rng.standard_normal(cout).astype(np.float32)

    def fn(x):
        y = tf.nn.conv2d(x, w, strides=[1, g["sh"], g["sw"], 1], padding=g["padding"],
                         dilations=[1, g["dil"], g["dil"], 1])
        return apply_activation(tf, y + b if bias else y, act)

    built = opmodels.convert(fn, [g["shape"]], int8=True, calib=uniform_sampler([g["shape"]], [r]), seed=seed)
    assert_bit_exact(built, input_sets(built, rng), "CONV_2D")


@settings(max_examples=N)
@given(g=conv_geometry(depthwise=True), mult=st.sampled_from([1, 1, 2, 3]), act=st.sampled_from(ACTIVATIONS),
       r=value_range(), kind=st.sampled_from(["normal", "zero_channel"]), seed=seeds)
def test_depthwise_conv2d_s8(opmodels, g, mult, act, r, kind, seed):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    cin = g["shape"][3]
    w = weights(rng, [g["kh"], g["kw"], cin, mult], kind)
    b = rng.standard_normal(cin * mult).astype(np.float32)
    if g["sh"] != g["sw"]:
        g["sw"] = g["sh"]  # TF's depthwise kernel requires equal strides

    def fn(x):
        y = tf.raw_ops.DepthwiseConv2dNative(input=x, filter=w, strides=[1, g["sh"], g["sw"], 1],
                                             padding=g["padding"], dilations=[1, g["dil"], g["dil"], 1])
        return apply_activation(tf, y + b, act)

    built = opmodels.convert(fn, [g["shape"]], int8=True, calib=uniform_sampler([g["shape"]], [r]), seed=seed)
    assert_bit_exact(built, input_sets(built, rng), "DEPTHWISE_CONV_2D")


@settings(max_examples=N)
@given(batch=st.integers(1, 4), din=st.integers(1, 40), dout=st.integers(1, 20), act=st.sampled_from(ACTIVATIONS),
       r=value_range(), bias=st.booleans(), seed=seeds)
def test_fully_connected_s8(opmodels, batch, din, dout, act, r, bias, seed):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    w = (rng.standard_normal([din, dout]) * rng.uniform(0.05, 2.0)).astype(np.float32)
    b = rng.standard_normal(dout).astype(np.float32)

    def fn(x):
        y = tf.matmul(x, w)
        return apply_activation(tf, y + b if bias else y, act)

    built = opmodels.convert(fn, [[batch, din]], int8=True, calib=uniform_sampler([[batch, din]], [r]), seed=seed)
    assert_bit_exact(built, input_sets(built, rng), "FULLY_CONNECTED")


@settings(max_examples=N)
@given(shape=st.tuples(st.integers(1, 2), st.integers(1, 9), st.integers(1, 9), st.integers(1, 8)).map(list),
       k=st.tuples(st.integers(1, 4), st.integers(1, 4)), s=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       padding=st.sampled_from(["SAME", "VALID"]), act=st.sampled_from(ACTIVATIONS), r=value_range(), seed=seeds)
def test_average_pool2d_s8(opmodels, shape, k, s, padding, act, r, seed):
    import tensorflow as tf

    if padding == "VALID":
        shape[1], shape[2] = max(shape[1], k[0]), max(shape[2], k[1])
    fn = lambda x: apply_activation(tf, tf.nn.avg_pool2d(x, list(k), list(s), padding), act)
    built = opmodels.convert(fn, [shape], int8=True, calib=uniform_sampler([shape], [r]), seed=seed)
    assert_bit_exact(built, input_sets(built, np.random.default_rng(seed)), "AVERAGE_POOL_2D")


@settings(max_examples=N)
@given(shape=st.sampled_from([[1, 10], [2, 7], [1, 1], [3, 33], [1, 3, 4, 5]]), r=value_range(),
       beta=st.sampled_from([1.0, 1.0, 0.5, 2.0]), seed=seeds)
def test_softmax_s8(opmodels, shape, r, beta, seed):
    import tensorflow as tf

    fn = (lambda x: tf.nn.softmax(x)) if beta == 1.0 else (lambda x: tf.nn.softmax(x * beta))
    built = opmodels.convert(fn, [shape], int8=True, calib=uniform_sampler([shape], [r]), seed=seed)
    assert_bit_exact(built, input_sets(built, np.random.default_rng(seed)), "SOFTMAX")
