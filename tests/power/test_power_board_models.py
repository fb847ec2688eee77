"""Board power models ([power] in boards/*.toml) and the modelled energy they give on virtual boards.

No TensorFlow, no QEMU: the KWS instruction count is the one measured on qemu-m4 (see the README's bench session),
and every expected energy is recomputed here from the TOML text itself.
"""
from __future__ import annotations

import json
import tomllib

import pytest

from formicary.boards import BOARDS_DIR, list_boards, load_board
from formicary.power.modelled import modelled_energy
from formicary.errors import FormicaryError

KWS_INSTRUCTIONS_QEMU_M4 = 69_775_120  # one KWS inference on qemu-m4, QEMU -icount (measured in session 1, -Os build)


def _toml(name: str) -> dict:
    return tomllib.loads((BOARDS_DIR / f"{name}.toml").read_text())


def test_every_buildable_board_has_a_sourced_power_model() -> None:
    buildable = [b for b in list_boards() if b.buildable]
    assert {"qemu-m4", "qemu-m7", "qemu-m55", "qemu-stm32f405"} <= {b.name for b in buildable}
    for b in buildable:
        assert b.power is not None, f"{b.name} has no [power] table"
        assert b.power.source.strip(), f"{b.name}: [power] source is empty"
        assert b.power.supply_v > 0 and b.power.active_current_ma > 0
        assert isinstance(b.power.checked, bool)
        if b.virtual:
            # QEMU models no power: the figure is some real chip's, and the board must say which and how it was
            # brought to this clock
            assert b.power.basis.strip(), f"{b.name}: virtual board without a `basis`"
            assert "MHz" in b.power.basis


def test_power_model_fields_match_the_toml_text() -> None:
    for b in list_boards():
        raw = _toml(b.name).get("power")
        if raw is None:
            assert b.power is None
            continue
        assert b.power.supply_v == pytest.approx(raw["supply_v"])
        assert b.power.active_current_ma == pytest.approx(raw["active_current_ma"])
        assert b.power.source == raw["source"]
        assert b.power.checked is raw.get("checked", False)
        assert b.power.basis == raw.get("basis", "")


def test_checked_figures_cite_a_revision_and_a_table() -> None:
    """A figure marked checked names the exact document revision and table it was compared with."""
    checked = [b for b in list_boards() if b.power is not None and b.power.checked]
    assert checked, "no power model has been checked against its datasheet"
    for b in checked:
        assert "Rev" in b.power.source and "Table" in b.power.source, b.name


def test_kws_energy_on_qemu_m4_is_supply_times_current_times_instructions_over_clock() -> None:
    raw = _toml("qemu-m4")
    v, ma, clock = raw["power"]["supply_v"], raw["power"]["active_current_ma"], raw["clock_hz"]
    expected_uj = v * ma * 1e-3 * (KWS_INSTRUCTIONS_QEMU_M4 / clock) * 1e6

    board = load_board("qemu-m4")
    out = modelled_energy(board.power, board.clock_hz, [KWS_INSTRUCTIONS_QEMU_M4] * 3, board.name)
    assert out["method"] == "modelled" and out["unit"] == "uJ"
    assert out["uj_per_inference"] == pytest.approx(expected_uj, rel=1e-9)
    assert out["inferences"] == 3
    assert out["duration_s"] == pytest.approx(3 * KWS_INSTRUCTIONS_QEMU_M4 / clock, rel=1e-12)
    assert out["power_model_checked"] is raw["power"]["checked"]


@pytest.mark.parametrize("name", [b.name for b in list_boards() if b.virtual and not b.is_sbc])
def test_virtual_board_energy_source_names_the_silicon_and_the_time_basis(name: str) -> None:
    board = load_board(name)
    out = modelled_energy(board.power, board.clock_hz, [board.clock_hz // 10], board.name)  # 100 ms
    assert set(out) >= {"uj_per_inference", "method", "source"}
    assert out["method"] == "modelled"
    assert out["uj_per_inference"] == pytest.approx(board.power.supply_v * board.power.active_current_ma * 100.0)
    src = out["source"]
    assert board.power.source in src and board.power.basis in src  # the datasheet and the representative silicon
    assert "QEMU retired instructions" in src and "1 instruction = 1 cycle" in src
    assert f"{board.clock_hz / 1e6:g} MHz" in src
    assert ("not yet checked" in src) is (not board.power.checked)


def test_real_board_energy_source_says_cycles_not_instructions() -> None:
    board = load_board("nucleo-l4r5zi")
    out = modelled_energy(board.power, board.clock_hz, [board.clock_hz // 100], board.name)
    assert "cycle count (DWT)" in out["source"] and "QEMU" not in out["source"]
    # an explicit unit wins over the board definition
    out = modelled_energy(board.power, board.clock_hz, [1000], board.name, timing_unit="instructions")
    assert "QEMU retired instructions" in out["source"]


def _write_board(tmp_path, name: str, power_lines: str) -> None:
    text = (BOARDS_DIR / f"{name}.toml").read_text()
    text = text[:text.index("\n[power]")] + "\n\n[power]\n" + power_lines
    (tmp_path / f"{name}.toml").write_text(text)


def test_virtual_board_power_without_basis_is_rejected(tmp_path) -> None:
    _write_board(tmp_path, "qemu-m4", 'supply_v = 3.3\nactive_current_ma = 6.0\nsource = "x"\n')
    with pytest.raises(FormicaryError, match="basis"):
        load_board("qemu-m4", boards_dir=tmp_path)


def test_checked_must_be_a_boolean(tmp_path) -> None:
    _write_board(tmp_path, "nucleo-l4r5zi",
                 'supply_v = 3.3\nactive_current_ma = 13.2\nsource = "x"\nchecked = "false"\n')
    with pytest.raises(FormicaryError, match="checked"):
        load_board("nucleo-l4r5zi", boards_dir=tmp_path)


def test_boards_command_shows_power_models() -> None:
    from typer.testing import CliRunner

    from formicary.cli import app

    result = CliRunner().invoke(app, ["boards", "--json"])
    assert result.exit_code == 0, result.output
    by_name = {b["name"]: b for b in json.loads(result.output)["boards"]}
    for name in ("qemu-m4", "qemu-m7", "qemu-m55"):
        p = by_name[name]["power"]
        assert p["basis"] and p["source"] and isinstance(p["checked"], bool)

    human = CliRunner().invoke(app, ["boards"], env={"COLUMNS": "250"})
    assert human.exit_code == 0, human.output
    unchecked = [b.name for b in list_boards() if b.power is not None and not b.power.checked]
    assert unchecked
    seen = set()
    for line in human.output.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) > 2 and cells[1] in by_name and by_name[cells[1]]["power"]:
            seen.add(cells[1])
            assert ("(unchecked)" in line) is (cells[1] in unchecked), line
    assert seen == {n for n, b in by_name.items() if b["power"]}, human.output
