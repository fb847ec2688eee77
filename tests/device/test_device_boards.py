"""Board definitions: loading, validation, the generated PlatformIO manifests and `formicary boards`."""
from __future__ import annotations

import json

import pytest

from formicary.boards import BOARDS_DIR, PLATFORM_DIR, Board, list_boards, load_board
from formicary.errors import FormicaryError

REQUIRED = {"qemu-m4": "mps2-an386", "qemu-m7": "mps2-an500", "qemu-m55": "mps3-an547",
            "qemu-stm32f405": "netduinoplus2"}


def test_required_boards_exist_with_their_qemu_machines():
    boards = {b.name: b for b in list_boards()}
    for name, machine in REQUIRED.items():
        assert boards[name].virtual and boards[name].qemu_machine == machine
        assert boards[name].timing_unit == "instructions"
    for name in ("nucleo-f446re", "nucleo-l4r5zi", "nrf52840-dk"):
        b = boards[name]
        assert not b.virtual and b.buildable and b.cycle_counter == "dwt" and b.timing_unit == "cycles"
        assert b.power is not None and b.power.source and b.power.active_power_mw > 0
    esp = boards["esp32-s3"]
    assert not esp.buildable and esp.flash_bytes > 0 and esp.ram_bytes > 0 and esp.clock_hz == 240_000_000


def test_load_board_is_typed_and_frozen():
    b = load_board("qemu-stm32f405")
    assert isinstance(b, Board)
    assert b.core == "cortex-m4" and b.clock_hz == 168_000_000
    assert b.memory.flash_origin == 0x08000000 and b.ram_bytes == 128 * 1024
    assert b.uart.kind == "stm32-usart" and b.uart.base == 0x40011000
    assert "-mfloat-abi=hard" in b.cpu_flags
    with pytest.raises(Exception):
        b.clock_hz = 1  # type: ignore[misc]


def test_unknown_board_lists_known_names():
    with pytest.raises(FormicaryError) as err:
        load_board("arduino-uno")
    assert "qemu-m4" in err.value.fix and "nucleo-l4r5zi" in err.value.fix


def test_esp32_cannot_be_built():
    with pytest.raises(FormicaryError, match="cannot be built"):
        load_board("esp32-s3").firmware_defines()


def test_bad_board_file_is_reported(tmp_path):
    text = (BOARDS_DIR / "qemu-m4.toml").read_text().replace('cycle_counter = "systick-icount"',
                                                             'cycle_counter = "sundial"')
    (tmp_path / "qemu-m4.toml").write_text(text)
    with pytest.raises(FormicaryError, match="cycle_counter"):
        load_board("qemu-m4", boards_dir=tmp_path)


def test_platform_manifests_match_the_toml_files():
    """boards/platform/boards/*.json are generated; regenerate with `python -m formicary.boards --write-platform`."""
    for b in list_boards():
        path = PLATFORM_DIR / "boards" / f"{b.name}.json"
        if not b.buildable:
            assert not path.exists()
            continue
        assert json.loads(path.read_text()) == b.platformio_manifest(), f"{path} is stale"


def test_boards_command_json():
    from typer.testing import CliRunner

    from formicary.cli import app

    result = CliRunner().invoke(app, ["boards", "--json"])
    assert result.exit_code == 0, result.output
    names = [b["name"] for b in json.loads(result.output)["boards"]]
    assert set(REQUIRED) <= set(names) and "esp32-s3" in names


def test_port_families_are_the_family_folders():
    """A family is a folder with its fm_port_<family>.c: listing it anywhere else is not needed."""
    from formicary.boards import port_families

    assert set(port_families()) == {"cmsdk", "stm32f4", "stm32l4", "nrf52"}
    assert {b.port for b in list_boards() if b.buildable} <= set(port_families())
