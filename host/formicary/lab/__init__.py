"""formicary as a labgrid client: boards kept in a lab (several hosts, shared by people and CI jobs).

labgrid (`pip install 'formicary[lab]'`) runs the lab: a coordinator, exporters on the lab hosts exporting
serial ports, debug probes and power switches, and "places" that clients reserve and acquire. formicary never
runs a board server of its own; it talks to the coordinator through labgrid's Python API:
- `client`: a connection to the coordinator (places, acquire/release, reservations, who holds what);
- `placeref`: the `place:NAME[@COORDINATOR]` reference that stands for a board wherever a port is accepted;
- `vboards`: the lab-host side for virtual boards (QEMU exported as `NetworkSerialPort`, flashed by a small
  exporter-side service that restarts the QEMU with the new image);
- `admin`: places with tags and matches from an inventory file, idempotently.

docs/lab.md describes a real lab and what was run here.
"""
from __future__ import annotations

from formicary.errors import FormicaryError

INSTALL_FIX = ("install formicary's lab extra: `pip install 'formicary[lab]'` (it brings labgrid 26.x and "
               "pyserial-labgrid, which replaces pyserial's `serial` module; see docs/lab.md).")


def require_labgrid(what: str = "this command") -> None:
    """Raise a FormicaryError that says how to install labgrid when it is missing."""
    try:
        import labgrid.remote.client  # noqa: F401
    except ImportError as exc:
        raise FormicaryError(f"{what} needs labgrid, which is not installed ({exc}).", INSTALL_FIX) from exc


__all__ = ["INSTALL_FIX", "require_labgrid"]
