"""Options shared by the commands that bench (`bench`, `fleet`): same names, same help, same defaults."""
from __future__ import annotations

from pathlib import Path

import typer

DATA_OPTION: Path = typer.Option(None, "--data", help="Labelled inputs: MLPerf .bin folder or .npz.")
INPUTS_OPTION: int = typer.Option(None, "--inputs", help="Use the first N inputs of --data, or N random inputs "
                                                         "without --data (default 10).")
WARMUP_OPTION: int = typer.Option(1, "--warmup", help="Untimed inferences before the first timed one.")
PROFILE_OPTION: bool = typer.Option(False, "--profile", help="Per-layer timings.")
STORE_OPTION: Path = typer.Option(None, "--store", envvar="FORMICARY_STORE",
                                  help="Results store (SQLite); default in the user data directory.")
MEMORY_PLAN_OPTION: str = typer.Option(None, "--memory-plan", help="Arena plan: liveness, in-place (outputs overlap "
                                       "dying inputs where the kernels' access patterns allow), patch, or auto "
                                       "(default: the smallest within +10 % instructions of liveness).")
KERNELS_OPTION: str = typer.Option(None, "--kernels", help="Kernel set (a folder of firmware/kernels/, e.g. "
                                                          "reference) instead of the board's, for A/B runs.")

# SBC boards (a TFLite runtime over SSH): how to reach the board and run the model there.
HOST_OPTION: str = typer.Option(None, "--host", help="SBC boards: user@addr[:port] or an ~/.ssh/config alias "
                                                     "(default: the board file's; the virtual SBC boots its own).")
PYTHON_OPTION: str = typer.Option(None, "--python", help="SBC boards: the board's Python that runs the agent "
                                                         "(default: the board file's `python`).")
RUNTIME_OPTION: str = typer.Option(None, "--runtime", help="SBC boards: tflite_runtime, ai_edge_litert or "
                                                           "tensorflow.lite (default: the first found, in that order).")
THREADS_OPTION: int = typer.Option(None, "--threads", help="SBC boards: interpreter threads (default: the "
                                                           "runtime's).")
XNNPACK_OPTION: bool = typer.Option(None, "--xnnpack/--no-xnnpack", help="SBC boards: force the XNNPACK delegate "
                                                                         "off (the builtin kernels) or say "
                                                                         "it is wanted (default: the runtime's).")
SENSOR_OPTION: str = typer.Option("auto", "--sensor", help="SBC boards: power sensor read on the board: auto "
                                                           "(INA2xx hwmon, else a Pi 5 PMIC), none, hwmon[:PATH], "
                                                           "pmic, ina219[:BUS:ADDR:SHUNT_OHM], ina226[...].")
WORKDIR_OPTION: str = typer.Option(None, "--workdir", help="SBC boards: folder on the board for the agent and "
                                                           "the model (default /tmp/formicary).")


def sbc_options(python: str | None, runtime: str | None, threads: int | None, xnnpack: bool | None,
                sensor: str | None, workdir: str | None) -> dict:
    """The SBC-only options given, as run_bench(sbc=...) takes them (only those set, so an MCU run with none
    of them is not refused)."""
    given = {"python": python, "runtime": runtime, "threads": threads, "xnnpack": xnnpack, "workdir": workdir}
    out = {k: v for k, v in given.items() if v is not None}
    if sensor not in (None, "auto"):
        out["sensor"] = sensor
    return out
