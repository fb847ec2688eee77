"""Routes in bench: the aggregation (expert-usage histogram, latency and accuracy per route) from synthetic
per-inference data, the subgraph names read from the flatbuffer, and a whole `run_bench` against a fake session
whose inferences take several routes (what a mixture-of-experts firmware reports), through the store and the
human view."""
from __future__ import annotations

import io
from pathlib import Path

import flatbuffers
import numpy as np
import pytest
import tflite
from formicary.errors import FormicaryError
from formicary.store.routes import (
    layer_subgraphs,
    route_bits,
    runs_subgraph,
    subgraph_usage,
    summarize_routes,
)


def test_route_summary_from_synthetic_inferences():
    samples = [100, 102, 300, 310, 305, 101, 900]
    routes = [0b011, 0b011, 0b101, 0b101, 0b101, 0b011, None]  # the last inference's route was lost
    outputs = [{"route": 0b011, "label": 1, "predicted": 1}, {"route": 0b101, "label": 2, "predicted": 0},
               {"route": 0b101, "label": 2, "predicted": 2}, {"route": 0b011, "label": None, "predicted": 4}]
    out = summarize_routes(samples, routes, names=["main", "expert_0", "expert_1"], outputs=outputs,
                           unit="instructions", method="qemu-icount-systick")
    assert [r["mask"] for r in out] == [0b011, 0b101]  # as many inferences each: the lower mask first
    by = {r["mask"]: r for r in out}
    a, b = by[0b011], by[0b101]
    assert (a["subgraphs"], a["names"], a["count"]) == ([0, 1], ["main", "expert_0"], 3)
    assert (b["subgraphs"], b["names"], b["count"]) == ([0, 2], ["main", "expert_1"], 3)
    assert a["share"] == b["share"] == 0.5  # of the 6 inferences whose route is known
    assert (a["latency"]["min"], a["latency"]["median"], a["latency"]["max"]) == (100, 101, 102)
    assert b["latency"]["median"] == 305 and b["latency"]["p90"] == pytest.approx(np.percentile([300, 310, 305], 90))
    assert a["latency"]["unit"] == "instructions" and a["latency"]["method"] == "qemu-icount-systick"
    assert (a["inputs"], a["labelled"], a["accuracy"]) == (2, 1, 1.0)
    assert (b["inputs"], b["labelled"], b["accuracy"]) == (2, 2, 0.5)
    # most used first; ties by mask
    assert [r["mask"] for r in summarize_routes([1, 2, 3], [5, 3, 5])] == [5, 3]
    # no routes (old firmware, runs before v5): no summary; a count mismatch is a bug
    assert summarize_routes(samples, None) is None
    assert summarize_routes([1, 2], [None, None]) is None
    with pytest.raises(ValueError):
        summarize_routes([1, 2], [1])


def test_expert_usage_histogram_lists_unused_experts():
    usage = subgraph_usage([0b011, 0b011, 0b101, 0b011], ["main", "expert_0", "expert_1", "expert_2"], [4, 2, 2, 2])
    assert [(g["name"], g["inferences"], g["share"], g["ops"]) for g in usage] == [
        ("main", 4, 1.0, 4), ("expert_0", 3, 0.75, 2), ("expert_1", 1, 0.25, 2), ("expert_2", 0, 0.0, 2)]
    assert [g["inferences"] for g in subgraph_usage(None, ["main"])] == [None]
    assert subgraph_usage([1], None) is None
    # bit 31 stands for subgraph 31 and every one beyond
    assert route_bits(1 | 1 << 31) == [0, 31]
    assert runs_subgraph(1 << 31, 40) and runs_subgraph(1 << 31, 31) and not runs_subgraph(1 << 31, 30)


def test_layers_map_to_subgraphs_by_op_counts():
    assert layer_subgraphs([3, 2, 1], 6) == [0, 0, 0, 1, 1, 2]
    assert layer_subgraphs([3, 2, 1], 7) == [None] * 7  # the runtime numbers ops otherwise: unknown
    assert layer_subgraphs(None, 2) == [None, None]


