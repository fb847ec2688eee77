"""`formicary lab …`: what a lab admin needs beside labgrid (docs/lab.md): export virtual boards from a lab
host, create places from a file, see who holds what, release a place."""
from __future__ import annotations

from pathlib import Path

import typer

from formicary.cli._lab_options import COORDINATOR_OPTION
from formicary.cli._output import JSON_OPTION, emit

lab_app = typer.Typer(no_args_is_help=True, help="Boards in a labgrid lab: export virtual boards, create places, "
                                                 "status, release (docs/lab.md). Needs formicary[lab].")


def register(app: typer.Typer) -> None:
    app.add_typer(lab_app, name="lab")


def _client(coordinator: str | None, file_coordinator: str | None = None):
    from formicary.lab.client import LabClient
    from formicary.lab.placeref import default_coordinator

    return LabClient(coordinator or file_coordinator or default_coordinator())


@lab_app.command("export")
def export(config: Path = typer.Argument(..., help="Lab-host file: name, coordinator, address and [[board]] "
                                                   "tables of virtual boards (docs/lab.md)."),
           as_json: bool = JSON_OPTION) -> None:
    """Run this lab host's virtual boards: QEMU UARTs exported as NetworkSerialPort, their flash service, and
    labgrid-exporter. Runs in the foreground until Ctrl-C / SIGTERM."""
    import json

    from formicary.lab import require_labgrid
    from formicary.lab.vboards import VirtualLabHost, load_host_config

    require_labgrid("formicary lab export")
    host = VirtualLabHost(load_host_config(config))
    ready = host.start()
    if as_json:
        print(json.dumps(ready), flush=True)
    else:
        print(f"lab host {ready['name']} exporting to {ready['coordinator']} (flash service "
              f"{ready['address']}:{ready['flash_port']}):", flush=True)
        for b in ready["boards"]:
            print(f"  {ready['name']}/{b['name']}: {b['board']} on socket://{ready['address']}:{b['port']}",
                  flush=True)
    raise typer.Exit(host.serve_forever())


@lab_app.command("places")
def places(inventory: Path = typer.Argument(..., help="Places file: [[place]] tables with name, tags, matches "
                                                      "(docs/lab.md)."),
           coordinator: str = COORDINATOR_OPTION,
           as_json: bool = JSON_OPTION) -> None:
    """Create or update the places of INVENTORY (tags, matches, comment), idempotently."""
    from formicary.lab.admin import apply_places, load_places

    file_coordinator, wanted = load_places(inventory)
    with _client(coordinator, file_coordinator) as client:
        result = {"coordinator": client.coordinator, "places": apply_places(client, wanted)}
    emit(result, as_json, _render_places)


def _render_places(console, r: dict) -> None:
    for p in r["places"]:
        what = ", ".join(p["changed"]) if p["changed"] else "[dim]unchanged[/]"
        console.print(f"{p['place']}: {what}")


@lab_app.command("status")
def status(coordinator: str = COORDINATOR_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Places, their tags and lab hosts, and who holds each (stale acquisitions marked)."""
    with _client(coordinator) as client:
        out = []
        for info in client.places(refresh=True).values():
            d = info.to_dict()
            d["holder"] = client.holder(info)
            out.append(d)
        result = {"coordinator": client.coordinator, "identity": client.identity, "places": out}
    emit(result, as_json, _render_status)


def _render_status(console, r: dict) -> None:
    from formicary.cli._output import new_table

    table = new_table(title=f"places on {r['coordinator']} (you are {r['identity']})", title_justify="left")
    for col in ("place", "board", "lab host", "tags", "held by"):
        table.add_column(col)
    for p in r["places"]:
        h = p["holder"]
        held = "—" if not h["owner"] else (f"[red]{h['owner']} (stale)[/]" if h["stale"] else h["owner"])
        tags = " ".join(f"{k}={v}" for k, v in sorted(p["tags"].items()))
        table.add_row(p["name"], p["board"] or "—", ", ".join(p["lab_hosts"]) or "[red]none exporting[/]", tags,
                      held)
    console.print(table)


@lab_app.command("release")
def release(place: str = typer.Argument(..., help="The place to release."),
            coordinator: str = COORDINATOR_OPTION,
            force: bool = typer.Option(False, "--force", help="Release it even when someone else holds it."),
            as_json: bool = JSON_OPTION) -> None:
    """Release PLACE (yours, e.g. left by a killed run; someone else's only with --force)."""
    with _client(coordinator) as client:
        before = client.place(place)
        client.release(place, force=force)
        result = {"place": before.name, "was_held_by": before.acquired, "released": before.acquired is not None}
    emit(result, as_json, lambda console, r: console.print(
        f"released {r['place']} (held by {r['was_held_by']})" if r["released"] else f"{r['place']} was not held"))
