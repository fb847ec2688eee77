"""A 4-expert mixture (nested IF, conv experts) on qemu-m4: bit-exact with TFLM on inputs that reach every
expert, and conditional execution is real: each route's retired instructions (median per route, -icount
shift=0) stay within 10 % of what its own ops take (gate + one expert, from the per-layer profile of the same
run) and far below running every expert."""
from __future__ import annotations

import numpy as np
import pytest

from tests.support.moemodels import build_moe, covering_inputs

pytestmark = [pytest.mark.tf, pytest.mark.qemu, pytest.mark.usefixtures("arm_qemu_tools")]


def test_moe_on_qemu_m4_bit_exact_and_runs_one_expert(tf, tmp_path):
    from formicary.bench.runner import run_bench
    from formicary.bench.verify import verify_model
    from formicary.codegen import generate

    model = build_moe(tf, 4, conv=True)
    path = tmp_path / "moe4.tflite"
    path.write_bytes(model)
    ins, picks = covering_inputs(model, 4, 16, seed=3)
    assert sorted(set(picks)) == [0, 1, 2, 3]
    data = tmp_path / "inputs.npz"
    np.savez(data, x=np.concatenate(ins).astype(np.int8))

    v = verify_model(path, target="qemu-m4", data=data)
    assert v["bit_exact"] and v["inputs"] == len(ins), v

    r = run_bench(path, "qemu-m4", data=data, runs=len(ins), warmup=0, profile=True, store=False,
                  out_dir=tmp_path / "bench")
    assert r["bit_exact"]
    samples = r["latency"]["samples"]
    assert len(samples) == len(ins)
    result = generate(model, tmp_path / "gen")
    first = {s["index"]: range(s["first_op"], s["first_op"] + s["ops"]) for s in result.subgraphs}
    layer = {lay["index"]: lay["median"] or 0.0 for lay in r["layers"]}
    from tests.kernels.test_control_flow import expected_route

    all_ops = sum(layer.values())
    for expert in range(4):
        route = expected_route(model, expert)
        own = sum(layer[i] for sg, ops in first.items() if route >> sg & 1 for i in ops)
        median = float(np.median([s for s, p in zip(samples, picks) if p == expert]))
        assert own * 0.9 <= median <= own * 1.1, (expert, median, own)
        assert median < 0.5 * all_ops, (expert, median, all_ops)

    # The device reports each inference's route (fm_model_route through the protocol), and bench aggregates them:
    # one route per expert, the expert-usage histogram, latency per route, layers attributed to their subgraph.
    expected = [expected_route(model, p) for p in picks]
    assert r["latency"]["routes"] == expected
    assert sorted(e["mask"] for e in r["routes"]) == sorted(set(expected))
    for entry in r["routes"]:
        mine = [s for s, m in zip(samples, expected) if m == entry["mask"]]
        assert entry["count"] == len(mine) > 0 and entry["latency"]["median"] == float(np.median(mine))
    used = {sg["index"]: sg["inferences"] for sg in r["subgraphs"]}
    assert used[0] == len(ins)
    for expert in range(4):
        others = 0
        for o in range(4):
            others |= expected_route(model, o) if o != expert else 0
        leaf = next(i for i in range(32) if (expected_route(model, expert) & ~others) >> i & 1)  # its own subgraph
        assert used[leaf] == picks.count(expert), (expert, used)
    assert {lay["subgraph"] for lay in r["layers"]} == set(used)
    # MACs per inference are a route's (stem + gate + one expert), not subgraph 0's alone nor every expert's.
    from formicary.analysis import analyse

    cf = analyse(model, measure_arena=False)["control_flow"]
    assert r["macs"] == max(route["macs"] for route in cf["routes"])
    assert cf["subgraphs"][0]["macs"] < r["macs"] < cf["macs_all_subgraphs"]
