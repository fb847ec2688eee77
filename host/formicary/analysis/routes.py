"""MACs and parameters per subgraph and per route of a multi-subgraph (IF) model: a route is the set of
subgraphs one invocation runs (subgraph 0 plus one branch of every IF it reaches), so a mixture of experts'
per-inference MACs are a route's, while flash holds every subgraph's weights."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from formicary.analysis import stats
from formicary.analysis.macs import count_op, effective_macs
from formicary.tflite import ModelIR, SubgraphIR

MAX_ROUTES = 4096  # chained (not nested) IF ops multiply the routes; beyond this only totals are reported


def _subgraph_counts(sg: SubgraphIR) -> dict[str, Any]:
    macs = params = effective = 0
    seen: set[int] = set()
    for op in sg.operators:
        op_macs = count_op(sg, op).macs
        macs += op_macs
        effective += effective_macs(sg, op, op_macs)
        for pos, t in enumerate(sg.op_inputs(op)):
            if t is not None and t.index not in seen and stats.tensor_role(sg, op, pos, t) in ("weights", "bias"):
                seen.add(t.index)
                params += t.numel
    return {"index": sg.index, "name": sg.name, "ops": len(sg.operators), "macs": macs, "effective_macs": effective,
            "params": params}


def _branches(sg: SubgraphIR, n: int) -> list[tuple[int, int]]:
    out = []
    for op in sg.operators:
        if op.opcode == "IF":
            pair = (op.options.get("then_subgraph_index"), op.options.get("else_subgraph_index"))
            if all(isinstance(p, int) and 0 < p < n for p in pair):
                out.append(pair)  # type: ignore[arg-type]
    return out


def _routes(model: ModelIR) -> list[frozenset[int]] | None:
    n = len(model.subgraphs)

    def of(index: int, depth: int) -> list[frozenset[int]] | None:
        if depth > 64:
            return None  # recursion in a corrupt model
        combos = [frozenset({index})]
        for pair in _branches(model.subgraphs[index], n):
            choices: list[frozenset[int]] = []
            for target in pair:
                sub = of(target, depth + 1)
                if sub is None:
                    return None
                choices += sub
            combos = [a | b for a in combos for b in choices]
            if len(combos) > MAX_ROUTES:
                return None
        return combos

    return of(0, 0)


def control_flow(model: ModelIR) -> dict[str, Any] | None:
    """None for single-subgraph models. Else {subgraphs: [{index, name, ops, macs, effective_macs, params}], routes:
    [{route (fm_model_route bits), subgraphs, names, macs, effective_macs}], macs_all_subgraphs, params_all_subgraphs,
    macs_per_route: {min, max} (null when there are more than MAX_ROUTES routes)}."""
    if len(model.subgraphs) <= 1:
        return None
    per_sg = [_subgraph_counts(sg) for sg in model.subgraphs]
    found = _routes(model)
    routes = []
    for r in sorted(found or [], key=sorted):
        mask = 0
        for i in r:
            mask |= 1 << min(i, 31)
        routes.append({"route": mask, "subgraphs": sorted(r), "names": [per_sg[i]["name"] for i in sorted(r)],
                       "macs": sum(per_sg[i]["macs"] for i in r),
                       "effective_macs": sum(per_sg[i]["effective_macs"] for i in r)})
    route_macs = [r["macs"] for r in routes]
    return {
        "subgraphs": per_sg,
        "routes": routes,
        "macs_all_subgraphs": sum(s["macs"] for s in per_sg),
        "params_all_subgraphs": sum(s["params"] for s in per_sg),
        "macs_per_route": {"min": min(route_macs), "max": max(route_macs)} if route_macs else None,
    }


def route_energy(model: ModelIR, energy_of: Callable[[ModelIR], dict[str, Any]]) -> dict[str, Any] | None:
    """The energy model of a multi-subgraph model: `energy_of` applied to each route (its subgraphs' ops in one
    global numbering, as codegen numbers them). Returns the heaviest route's dict (what one inference costs at
    most) with `route` (its fm_model_route() bits) and `routes` ([{route, subgraphs, total}] for every route);
    None when the subgraphs cannot be compiled (codegen refuses the model)."""
    from formicary.codegen import subgraphs

    try:
        program = subgraphs.flatten(model)
        found = subgraphs.routes(program)
    except subgraphs.ControlFlowError:
        return None
    results = []
    for r in found:
        ops = [program.flat.operators[i] for sg in sorted(r) for i in program.subgraphs[sg].ops]
        results.append((r, energy_of(replace(program.flat, operators=ops))))
    heaviest_route, heaviest = max(results, key=lambda item: item[1]["total"]["45nm"]["total_uj"])
    return {**heaviest, "route": subgraphs.route_mask(heaviest_route),
            "routes": [{"route": subgraphs.route_mask(r), "subgraphs": sorted(r), "total": e["total"]}
                       for r, e in results]}
