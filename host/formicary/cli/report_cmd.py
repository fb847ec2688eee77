"""`formicary report [RUNS…] -o report.html [--png-dir DIR]`: a self-contained HTML report of stored runs."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from formicary.cli._output import JSON_OPTION, emit
from formicary.cli.runs_cmd import STORE_OPTION


def _human(console, result: dict[str, Any]) -> None:
    console.print(f"wrote {result['path']} ({result['bytes'] // 1024} KiB, runs "
                  f"{', '.join(map(str, result['runs']))}, {len(result['plots'])} plots)")
    for p in result["plots"]:
        if p["png"]:
            console.print(f"  {p['png']}")


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(runs: list[str] = typer.Argument(None, help="Run ids or uid prefixes (default: the latest runs)."),
               output: Path = typer.Option(Path("report.html"), "-o", "--output", help="HTML file to write."),
               png_dir: Path | None = typer.Option(None, "--png-dir", help="Also write every plot as PNG here."),
               model: str | None = typer.Option(None, help="Without RUNS: only this model (name/sha256)."),
               board: str | None = typer.Option(None, help="Without RUNS: only this board."),
               last: int = typer.Option(20, help="Without RUNS: how many of the latest runs."),
               title: str = typer.Option("formicary benchmark report", help="Report title."),
               store: Path | None = STORE_OPTION, as_json: bool = JSON_OPTION) -> None:
        """Write one self-contained HTML report (latency distributions, per-layer times, variant trade-offs)."""
        from formicary import progress
        from formicary.report import build_report
        from formicary.store import ResultStore

        with ResultStore(store) as s:
            if runs:
                ids = [s.resolve(r) for r in runs]
            else:
                ids = [r["id"] for r in s.list_runs(model=model, board=board, limit=last)][::-1]
            data = [s.get_run(i) for i in ids]
        with progress.step(f"report on {len(data)} run(s)"):
            result = build_report(data, output, png_dir, title=title)
        emit(result, as_json, _human)
