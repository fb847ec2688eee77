"""`formicary demo`: the main job on the built-in default (digits CNN → variants → virtual board → bench → report)."""
from __future__ import annotations

from pathlib import Path

import typer

from formicary.cli._output import JSON_OPTION, emit


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_command(
        out_dir: Path = typer.Option(Path("formicary-demo"), "-o", "--out", help="Where to write the artifacts."),
        seed: int = typer.Option(0, "--seed", help="Random seed for data split, training and compile."),
        board: str = typer.Option("qemu-m4", "--board", help="Virtual board to flash and bench on."),
        compile_only: bool = typer.Option(False, "--compile-only",
                                          help="Stop after compiling (no firmware, board or report)."),
        as_json: bool = JSON_OPTION,
    ) -> None:
        """Train a small CNN on scikit-learn digits, compile float32 / int8 / pruned int8 variants, flash each
        to a virtual board, bench them against TFLM and write an HTML report."""
        from formicary.workflows.demo import run_main_job, summary

        result = run_main_job(out_dir, seed=seed, board=board, compile_only=compile_only)
        emit(summary(result), as_json, _human)


def _human(console, r: dict) -> None:
    from formicary.cli.compile_cmd import render_report

    render_report(console, r)
    if not r["benches"]:
        return
    from formicary.cli._output import new_table

    first = r["benches"][0]
    unit = first["latency"]["unit"]
    table = new_table(title=f"on {first['board']} ({first['inputs']} validation digits each)")
    short = {"instructions": "instr"}.get(unit, unit)
    for col in ("variant", "model B", "flash B", "RAM B", f"median {short}", "≈ ms*", "vs TFLM", "acc.", "µJ*"):
        table.add_column(col, justify="left" if col in ("variant", "vs TFLM") else "right")
    for b in r["benches"]:
        e = b["energy"]
        table.add_row(b["variant"], f"{b['model_bytes']:,}", f"{b['flash_bytes']:,}", f"{b['ram_bytes']:,}",
                      f"{b['latency']['median']:,.0f}", f"{b['latency']['estimate_ms']:.1f}",
                      "bit-exact" if b["bit_exact"] else (f"{b['mismatches']} differ" if b["mismatches"]
                                                          else "in tol."),
                      f"{b['accuracy']:.2%}", f"{e['uj_per_inference']:.1f}" if e else "—")
    console.print(table)
    from formicary.device.session import TIMING_METHOD_TEXT

    console.print(f"latency: {TIMING_METHOD_TEXT.get(first['latency']['method'], first['latency']['method'])}")
    console.print("* ≈ ms: median at the board clock, one instruction per cycle assumed: an estimate"
                  + ("; µJ: modelled (board power model x on-device time), not measured"
                     if any(b["energy"] for b in r["benches"]) else ""))
    console.print(f"report: {r['html_report']}   runs: {r['store_path']}   total {r['seconds']:.0f} s")
