"""`formicary mlperf --board B MODEL DATA`: MLPerf Tiny performance and accuracy modes against a DUT running
formicary's MLPerf firmware mode (the EEMBC/MLCommons UART protocol), with formicary's own host side."""
from __future__ import annotations

from pathlib import Path

import typer

from formicary.cli._bench_options import MEMORY_PLAN_OPTION
from formicary.cli._output import JSON_OPTION, emit


class _AccuracyBar:
    """run_accuracy's progress(done, total) callback as a progress bar, opened on the first input."""

    def __init__(self) -> None:
        self._bar = None
        self._advance = None

    def __call__(self, done: int, total: int) -> None:
        from formicary import progress

        if self._advance is None:
            self._bar = progress.bar(total, "accuracy mode: inputs")
            self._advance = self._bar.__enter__()
        self._advance()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


def register(app: typer.Typer) -> None:
    @app.command("mlperf")
    def mlperf(target: Path = typer.Argument(..., help="The model (.tflite/.keras/.h5), or a project built with "
                                                       "`formicary build --firmware mlperf`."),
               data: Path = typer.Argument(..., help="MLPerf Tiny data folder: .bin inputs + y_labels.csv."),
               board: str = typer.Option(None, "--board", "-b",
                                         help="Board to build for, flash and run on (see `formicary boards`). "
                                              "A virtual board without --port is started in QEMU."),
               port: str = typer.Option(None, "--port",
                                        help="Serial port or pyserial URL of the DUT (socket://…, /dev/tty…). "
                                             "Without --board, the DUT is used as is."),
               mode: str = typer.Option("both", "--mode", help="performance, accuracy or both."),
               baud: int = typer.Option(None, "--baud", help="UART baud rate (default: the board's, else 115200)."),
               runs: int = typer.Option(None, "--runs",
                                        help="Inferences in performance mode (default: enough for --min-duration)."),
               warmup: int = typer.Option(1, "--warmup", help="Warm-up inferences before the timed ones."),
               min_duration: float = typer.Option(10.0, "--min-duration",
                                                  help="Seconds the timed run must last (MLPerf Tiny: 10)."),
               limit: int = typer.Option(None, "--limit", help="Use only the first N inputs in accuracy mode."),
               rebuild: bool = typer.Option(False, "--rebuild", help="Rebuild the firmware even if cached."),
               power: str = typer.Option(None, "--power", help="Host-side power monitor over the performance run: "
                                                              "joulescope, ppk2 or ppk2:PORT (measured energy, "
                                                              "serial-marker windows; see docs/power.md)."),
               memory_plan: str = MEMORY_PLAN_OPTION,
               as_json: bool = JSON_OPTION) -> None:
        """Run MLPerf Tiny's performance and accuracy modes over the DUT's UART (EEMBC DUT protocol)."""
        import hashlib

        from formicary import progress
        from formicary.errors import FormicaryError

        if not target.exists():
            raise FormicaryError(f"{target} not found", "pass the model the DUT runs (or is to run).")
        if board is None and port is None:
            raise FormicaryError("neither --board nor --port given",
                                 "pass --board B to build, flash and run (virtual boards start in QEMU), "
                                 "or --port URL for a DUT that already runs the MLPerf firmware mode.")
        monitor = None
        if power:
            from formicary.power import open_power_source

            monitor = open_power_source(power)
        bar = _AccuracyBar()
        try:
            if board is not None:
                from formicary.cli._models import model_for_board
                from formicary.mlperf.board import run_mlperf_on_board

                with progress.step(f"mlperf {mode} on {board}" + (f" ({port})" if port else "")):
                    result = run_mlperf_on_board(model_for_board(target, board), board, data, port=port, baud=baud, mode=mode, n=runs,
                                                 warmup=warmup, min_duration_s=min_duration, limit=limit,
                                                 rebuild=rebuild, progress=bar, power_source=monitor,
                                                 memory_plan=memory_plan)
            else:
                from formicary.mlperf.runner import DEFAULT_BAUD, run_mlperf

                with progress.step(f"mlperf {mode} on {port}"):
                    result = run_mlperf(port, data, mode=mode, baud=baud or DEFAULT_BAUD, n=runs, warmup=warmup,
                                        min_duration_s=min_duration, limit=limit, progress=bar,
                                        power_source=monitor)
                result["board"] = None
        finally:
            bar.close()
        if target.is_file():
            result["model"] = {"path": str(target), "sha256": hashlib.sha256(target.read_bytes()).hexdigest()}
        else:
            result["model"] = {"path": str(target), "sha256": None}
        emit(result, as_json, _human)


def _human(console, r: dict) -> None:
    dut = r["dut"]
    console.print(f"DUT {dut['name']} ({dut['profile']}, model {dut['model']}) on {r['port']}")
    if "performance" in r:
        p = r["performance"]
        clock = " of QEMU virtual time" if "latency_instructions" in p else ""
        console.print(f"performance: {p['inferences']} inferences in {p['duration']['value']:.3f} s{clock} -> "
                      f"{p['latency']['value']:.1f} µs/inference, {p['throughput']['value']:.2f} inferences/s"
                      + ("" if p["meets_min_duration"] else "  [yellow](shorter than the 10 s MLPerf minimum)[/]"))
        if "latency_instructions" in p:
            est = p["latency_estimate"]
            console.print(f"  = {p['latency_instructions']['value']:,} instructions/inference "
                          f"(≈ {est['value'] / 1000:.1f} ms {est['method']})")
        console.print(f"  [dim]how: {p['latency']['method']}[/]")
        if "energy" in p:
            e = p["energy"]
            short = e["source"].split(" (")[0]  # the full datasheet citation is in --json
            console.print(f"energy: {e['uj_per_inference']:.2f} µJ/inference ([bold]{e['method']}[/]: {short}; "
                          "full source in --json)")
    if "accuracy" in r:
        a = r["accuracy"]
        console.print(f"accuracy: {a['correct']}/{a['inputs']} = {a['accuracy']['value']:.3f} top-1")
