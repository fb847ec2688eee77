"""A ShuffleNet-v2-style unit converted int8 by the TF converter, as such models use the layout ops: channel split
(SPLIT), a 1x1 / depthwise 3x3 / 1x1 branch, concatenation, channel shuffle (reshape -> TRANSPOSE -> reshape),
then an uneven channel split (SPLIT_V), a constant channel gather (GATHER) and a pixel-shuffle upsampling head
(DEPTH_TO_SPACE). Bit-exact with TFLM on the host (sanitized, reference set) and on qemu-m4 (its dsp set)."""
from __future__ import annotations

import numpy as np
import pytest

from tests.support.opmodels import input_sets
from tests.support.strategies import uniform_sampler

pytestmark = [pytest.mark.tf, pytest.mark.xdist_group("layout_model")]

SHAPE = [1, 8, 8, 16]
LAYOUT_OPS = {"SPLIT", "SPLIT_V", "TRANSPOSE", "GATHER", "DEPTH_TO_SPACE"}


def build_shuffle_unit(opmodels, tf):
    """The unit above as a converted int8 model (tests.support.opmodels.Built)."""
    rng = np.random.default_rng(7)
    w1 = (rng.standard_normal((1, 1, 8, 8)) * 0.4).astype(np.float32)
    dw = (rng.standard_normal((3, 3, 8, 1)) * 0.4).astype(np.float32)
    w2 = (rng.standard_normal((1, 1, 8, 8)) * 0.4).astype(np.float32)
    w3 = (rng.standard_normal((1, 1, 12, 16)) * 0.3).astype(np.float32)

    def unit(x):
        left, right = tf.split(x, 2, axis=-1)
        right = tf.nn.relu(tf.nn.conv2d(right, w1, 1, "SAME"))
        right = tf.nn.depthwise_conv2d(right, dw, [1, 1, 1, 1], "SAME")
        right = tf.nn.relu(tf.nn.conv2d(right, w2, 1, "SAME"))
        y = tf.concat([left, right], axis=-1)
        y = tf.reshape(tf.transpose(tf.reshape(y, [1, 8, 8, 2, 8]), [0, 1, 2, 4, 3]), [1, 8, 8, 16])
        a, b = tf.split(y, [4, 12], axis=-1)
        b = tf.nn.conv2d(b, w3, 1, "SAME")
        b = tf.gather(b, [3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14], axis=-1)
        return tf.nn.depth_to_space(b, 2), a

    return opmodels.convert(unit, [SHAPE], int8=True, calib=uniform_sampler([SHAPE], [(-2.0, 2.0)]), seed=7)


@pytest.fixture(scope="module")
def shuffle_unit(opmodels, tf):
    built = build_shuffle_unit(opmodels, tf)
    assert LAYOUT_OPS <= set(built.opcodes), built.opcodes
    return built


def test_shuffle_unit_bit_exact_on_host(shuffle_unit):
    """Reference set here; the board run below uses qemu-m4's default set (dsp)."""
    from formicary.bench.verify import verify_model

    sets = input_sets(shuffle_unit, np.random.default_rng(1), n=3)
    r = verify_model(shuffle_unit.model, input_sets=sets, sanitize=True, measure_tflm_arena=False)
    assert r["bit_exact"] and r["inputs"] == 3, r


@pytest.mark.qemu
@pytest.mark.usefixtures("arm_qemu_tools")
def test_shuffle_unit_bit_exact_on_qemu_m4(shuffle_unit, tmp_path):
    from formicary.bench.verify import verify_model

    path = tmp_path / "shuffle_unit.tflite"
    path.write_bytes(shuffle_unit.model)
    data = tmp_path / "inputs.npz"
    np.savez(data, x=np.random.default_rng(2).integers(-128, 128, size=[4, *SHAPE[1:]]).astype(np.int8))
    r = verify_model(path, target="qemu-m4", data=data)
    assert r["bit_exact"] and r["inputs"] == 4 and r["kernels"] == "dsp", r
