"""`place:NAME[@HOST:PORT][?wait=S&steal=1]`: a labgrid place written where a serial port is accepted (bench,
verify, mlperf, fleet workers, the pytest plugin), so every command that reaches a board through the target
layer reaches a lab board the same way. Without `@…` the coordinator comes from $LG_COORDINATOR, else
127.0.0.1:20408 (labgrid's default port). `wait`: seconds to queue for a place someone holds (default 0: report
it busy at once); `steal=1`: release their lock first (never done unless asked)."""
from __future__ import annotations

import os
from dataclasses import dataclass

PREFIX = "place:"
DEFAULT_PORT = 20408


def default_coordinator() -> str:
    return os.environ.get("LG_COORDINATOR") or f"127.0.0.1:{DEFAULT_PORT}"


def normalize_coordinator(address: str) -> str:
    """HOST[:PORT] with labgrid's default port added."""
    address = address.strip()
    if address.startswith("["):  # [v6]:port
        return address if "]:" in address else f"{address}:{DEFAULT_PORT}"
    return address if ":" in address else f"{address}:{DEFAULT_PORT}"


@dataclass(frozen=True)
class PlaceRef:
    name: str
    coordinator: str
    wait: float = 0.0
    steal: bool = False
    held: bool = False   # already acquired by this process (a fleet worker holds its place for all its models)

    def __str__(self) -> str:
        query = "&".join(q for q in (f"wait={self.wait:g}" if self.wait else "", "steal=1" if self.steal else "",
                                     "held=1" if self.held else "") if q)
        return f"{PREFIX}{self.name}@{self.coordinator}" + (f"?{query}" if query else "")


def is_place(port: str | None) -> bool:
    return bool(port) and str(port).startswith(PREFIX)


def parse(port: str) -> PlaceRef:
    from urllib.parse import parse_qs

    from formicary.errors import FormicaryError

    rest, _, query = port[len(PREFIX):].partition("?")
    name, _, coord = rest.partition("@")
    if not name:
        raise FormicaryError(f"{port!r} names no place.", "write place:NAME, e.g. place:lab/l4r5-03.")
    q = parse_qs(query)
    try:
        wait = float(q.get("wait", ["0"])[0])
    except ValueError as exc:
        raise FormicaryError(f"{port!r}: wait must be a number of seconds.", "e.g. ?wait=60.") from exc
    return PlaceRef(name=name, coordinator=normalize_coordinator(coord or default_coordinator()), wait=wait,
                    steal=q.get("steal", ["0"])[0] in ("1", "true", "yes"),
                    held=q.get("held", ["0"])[0] in ("1", "true", "yes"))


def place_port(name: str, coordinator: str | None = None, *, wait: float = 0.0, steal: bool = False,
               held: bool = False) -> str:
    """The port string of place NAME (the coordinator made explicit, so that worker processes agree)."""
    return str(PlaceRef(name, normalize_coordinator(coordinator or default_coordinator()), wait, steal, held))


__all__ = ["PREFIX", "PlaceRef", "default_coordinator", "is_place", "normalize_coordinator", "parse", "place_port"]
