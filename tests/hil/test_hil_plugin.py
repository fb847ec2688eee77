"""The plugin as a user meets it: a test file of their own run by pytest in a subprocess with --board, without
it (skips with the reason), from the environment and ini file, against a detached QEMU given by --port, and
the messages when the board and TFLM disagree or the board runs another model."""
from __future__ import annotations

import os
import signal

import numpy as np
import pytest

pytest_plugins = ["pytester"]

USER_TEST = '''
import numpy as np
from pathlib import Path

def test_first_kws_input(dut):
    x = np.fromfile(Path({data!r}) / "tst_000000_Stop_7.bin", dtype=np.int8)
    r = dut.check(x)
    assert r.output.argmax() == 7
    assert r.unit == "instructions" and r.latency > 0
    print("HIL", dut.info.board, r.latency, r.unit, "qemu-pid", getattr(dut.connection.qemu, "pid", None))
'''


@pytest.fixture()
def user_test(pytester, kws_data_dir):
    pytester.makepyfile(test_user=USER_TEST.format(data=str(kws_data_dir)))
    pytester.makeini("[pytest]\n")  # a project of its own: not this repository's pytest settings
    return pytester


def test_without_board_dut_tests_skip_with_the_reason(user_test, monkeypatch):
    for var in ("FORMICARY_BOARD", "FORMICARY_PORT", "FORMICARY_MODEL"):
        monkeypatch.delenv(var, raising=False)
    r = user_test.runpytest_subprocess("-rs", "-p", "no:cacheprovider")
    r.assert_outcomes(skipped=1)
    r.stdout.fnmatch_lines(["*no board to run on: hardware-in-the-loop tests need --board NAME*"])
    # the plugin marks every test that uses a board, so `-m "not hil"` leaves them out
    r = user_test.runpytest_subprocess("-m", "not hil", "-p", "no:cacheprovider")
    r.assert_outcomes(deselected=1)


@pytest.mark.qemu
@pytest.mark.shared
def test_user_test_runs_on_qemu_through_the_plugin(user_test, hil_tools, kws_model_path, dut_factory):
    # `--opt=PATH`: pytest picks its rootdir before it knows plugin options, so a separate PATH argument
    # would count as a test path there (docs/hil.md)
    r = user_test.runpytest_subprocess("-s", "-m", "hil", "--board", "qemu-m4", f"--formicary-model={kws_model_path}",
                                       f"--formicary-build-dir={dut_factory.build_dir}")
    r.assert_outcomes(passed=1)
    r.stdout.fnmatch_lines(["formicary hil: board qemu-m4", "*HIL qemu-m4 * instructions qemu-pid *"])
    # the plugin started QEMU and killed it (its whole process group) when the session ended
    pid = int(next(ln for ln in r.outlines if "qemu-pid" in ln).rsplit(" ", 1)[1])
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)


@pytest.mark.qemu
@pytest.mark.shared
def test_board_and_model_from_environment_and_ini(user_test, hil_tools, kws_model_path, dut_factory, monkeypatch):
    user_test.makeini(f"[pytest]\nformicary_model = {kws_model_path}\nformicary_build_dir = {dut_factory.build_dir}\n")
    monkeypatch.setenv("FORMICARY_BOARD", "qemu-stm32f405")
    monkeypatch.delenv("FORMICARY_PORT", raising=False)
    r = user_test.runpytest_subprocess("-s")
    r.assert_outcomes(passed=1)
    r.stdout.fnmatch_lines(["*HIL qemu-stm32f405 * instructions*"])


@pytest.mark.qemu
@pytest.mark.shared
def test_port_of_a_flashed_virtual_board(user_test, hil_tools, kws_model_path, dut_factory, tmp_path):
    """`formicary flash` leaves a QEMU running; --port attaches to it instead of starting one. A model other
    than the one on the board is refused by its hash."""
    from formicary.target.flash import flash

    dut = dut_factory("qemu-m4", kws_model_path)  # the firmware (built once per session)
    flashed = flash(dut.build["project_dir"], "qemu-m4")
    try:
        args = ["--board=qemu-m4", f"--port={flashed['url']}", f"--formicary-build-dir={dut_factory.build_dir}"]
        r = user_test.runpytest_subprocess("-s", *args, f"--formicary-model={kws_model_path}")
        r.assert_outcomes(passed=1)
        # another model: same bytes plus one (a different sha256), so firmware built for it has another hash
        other = tmp_path / "other.tflite"
        other.write_bytes(kws_model_path.read_bytes() + b"\0")
        r = user_test.runpytest_subprocess(*args, f"--formicary-model={other}")
        r.assert_outcomes(errors=1)
        r.stdout.fnmatch_lines(["*the board runs a different model (hash aeea4368*"])
    finally:
        os.killpg(flashed["qemu_pid"], signal.SIGKILL)
        try:
            os.waitpid(flashed["qemu_pid"], 0)  # it is our child: reap it
        except ChildProcessError:
            pass


