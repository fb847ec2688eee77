"""Progress display for long work. Goes to stderr so `--json` output on stdout stays clean."""
from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator

from rich.console import Console

_console = Console(stderr=True)


@contextlib.contextmanager
def step(description: str) -> Iterator[None]:
    """Show a spinner while a step runs, then one line with how long it took."""
    start = time.perf_counter()
    if _console.is_terminal:
        with _console.status(description):
            yield
    else:
        yield
    _console.print(f"[green]✓[/] {description} [dim]({time.perf_counter() - start:.1f} s)[/]")


def bar(total: int, description: str):
    """A progress bar for counted work: `with bar(n, 'runs') as advance: advance()`."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=_console, disable=not _console.is_terminal)

    @contextlib.contextmanager
    def _run() -> Iterator:
        with progress:
            task = progress.add_task(description, total=total)
            yield lambda n=1: progress.advance(task, n)
    return _run()


def warn(message: str) -> None:
    _console.print(f"[bold yellow]warning:[/] {message}")


def info(message: str) -> None:
    print(message, file=sys.stderr)
