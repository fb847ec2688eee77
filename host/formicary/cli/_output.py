"""One way to print a command's result: a human view, or stable JSON with `--json`."""
from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

# Not a terminal (CI logs, pipes): rich would lay tables out in 80 columns and cut numbers; use a wide layout
# instead ($COLUMNS when set). On a terminal its width is used, and table cells wrap rather than being cut.
WIDE_LAYOUT_COLUMNS = 160


def _console_width() -> int | None:
    if sys.stdout.isatty():
        return None
    given = os.environ.get("COLUMNS", "")
    return int(given) if given.isdigit() else max(WIDE_LAYOUT_COLUMNS, shutil.get_terminal_size().columns)


console = Console(width=_console_width())


class _WrappingTable(Table):
    """A rich Table whose cells wrap (fold) when space runs out, so a number is never shown cut ("391,8…")."""

    def add_column(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("overflow", "fold")
        super().add_column(*args, **kwargs)


def new_table(*args: Any, **kwargs: Any) -> Table:
    """The table every command prints with (see _WrappingTable)."""
    return _WrappingTable(*args, **kwargs)

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