def _multi_subgraph_tflite(names: list[str], ops: list[int]) -> bytes:
    """A flatbuffer with named subgraphs holding `ops` empty operators each (enough for the subgraph table)."""
    b = flatbuffers.Builder(256)
    graphs = []
    for name, n in zip(names, ops):
        offsets = []
        for _ in range(n):
            tflite.OperatorStart(b)
            offsets.append(tflite.OperatorEnd(b))
        tflite.SubGraphStartOperatorsVector(b, n)
        for o in reversed(offsets):
            b.PrependUOffsetTRelative(o)
        vec = b.EndVector()
        name_off = b.CreateString(name) if name else None
        tflite.SubGraphStart(b)
        tflite.SubGraphAddOperators(b, vec)
        if name_off is not None:
            tflite.SubGraphAddName(b, name_off)
        graphs.append(tflite.SubGraphEnd(b))
    tflite.ModelStartSubgraphsVector(b, len(graphs))
    for g in reversed(graphs):
        b.PrependUOffsetTRelative(g)
    vec = b.EndVector()
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddSubgraphs(b, vec)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_subgraph_names_come_from_the_flatbuffer(kws_model_path, tmp_path):
    from formicary.bench.routes import read_subgraphs

    assert read_subgraphs(kws_model_path) == [{"index": 0, "name": "main", "ops": 13}]
    data = _multi_subgraph_tflite(["main", "expert_0", "", "expert_2"], [5, 3, 2, 4])
    assert read_subgraphs(data) == [{"index": 0, "name": "main", "ops": 5}, {"index": 1, "name": "expert_0", "ops": 3},
                                    {"index": 2, "name": "subgraph2", "ops": 2},
                                    {"index": 3, "name": "expert_2", "ops": 4}]
    for bad in (b"nonsense", data[:40]):
        with pytest.raises(FormicaryError):
            read_subgraphs(bad)


# ---- run_bench with a fake session: three subgraphs, the input picks expert 0 or 1 ------------------------------

GRAPHS = [{"index": 0, "name": "main", "ops": 7}, {"index": 1, "name": "expert_0", "ops": 3},
          {"index": 2, "name": "expert_1", "ops": 3}]  # 13 ops, as many as the KWS model the fake runs
TICKS = {0b011: 1_000, 0b101: 1_500}  # instructions per inference by route


def _expert(x: np.ndarray) -> int:
    return int(x.astype(np.int64).sum()) % 2


class FakeSession:
    """Answers like firmware with routes: each inference's route from the loaded input; the profile has 0 for
    the ops of the expert that did not run (the firmware clears them before every profiled inference)."""

    def __init__(self, model: Path) -> None:
        from formicary.device.session import DeviceInfo, TensorSpec

        self.model = model.read_bytes()
        self.info = DeviceInfo(
            protocol_version=2, board="qemu-m4", runtime_version="fake", model_hash="", arena_bytes=1000,
            timer="systick", timer_hz=1_000_000_000, clock_hz=25_000_000, virtual=True, num_ops=13, max_payload=512,
            max_runs=256, inputs=(TensorSpec("int8", (1, 49, 10, 1), 0.1, 0, 490),),
            outputs=(TensorSpec("int8", (1, 12), 0.1, 0, 12),), routes=True)
        self.x: np.ndarray | None = None
        self.route = 0

    def load_input(self, index: int, data: bytes) -> None:
        self.x = np.frombuffer(data, np.int8).reshape(1, 49, 10, 1)

    def run(self, runs=1, warmup=0, profile=False, on_result=None, *, power_layers=False):
        from formicary.device.session import RunResult

        self.route = 1 | 1 << (1 + _expert(self.x))
        values = [TICKS[self.route]] * runs
        return RunResult(ticks=values, values=values, unit="instructions", method="qemu-icount-systick",
                         warmup=warmup, profiled=profile, routes=[self.route] * runs)

    def read_output(self, index: int) -> bytes:
        from formicary.oracle.tflm import run_tflm

        return np.asarray(run_tflm(self.model, [[self.x]])[0][index]).tobytes()

    def read_layer_timings(self):
        from formicary.device.session import LayerTiming

        ran = [g for g in range(3) if self.route >> g & 1]
        owner = [0] * 7 + [1] * 3 + [2] * 3
        return [LayerTiming(index=i, op_type="FULLY_CONNECTED", name=f"op{i}", ticks=10 + i if owner[i] in ran else 0,
                            value=10 + i if owner[i] in ran else 0, macs=0) for i in range(13)]


