"""Routes in the store (schema v5): every sample's and output's route round-trips and is aggregated again on
reading, runs stored by schema v4 read back with no routes, and `runs show` prints them."""
from __future__ import annotations

import sqlite3

import pytest
from formicary.errors import FormicaryError
from formicary.store import SCHEMA_VERSION, ResultStore
from formicary.store.schema import MIGRATIONS

NAMES = ["main", "expert_0", "expert_1", "expert_2"]


def _moe_result(make_result):
    """A bench result of a four-expert model: route and latency of each of 12 inferences, one output per input."""
    res = make_result("int8-moe", n=12)
    routes = [0b0011, 0b0011, 0b0101, 0b0011, 0b1001, 0b0101, 0b0011, 0b0011, 0b0101, 0b0011, 0b1001, 0b0011]
    res["latency"]["samples"] = [1000 + 500 * (r.bit_length() - 2) for r in routes]
    res["latency"]["routes"] = routes
    res["outputs"] = [{"input": f"{i}.bin", "label": i % 3, "predicted": 0, "match_reference": True,
                       "route": routes[i]} for i in range(12)]
    res["subgraphs"] = [{"index": i, "name": n, "ops": 4 if i == 0 else 3} for i, n in enumerate(NAMES)]
    return res, routes


def test_routes_round_trip_and_are_summarised_on_reading(store, make_result):
    res, routes = _moe_result(make_result)
    run = store.get_run(store.record_result(res))
    assert run["latency"]["routes"] == routes and [o["route"] for o in run["outputs"]] == routes
    by = {r["mask"]: r for r in run["routes"]}
    assert [r["mask"] for r in run["routes"]] == [0b0011, 0b0101, 0b1001]  # most used first
    assert [by[m]["count"] for m in (0b0011, 0b0101, 0b1001)] == [7, 3, 2]
    assert by[0b0101]["names"] == ["main", "expert_1"] and by[0b1001]["subgraphs"] == [0, 3]
    assert (by[0b0011]["latency"]["median"], by[0b0101]["latency"]["median"], by[0b1001]["latency"]["max"]) == (
        1000, 1500, 2000)
    assert by[0b0011]["latency"]["unit"] == "instructions" and by[0b0011]["latency"]["method"] == "qemu-icount-systick"
    # accuracy per route from the outputs (label i % 3, predicted 0)
    want = sum(1 for i in range(12) if routes[i] == 0b0011 and i % 3 == 0) / 7
    assert by[0b0011]["accuracy"] == pytest.approx(want)
    assert [(g["name"], g["inferences"]) for g in run["subgraphs"]] == [
        ("main", 12), ("expert_0", 7), ("expert_1", 3), ("expert_2", 2)]
    # CSV exports carry the route of every sample and output
    samples_csv = store.export([run["id"]], fmt="csv", table="samples").splitlines()
    assert samples_csv[0].endswith(",route") and [int(line.rsplit(",", 1)[1]) for line in samples_csv[1:]] == routes
    outputs_csv = store.export([run["id"]], fmt="csv", table="outputs").splitlines()
    assert [int(line.rsplit(",", 1)[1]) for line in outputs_csv[1:]] == routes
    # incremental writes: routes arrive with their samples; a wrong count or a non-mask is refused
    run_id = store.begin_run({"board": "qemu-m4", "latency": {"unit": "instructions", "method": "m"}})
    store.add_samples(run_id, [5, 6], routes=[3, 5])
    store.add_samples(run_id, [7], routes=[None])  # a route lost with its board: the sample stays
    assert store.get_run(run_id)["latency"]["routes"] == [3, 5, None]
    for bad in ([1, 2], [-1], [2 ** 32], ["3"]):
        with pytest.raises(FormicaryError):
            store.add_samples(run_id, [1], routes=bad)
    assert len(store.get_run(run_id)["latency"]["samples"]) == 3


def _make_v4(path) -> None:
    """A store as schema v4 left it (the released migrations 1-4), with one run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    for script in MIGRATIONS[:4]:
        for statement in script.split(";"):
            if statement.strip():
                con.execute(statement)
    con.execute("PRAGMA user_version=4")
    con.execute("INSERT INTO runs (uid, board, started_at, finished_at, complete, latency_unit, latency_method) "
                "VALUES ('00aa11bb22cc33dd', 'qemu-m4', '2026-11-01T09:00:00+00:00', '2026-11-01T09:01:00+00:00', "
                "1, 'instructions', 'qemu-icount-systick')")
    con.executemany("INSERT INTO samples (run_id, seq, value) VALUES (1, ?, ?)", [(0, 100), (1, 120)])
    con.execute("INSERT INTO outputs (run_id, seq, input, label, predicted, match_reference) "
                "VALUES (1, 0, 'a.bin', 1, 1, 1)")
    con.execute("INSERT INTO layers (run_id, idx, op, name, macs, unit, median) "
                "VALUES (1, 0, 'CONV_2D', 'c', 10, 'instructions', 50)")
    con.commit()
    con.close()


def test_v4_store_migrates_to_v5_and_old_runs_have_no_routes(store_path, make_result):
    _make_v4(store_path)
    with ResultStore(store_path) as store:
        assert store.schema_version == SCHEMA_VERSION >= 5 and store.integrity_check() == "ok"
        old = store.get_run(1)
        assert old["latency"]["samples"] == [100, 120] and old["latency"]["routes"] is None
        assert old["routes"] is None and old["subgraphs"] is None
        assert old["outputs"][0]["route"] is None and old["layers"][0]["subgraph"] is None
        # the migrated store takes new runs with routes beside the old one
        res, routes = _moe_result(make_result)
        new = store.get_run(store.record_result(res))
        assert new["latency"]["routes"] == routes and len(new["routes"]) == 3
    cols = {r[1] for r in sqlite3.connect(store_path).execute("PRAGMA table_info(samples)")}
    assert "route" in cols


def test_runs_show_prints_the_routes(store_path, make_result, monkeypatch):
    from formicary.cli import app
    from typer.testing import CliRunner

    with ResultStore(store_path) as store:
        moe = store.record_result(_moe_result(make_result)[0])
        single = store.record_result(make_result("int8"))
        old = store.begin_run({"board": "qemu-m4", "latency": {"unit": "instructions", "method": "m",
                                                               "samples": [1, 2]}})
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()

    def show(run_id: int) -> str:
        r = runner.invoke(app, ["runs", "show", str(run_id), "--store", str(store_path)])
        assert r.exit_code == 0, r.output
        return r.stdout

    text = show(moe)
    assert "per route" in text and "main + expert_1" in text and "0x9" in text
    assert "2 expert_1 3 (25 %)" in text and "3 expert_2 2 (17 %)" in text
    assert "routes    one: 0x1 (main) for all 40 inferences" in show(single)
    assert "routes    not recorded" in show(old)
