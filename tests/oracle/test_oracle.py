"""The oracle's one input-quantization rule and one output-comparison rule (no TensorFlow, no board)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from formicary.errors import FormicaryError
from formicary.oracle.compare import FLOAT_ATOL, FLOAT_RTOL, describe_differences, match
from formicary.oracle.inputs import model_inputs, prepare_inputs, quantize, tensor_quant, to_input_type
from formicary.tflite import read_model


def test_quantize_rounds_half_to_even_and_saturates():
    x = np.array([0.0, 1.0, 1.25, 1.26, 1.75, 1000.0, -1000.0], np.float32)
    assert quantize(x, np.int8, 0.5, -3).tolist() == [-3, -1, -1, 0, 1, 127, -128]  # 2.5 -> 2, 3.5 -> 4


def test_integer_samples_pass_through_and_float_inputs_stay_float():
    raw = np.array([5, -7], np.int8)  # already-quantized MLPerf tensors
    assert to_input_type(raw, np.int8, 0.5, -3).tolist() == [5, -7]
    assert to_input_type(np.array([1, 2]), np.float32, None, 0).dtype == np.float32


def test_real_samples_for_an_unquantized_integer_input_are_an_error():
    with pytest.raises(FormicaryError, match="without quantization"):
        to_input_type(np.array([0.5]), np.int8, None, 0)


def test_every_caller_gets_the_same_integers(kws_model_path, tmp_path):
    """Data folders (verify, bench) and arrays handed to a device (HIL plugin) quantize identically."""
    ir = read_model(kws_model_path)
    t = ir.input_tensors[0]
    scale, zp = tensor_quant(t)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((3, *t.shape[1:])) * 40 * scale).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=np.array([0, 1, 2]))
    from_data = model_inputs(ir, tmp_path / "d.npz", None)
    spec = SimpleNamespace(dtype="int8", shape=t.shape, scale=scale, zero_point=zp)
    for i in range(3):
        (device,) = prepare_inputs(x[i:i + 1], [spec])
        assert np.array_equal(device, from_data.sets[i][0])
    expected = np.clip(np.round(x[0].astype(np.float64) / scale) + zp, -128, 127)
    assert np.array_equal(from_data.sets[0][0].reshape(x[0].shape), expected.astype(np.int8))
    assert from_data.labels == [0, 1, 2]


def test_match_is_bit_exact_for_integers_and_tolerant_for_floats():
    a = np.array([1, 2, 3], np.int8)
    assert match([a], [a.copy()]).bit_exact
    off = match([a], [np.array([1, 2, 4], np.int8)])
    assert not off.bit_exact and not off.ok and off.max_abs_diff == 1.0
    f = np.array([1.0, 2.0], np.float32)
    near = match([f], [f * (1 + FLOAT_RTOL / 2)])
    assert not near.bit_exact and near.ok
    assert not match([f], [f + 10 * (FLOAT_ATOL + FLOAT_RTOL * 2)]).ok


def test_describe_differences_agrees_with_match():
    ref = np.array([[0.1, 0.2, 0.7]], np.float32)
    close = (ref * (1 + FLOAT_RTOL / 2)).astype(np.float32)
    far = ref + np.float32(0.01)
    for device in (close, far):
        assert (describe_differences([device], [ref]) == []) == match([device], [ref]).ok
