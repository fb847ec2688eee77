"""The results store's API: round trip, incremental writes, statuses, filters, export, default path."""
from __future__ import annotations

import csv
import io
import json
import sqlite3

import numpy as np
import pytest
from formicary.errors import FormicaryError
from formicary.store import SCHEMA_VERSION, ResultStore, default_store_path


def test_record_result_round_trip(store, make_result):
    res = make_result("int8", seed=3)
    run_id = store.record_result(res)
    run = store.get_run(run_id)
    assert run["status"] == "complete" and run["complete"] is True and run["incomplete_reason"] is None
    for key in ("board", "virtual", "started_at", "finished_at", "host", "model", "firmware", "settings",
                "bit_exact", "mismatches", "inputs", "accuracy", "outputs", "flash_bytes", "ram_bytes",
                "arena_bytes", "macs", "model_bytes", "energy", "energy_floor_uj", "power_samples", "subgraphs"):
        assert run[key] == res[key], key
    # routes (schema v5): one per sample, aggregated again on reading; every fixture prediction is right
    assert run["latency"]["routes"] == [1] * len(res["latency"]["samples"])
    assert [(r["mask"], r["names"], r["count"], r["inputs"], r["accuracy"]) for r in run["routes"]] == [
        (1, ["main"], len(res["latency"]["samples"]), 20, 1.0)]
    assert [layer["subgraph"] for layer in run["layers"]] == [0] * 4
    samples = res["latency"]["samples"]
    lat = run["latency"]
    assert lat["samples"] == samples and lat["count"] == len(samples)
    assert (lat["unit"], lat["method"], lat["estimate_ms"]) == ("instructions", "qemu-icount-systick",
                                                               res["latency"]["estimate_ms"])
    # Statistics are recomputed from the samples with numpy's percentile definition.
    for key, q in (("median", 50), ("p90", 90), ("p99", 99)):
        assert lat[key] == pytest.approx(float(np.percentile(samples, q)))
    assert (lat["min"], lat["max"]) == (min(samples), max(samples))
    assert lat["mean"] == pytest.approx(float(np.mean(samples)))
    assert [layer["samples"] for layer in run["layers"]] == [layer["samples"] for layer in res["layers"]]
    assert run["layers"][2]["median"] == float(np.median(res["layers"][2]["samples"]))
    assert run["store"]["schema_version"] == SCHEMA_VERSION


def test_incremental_run_is_visible_while_running_and_appends(store):
    run_id = store.begin_run({"board": "qemu-m4", "latency": {"unit": "instructions",
                                                              "method": "qemu-icount-systick"}})
    run = store.get_run(run_id)
    assert run["status"] == "running" and run["complete"] is False and run["latency"]["count"] == 0
    assert run["latency"]["median"] is None
    store.add_samples(run_id, [10, 20])
    assert store.add_samples(run_id, [30]) == 3
    store.add_layer_timings(run_id, [{"index": 0, "op": "CONV_2D", "unit": "instructions", "samples": [5]}])
    store.add_layer_timings(run_id, [{"index": 0, "samples": [7]}, {"index": 1, "op": "SOFTMAX", "median": 2.5}])
    store.add_outputs(run_id, [{"input": "a.bin", "label": 1, "predicted": 1, "match_reference": True}])
    store.add_outputs(run_id, [{"input": "b.bin", "label": 2, "predicted": 0, "match_reference": False}])
    store.add_power_samples(run_id, [(0.0, 0.1), (0.5, 0.2)])
    store.set_energy(run_id, {"uj_per_inference": 12.5, "method": "modelled", "source": "power model"},
                     {"45nm": 1.0, "7nm": 0.1})
    store.update_run(run_id, {"accuracy": 0.5, "bit_exact": False, "mismatches": 1, "inputs": 2})
    store.finish_run(run_id, True)
    run = store.get_run(run_id)
    assert run["status"] == "complete"
    assert run["latency"]["samples"] == [10, 20, 30] and run["latency"]["median"] == 20
    assert run["layers"] == [
        {"index": 0, "op": "CONV_2D", "name": None, "macs": None, "unit": "instructions", "median": 6.0,
         "samples": [5, 7], "subgraph": None},
        {"index": 1, "op": "SOFTMAX", "name": None, "macs": None, "unit": None, "median": 2.5, "samples": [],
         "subgraph": None}]
    assert [o["match_reference"] for o in run["outputs"]] == [True, False]
    assert run["power_samples"] == [[0.0, 0.1], [0.5, 0.2]]
    assert run["energy"] == {"uj_per_inference": 12.5, "method": "modelled", "source": "power model"}
    assert run["energy_floor_uj"] == {"45nm": 1.0, "7nm": 0.1}
    assert (run["accuracy"], run["bit_exact"], run["mismatches"]) == (0.5, False, 1)


