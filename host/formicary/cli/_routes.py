"""Human view of a run's routes (bench and `runs show`): which subgraphs (experts) the inferences ran, how often,
and the latency and accuracy of each route. The JSON keys are `routes` and `subgraphs` (docs/bench-json.md)."""
from __future__ import annotations

from typing import Any


def _names(route: dict[str, Any]) -> str:
    return " + ".join(n if n is not None else f"#{i}" for i, n in zip(route["subgraphs"], route["names"]))


def print_routes(console, run: dict[str, Any], *, always: bool = False) -> None:
    """A table per route when the inferences took more than one (or `always`), plus the expert-usage histogram;
    one line for a single route; nothing when the firmware reported no routes."""
    from formicary.cli._output import new_table

    routes = run.get("routes")
    if not routes:
        if always:
            console.print("  routes    not recorded (firmware without routes, or a run stored before them)")
        return
    lat = run.get("latency") or {}
    unit, method = lat.get("unit") or "?", lat.get("method") or "?"
    if len(routes) == 1 and not always:
        return
    if len(routes) == 1:
        r = routes[0]
        console.print(f"  routes    one: {r['mask']:#x} ({_names(r)}) for all {r['count']} inferences")
        return
    table = new_table(title=f"per route: latency in {unit} ({method}); accuracy on labelled inputs")
    for col in ("route", "subgraphs", "inferences", "share", "min", "median", "p90", "max", "inputs", "accuracy"):
        table.add_column(col, justify="left" if col in ("route", "subgraphs") else "right")
    for r in routes:
        s = r["latency"]
        table.add_row(f"{r['mask']:#x}", _names(r), str(r["count"]), f"{100 * r['share']:.1f} %",
                      *(f"{s[k]:,.0f}" if s.get(k) is not None else "—" for k in ("min", "median", "p90", "max")),
                      str(r["inputs"]),
                      f"{100 * r['accuracy']:.1f} % of {r['labelled']}" if r["accuracy"] is not None else "—")
    console.print(table)
    usage = [g for g in run.get("subgraphs") or [] if g.get("inferences") is not None]
    if usage:
        console.print("expert usage (inferences that ran each subgraph): " + ", ".join(
            f"{g['index']} {g['name']} {g['inferences']} ({100 * g['share']:.0f} %)" for g in usage), highlight=False)
