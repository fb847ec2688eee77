"""`formicary verify MODEL.tflite --target host`: generated C vs the TFLM interpreter, byte for byte."""
from __future__ import annotations

from pathlib import Path

import typer

from formicary.cli._bench_options import (
    HOST_OPTION,
    KERNELS_OPTION,
    MEMORY_PLAN_OPTION,
    PYTHON_OPTION,
    RUNTIME_OPTION,
    THREADS_OPTION,
    WORKDIR_OPTION,
    XNNPACK_OPTION,
    sbc_options,
)
from formicary.cli._lab_options import COORDINATOR_OPTION, PLACE_OPTION, STEAL_OPTION, WAIT_OPTION, resolve_place
from formicary.cli._output import JSON_OPTION, emit


def register(app: typer.Typer) -> None:
    @app.command("verify")
    def verify(model: Path = typer.Argument(..., help="Quantized .tflite model."),
               target: str = typer.Option("host", "--target",
                                          help="Where to run formicary-rt: host, or a board (`formicary boards`)."),
               inputs: int = typer.Option(None, "--inputs",
                                          help="Number of random input sets (default 10), or the first N of --data."),
               data: Path = typer.Option(None, "--data", help=".npz or MLPerf .bin folder with y_labels.csv."),
               seed: int = typer.Option(0, "--seed", help="Seed for random inputs."),
               sanitize: bool = typer.Option(False, "--sanitize",
                                             help="Run a -fsanitize=address,undefined build in a subprocess."),
               port: str = typer.Option(None, "--port", help="With --target BOARD: serial port / pyserial URL of a "
                                                             "real board (or of a QEMU from `formicary flash`)."),
               baud: int = typer.Option(None, "--baud", help="With --port: baud rate (default: the board's)."),
               kernels: str = KERNELS_OPTION,
               memory_plan: str = MEMORY_PLAN_OPTION,
               place: str = PLACE_OPTION,
               coordinator: str = COORDINATOR_OPTION,
               wait: float = WAIT_OPTION,
               steal: bool = STEAL_OPTION,
               host: str = HOST_OPTION, python: str = PYTHON_OPTION, runtime: str = RUNTIME_OPTION,
               threads: int = THREADS_OPTION, xnnpack: bool = XNNPACK_OPTION, workdir: str = WORKDIR_OPTION,
               as_json: bool = JSON_OPTION) -> None:
        """Build the generated model for the host, run it and TFLM on the same inputs, compare every byte (an SBC
        board: run it in the board's TFLite runtime over SSH, compared with the host reference)."""
        from formicary import progress
        from formicary.bench.verify import verify_model

        if place is not None:  # --target host is the default: a place means its board
            board, port = resolve_place(None if target == "host" else target, port, place, coordinator, wait, steal)
            target = board or target

        with progress.step(f"verify {model.name} on {target}"):
            sbc = sbc_options(python, runtime, threads, xnnpack, None, workdir)
            result = verify_model(model, inputs=inputs, data=data, seed=seed, sanitize=sanitize, target=target,
                                  port=host or port, baud=baud, kernels=kernels, memory_plan=memory_plan,
                                  sbc=sbc or None)
        emit(result, as_json, _human)
        if not (result["bit_exact"] or result.get("tolerance", {}).get("ok")):
            raise typer.Exit(1)


def _human(console, r: dict) -> None:
    if r["bit_exact"]:
        status = "[green]bit-exact[/]"
    elif r.get("tolerance", {}).get("ok") and r.get("reference"):
        status = "[green]same predictions[/] (the SBC rule: argmax of output 0; floats within tolerance)"
    elif r.get("tolerance", {}).get("ok"):
        tol = r["tolerance"]
        status = f"[green]float outputs within rtol {tol['rtol']}, atol {tol['atol']}[/]"
    else:
        status = f"[red]{r['mismatches']} mismatching input(s)[/]"
    against = r["reference"]["what"] if r.get("reference") else "TFLM"
    console.print(f"{status} with {against} on {r['inputs']} input(s) (max abs diff {r['max_abs_diff']})")
    if r.get("reference"):
        from formicary.bench.runner import latency_line

        from rich.markup import escape

        rt = r["runtime"]
        console.print(escape(f"on {r['target']}: {rt['runtime']} {rt['runtime_version']} (XNNPACK {rt['xnnpack']}), "
                      f"compared with the {r['reference']['what']}; peak RSS {r['ram_bytes'] or 0:,} B; "
                      f"latency {latency_line(r)}"), highlight=False)
    elif r["target"] != "host":
        from formicary.bench.runner import latency_line

        console.print(f"on {r['target']}: arena {r['arena_bytes']:,} B, flash {r['flash_bytes']:,} B, "
                      f"RAM {r['ram_bytes']:,} B; latency {latency_line(r)}")
    else:
        console.print(f"arena: formicary-rt {r['arena_bytes']} B, lower bound {r['arena_lower_bound_bytes']} B, "
                      f"TFLM {r['tflm_arena_bytes']} B (host, bisection)")
    if r.get("accuracy"):
        a = r["accuracy"]
        console.print(f"accuracy: {a['correct']}/{a['total']} = {a['value']:.3f} (TFLM {a['tflm_correct']})")
