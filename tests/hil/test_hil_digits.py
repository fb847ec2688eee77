"""A model compiled by formicary (the digits CNN, full int8) on both virtual boards through the HIL plugin:
all 400 validation digits bit-exact with TFLM, and the device's accuracy equal to TFLM's exactly."""
from __future__ import annotations

import numpy as np
import pytest

# the two virtual boards of issue 4: a CMSDK UART (mps2-an386) and the STM32 USART (netduinoplus2)
HIL_BOARDS = ["qemu-m4", "qemu-stm32f405"]

pytestmark = [pytest.mark.qemu, pytest.mark.tf, pytest.mark.slow, pytest.mark.xdist_group("hil-digits")]


@pytest.fixture(scope="module")
def digits_reference(digits_int8):
    """The validation set quantized the way `formicary compile` measures accuracy, and TFLM's outputs."""
    from formicary.oracle.inputs import tensor_quant, to_input_type
    from formicary.oracle.tflm import run_tflm
    from formicary.tflite import read_model

    model = digits_int8.tflite.read_bytes()
    ir = read_model(model)
    tin = ir.tensors[ir.inputs[0]]
    assert tin.dtype == "int8"
    xq = to_input_type(digits_int8.val_x, tin.np_dtype, *tensor_quant(tin)).reshape(-1, 1, 8, 8, 1)
    ref = [outs[0].reshape(1, 10) for outs in run_tflm(model, list(xq))]
    return xq, ref


@pytest.mark.parametrize("board", HIL_BOARDS)
def test_digits_int8_bit_exact_and_same_accuracy(board, hil_tools, dut_factory, digits_int8, digits_reference):
    xq, ref = digits_reference
    y = digits_int8.val_y
    assert len(y) == 400
    dut = dut_factory(board, digits_int8.tflite)
    assert [(s.dtype, s.shape) for s in dut.info.outputs] == [("int8", (1, 10))]

    correct, latencies = 0, set()
    for i in range(len(y)):
        # the float pixels go in: the plugin quantizes them exactly as the compiler did for its accuracy
        assert np.array_equal(dut.prepare(digits_int8.val_x[i])[0], xq[i])
        r = dut.check(digits_int8.val_x[i], reference=[ref[i]])
        correct += int(r.output.argmax() == y[i])
        latencies.add(r.latency)
    tflm_correct = sum(int(r.argmax() == t) for r, t in zip(ref, y))
    assert correct == tflm_correct
    # ... which is what `formicary compile` reported (measured with TFLM, rounded to 4 places)
    assert round(correct / len(y), 4) == digits_int8.report["accuracy"]["quantized"]
    assert correct / len(y) > 0.9, f"the trained CNN only got {correct}/{len(y)}"
    assert r.unit == "instructions" and all(c > 0 for c in latencies)
    assert r.routes == [1] * len(r.latencies)  # one subgraph: every inference runs the main graph only
