"""int8 data-movement and reduction kernels vs TFLM, bit for bit: PAD, CONCATENATION (any axis), MEAN (spatial
axes as GlobalAveragePooling produces them, and other axes), MAX_POOL_2D."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.kernel_params import examples, kernel_param
from tests.support.opmodels import assert_bit_exact, input_sets
from tests.support.strategies import (
    ACTIVATIONS,
    apply_activation,
    seeds,
    uniform_sampler,
    value_range,
)

pytestmark = pytest.mark.tf

N = 20

nhwc = st.tuples(st.integers(1, 2), st.integers(1, 9), st.integers(1, 9), st.integers(1, 8)).map(list)


@kernel_param("pad_s8.c")
@settings(max_examples=examples(N, "pad_s8.c"))
@given(shape=nhwc, pads=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=4, max_size=4),
       r=value_range(), seed=seeds)
def test_pad_s8(opmodels, kernels, shape, pads, r, seed):
    import tensorflow as tf

    pads = [list(p) for p in pads]
    if sum(map(sum, pads)) == 0:
        pads[1][0] = 1
    built = opmodels.convert(lambda x: tf.pad(x, pads), [shape], int8=True,
                             calib=uniform_sampler([shape], [r]), seed=seed)
    assert_bit_exact(built, input_sets(built, np.random.default_rng(seed)), "PAD", kernels=kernels)


@kernel_param("concatenation_s8.c")
@settings(max_examples=examples(N, "concatenation_s8.c"))
@given(base=nhwc, axis=st.integers(-4, 3), sizes=st.lists(st.integers(1, 5), min_size=2, max_size=4),
       r=value_range(), seed=seeds)
def test_concatenation_s8(opmodels, kernels, base, axis, sizes, r, seed):
    import tensorflow as tf

    shapes = []
    for s in sizes:
        shp = list(base)
        shp[axis] = s
        shapes.append(shp)
    # One calibration range for all inputs: the converter then keeps a single CONCATENATION with no requantize.
    built = opmodels.convert(lambda *xs: tf.concat(list(xs), axis=axis), shapes, int8=True,
                             calib=uniform_sampler(shapes, [r] * len(shapes)), seed=seed)
    assert_bit_exact(built, input_sets(built, np.random.default_rng(seed)), "CONCATENATION", kernels=kernels)


@kernel_param("mean_s8.c")
@settings(max_examples=examples(N, "mean_s8.c"))
@given(shape=nhwc, axes=st.sampled_from([[1, 2], [1, 2], [1, 2], [2, 1], [1], [2], [3], [1, 2, 3]]),
       keepdims=st.booleans(), r_in=value_range(), seed=seeds, scale_out=st.sampled_from([None, 0.3, 4.0]))
def test_mean_s8(opmodels, kernels, shape, axes, keepdims, r_in, seed, scale_out):
    """MEAN with the output quantized like the input (plain GlobalAveragePooling) or scaled differently
    (a following multiply changes the calibrated output range)."""
    import tensorflow as tf

    def fn(x):
        m = tf.reduce_mean(x, axis=axes, keepdims=keepdims)
        return m if scale_out is None else m * scale_out

    built = opmodels.convert(fn, [shape], int8=True, calib=uniform_sampler([shape], [r_in]), seed=seed)
    assert "MEAN" in built.opcodes, built.opcodes
    assert_bit_exact(built, input_sets(built, np.random.default_rng(seed), n=4), kernels=kernels)


@kernel_param("max_pool2d_s8.c")
@settings(max_examples=examples(N, "max_pool2d_s8.c"))
@given(shape=nhwc, k=st.tuples(st.integers(1, 4), st.integers(1, 4)), s=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       padding=st.sampled_from(["SAME", "VALID"]), act=st.sampled_from(ACTIVATIONS), r=value_range(), seed=seeds)
def test_max_pool2d_s8(opmodels, kernels, shape, k, s, padding, act, r, seed):
    import tensorflow as tf

    if padding == "VALID":
        shape[1], shape[2] = max(shape[1], k[0]), max(shape[2], k[1])
    fn = lambda x: apply_activation(tf, tf.nn.max_pool2d(x, list(k), list(s), padding), act)
    built = opmodels.convert(fn, [shape], int8=True, calib=uniform_sampler([shape], [r]), seed=seed)
    assert_bit_exact(built, input_sets(built, np.random.default_rng(seed)), "MAX_POOL_2D", kernels=kernels)
