"""One way to print a command's result: a human view, or stable JSON with `--json`."""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console

console = Console()

JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON (stable keys, documented in docs/).")


def emit(result: dict[str, Any], as_json: bool, human: Callable[[Console, dict[str, Any]], None]) -> None:
    """Print `result` as JSON (stdout, nothing else) or through the `human` renderer."""
    if as_json:
        print(json.dumps(result, indent=2, sort_keys=False, default=_jsonable))
    else:
        human(console, result)


def _jsonable(value: Any) -> Any:
    # numpy scalars/arrays and paths show up in results; make them plain JSON.
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
