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


class BoardProgress:
    """Live progress for bench events (`formicary.bench.runner` on_event), one bar per board.

    Thread-safe enough for fleets: rich's Progress locks internally; every board gets its own task.
    """

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=_console,
                                  disable=not _console.is_terminal)
        self._tasks: dict[str, int] = {}

    def __enter__(self) -> "BoardProgress":
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def _task(self, board: str) -> int:
        if board not in self._tasks:
            self._tasks[board] = self._progress.add_task(board, total=None, status="")
        return self._tasks[board]

    def __call__(self, event: dict) -> None:
        board = str(event.get("board", "?"))
        kind = event.get("event")
        task = self._task(board)
        if kind == "build":
            self._progress.update(task, status="building firmware")
        elif kind == "flash":
            self._progress.update(task, status=f"flashing ({event.get('how')})")
        elif kind == "start":
            self._progress.update(task, total=event["total"], completed=0, status="running")
        elif kind == "inference":
            self._progress.update(task, completed=event["done"])
        elif kind == "done":
            self._progress.update(task, status="[green]done[/]")
        elif kind == "failed":
            self._progress.update(task, status=f"[red]failed[/]: {event.get('message', '')}")
        elif kind == "warning":
            self._progress.console.print(f"[bold yellow]warning:[/] {board}: {event.get('message')}")
        if not _console.is_terminal and kind in ("build", "flash", "start", "done", "failed"):
            # no live display (CI logs): one line per phase instead
            print(f"{board}: {kind}" + (f" ({event.get('total')} inferences)" if kind == "start" else ""),
                  file=sys.stderr)
