"""The `formicary` command line: a thin layer that parses options, calls a stage's API and renders the result.

Each command lives in its own `*_cmd.py` module exposing `register(app)`; heavy libraries (TensorFlow above
all) are imported inside command bodies so that light commands such as `inspect` start fast.
"""
from __future__ import annotations

import importlib
import json
import sys

import typer

from formicary.errors import FormicaryError

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Shrink, compile, flash and benchmark deep-learning models on microcontrollers.")

# Order here is the order in `formicary --help`.
_COMMAND_MODULES = ["demo", "compile", "adapt", "moe", "inspect", "codegen", "export", "verify", "boards", "build",
                    "flash", "bench", "runs", "report", "fleet", "lab", "mlperf", "kernels"]

# Every command module must import: a broken one fails the whole CLI loudly instead of vanishing from --help.
for _name in _COMMAND_MODULES:
    importlib.import_module(f"formicary.cli.{_name}_cmd").register(app)


def main() -> None:
    """Entry point: runs the app and turns a FormicaryError into one clear message and exit code 2."""
    try:
        app()
    except FormicaryError as err:
        if "--json" in sys.argv[1:]:
            print(json.dumps({"error": err.to_dict()}, indent=2, default=str))
        else:
            print(f"error: {err.cause}", file=sys.stderr)
            if err.fix:
                print(f"  fix: {err.fix}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
