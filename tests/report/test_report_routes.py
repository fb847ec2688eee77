"""The report's routes section: for a run whose inferences took several routes (a mixture of experts), the
expert-usage histogram and the latency distribution per route, with unit and method; nothing for other runs."""
from __future__ import annotations

import base64
import io
import re

from formicary.report import build_report
from formicary.report.plots import route_plot
from PIL import Image


def _moe_run_result(i: int = 20):
    from tests.report.conftest import _result

    res = _result(i, "int8-moe4", "int8", 0.9, 1_000_000, 60_000, 100.0)
    # 4 experts; expert_3 is never picked; latency depends on the expert
    routes = [0b00011] * 14 + [0b00101] * 10 + [0b01001] * 6
    res["latency"]["samples"] = [900_000 + 150_000 * (r.bit_length() - 2) + k % 3 for k, r in enumerate(routes)]
    res["latency"]["routes"] = routes
    res["outputs"] = [{"input": f"{k}.bin", "label": k % 2, "predicted": 0, "match_reference": True, "route": r}
                      for k, r in enumerate(routes[::3])]
    res["subgraphs"] = [{"index": k, "name": n, "ops": 3} for k, n in
                        enumerate(["main", "expert_0", "expert_1", "expert_2", "expert_3"])]
    for k, layer in enumerate(res["layers"]):
        layer["subgraph"] = k
    return res


def test_report_draws_expert_usage_and_latency_per_route(report_store, tmp_path):
    store, ids = report_store
    moe_id = store.record_result(_moe_run_result())
    runs = [store.get_run(moe_id), store.get_run(ids["int8"])]
    assert runs[0]["routes"] and len(runs[0]["routes"]) == 3
    assert runs[1]["routes"] is None  # a run stored without routes draws no routes plot
    result = build_report(runs, tmp_path / "r.html", png_dir=tmp_path / "png")
    names = [p["name"] for p in result["plots"]]
    assert [n for n in names if n.startswith("routes-")] == [f"routes-run{moe_id}"]
    plot = next(p for p in result["plots"] if p["name"] == f"routes-run{moe_id}")
    assert "instructions" in plot["caption"] and "qemu-icount-systick" in plot["caption"]
    img = Image.open(io.BytesIO((tmp_path / "png" / f"{plot['name']}.png").read_bytes()))
    assert img.format == "PNG" and img.width > 600 and img.height > 250
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    embedded = [base64.b64decode(m) for m in re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)]
    assert (tmp_path / "png" / f"{plot['name']}.png").read_bytes() in embedded
    assert "Routes: expert usage and latency per route" in html
    layers = {p["name"]: p for p in result["plots"]}
    assert "the layer's subgraph" in layers[f"layers-run{moe_id}"]["caption"]
    assert "the layer's subgraph" not in layers[f"layers-run{ids['int8']}"]["caption"]
    # the run details list each route with its latency (unit) and accuracy
    assert "<td>0x9</td><td>main + expert_2</td><td class=num>6 (20.0 %)</td>" in html
    assert re.search(r"<b>1,200,001</b> instructions</td>", html)  # median of route 0x9: 1.2M + (k % 3)


def test_route_plot_needs_several_routes(report_store):
    store, ids = report_store
    single = store.get_run(ids["int8"])
    assert route_plot(single) is None
    res = _moe_run_result(21)
    res["latency"]["routes"] = [1] * len(res["latency"]["samples"])
    for o in res["outputs"]:
        o["route"] = 1
    one = store.get_run(store.record_result(res))
    assert len(one["routes"]) == 1 and route_plot(one) is None
