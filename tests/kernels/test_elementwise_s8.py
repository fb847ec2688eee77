"""int8 element-wise kernels vs TFLM, bit for bit: ADD, MUL (with broadcasting), LOGISTIC, TANH, RELU, RELU6,
QUANTIZE (float -> int8 and int8 -> int8) and DEQUANTIZE, over random shapes and quantization parameters."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.support.kernel_params import examples, kernel_param
from tests.support.opmodels import assert_bit_exact, input_sets
from tests.support.strategies import (
    ACTIVATIONS,
    apply_activation,
    broadcast_shapes,
    seeds,
    uniform_sampler,
    value_range,
)

pytestmark = pytest.mark.tf

N = 20  # examples per op, split across the kernel sets with a file for it (tests/support/kernel_params.py)
QDQ = ("quantize_s8.c", "dequantize_s8.c", "tanh_s8.c")
REQ = ("quantize_s8.c", "relu_s8.c", "tanh_s8.c", "concatenation_s8.c")


def _binary(opmodels, op, shapes, ranges, act, seed):
    import tensorflow as tf

    def fn(x, y):
        return apply_activation(tf, x + y if op == "ADD" else x * y, act)

    return opmodels.convert(fn, shapes, int8=True, calib=uniform_sampler(shapes, ranges), seed=seed)


@kernel_param("add_s8.c")
@settings(max_examples=examples(N, "add_s8.c"))
@given(shapes=broadcast_shapes(), r1=value_range(), r2=value_range(), act=st.sampled_from(ACTIVATIONS), seed=seeds)
def test_add_s8(opmodels, kernels, shapes, r1, r2, act, seed):
    built = _binary(opmodels, "ADD", shapes, (r1, r2), act, seed)
    # a degenerate output range (e.g. RELU over negative data) makes TFLM abort the whole process in Prepare:
    # formicary refuses those models (test_add_with_a_degenerate_output_scale_is_refused), so they never reach TFLM
    assume(not _add_output_degenerate(built.model))
    assert_bit_exact(built, input_sets(built, np.random.default_rng(seed)), "ADD", kernels=kernels)


def _add_output_degenerate(model: bytes) -> bool:
    from formicary.codegen import lower_model
    from formicary.errors import FormicaryError

    try:
        lower_model(model)
    except FormicaryError as err:
        return "is degenerate" in err.cause
    return False


def test_add_with_a_degenerate_output_scale_is_refused(opmodels):
    """RELU over all-negative inputs: the converter gives the output a ~1e-8 scale, TFLM aborts in Prepare; formicary
    names the cause instead (found by the randomized test drawing ranges (-1, 0) and (-2, 0))."""
    from formicary.codegen import lower_model
    from formicary.errors import FormicaryError

    built = _binary(opmodels, "ADD", ([1, 1, 1, 2], [1, 1, 1, 2]), ((-1.0, 0.0), (-2.0, 0.0)), "RELU", 0)
    with pytest.raises(FormicaryError) as err:
        lower_model(built.model)
    assert "is degenerate" in err.value.cause and "TFLM aborts" in err.value.cause
    assert "calibration data" in err.value.fix


@kernel_param("mul_s8.c")
@settings(max_examples=examples(N, "mul_s8.c"))
@given(shapes=broadcast_shapes(), r1=value_range(), r2=value_range(), act=st.sampled_from(ACTIVATIONS), seed=seeds)
def test_mul_s8(opmodels, kernels, shapes, r1, r2, act, seed):
    built = _binary(opmodels, "MUL", shapes, (r1, r2), act, seed)
    assert_bit_exact(built, input_sets(built, np.random.default_rng(seed)), "MUL", kernels=kernels)


def _unary(opmodels, fn, shape, rng_, seed, float_io=False):
    return opmodels.convert(fn, [shape], int8=True, calib=uniform_sampler([shape], [rng_]), seed=seed,
                            float_io=float_io)


shapes_1to4d = st.lists(st.integers(1, 9), min_size=1, max_size=4)


@kernel_param("logistic_s8.c")
@settings(max_examples=examples(N, "logistic_s8.c"))
@given(shape=shapes_1to4d, r=value_range(), seed=seeds)
def test_logistic_s8(opmodels, kernels, shape, r, seed):
    import tensorflow as tf

    built = _unary(opmodels, tf.math.sigmoid, shape, r, seed)
    assert_bit_exact(built, input_sets(built, np.random.default_rng(seed)), "LOGISTIC", kernels=kernels)


@kernel_param("tanh_s8.c")
@settings(max_examples=examples(N, "tanh_s8.c"))
@given(shape=shapes_1to4d, r=value_range(), seed=seeds)
def test_tanh_s8(opmodels, kernels, shape, r, seed):
    import tensorflow as tf

    built = _unary(opmodels, tf.math.tanh, shape, r, seed)
    assert_bit_exact(built, input_sets(built, np.random.default_rng(seed)), "TANH", kernels=kernels)


@kernel_param("relu_s8.c")
@settings(max_examples=examples(N, "relu_s8.c"))
@given(shape=shapes_1to4d, r=value_range(), seed=seeds)
def test_relu_s8(opmodels, kernels, shape, r, seed):
    import tensorflow as tf

    built = _unary(opmodels, tf.nn.relu, shape, r, seed)
    assert_bit_exact(built, input_sets(built, np.random.default_rng(seed)), "RELU", kernels=kernels)


@kernel_param("relu6_s8.c")
@settings(max_examples=examples(N, "relu6_s8.c"))
@given(shape=shapes_1to4d, r=value_range(), seed=seeds)
def test_relu6_s8(opmodels, kernels, shape, r, seed):
    import tensorflow as tf

    built = _unary(opmodels, tf.nn.relu6, shape, r, seed)
    assert_bit_exact(built, input_sets(built, np.random.default_rng(seed)), "RELU6", kernels=kernels)


@kernel_param(QDQ)
@settings(max_examples=examples(N, QDQ))
@given(shape=shapes_1to4d, r=value_range(), seed=seeds, scale=st.sampled_from([0.5, 3.0, 50.0]))
def test_quantize_dequantize_float_io(opmodels, kernels, shape, r, seed, scale):
    """float in -> QUANTIZE -> TANH -> DEQUANTIZE -> float out; inputs far beyond the calibration range
    exercise saturation, and exact .5 steps the rounding of QUANTIZE."""
    import tensorflow as tf

    built = _unary(opmodels, tf.math.tanh, shape, r, seed, float_io=True)
    assert "QUANTIZE" in built.opcodes and "DEQUANTIZE" in built.opcodes, built.opcodes
    rng = np.random.default_rng(seed)
    sets = input_sets(built, rng, float_scale=scale)
    # Values on exact half steps of the input scale: the round-half-away-from-zero cases.
    from formicary.tflite import read_model

    q = read_model(built.model).tensors[read_model(built.model).operators[0].outputs[0]].quant
    s = float(q.scale[0])
    halves = ((rng.integers(-140, 140, size=shape) + 0.5) * s).astype(np.float32)
    sets.append([halves])
    assert_bit_exact(built, sets, kernels=kernels)


@kernel_param(REQ)
@settings(max_examples=examples(N, REQ))
@given(s1=st.lists(st.integers(1, 6), min_size=4, max_size=4), c2=st.integers(1, 6), r1=value_range(),
       r2=value_range(), seed=seeds)
def test_requantize_s8(opmodels, kernels, s1, c2, r1, r2, seed):
    """int8 -> int8 QUANTIZE: the converter inserts it where one tensor must take another's scale, e.g. the
    inputs of a CONCATENATION quantized with different ranges."""
    import tensorflow as tf

    s1 = [1, *s1[1:]]
    s2 = [1, s1[1], s1[2], c2]

    def fn(x, y):
        return tf.concat([tf.nn.relu(x), tf.math.tanh(y)], axis=3)

    built = opmodels.convert(fn, [s1, s2], int8=True, calib=uniform_sampler([s1, s2], [r1, r2]), seed=seed)
    assert_bit_exact(built, input_sets(built, np.random.default_rng(seed)), "QUANTIZE", kernels=kernels)
