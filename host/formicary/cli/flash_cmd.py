"""`formicary flash PROJECT|MODEL --board B [--port URL]`: upload; virtual boards start QEMU."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from formicary.cli._output import JSON_OPTION, emit
from formicary.cli.build_cmd import FIRMWARE_OPTION, MODEL_ID_OPTION


def _human(console, r: dict[str, Any]) -> None:
    if r["virtual"]:
        console.print(f"virtual board {r['board']} started; it waits for the host: {r['url']}")
        console.print(f"stop it with: {r['stop']}")
    else:
        console.print(f"flashed {r['board']} with {r['upload_protocol']}")


def register(app: typer.Typer) -> None:
    @app.command("flash")
    def flash(target: Path = typer.Argument(..., help="Project from `formicary build`, or a model to build."),
              board: str = typer.Option(..., "--board", "-b", help="Board name (see `formicary boards`)."),
              port: str = typer.Option(None, "--port", help="Upload/serial port of a real board."),
              out: Path = typer.Option(None, "-o", "--out", help="Project folder when TARGET is a model."),
              firmware: str = FIRMWARE_OPTION,
              model_id: str = MODEL_ID_OPTION,
              as_json: bool = JSON_OPTION) -> None:
        """Flash a firmware; for a virtual board, start QEMU and print the serial URL."""
        from formicary.cli._models import model_for_board
        from formicary.target.flash import flash as do_flash

        emit(do_flash(model_for_board(target, board, out), board, port=port, out_dir=out, firmware_mode=firmware,
                      mlperf_model_id=model_id), as_json, _human)
