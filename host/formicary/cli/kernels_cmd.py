"""`formicary kernels`: the kernel sets (`list`) and the on-board kernel check (`check`): randomized single-op int8
cases in one firmware on a virtual board, every output compared with TFLM (formicary.bench.kernel_check)."""
from __future__ import annotations

import typer

from formicary.cli._output import JSON_OPTION, emit, new_table


def register(app: typer.Typer) -> None:
    kernels_app = typer.Typer(no_args_is_help=True, help="Kernel sets: list them, check them on a virtual board.")
    app.add_typer(kernels_app, name="kernels")

    @kernels_app.command("list")
    def list_sets(as_json: bool = JSON_OPTION) -> None:
        """The kernel sets, their base sets and the kernel files each provides itself."""
        from formicary.codegen import kernel_sets

        rows = []
        for name in kernel_sets.available_kernel_sets():
            k = kernel_sets.kernel_set(name)
            rows.append({"name": name, "base": k.base, "files": k.files(), "description": k.description})
        emit({"kernel_sets": rows}, as_json, _human_list)

    @kernels_app.command("check")
    def check(board: str = typer.Option("qemu-m4", "--board", help="A virtual board (qemu-m4, qemu-m7, qemu-m55)."),
              kernels: str = typer.Option(None, "--kernels", help="Kernel set (default: the board's)."),
              cases: int = typer.Option(60, "--cases", help="Number of random single-op cases."),
              seed: int = typer.Option(0, "--seed", help="Seed of the shapes, quantization and inputs."),
              ops: str = typer.Option(None, "--ops", help="Comma-separated subset of: conv, conv_1x1, "
                                      "conv_few_channels, depthwise, fully_connected, average_pool, max_pool, add, "
                                      "hard_swish, leaky_relu, prelu, transpose_conv."),
              timeout: float = typer.Option(60.0, "--timeout", help="Seconds the firmware may run."),
              as_json: bool = JSON_OPTION) -> None:
        """Run random int8 cases of the set's kernels on the board's real instructions; exit 1 on any mismatch."""
        from formicary import progress
        from formicary.bench.kernel_check import OPS, run_check

        chosen = tuple(o.strip() for o in ops.split(",") if o.strip()) if ops else OPS
        with progress.step(f"kernel check on {board}"):
            result = run_check(board, kernels, cases=cases, seed=seed, ops=chosen, timeout=timeout)
        emit(result, as_json, _human_check)
        if not result["bit_exact"]:
            raise typer.Exit(1)


def _human_list(console, r: dict) -> None:
    table = new_table("set", "base", "own files", "description")
    for k in r["kernel_sets"]:
        table.add_row(k["name"], k["base"] or "-", str(len(k["files"])), k["description"])
    console.print(table)


def _human_check(console, r: dict) -> None:
    ok = "[green]all bit-exact[/]" if r["bit_exact"] else f"[red]{r['failed']} mismatching case(s)[/]"
    console.print(f"{r['kernels']} kernels on {r['board']} ({r['core']}): {r['passed']}/{r['cases']} cases match "
                  f"TFLM, {ok} (seed {r['seed']}; build {r['build_seconds']} s, run {r['run_seconds']} s)")
    for m in r["mismatches"]:
        params = ", ".join(f"{k}={v}" for k, v in m["params"].items())
        console.print(f"  case {m['case']} {m['opcode']} ({m['op']}): {m['reason']}"
                      + (f", first at {m['first_diff_index']}, max |diff| {m['max_abs_diff']}"
                         if "first_diff_index" in m else "") + f"\n    {params}")