def test_finish_incomplete_keeps_samples_and_reason(store):
    run_id = store.begin_run({"board": "qemu-m4"})
    store.add_samples(run_id, [1, 2, 3])
    store.finish_run(run_id, False, "board unplugged: serial port vanished")
    run = store.get_run(run_id)
    assert run["status"] == "incomplete" and run["complete"] is False
    assert run["incomplete_reason"] == "board unplugged: serial port vanished"
    assert run["latency"]["samples"] == [1, 2, 3]


def test_recording_marks_ctrl_c_incomplete_and_normal_exit_complete(store):
    with pytest.raises(KeyboardInterrupt), store.recording({"board": "qemu-m4"}) as run_id:
        store.add_samples(run_id, [5, 6])
        raise KeyboardInterrupt
    run = store.get_run(run_id)
    assert run["status"] == "incomplete" and "Ctrl-C" in run["incomplete_reason"]
    assert run["latency"]["samples"] == [5, 6]
    with pytest.raises(RuntimeError), store.recording({"board": "qemu-m4"}) as crashed:
        raise RuntimeError("device reset mid-run")
    assert store.get_run(crashed)["incomplete_reason"] == "RuntimeError: device reset mid-run"
    with store.recording({"board": "qemu-m4"}) as ok:
        store.add_samples(ok, [1])
    assert store.get_run(ok)["status"] == "complete"


def test_unfinished_run_of_a_dead_writer_reads_as_interrupted(store, store_path):
    run_id = store.begin_run({"board": "qemu-m4"})
    # A pid that cannot be alive: simulate a writer that disappeared without finish_run.
    con = sqlite3.connect(store_path)
    con.execute("UPDATE runs SET writer_pid=? WHERE id=?", (2 ** 22 + 12345, run_id))
    con.commit()
    con.close()
    run = store.get_run(run_id)
    assert run["status"] == "interrupted" and run["complete"] is False
    assert "ended without finishing" in run["incomplete_reason"]
    assert [r["id"] for r in store.list_runs(status="interrupted")] == [run_id]


def test_list_runs_filters_newest_first(store, make_result):
    a = store.record_result(make_result("int8", seed=1))
    b = store.record_result(make_result("float32", seed=2, board="qemu-m7"))
    c = store.record_result({**make_result("int16x8", seed=3), "started_at": "2026-12-01T00:00:00+00:00"})
    assert [r["id"] for r in store.list_runs()] == [c, b, a]
    assert [r["id"] for r in store.list_runs(board="qemu-m7")] == [b]
    assert [r["id"] for r in store.list_runs(label="int16x8")] == [c]
    assert [r["id"] for r in store.list_runs(model="0202")] == [b]  # sha256 prefix
    assert [r["id"] for r in store.list_runs(since="2026-11-30")] == [c]
    assert len(store.list_runs(limit=2)) == 2
    assert store.list_runs(status="incomplete") == []
    summary = store.list_runs()[0]
    assert "samples" not in summary["latency"] and summary["latency"]["count"] == 40


