"""Issue 4 "done means", through the HIL plugin: the MLPerf Tiny KWS model on both virtual boards, all 200
inputs bit-exact with the TFLM interpreter and exactly 183/200 classified correctly (the reference model's
known score on this set)."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
from formicary.boards import load_board

from tests.support.kws_figures import kws_instruction_band

# the two virtual boards of issue 4: a CMSDK UART (mps2-an386) and the STM32 USART (netduinoplus2)
HIL_BOARDS = ["qemu-m4", "qemu-stm32f405"]

pytestmark = [pytest.mark.qemu, pytest.mark.shared]


@pytest.fixture(scope="module")
def kws_reference(kws_model_path, kws_set) -> list[np.ndarray]:
    """TFLM outputs for all inputs, in one interpreter (computed once for both boards)."""
    from formicary.oracle.tflm import run_tflm

    return [outs[0].reshape(1, 12) for outs in run_tflm(kws_model_path.read_bytes(), kws_set.inputs)]


@pytest.mark.slow
@pytest.mark.parametrize("board", HIL_BOARDS)
def test_kws_all_inputs_bit_exact_and_183_correct(board, hil_tools, dut_factory, kws_model_path, kws_set,
                                                  kws_reference):
    dut = dut_factory(board, kws_model_path)
    assert dut.info.board == board
    assert dut.info.model_hash == hashlib.sha256(kws_model_path.read_bytes()).hexdigest()
    assert [(s.dtype, s.shape) for s in dut.info.inputs] == [("int8", (1, 49, 10, 1))]
    # the plugin's own reference path agrees with the batch computed here
    assert np.array_equal(dut.reference(kws_set.inputs[0])[0], kws_reference[0])

    correct, latencies = 0, set()
    for x, label, ref in zip(kws_set.inputs, kws_set.labels, kws_reference):
        r = dut.check(x, reference=[ref])  # raises with the differing bytes on any mismatch
        assert r.output.dtype == np.int8 and r.output.shape == (1, 12)
        correct += int(r.output.argmax() == label)
        latencies.add(r.latency)
        assert r.unit == "instructions" and r.method.startswith("qemu-icount")
    assert len(kws_set.inputs) == 200
    assert sum(int(ref.argmax() == y) for ref, y in zip(kws_reference, kws_set.labels)) == 183
    assert correct == 183
    # the board's kernel set (dsp on these Cortex-M4 boards): ~3.7 M instructions per inference at -O2 (README)
    lo, hi = kws_instruction_band(load_board(board).kernels)
    assert all(lo < c < hi for c in latencies), sorted(latencies)

    # the same input runs to the same instruction count every time
    again = dut.run(kws_set.inputs[7], runs=3)
    assert len(set(again.latencies)) == 1 and np.array_equal(again.output, kws_reference[7])
