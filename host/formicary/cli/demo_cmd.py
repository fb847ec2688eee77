"""`formicary demo`: the main job on the built-in default (digits CNN → prune 50 % → int8 → report)."""
from __future__ import annotations

from pathlib import Path

import typer

from formicary.cli._output import JSON_OPTION, emit


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_command(
        out_dir: Path = typer.Option(Path("formicary-demo"), "-o", "--out", help="Where to write the artifacts."),
        seed: int = typer.Option(0, "--seed", help="Random seed for data split, training and compile."),
        as_json: bool = JSON_OPTION,
    ) -> None:
        """Train a small CNN on scikit-learn digits, prune it to 50 %, quantize it to int8 and report."""
        from formicary.cli.compile_cmd import render_report
        from formicary.models_zoo import run_demo

        result = run_demo(out_dir, seed=seed)
        emit({"model_path": str(result.model_path), "report_path": str(result.report_path),
              "report": result.report}, as_json, render_report)