def test_export_json_and_csv_tables(store, make_result):
    ids = [store.record_result(make_result(label, seed=i)) for i, label in enumerate(["int8", "float32"], 1)]
    data = json.loads(store.export())
    assert data["store_schema"] == SCHEMA_VERSION and [r["id"] for r in data["runs"]] == ids
    assert data["runs"][0]["latency"]["samples"] == store.get_run(ids[0])["latency"]["samples"]
    rows = list(csv.DictReader(io.StringIO(store.export(fmt="csv"))))
    assert [int(r["id"]) for r in rows] == ids
    assert rows[0]["latency_unit"] == "instructions" and rows[0]["latency_method"] == "qemu-icount-systick"
    assert float(rows[0]["latency_median"]) == store.get_run(ids[0])["latency"]["median"]
    assert rows[1]["energy_method"] == "modelled"
    samples = list(csv.DictReader(io.StringIO(store.export([ids[1]], fmt="csv", table="samples"))))
    assert len(samples) == 40 and {s["unit"] for s in samples} == {"instructions"}
    layers = list(csv.DictReader(io.StringIO(store.export(fmt="csv", table="layers"))))
    assert len(layers) == 8
    outputs = list(csv.DictReader(io.StringIO(store.export(fmt="csv", table="outputs"))))
    assert len(outputs) == 40
    with pytest.raises(FormicaryError):
        store.export(fmt="xml")


def test_run_references_by_id_and_uid(store, make_result):
    run_id = store.record_result(make_result())
    uid = store.get_run(run_id)["uid"]
    assert store.resolve(uid[:8]) == run_id and store.resolve(str(run_id)) == run_id
    # A uid can be all digits: a long numeric reference that is not an id is tried as a uid prefix.
    store._conn.execute("UPDATE runs SET uid=? WHERE id=?", ("9876543210" + uid[10:], run_id))
    assert store.resolve("987654") == run_id
    with pytest.raises(FormicaryError, match="not in the results store"):
        store.get_run(999)


def test_rejects_unlabelled_numbers(store):
    with pytest.raises(FormicaryError, match="latency unit"):
        store.begin_run({"board": "b", "latency": {"unit": "seconds"}})  # ms is an SBC's wall-clock unit
    run_id = store.begin_run({"board": "b"})
    with pytest.raises(FormicaryError, match="measured nor modelled"):
        store.set_energy(run_id, {"uj_per_inference": 1.0, "method": "guessed"})
    with pytest.raises(FormicaryError, match="not a number"):
        store.add_samples(run_id, ["fast"])
    with pytest.raises(FormicaryError, match="board"):
        store.begin_run({})


def test_unknown_keys_are_kept(store, make_result):
    run_id = store.record_result({**make_result(), "mlperf": {"mode": "performance"}})
    assert store.get_run(run_id)["extra"] == {"mlperf": {"mode": "performance"}}


def test_default_path_env_and_platformdirs(tmp_path, monkeypatch):
    monkeypatch.setenv("FORMICARY_STORE", str(tmp_path / "env.sqlite"))
    assert default_store_path() == tmp_path / "env.sqlite"
    with ResultStore() as s:
        assert s.path == tmp_path / "env.sqlite"
    assert (tmp_path / "env.sqlite").is_file()
    monkeypatch.delenv("FORMICARY_STORE")
    import platformdirs

    monkeypatch.setattr(platformdirs, "user_data_dir", lambda name, appauthor=None: str(tmp_path / "data" / name))
    assert default_store_path() == tmp_path / "data" / "formicary" / "results.sqlite"


def test_store_uses_wal_and_refuses_newer_schema(store_path):
    with ResultStore(store_path) as s:
        assert s._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con = sqlite3.connect(store_path)
    con.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    con.commit()
    con.close()
    with pytest.raises(FormicaryError, match="newer"):
        ResultStore(store_path)


def test_variant_training_stages_round_trip(store, make_result):
    """How the Keras model was trained (schema v4) comes back as stored; runs without it read as []."""
    lora = store.get_run(store.record_result(make_result("int8-lora4", seed=4)))
    assert lora["model"]["variant"]["training"] == [{"stage": "lora", "rank": 4, "label": "lora4"}]
    plain = store.get_run(store.record_result(make_result("int8", seed=5)))
    assert plain["model"]["variant"]["training"] == []
