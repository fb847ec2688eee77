"""Options of the commands that can reach a board in a labgrid lab (`bench`, `verify`, `mlperf`): a place
instead of a port, the coordinator, how long to queue for a busy place, and whether to take it over."""
from __future__ import annotations

import typer

from formicary.errors import FormicaryError

PLACE_OPTION: str = typer.Option(None, "--place", help="A labgrid place holding the board (docs/lab.md): acquired "
                                                       "for the command, released at its end. Its `board` tag "
                                                       "stands for --board. Needs formicary[lab].")
COORDINATOR_OPTION: str = typer.Option(None, "--coordinator", envvar="LG_COORDINATOR",
                                       help="labgrid coordinator HOST[:PORT] (default 127.0.0.1:20408).")
WAIT_OPTION: float = typer.Option(0.0, "--wait", help="With --place: seconds to queue when someone holds the "
                                                      "place (default: report it busy at once).")
STEAL_OPTION: bool = typer.Option(False, "--steal", help="With --place: release someone else's lock on the place "
                                                         "first (they lose it mid-run; never done otherwise).")


def resolve_place(board: str | None, port: str | None, place: str | None, coordinator: str | None,
                  wait: float = 0.0, steal: bool = False) -> tuple[str | None, str | None]:
    """(board, port) for a command: with --place, the port is the place reference and a missing board is read
    from the place's `board` tag."""
    if place is None:
        if wait or steal:
            raise FormicaryError("--wait and --steal apply to --place only.", "add --place NAME, or drop them.")
        return board, port
    if port is not None:
        raise FormicaryError("--place and --port both given.", "pass one: the place's serial port is used.")
    from formicary.lab.placeref import place_port

    if board is None:
        from formicary.lab.client import LabClient
        from formicary.lab.placeref import default_coordinator

        with LabClient(coordinator or default_coordinator()) as client:
            info = client.place(place)
        if info.board is None:
            raise FormicaryError(f"place {info.name} has no `board` tag, and no --board was given.",
                                 "pass --board, or tag the place (`formicary lab places`, tag board=…).")
        board = info.board
    return board, place_port(place, coordinator, wait=wait, steal=steal)


__all__ = ["COORDINATOR_OPTION", "PLACE_OPTION", "STEAL_OPTION", "WAIT_OPTION", "resolve_place"]
