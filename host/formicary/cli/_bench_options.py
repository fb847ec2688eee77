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
