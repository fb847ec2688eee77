"""The model argument of the commands that run a model on a board: a `formicary build` project or a .tflite
pass through; a Keras model or SavedModel is compiled first (default options), because the stages below the
compiler (build, targets, bench) take .tflite models only."""
from __future__ import annotations

from pathlib import Path


def model_for_board(target: Path, board: str | None = None, out_dir: Path | None = None) -> Path:
    """TARGET as the build, target and bench stages take it (see the module docstring)."""
    if target.is_dir() and (target / "formicary-build.json").is_file():
        return target
    from formicary.compile import to_tflite

    return to_tflite(target, out_dir, board=board)
