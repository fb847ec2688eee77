"""`formicary build MODEL --board B -o PROJECT`: codegen + PlatformIO project + `pio run`, with fit check."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from formicary.cli._bench_options import KERNELS_OPTION, MEMORY_PLAN_OPTION
from formicary.cli._output import JSON_OPTION, emit

FIRMWARE_OPTION = typer.Option(
    "bench", "--firmware",
    help="What the firmware speaks: bench (formicary's protocol, per-layer timers), mlperf (MLPerf Tiny / "
         "EEMBC DUT protocol, performance mode) or mlperf-energy (EnergyRunner energy mode, timestamps on D7).")


def _human(console, r: dict[str, Any]) -> None:
    console.print(f"built {r['elf']} ({r['firmware_mode']} firmware, optimised for {r['optimize']}, "
                  f"{r['kernels']} kernels)")
    console.print(f"flash: {r['flash_bytes']:,} of {r['flash_capacity_bytes']:,} bytes "
                  f"({100 * r['flash_bytes'] / r['flash_capacity_bytes']:.1f} %); "
                  f"RAM: {r['ram_bytes']:,} of {r['ram_capacity_bytes']:,} bytes "
                  f"({100 * r['ram_bytes'] / r['ram_capacity_bytes']:.1f} %, incl. stack)")


def register(app: typer.Typer) -> None:
    @app.command("build")
    def build(model: Path = typer.Argument(..., help="Model: .tflite (or a Keras model, compiled first)."),
              board: str = typer.Option(..., "--board", "-b", help="Board name (see `formicary boards`)."),
              out: Path = typer.Option(..., "-o", "--out", help="Folder for the PlatformIO project."),
              firmware: str = FIRMWARE_OPTION,
              optimize: str = typer.Option("speed", "--optimize",
                                           help="speed (-O2, default) or size (-Os: smaller, slower kernels)."),
              kernels: str = KERNELS_OPTION,
              memory_plan: str = MEMORY_PLAN_OPTION,
              as_json: bool = JSON_OPTION) -> None:
        """Generate C for the model, a PlatformIO project for the board, and build the firmware offline."""
        from formicary.build import build_model
        from formicary.cli._models import model_for_board

        result = build_model(model_for_board(model, board, out), board, out, firmware_mode=firmware,
                             optimize=optimize, kernels=kernels,
                             memory_plan=memory_plan).to_dict()
        result["firmware_mode"], result["optimize"] = firmware, optimize
        result["units"] = {"flash_bytes": "bytes", "ram_bytes": "bytes", "method": "arm-none-eabi-size -A"}
        emit(result, as_json, _human)
