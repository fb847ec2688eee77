"""Whole models through codegen + sanitized host build vs TFLM: int8 bit for bit, float32 within tolerance.

The models cover what the per-op tests cannot: ops chained with shared arena planning and real calibrated
quantization. "blocks": residual ADD, depthwise-separable blocks, CONCATENATION of two branches, MAX_POOL,
GlobalAveragePooling (MEAN) and two heads (SOFTMAX classes and a LOGISTIC score). "se": ZeroPadding (PAD),
AVERAGE_POOL, squeeze-and-excitation (MEAN -> FC -> LOGISTIC -> broadcast MUL), TANH, Flatten (RESHAPE) and
a SOFTMAX head.
"""
from __future__ import annotations

import numpy as np
import pytest

from tests.support.kernel_params import kernel_param
from tests.support.opmodels import assert_bit_exact, assert_close, describe

pytestmark = [pytest.mark.tf, pytest.mark.xdist_group("kernel-models")]  # `models` is built once per module


def _blocks_model(keras):
    L = keras.layers
    x_in = keras.Input((20, 20, 3))
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu6")(x_in)
    # depthwise-separable block with a residual ADD
    y = L.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    y = L.Conv2D(8, 1)(y)
    x = L.ReLU()(L.Add()([x, y]))
    # two branches joined by CONCATENATION
    a = L.Conv2D(6, 1, activation="relu")(x)
    b = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(x)
    b = L.Conv2D(5, 1, activation="relu6")(b)
    x = L.Concatenate()([a, b])
    x = L.MaxPooling2D(2)(x)
    x = L.SeparableConv2D(12, 3, padding="valid", activation="relu")(x)
    g = L.GlobalAveragePooling2D()(x)
    classes = L.Dense(7, activation="softmax", name="classes")(g)
    score = L.Dense(1, activation="sigmoid", name="score")(L.Dense(6, activation="relu")(g))
    return keras.Model(x_in, [classes, score])


def _se_model(keras):
    L = keras.layers
    x_in = keras.Input((15, 13, 4), batch_size=1)  # static batch: Reshape stays a RESHAPE
    x = L.ZeroPadding2D(((1, 2), (2, 1)))(x_in)
    x = L.Conv2D(12, 3, strides=(2, 1), activation="relu")(x)
    s = L.GlobalAveragePooling2D()(x)
    s = L.Dense(4, activation="relu")(s)
    s = L.Dense(12, activation="sigmoid")(s)
    x = L.Multiply()([x, L.Reshape((1, 1, 12))(s)])
    x = L.AveragePooling2D(2, padding="same")(x)
    x = L.Activation("tanh")(L.Conv2D(6, 3, padding="same")(x))
    x = L.Flatten()(x)
    x = L.Dense(5, activation="softmax")(x)
    return keras.Model(x_in, x)


BUILDERS = {"blocks": _blocks_model, "se": _se_model}


def _calibration(shape, n, seed):
    rng = np.random.default_rng(seed)
    # Image-like data: smooth positive structure plus noise, so calibrated ranges are realistic.
    base = rng.uniform(0, 1, size=(n, *shape)).astype(np.float32)
    return base * rng.uniform(0.5, 2.0, size=(n, 1, 1, 1)).astype(np.float32) - 0.3


@pytest.fixture(scope="module")
def models(tf):
    """{name: (keras model, float .tflite, int8 .tflite, calibration data)}, built once per module."""
    import tf_keras as keras

    out = {}
    for i, (name, build) in enumerate(BUILDERS.items()):
        keras.utils.set_random_seed(100 + i)
        model = build(keras)
        calib = _calibration(model.input_shape[1:], 48, seed=i)
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        f32 = conv.convert()
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda c=calib: ([s[None]] for s in c)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
        out[name] = (model, f32, conv.convert(), calib)
    return out


def _int8_sets(built, calib, n_random, seed):
    """Quantized calibration-like samples (the realistic case) plus uniformly random int8 inputs."""
    scale, zp = built.input_quant[0]
    real = [[np.clip(np.round(x[None] / scale) + zp, -128, 127).astype(np.int8)] for x in calib[:12]]
    rng = np.random.default_rng(seed)
    shape = (1, *calib.shape[1:])
    rand = [[rng.integers(-128, 128, size=shape).astype(np.int8)] for _ in range(n_random)]
    return real + rand


EXPECTED_OPS = {
    "blocks": {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "CONCATENATION", "MAX_POOL_2D", "MEAN", "FULLY_CONNECTED",
               "SOFTMAX", "LOGISTIC"},
    "se": {"PAD", "CONV_2D", "MEAN", "FULLY_CONNECTED", "LOGISTIC", "MUL", "AVERAGE_POOL_2D", "TANH", "RESHAPE",
           "SOFTMAX"},
}


def _files(suffix: str) -> tuple[str, ...]:
    """Kernel files of the ops of both models: a set providing any of them is tested on the whole models."""
    ops = set().union(*EXPECTED_OPS.values()) - {"RESHAPE"}
    return tuple(sorted(f"{op.lower().replace('_2d', '2d')}_{suffix}.c" for op in ops))


@kernel_param(_files("s8"))
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_model_int8_bit_exact(models, name, kernels):
    _, _, int8_model, calib = models[name]
    built = describe(int8_model)
    missing = EXPECTED_OPS[name] - set(built.opcodes)
    assert not missing, f"converter output lacks {missing}: {built.opcodes}"
    r = assert_bit_exact(built, _int8_sets(built, calib, 20, seed=7), kernels=kernels)
    assert r["inputs"] == 32


@kernel_param(_files("f32"))
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_model_float32_close(models, name, kernels):
    _, f32_model, _, calib = models[name]
    built = describe(f32_model)
    missing = (EXPECTED_OPS[name] - {"RESHAPE"}) - set(built.opcodes)
    assert not missing, f"converter output lacks {missing}: {built.opcodes}"
    sets = [[x[None].astype(np.float32)] for x in calib[:8]]
    assert_close(built, sets, rtol=1e-4, atol=1e-5, kernels=kernels)
