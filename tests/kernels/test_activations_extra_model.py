"""HARD_SWISH, LEAKY_RELU and PRELU the way real models use them: a tf_keras MobileNetV3-like block (hard-swish
written as MobileNetV3 does, x * relu6(x + 3) / 6, which the converter fuses into HARD_SWISH; an inverted residual
with squeeze-and-excitation) followed by a PyTorch-style tail (LeakyReLU, PReLU with shared axes and with a full
alpha), converted by the TFLite converter (int8 full-integer and float32). int8 bit-exact with TFLM on the host
(sanitized, reference kernels) and on qemu-m4 (its dsp set); float32 within tolerance."""
from __future__ import annotations

import numpy as np
import pytest

from tests.support.opmodels import assert_bit_exact, assert_close, describe

pytestmark = [pytest.mark.tf, pytest.mark.xdist_group("activations-extra-model")]

OURS = {"HARD_SWISH": 3, "LEAKY_RELU": 1, "PRELU": 2}


def _mobilenetv3_like(keras):
    L = keras.layers

    def hard_swish(x):
        return L.Multiply()([x, L.ReLU(6.0)(x + 3.0) * (1.0 / 6.0)])

    x_in = keras.Input((24, 24, 3))
    x = hard_swish(L.Conv2D(8, 3, strides=2, padding="same")(x_in))
    y = hard_swish(L.Conv2D(16, 1)(x))                                  # expand
    y = hard_swish(L.DepthwiseConv2D(3, padding="same")(y))
    s = L.GlobalAveragePooling2D(keepdims=True)(y)                      # squeeze-and-excitation, hard sigmoid
    s = L.Conv2D(4, 1, activation="relu")(s)
    s = L.ReLU(6.0)(L.Conv2D(16, 1)(s) + 3.0) * (1.0 / 6.0)
    y = L.Conv2D(8, 1)(L.Multiply()([y, s]))                            # project, residual
    x = L.Add()([x, y])
    x = L.LeakyReLU(0.1)(L.Conv2D(12, 3, strides=2, padding="same")(x))
    x = L.PReLU(shared_axes=[1, 2], alpha_initializer=keras.initializers.RandomUniform(-0.3, 0.6))(
        L.Conv2D(12, 1)(x))
    x = L.PReLU(alpha_initializer=keras.initializers.RandomUniform(0.0, 0.4))(L.DepthwiseConv2D(3, padding="same")(x))
    return keras.Model(x_in, L.Dense(5)(L.GlobalAveragePooling2D()(x)))


@pytest.fixture(scope="module")
def converted(tf):
    """(int8 .tflite, float32 .tflite, calibration images), converted once per module."""
    import tf_keras as keras

    keras.utils.set_random_seed(3)
    model = _mobilenetv3_like(keras)
    calib = (np.random.default_rng(0).uniform(0, 1, size=(16, 24, 24, 3)) * 2 - 0.5).astype(np.float32)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([s[None]] for s in calib)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert(), tf.lite.TFLiteConverter.from_keras_model(model).convert(), calib


def _int8_sets(built, calib, n_random: int) -> list[list[np.ndarray]]:
    scale, zp = built.input_quant[0]
    real = [[np.clip(np.round(x[None] / scale) + zp, -128, 127).astype(np.int8)] for x in calib[:8]]
    rng = np.random.default_rng(1)
    return real + [[rng.integers(-128, 128, size=(1, 24, 24, 3)).astype(np.int8)] for _ in range(n_random)]


def test_converter_emits_our_ops(converted):
    """The converter fuses MobileNetV3's x * relu6(x + 3) / 6 into HARD_SWISH and keeps LeakyReLU / PReLU as
    LEAKY_RELU / PRELU, int8 with per-tensor alpha, in both the int8 and the float32 model."""
    for model in converted[:2]:
        codes = describe(model).opcodes
        assert {op: codes.count(op) for op in OURS} == OURS, codes


def test_int8_model_bit_exact_on_host(converted):
    built = describe(converted[0])
    r = assert_bit_exact(built, _int8_sets(built, converted[2], 8))
    assert r["inputs"] == 16


def test_float32_model_within_tolerance(converted):
    assert_close(describe(converted[1]), [[x[None]] for x in converted[2][:6]], rtol=1e-4, atol=1e-5)


@pytest.mark.qemu
@pytest.mark.usefixtures("arm_qemu_tools")
def test_int8_model_bit_exact_on_qemu_m4(converted, tmp_path):
    """The firmware on the Cortex-M4 virtual board (its default kernel set, dsp, falling back to the reference
    kernels for these ops) gives TFLM's bytes."""
    from formicary.bench.verify import verify_model

    built = describe(converted[0])
    path = tmp_path / "mnv3_like.tflite"
    path.write_bytes(converted[0])
    data = tmp_path / "inputs.npz"
    sets = _int8_sets(built, converted[2], 2)
    np.savez(data, x=np.concatenate([s[0] for s in sets]))
    r = verify_model(path, target="qemu-m4", data=data)
    assert r["bit_exact"] and r["inputs"] == len(sets) and r["kernels"] == "dsp", r
