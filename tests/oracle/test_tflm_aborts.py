"""Models TFLM's Prepare aborts on (TFLITE_CHECK: the wheel kills the process with SIGABRT and prints nothing) are
refused with a cause before TFLM sees them, by the oracle and by codegen. Found with an untrained MobileNetV3-Small
(tf_keras.applications, random weights): its logits got an int8 scale of 7.85e-09."""
from __future__ import annotations

import numpy as np
import pytest

from formicary.errors import FormicaryError
from formicary.tflite.builder import Op, T, build


def _softmax_model(in_scale: float) -> bytes:
    tensors = [T((1, 10), scale=[in_scale], zero_point=[3]), T((1, 10), scale=[1 / 256], zero_point=[-128])]
    return build(tensors, [Op("SOFTMAX", [0], [1], "SoftmaxOptions", {"Beta": 1.0})], [0], [1])


@pytest.mark.parametrize("call", ["check_tflm", "run_tflm", "measure_arena"])
def test_softmax_scale_tflm_aborts_on_is_refused(call):
    from formicary.oracle import tflm

    model = _softmax_model(1e-9)
    with pytest.raises(FormicaryError) as err:
        if call == "run_tflm":
            tflm.run_tflm(model, [np.zeros((1, 10), np.int8)])
        else:
            getattr(tflm, call)(model)
    assert "SOFTMAX" in err.value.cause and "abort" in err.value.cause and "calib" in err.value.fix


def test_add_with_a_degenerate_output_scale_is_refused_before_tflm():
    from formicary.oracle import tflm

    tensors = [T((1, 4), scale=[0.1], zero_point=[0]), T((1, 4), scale=[0.2], zero_point=[0]),
               T((1, 4), scale=[1e-9], zero_point=[0])]
    model = build(tensors, [Op("ADD", [0, 1], [2], "AddOptions", {"FusedActivationFunction": 0})], [0, 1], [2])
    with pytest.raises(FormicaryError) as err:
        tflm.check_tflm(model)
    assert "ADD" in err.value.cause and "abort" in err.value.cause


def test_codegen_refuses_it_too_and_a_sane_scale_passes():
    from formicary.codegen import lower_model
    from formicary.oracle import tflm

    with pytest.raises(FormicaryError) as err:
        lower_model(_softmax_model(1e-9))
    assert "SOFTMAX" in err.value.cause and "degenerate" in err.value.cause
    ok = _softmax_model(0.05)
    tflm.check_tflm(ok)  # the guard does not refuse ordinary models
    lower_model(ok)