class _Conn:
    def __init__(self, session) -> None:
        self.session, self.url, self.handle, self.place = session, "fake://", None, None

    def close(self) -> None:
        pass


def test_bench_aggregates_routes_of_a_fake_moe_device(kws_model_path, kws_data_dir, tmp_path, monkeypatch):
    import formicary.bench.routes as routes_mod
    from formicary.bench import runner
    from formicary.bench.runner import run_bench
    from formicary.cli.bench_cmd import render
    from formicary.store import ResultStore
    from formicary.target import bringup
    from formicary.target.firmware import Firmware
    from rich.console import Console

    fw = Firmware(project_dir=tmp_path, elf=tmp_path / "fake.elf", tflite=kws_model_path, model_hash="",
                  flash_bytes=1, ram_bytes=1, arena_bytes=1000, built=False)
    monkeypatch.setattr(runner, "prepare_firmware", lambda *a, **k: fw)
    monkeypatch.setattr(bringup, "bring_up", lambda *a, **k: _Conn(FakeSession(kws_model_path)))
    monkeypatch.setattr(routes_mod, "read_subgraphs", lambda tfl: [dict(g) for g in GRAPHS])
    store = ResultStore(tmp_path / "runs.sqlite")
    res = run_bench(kws_model_path, "qemu-m4", data=kws_data_dir, inputs=10, runs=20, warmup=0, profile=True,
                    store=store)
    experts = [o["route"] for o in res["outputs"]]
    assert set(experts) == {0b011, 0b101}, "the seeded inputs should reach both experts"
    lat = res["latency"]
    assert lat["routes"] == [r for r in experts for _ in range(2)]  # two runs per input, in input order
    routes = {r["mask"]: r for r in res["routes"]}
    n1 = experts.count(0b011)
    assert routes[0b011]["count"] == 2 * n1 and routes[0b101]["count"] == 2 * (10 - n1)
    assert routes[0b011]["names"] == ["main", "expert_0"] and routes[0b101]["names"] == ["main", "expert_1"]
    assert routes[0b011]["latency"]["median"] == 1_000 and routes[0b101]["latency"]["max"] == 1_500
    assert lat["min"] == 1_000 and lat["max"] == 1_500  # latency depends on the input
    right = {m: [o["predicted"] == o["label"] for o in res["outputs"] if o["route"] == m] for m in routes}
    for m, r in routes.items():
        assert r["accuracy"] == pytest.approx(sum(right[m]) / len(right[m])) and r["inputs"] == len(right[m])
    usage = {g["name"]: g["inferences"] for g in res["subgraphs"]}
    assert usage == {"main": 20, "expert_0": 2 * n1, "expert_1": 2 * (10 - n1)}
    # per layer: an expert's layers have one sample per input routed to it, never a skipped inference's 0
    layers = res["layers"]
    assert [layer["subgraph"] for layer in layers] == [0] * 7 + [1] * 3 + [2] * 3
    assert len(layers[0]["samples"]) == 10 and len(layers[8]["samples"]) == n1 and len(layers[11]["samples"]) == 10 - n1
    assert all(v > 0 for layer in layers for v in layer["samples"])
    # the store keeps every inference's route and gives the same summary back
    run = store.get_run(res["run_id"])
    store.close()
    assert run["latency"]["routes"] == lat["routes"] and [o["route"] for o in run["outputs"]] == experts
    assert run["routes"] == res["routes"] and run["subgraphs"] == res["subgraphs"]
    assert [layer["subgraph"] for layer in run["layers"]] == [layer["subgraph"] for layer in layers]
    # the human view has a table per route and the expert usage
    buf = io.StringIO()
    render(Console(file=buf, width=160), res)
    text = buf.getvalue()
    assert "per route" in text and "main + expert_0" in text and "main + expert_1" in text
    assert f"1 expert_0 {2 * n1}" in text and "never ran" not in text
