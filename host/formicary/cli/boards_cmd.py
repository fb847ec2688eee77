"""`formicary boards`: list the board definitions in boards/*.toml."""
from __future__ import annotations

from typing import Any

import typer

from formicary.cli._output import JSON_OPTION, emit


def _power_cell(power: dict[str, Any] | None) -> str:
    """`3.3 V x 6 mA`, flagged when the figure is a stand-in silicon's (†) or not checked against its datasheet."""
    if not power:
        return "-"
    cell = f"{power['supply_v']:g} V x {power['active_current_ma']:g} mA"
    if power.get("basis"):
        cell += " †"
    if not power.get("checked"):
        cell += " (unchecked)"
    return cell


def _human(console, result: dict[str, Any]) -> None:
    from formicary.cli._output import new_table

    table = new_table(title="formicary boards",
                  caption="power: datasheet typical active current at the board clock (modelled energy); "
                          "† = a representative silicon's figure, see `basis` in --json; "
                          "(unchecked) = not yet compared with the cited datasheet table")
    for col in ("name", "core", "clock", "flash", "RAM", "timing", "upload", "kind", "power"):
        table.add_column(col)
    for b in result["boards"]:
        kind = f"virtual ({b['qemu_machine']})" if b["virtual"] else "real"
        if b.get("kind") == "sbc":
            kind += ", SBC: TFLite runtime over SSH"
        elif not b["buildable"]:
            kind += ", not buildable"
        flash = "-" if b.get("kind") == "sbc" else f"{b['flash_bytes'] // 1024} KiB"
        table.add_row(b["name"], b["core"], f"{b['clock_hz'] / 1e6:g} MHz", flash,
                      f"{b['ram_bytes'] // 1024} KiB", b["timing_unit"], b["upload_protocol"], kind,
                      _power_cell(b.get("power")))
    console.print(table)


def register(app: typer.Typer) -> None:
    @app.command("boards")
    def boards(as_json: bool = JSON_OPTION) -> None:
        """List the boards formicary knows (virtual QEMU boards and real ones)."""
        from formicary.boards import list_boards

        emit({"boards": [b.to_dict() for b in list_boards()]}, as_json, _human)
