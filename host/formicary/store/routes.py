"""Routes: which subgraphs of a model each inference ran (the firmware's fm_model_route() mask), aggregated into
the expert-usage histogram and per-route latency and accuracy. One definition shared by bench, the store and
reports (docs/bench-json.md, `routes` and `subgraphs`).

A route is a bitmask: bit i set when subgraph i ran (bit 0 = the main graph, always set); bit 31 also stands
for every subgraph beyond 31. A model with one subgraph has the single route 1.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from formicary.store.stats import summarize

MAX_BIT = 31
_ROUTE_LATENCY = ("count", "min", "median", "p90", "p99", "max", "mean")


def route_bits(mask: int) -> list[int]:
    """Subgraph indices set in `mask`, lowest first (bit 31 means "31 or beyond")."""
    return [i for i in range(MAX_BIT + 1) if mask >> i & 1]


def runs_subgraph(mask: int, subgraph: int) -> bool:
    """Whether a route ran `subgraph` (as far as the mask can tell: any index >= 31 shares bit 31)."""
    return bool(mask >> min(subgraph, MAX_BIT) & 1)


def subgraph_usage(routes: Sequence[int | None] | None, names: Sequence[str] | None,
                   ops: Sequence[int] | None = None) -> list[dict[str, Any]] | None:
    """The expert-usage histogram: per subgraph of the model its `index`, `name`, `ops`, and how many measured
    inferences ran it (`inferences`) and what share of them (`share`); both null when the routes are unknown.
    Subgraphs no inference ran are listed with 0: an expert the gate never picks is worth seeing."""
    if names is None:
        return None
    known = [r for r in routes or [] if r is not None]
    out = []
    for i, name in enumerate(names):
        n = sum(1 for r in known if runs_subgraph(r, i)) if known else None
        out.append({"index": i, "name": name, "ops": None if ops is None or i >= len(ops) or ops[i] is None else int(ops[i]),
                    "inferences": n, "share": None if n is None else n / len(known)})
    return out


def summarize_routes(samples: Sequence[float], routes: Sequence[int | None] | None, *,
                     names: Sequence[str] | None = None, outputs: Sequence[dict[str, Any]] | None = None,
                     unit: str | None = None, method: str | None = None) -> list[dict[str, Any]] | None:
    """One entry per distinct route, most used first: `mask`, `subgraphs` (indices), `names` (their names when
    known), `count` and `share` of the measured inferences, `latency` (count/min/median/p90/p99/max/mean of the
    samples of that route, with the run's `unit` and `method`), and per input (`outputs[].route`) `inputs`,
    `labelled` and `accuracy` (null without labels).

    `routes[i]` is the route of `samples[i]`; None when the firmware did not report routes (older firmware, runs
    recorded before routes): then the result is None. Inferences whose route is unknown are left out.
    """
    if routes is None:
        return None
    if len(routes) != len(samples):
        raise ValueError(f"{len(routes)} routes for {len(samples)} latency samples")
    by_route: dict[int, list[float]] = {}
    for value, route in zip(samples, routes):
        if route is not None:
            by_route.setdefault(int(route), []).append(value)
    if not by_route:
        return None
    total = sum(len(v) for v in by_route.values())
    entries = []
    for mask, values in sorted(by_route.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        bits = route_bits(mask)
        stats = summarize(values)
        ins = [o for o in outputs or [] if o.get("route") == mask]
        labelled = [o for o in ins if o.get("label") is not None]
        entries.append({
            "mask": mask, "subgraphs": bits,
            "names": [names[b] if names is not None and b < len(names) else None for b in bits],
            "count": len(values), "share": len(values) / total,
            "latency": {"unit": unit, "method": method, **{k: stats[k] for k in _ROUTE_LATENCY}},
            "inputs": len(ins), "labelled": len(labelled),
            "accuracy": (sum(o.get("predicted") == o["label"] for o in labelled) / len(labelled)) if labelled
            else None,
        })
    return entries


def layer_subgraphs(ops_per_subgraph: Sequence[int] | None, n_layers: int) -> list[int | None]:
    """The subgraph of each profiled layer. formicary-rt numbers ops globally, subgraph by subgraph in subgraph
    order, so the counts from the flatbuffer map them; when they do not add up to the profile (a runtime that
    numbers ops otherwise) every layer's subgraph is unknown (None)."""
    if not ops_per_subgraph or sum(ops_per_subgraph) != n_layers:
        return [None] * n_layers
    out: list[int | None] = []
    for index, n in enumerate(ops_per_subgraph):
        out.extend([index] * int(n))
    return out
