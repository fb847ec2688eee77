"""The target layer without a board: the firmware cache key, project checks, and bring-up decisions (which target,
when to flash) driven through fake links."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from formicary.boards import load_board
from formicary.device.session import ModelMismatchError
from formicary.errors import FormicaryError
from formicary.target import bringup, firmware
from formicary.target.firmware import Firmware, firmware_key, prepare_firmware


def test_key_separates_everything_that_changes_the_elf(kws_model_path, monkeypatch):
    m4, m7 = load_board("qemu-m4"), load_board("qemu-m7")
    base = firmware_key(kws_model_path, m4)
    assert base != firmware_key(kws_model_path, m4, "mlperf")
    assert base != firmware_key(kws_model_path, m4, optimize="size")
    assert base != firmware_key(kws_model_path, m7)
    assert base != firmware_key(kws_model_path, m4, kernels="another-set")
    assert base != firmware_key(kws_model_path, m4, memory_plan="liveness")
    assert base == firmware_key(kws_model_path, m4, memory_plan="auto")  # the default
    assert base == firmware_key(kws_model_path, m4)
    monkeypatch.setattr(firmware, "firmware_sources_sha256", lambda: "an edited kernel")
    assert base != firmware_key(kws_model_path, m4)


def test_key_follows_the_model_bytes_not_its_path(kws_model_path, tmp_path):
    copy = tmp_path / kws_model_path.name
    copy.write_bytes(kws_model_path.read_bytes())
    board = load_board("qemu-m4")
    assert firmware_key(copy, board) == firmware_key(kws_model_path, board)
    copy.write_bytes(kws_model_path.read_bytes() + b"\0")
    assert firmware_key(copy, board) != firmware_key(kws_model_path, board)


def test_a_project_with_mlperf_firmware_is_refused_by_bench(tmp_path):
    (tmp_path / "formicary-build.json").write_text(
        '{"board": "qemu-m4", "elf": "x.elf", "firmware_mode": "mlperf"}')
    with pytest.raises(FormicaryError, match="holds mlperf firmware") as err:
        prepare_firmware(tmp_path, load_board("qemu-m4"))
    assert "formicary mlperf" in err.value.fix


def test_a_project_for_another_board_is_refused(tmp_path):
    (tmp_path / "formicary-build.json").write_text('{"board": "qemu-m7", "elf": "x.elf"}')
    with pytest.raises(FormicaryError, match="built for qemu-m7"):
        prepare_firmware(tmp_path, load_board("qemu-m4"))


def test_keras_models_are_for_the_compiler(tmp_path):
    keras = tmp_path / "m.keras"
    keras.write_bytes(b"PK")
    with pytest.raises(FormicaryError, match="neither a .tflite") as err:
        prepare_firmware(keras, load_board("qemu-m4"))
    assert "formicary compile" in err.value.fix


def test_cached_build_is_reused_only_under_its_key(kws_model_path, tmp_path, monkeypatch):
    """A build under the right key is reused; one whose key no longer matches is built again."""
    board = load_board("qemu-m4")
    calls = []

    def fake_build(model, b, out, *, firmware_mode, optimize, kernels, memory_plan=None, mlperf_model_id=None):
        calls.append(out)
        elf = Path(out) / "program.elf"
        elf.write_bytes(b"\x7fELF")
        (Path(out) / "formicary-build.json").write_text(json.dumps(
            {"board": b.name, "elf": str(elf), "tflite": str(model), "model_hash": "h", "flash_bytes": 1,
             "ram_bytes": 2, "arena_bytes": 3, "firmware_mode": firmware_mode, "optimize": optimize}))

    monkeypatch.setattr("formicary.build.build_model", fake_build)
    first = prepare_firmware(kws_model_path, board, cache_dir=tmp_path)
    again = prepare_firmware(kws_model_path, board, cache_dir=tmp_path)
    assert first.built and not again.built and len(calls) == 1 and first.project_dir == again.project_dir
    assert first.project_dir.name == firmware_key(kws_model_path, board)
    info = json.loads((first.project_dir / "formicary-build.json").read_text())
    info["cache_key"] = "stale"
    (first.project_dir / "formicary-build.json").write_text(json.dumps(info))
    assert prepare_firmware(kws_model_path, board, cache_dir=tmp_path).built and len(calls) == 2
    assert prepare_firmware(kws_model_path, board, cache_dir=tmp_path, rebuild=True).built and len(calls) == 3


def _fw(tmp_path: Path) -> Firmware:
    return Firmware(project_dir=tmp_path, elf=tmp_path / "p.elf", tflite=tmp_path / "m.tflite", model_hash="abc",
                    flash_bytes=1, ram_bytes=1, arena_bytes=1, built=False)


def test_target_choice():
    m4, nucleo = load_board("qemu-m4"), load_board("nucleo-l4r5zi")
    assert isinstance(bringup.target_for(m4), bringup.QemuTarget)
    assert isinstance(bringup.target_for(m4, "socket://127.0.0.1:1"), bringup.SerialTarget)
    serial = bringup.target_for(nucleo, "/dev/ttyACM0")
    assert isinstance(serial, bringup.SerialTarget) and serial.baud == nucleo.uart.baud
    assert bringup.target_for(nucleo, "/dev/ttyACM0", baud=921600).baud == 921600
    with pytest.raises(FormicaryError, match="real board and no --port"):
        bringup.target_for(nucleo)


class _FakeConnection:
    def __init__(self, url):
        self.url, self.session, self.closed = url, object(), False

    def close(self):
        self.closed = True


def _flash_module():
    """formicary.target.flash as bring-up will import it: from sys.modules, not through the package attribute (an
    in-process pytester run elsewhere on this worker may have dropped the module from sys.modules while the
    package still points at the old object, and a patch on that object would not be seen)."""
    import importlib

    return importlib.import_module("formicary.target.flash")


def test_a_real_board_running_another_model_is_flashed_then_reattached(tmp_path, monkeypatch):
    board = load_board("nucleo-l4r5zi")
    answers = [ModelMismatchError("the board runs model xyz", "flash it"), None]
    flashed = []

    def fake_connect(url, *, baud, expect_model_hash, timeout, run_timeout):
        assert baud == 115200 and expect_model_hash == "abc"
        err = answers.pop(0)
        if err:
            raise err
        return _FakeConnection(url)

    monkeypatch.setattr("formicary.device.connect_serial", fake_connect)
    monkeypatch.setattr(_flash_module(), "flash_firmware", lambda fw, b, port: flashed.append((b.name, port)))
    events = []
    link = bringup.bring_up(board, _fw(tmp_path), port="/dev/ttyACM0", baud=115200, on_event=events.append)
    assert link.flashed and flashed == [("nucleo-l4r5zi", "/dev/ttyACM0")] and link.url == "/dev/ttyACM0"
    assert events[0]["event"] == "flash" and "xyz" in events[0]["why"]
    link.close()
    assert link.handle.closed


def test_no_flash_and_virtual_boards_raise_the_mismatch(tmp_path, monkeypatch):
    def mismatch(url, **kw):
        raise ModelMismatchError("the board runs model xyz", "flash it")

    monkeypatch.setattr("formicary.device.connect_serial", mismatch)
    monkeypatch.setattr(_flash_module(), "flash_firmware", lambda *a, **k: pytest.fail("flashed"))
    with pytest.raises(ModelMismatchError):
        bringup.bring_up(load_board("nucleo-l4r5zi"), _fw(tmp_path), port="/dev/x", flash_on_mismatch=False)
    with pytest.raises(ModelMismatchError):  # a QEMU started elsewhere cannot be re-flashed over serial
        bringup.bring_up(load_board("qemu-m4"), _fw(tmp_path), port="socket://127.0.0.1:1")


def test_unknown_link_kind(tmp_path):
    with pytest.raises(FormicaryError, match="unknown link kind"):
        bringup.bring_up(load_board("qemu-m4"), _fw(tmp_path), kind="morse")