@pytest.mark.qemu
@pytest.mark.shared
def test_check_failure_message_says_which_output_and_bytes(hil_tools, dut_factory, kws_model_path, kws_set):
    dut = dut_factory("qemu-m4", kws_model_path)
    x = kws_set.inputs[0]
    good = dut.reference(x)
    doctored = [good[0].copy()]
    doctored[0][0, 3] ^= 1  # flip the lowest bit of two scores
    doctored[0][0, 9] ^= 1
    with pytest.raises(AssertionError) as caught:
        dut.check(x, reference=doctored)
    msg = str(caught.value)
    assert msg.startswith("qemu-m4 running kws_ref_model.tflite (sha256 aeea43680070…): device and TFLM disagree")
    assert (f"output 0 (int8, shape [1, 12]) is not bit-exact with TFLM: 2 of 12 bytes differ (2 of 12 "
            f"elements); first at flat index 3: device {int(good[0][0, 3])}, TFLM {int(doctored[0][0, 3])}.") in msg
    # the board still answers correctly afterwards: a mismatch is not a device error
    assert not dut.broken
    assert np.array_equal(dut.check(x).output, good[0])


def test_compare_outputs_float_tolerance_and_shapes():
    from formicary.hil.plugin import FLOAT_ATOL, FLOAT_RTOL, compare_outputs

    ref = np.array([[1.0, -2.0, 0.0, 1e-7]], dtype=np.float32)
    close = ref * (1 + FLOAT_RTOL / 2) + np.float32(FLOAT_ATOL / 4)
    assert compare_outputs([close.astype(np.float32)], [ref]) == []
    far = ref.copy()
    far[0, 1] = -2.01
    (problem,) = compare_outputs([far], [ref])
    assert problem.startswith("output 0 (float32, shape [1, 4]): 1 of 4 elements outside rtol=0.0001, atol=1e-05;")
    assert "first at flat index 1: device -2.01, TFLM -2.0" in problem
    (problem,) = compare_outputs([np.zeros((1, 5), np.int8)], [np.zeros((1, 4), np.int8)])
    assert "5 elements on the device, 4 in TFLM" in problem
    # int16 outputs count bytes, not elements
    d, r = np.array([0x0101], np.int16), np.array([0x0202], np.int16)
    assert "2 of 2 bytes differ (1 of 1 elements)" in compare_outputs([d], [r])[0]


def test_prepare_inputs_quantizes_float_and_refuses_wrong_sizes():
    from formicary.device.session import TensorSpec
    from formicary.hil.plugin import prepare_inputs

    spec = TensorSpec(dtype="int8", shape=(1, 4), scale=0.5, zero_point=-3, bytes=4)
    (x,) = prepare_inputs(np.array([0.0, 1.2, 100.0, -100.0]), [spec])
    assert x.dtype == np.int8 and x.shape == (1, 4) and x.tolist() == [[-3, -1, 127, -128]]
    (x,) = prepare_inputs(b"\x01\x02\x03\x04", [spec])
    assert x.tolist() == [[1, 2, 3, 4]]
    with pytest.raises(ValueError, match="input 0 must have 4 elements"):
        prepare_inputs(np.zeros(5, np.int8), [spec])
    with pytest.raises(ValueError, match="must be int8"):
        prepare_inputs(np.zeros(4, np.int32), [spec])
    with pytest.raises(ValueError, match="1 input"):
        prepare_inputs([np.zeros(4, np.int8)] * 2, [spec])


@pytest.mark.qemu
@pytest.mark.shared
def test_a_dead_board_fails_clearly_and_the_next_test_gets_a_fresh_one(hil_tools, dut_factory, kws_model_path,
                                                                       kws_set):
    from formicary.errors import FormicaryError

    dut = dut_factory("qemu-m4", kws_model_path)
    x = kws_set.inputs[1]
    good = dut.check(x).output
    dut.connection.qemu.kill()
    with pytest.raises(FormicaryError, match=r"QEMU \(mps2-an386, virtual board qemu-m4\) was killed by signal 9"):
        dut.run(x)
    assert dut.broken
    fresh = dut_factory("qemu-m4", kws_model_path)
    assert fresh is not dut and fresh.connection.qemu.alive()
    assert np.array_equal(fresh.check(x).output, good)


def test_port_and_baud_reach_the_bring_up(tmp_path, monkeypatch):
    """--port and --formicary-baud are handed to the target layer (the baud used to be dropped)."""
    from formicary.hil import plugin
    from formicary.target.firmware import Firmware

    seen = {}

    class _Link:
        handle = object()

    def fake_bring_up(board, fw, *, port, baud, flash_on_mismatch):
        seen.update(board=board.name, port=port, baud=baud, flash=flash_on_mismatch)
        return _Link()

    fw = Firmware(project_dir=tmp_path, elf=tmp_path / "p.elf", tflite=tmp_path / "m.tflite", model_hash="h",
                  flash_bytes=0, ram_bytes=0, arena_bytes=0, built=False)
    (tmp_path / "formicary-build.json").write_text("{}")
    monkeypatch.setattr("formicary.target.bringup.bring_up", fake_bring_up)
    factory = plugin.DutFactory(tmp_path, default_port="/dev/ttyACM0", default_board="nucleo-l4r5zi",
                                default_baud=921600, no_flash=True)
    from formicary.boards import load_board

    factory._connect(load_board("nucleo-l4r5zi"), tmp_path / "m.tflite", fw, fw.tflite, "/dev/ttyACM0")
    assert seen == {"board": "nucleo-l4r5zi", "port": "/dev/ttyACM0", "baud": 921600, "flash": False}
