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

    Fleets add `device` (the inventory's worker id) and `model` to each event: the bar is then one per device,
    labelled "device [board]", and its status names the model being benched.
    Thread-safe enough for fleets: rich's Progress locks internally; every board gets its own task.
    """

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        from rich.table import Column

        # the board/device label never shrinks; a long status (a failure message) is cut instead
        self._progress = Progress(TextColumn("{task.description}", table_column=Column(no_wrap=True)),
                                  BarColumn(bar_width=16), MofNCompleteColumn(),
                                  TextColumn("{task.fields[status]}",
                                             table_column=Column(no_wrap=True, overflow="ellipsis", max_width=32)),
                                  TimeElapsedColumn(), console=_console, disable=not _console.is_terminal)
        self._tasks: dict[str, int] = {}

    def __enter__(self) -> "BoardProgress":
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def _task(self, key: str, label: str) -> int:
        if key not in self._tasks:
            self._tasks[key] = self._progress.add_task(label, total=None, status="")
        return self._tasks[key]

    def __call__(self, event: dict) -> None:
        from rich.markup import escape

        board = str(event.get("board", "?"))
        device = event.get("device")
        key = str(device) if device else board
        label = f"{device} [{board}]" if device else board
        model = f"{escape(str(event['model']))}: " if event.get("model") else ""
        kind = event.get("event")
        task = self._task(key, escape(label))  # "[board]" is not rich markup
        if kind == "build":
            self._progress.update(task, status=f"{model}building firmware")
        elif kind == "flash":
            self._progress.update(task, status=f"{model}flashing ({event.get('how')})")
        elif kind == "start":
            self._progress.update(task, total=event["total"], completed=0, status=f"{model}running")
        elif kind == "inference":
            self._progress.update(task, completed=event["done"])
        elif kind == "done":
            self._progress.update(task, status=f"{model}[green]done[/]")
        elif kind == "failed":
            self._progress.update(task, status=f"{model}[red]failed[/]: {escape(str(event.get('message', '')))}")
        elif kind == "busy":
            self._progress.update(task, status=f"waiting for {escape(str(event.get('place')))} (held by "
                                               f"{escape(str(event.get('owner')))})")
        elif kind == "acquired":
            self._progress.update(task, status=f"acquired {escape(str(event.get('place')))}")
        elif kind == "warning":
            self._progress.console.print(f"[bold yellow]warning:[/] {escape(label)}: "
                                         f"{escape(str(event.get('message')))}")
        if not _console.is_terminal and kind in ("build", "flash", "start", "done", "failed", "busy", "acquired"):
            # no live display (CI logs): one line per phase instead
            extra = (f" ({event.get('total')} inferences)" if kind == "start" else
                     f": {event.get('message', '')}" if kind == "failed" else
                     f" {event.get('place')} (held by {event.get('owner')})" if kind == "busy" else
                     f" {event.get('place')}" if kind == "acquired" else "")
            plain = f"{event['model']}: " if event.get("model") else ""
            print(f"{label}: {plain}{kind}{extra}", file=sys.stderr)
