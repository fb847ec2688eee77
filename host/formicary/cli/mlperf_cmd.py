"""`formicary mlperf --board B MODEL DATA`: MLPerf Tiny performance and accuracy modes against a DUT running
formicary's MLPerf firmware mode (the EEMBC/MLCommons UART protocol), with formicary's own host side."""
from __future__ import annotations

from pathlib import Path

import typer

from formicary.cli._output import JSON_OPTION, emit


def register(app: typer.Typer) -> None:
    @app.command("mlperf")
    def mlperf(model: Path = typer.Argument(..., help="The .tflite model the DUT runs (recorded with the results)."),
               data: Path = typer.Argument(..., help="MLPerf Tiny data folder: .bin inputs + y_labels.csv."),
               board: str = typer.Option(None, "--board", help="Board the DUT is (see `formicary boards`)."),
               port: str = typer.Option(None, "--port",
                                        help="Serial port or pyserial URL of the DUT (socket://…, /dev/tty…)."),
               mode: str = typer.Option("both", "--mode", help="performance, accuracy or both."),
               baud: int = typer.Option(115200, "--baud", help="UART baud rate (MLPerf Tiny default 115200)."),
               runs: int = typer.Option(None, "--runs",
                                        help="Inferences in performance mode (default: enough for --min-duration)."),
               warmup: int = typer.Option(1, "--warmup", help="Warm-up inferences before the timed ones."),
               min_duration: float = typer.Option(10.0, "--min-duration",
                                                  help="Seconds the timed run must last (MLPerf Tiny: 10)."),
               limit: int = typer.Option(None, "--limit", help="Use only the first N inputs in accuracy mode."),
               as_json: bool = JSON_OPTION) -> None:
        """Run MLPerf Tiny's performance and accuracy modes over the DUT's UART."""
        from formicary import progress
        from formicary.errors import FormicaryError
        from formicary.mlperf.runner import run_mlperf

        if not model.is_file():
            raise FormicaryError(f"model {model} not found", "pass the .tflite the DUT was built with.")
        if port is None:
            raise FormicaryError(
                "no --port given, and building and flashing the MLPerf firmware mode for a board is not wired yet",
                "flash a DUT with the MLPerf firmware mode (docs/mlperf.md) and pass its serial URL with --port.")
        with progress.step(f"mlperf {mode} on {port}"):
            result = run_mlperf(port, data, mode=mode, baud=baud, n=runs, warmup=warmup,
                                min_duration_s=min_duration, limit=limit)
        import hashlib
        result["model"] = {"path": str(model), "sha256": hashlib.sha256(model.read_bytes()).hexdigest()}
        result["board"] = board
        emit(result, as_json, _human)


def _human(console, r: dict) -> None:
    dut = r["dut"]
    console.print(f"DUT {dut['name']} ({dut['profile']}, model {dut['model']}) on {r['port']}")
    if "performance" in r:
        p = r["performance"]
        console.print(f"performance: {p['inferences']} inferences in {p['duration']['value']:.3f} s -> "
                      f"{p['latency']['value']:.1f} µs/inference ({p['latency']['method']}), "
                      f"{p['throughput']['value']:.2f} inferences/s"
                      + ("" if p["meets_min_duration"] else "  [yellow](shorter than the 10 s MLPerf minimum)[/]"))
    if "accuracy" in r:
        a = r["accuracy"]
        console.print(f"accuracy: {a['correct']}/{a['inputs']} = {a['accuracy']['value']:.3f} top-1")
