"""float32 kernels vs TFLM within tolerance (summation order and libm differ, so not bit-exact): the core set
CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, AVERAGE_POOL_2D, MAX_POOL_2D, ADD, MUL, SOFTMAX, LOGISTIC, TANH,
RELU, RELU6, PAD, CONCATENATION, MEAN, RESHAPE."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.kernel_params import examples, kernel_param
from tests.support.opmodels import assert_close, input_sets
from tests.support.strategies import ACTIVATIONS, apply_activation, broadcast_shapes, conv_geometry, seeds

pytestmark = pytest.mark.tf

N = 8  # float kernels share their structure with the exhaustively tested int8 ones
nhwc = st.tuples(st.integers(1, 2), st.integers(1, 8), st.integers(1, 8), st.integers(1, 6)).map(list)


def _check(opmodels, fn, shapes, seed, op, scale=3.0, kernels=None, **tol):
    built = opmodels.convert(fn, shapes, int8=False)
    assert_close(built, input_sets(built, np.random.default_rng(seed), float_scale=scale), op, kernels=kernels,
                 **tol)


@kernel_param("conv2d_f32.c")
@settings(max_examples=examples(N, "conv2d_f32.c"))
@given(g=conv_geometry(), cout=st.integers(1, 8), act=st.sampled_from(ACTIVATIONS), seed=seeds)
def test_conv2d_f32(opmodels, kernels, g, cout, act, seed):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    w = rng.standard_normal([g["kh"], g["kw"], g["shape"][3], cout]).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    fn = lambda x: apply_activation(tf, tf.nn.conv2d(
        x, w, [1, g["sh"], g["sw"], 1], g["padding"], dilations=[1, g["dil"], g["dil"], 1]) + b, act)
    _check(opmodels, fn, [g["shape"]], seed, "CONV_2D", kernels=kernels)


@kernel_param("depthwise_conv2d_f32.c")
@settings(max_examples=examples(N, "depthwise_conv2d_f32.c"))
@given(g=conv_geometry(), mult=st.sampled_from([1, 2, 3]), act=st.sampled_from(ACTIVATIONS), seed=seeds)
def test_depthwise_conv2d_f32(opmodels, kernels, g, mult, act, seed):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    cin = g["shape"][3]
    w = rng.standard_normal([g["kh"], g["kw"], cin, mult]).astype(np.float32)
    b = rng.standard_normal(cin * mult).astype(np.float32)
    s = g["sh"]
    fn = lambda x: apply_activation(tf, tf.raw_ops.DepthwiseConv2dNative(
        input=x, filter=w, strides=[1, s, s, 1], padding=g["padding"], dilations=[1, g["dil"], g["dil"], 1]) + b, act)
    _check(opmodels, fn, [g["shape"]], seed, "DEPTHWISE_CONV_2D", kernels=kernels)


@kernel_param("fully_connected_f32.c")
@settings(max_examples=examples(N, "fully_connected_f32.c"))
@given(batch=st.integers(1, 3), din=st.integers(1, 40), dout=st.integers(1, 16), act=st.sampled_from(ACTIVATIONS),
       seed=seeds)
def test_fully_connected_f32(opmodels, kernels, batch, din, dout, act, seed):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    w = rng.standard_normal([din, dout]).astype(np.float32)
    b = rng.standard_normal(dout).astype(np.float32)
    _check(opmodels, lambda x: apply_activation(tf, tf.matmul(x, w) + b, act), [[batch, din]], seed,
           "FULLY_CONNECTED", kernels=kernels)


@kernel_param(("average_pool2d_f32.c", "max_pool2d_f32.c"))
@settings(max_examples=examples(N, ("average_pool2d_f32.c", "max_pool2d_f32.c")))
@given(shape=nhwc, k=st.tuples(st.integers(1, 3), st.integers(1, 3)), s=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       padding=st.sampled_from(["SAME", "VALID"]), kind=st.sampled_from(["AVERAGE_POOL_2D", "MAX_POOL_2D"]),
       act=st.sampled_from(ACTIVATIONS), seed=seeds)
def test_pool2d_f32(opmodels, kernels, shape, k, s, padding, kind, act, seed):
    import tensorflow as tf

    if padding == "VALID":
        shape[1], shape[2] = max(shape[1], k[0]), max(shape[2], k[1])
    pool = tf.nn.avg_pool2d if kind == "AVERAGE_POOL_2D" else tf.nn.max_pool2d
    _check(opmodels, lambda x: apply_activation(tf, pool(x, list(k), list(s), padding), act), [shape], seed, kind,
           kernels=kernels)


@kernel_param(("add_f32.c", "mul_f32.c"))
@settings(max_examples=examples(N, ("add_f32.c", "mul_f32.c")))
@given(shapes=broadcast_shapes(), op=st.sampled_from(["ADD", "MUL"]), act=st.sampled_from(ACTIVATIONS), seed=seeds)
def test_binary_f32(opmodels, kernels, shapes, op, act, seed):
    import tensorflow as tf

    fn = lambda x, y: apply_activation(tf, x + y if op == "ADD" else x * y, act)
    _check(opmodels, fn, list(shapes), seed, op, kernels=kernels)


UNARY = {"SOFTMAX": "softmax", "LOGISTIC": "sigmoid", "TANH": "tanh", "RELU": "relu", "RELU6": "relu6"}
UNARY_FILES = tuple(f"{op.lower()}_f32.c" for op in UNARY)


@kernel_param(UNARY_FILES)
@settings(max_examples=examples(2 * N, UNARY_FILES))
@given(op=st.sampled_from(sorted(UNARY)), shape=st.lists(st.integers(1, 8), min_size=1, max_size=4),
       scale=st.sampled_from([1.0, 4.0, 20.0]), seed=seeds)
def test_unary_f32(opmodels, kernels, op, shape, scale, seed):
    import tensorflow as tf

    fns = {"softmax": tf.nn.softmax, "sigmoid": tf.math.sigmoid, "tanh": tf.math.tanh, "relu": tf.nn.relu,
           "relu6": tf.nn.relu6}
    _check(opmodels, fns[UNARY[op]], [shape], seed, op, scale=scale, kernels=kernels)


@kernel_param(("pad_f32.c", "concatenation_f32.c", "relu_f32.c"))
@settings(max_examples=examples(N, ("pad_f32.c", "concatenation_f32.c", "relu_f32.c")))
@given(shape=nhwc, pads=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), min_size=4, max_size=4),
       axis=st.integers(-4, 3), seed=seeds)
def test_pad_concat_reshape_f32(opmodels, kernels, shape, pads, axis, seed):
    """PAD both inputs, CONCATENATION along a random axis, RESHAPE to 1-D (an alias) and scale."""
    import tensorflow as tf

    pads = [list(p) for p in pads]
    pads[1][0] = max(pads[1][0], 1)

    def fn(x, y):
        joined = tf.concat([tf.pad(x, pads), tf.pad(tf.nn.relu(y), pads)], axis=axis)
        return tf.reshape(joined, [-1]) * 2.0

    built = opmodels.convert(fn, [shape, shape], int8=False)
    for op in ("PAD", "CONCATENATION", "RESHAPE"):
        assert op in built.opcodes, built.opcodes
    assert_close(built, input_sets(built, np.random.default_rng(seed)), kernels=kernels)


@kernel_param("mean_f32.c")
@settings(max_examples=examples(N, "mean_f32.c"))
@given(shape=nhwc, axes=st.sampled_from([[1, 2], [1], [3], [1, 2, 3]]), keepdims=st.booleans(), seed=seeds)
def test_mean_f32(opmodels, kernels, shape, axes, keepdims, seed):
    import tensorflow as tf

    _check(opmodels, lambda x: tf.reduce_mean(x, axis=axes, keepdims=keepdims), [shape], seed, "MEAN",
           kernels=kernels)
