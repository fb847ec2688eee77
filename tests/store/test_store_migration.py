"""A store created by schema v1 (the first release) migrates to the current schema keeping every row."""
from __future__ import annotations

import sqlite3

from formicary.store import SCHEMA_VERSION, ResultStore

# Frozen copy of schema v1 as released. Deliberately not imported from formicary.store.schema: if someone edits
# migration 1 in place, old stores would no longer match it and this test must notice.
V1_SCHEMA = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, uid TEXT NOT NULL UNIQUE, board TEXT NOT NULL, started_at TEXT NOT NULL,
    finished_at TEXT, complete INTEGER NOT NULL DEFAULT 0, incomplete_reason TEXT, model_path TEXT,
    model_sha256 TEXT, runtime_version TEXT, latency_unit TEXT, latency_method TEXT, settings_json TEXT,
    host_json TEXT, bit_exact INTEGER, mismatches INTEGER, inputs INTEGER, accuracy REAL, flash_bytes INTEGER,
    ram_bytes INTEGER);
CREATE TABLE samples (run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, seq INTEGER NOT NULL,
    value INTEGER NOT NULL, PRIMARY KEY (run_id, seq)) WITHOUT ROWID;
CREATE TABLE layers (run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, idx INTEGER NOT NULL,
    op TEXT, name TEXT, macs INTEGER, unit TEXT, PRIMARY KEY (run_id, idx)) WITHOUT ROWID;
CREATE TABLE layer_samples (run_id INTEGER NOT NULL, idx INTEGER NOT NULL, seq INTEGER NOT NULL,
    value INTEGER NOT NULL, PRIMARY KEY (run_id, idx, seq),
    FOREIGN KEY (run_id, idx) REFERENCES layers(run_id, idx) ON DELETE CASCADE) WITHOUT ROWID;
CREATE INDEX runs_board ON runs(board);
CREATE INDEX runs_model ON runs(model_sha256);
PRAGMA user_version=1;
"""


def _make_v1(path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    con.executescript(V1_SCHEMA)
    con.execute("INSERT INTO runs (uid, board, started_at, finished_at, complete, model_path, model_sha256, "
                "runtime_version, latency_unit, latency_method, settings_json, host_json, bit_exact, mismatches, "
                "inputs, accuracy, flash_bytes, ram_bytes) VALUES ('0123456789abcdef', 'qemu-m4', "
                "'2026-10-01T09:00:00+00:00', '2026-10-01T09:01:00+00:00', 1, 'kws.tflite', ?, '0.0.9', "
                "'instructions', 'qemu-icount-systick', '{\"runs\": 3}', '{\"hostname\": \"old\"}', 1, 0, 3, "
                "0.9, 90000, 30000)", ("cd" * 32,))
    con.execute("INSERT INTO runs (uid, board, started_at, complete, incomplete_reason) VALUES "
                "('fedcba9876543210', 'nucleo-f446re', '2026-10-02T09:00:00+00:00', 0, 'unplugged')")
    con.executemany("INSERT INTO samples VALUES (1, ?, ?)", [(0, 100), (1, 110), (2, 105)])
    con.executemany("INSERT INTO samples VALUES (2, ?, ?)", [(0, 5000)])
    con.execute("INSERT INTO layers VALUES (1, 0, 'CONV_2D', 'conv', 1234, 'instructions')")
    con.executemany("INSERT INTO layer_samples VALUES (1, 0, ?, ?)", [(0, 40), (1, 42)])
    con.commit()
    con.close()


def test_v1_store_migrates_and_keeps_data(store_path):
    _make_v1(store_path)
    with ResultStore(store_path) as store:
        assert store.schema_version == SCHEMA_VERSION > 1
        assert store.integrity_check() == "ok"
        old = store.get_run(1)
        assert old["status"] == "complete" and old["uid"] == "0123456789abcdef"
        assert old["latency"]["samples"] == [100, 110, 105] and old["latency"]["median"] == 105
        assert old["latency"]["unit"] == "instructions" and old["latency"]["method"] == "qemu-icount-systick"
        assert old["model"]["sha256"] == "cd" * 32 and old["model"]["name"] == "kws.tflite"  # name backfilled
        assert old["firmware"]["runtime_version"] == "0.0.9"
        assert old["firmware"]["kernels"] is None and old["model"]["variant"]["prune_structure"] is None  # v3
        assert old["settings"] == {"runs": 3} and old["host"] == {"hostname": "old"}
        assert (old["bit_exact"], old["accuracy"], old["flash_bytes"], old["ram_bytes"]) == (True, 0.9, 90000,
                                                                                            30000)
        assert old["layers"] == [{"index": 0, "op": "CONV_2D", "name": "conv", "macs": 1234,
                                  "unit": "instructions", "median": 41.0, "samples": [40, 42], "subgraph": None}]
        assert old["outputs"] == [] and old["energy"] is None
        unplugged = store.get_run(2)
        assert unplugged["status"] == "incomplete" and unplugged["incomplete_reason"] == "unplugged"
        # The migrated store takes new-schema data, on old runs and new ones.
        store.add_outputs(1, [{"input": "x.bin", "label": 1, "predicted": 1, "match_reference": True}])
        store.set_energy(1, {"uj_per_inference": 3.0, "method": "modelled", "source": "power model"})
        assert store.get_run(1)["energy"]["uj_per_inference"] == 3.0
        new = store.begin_run({"board": "qemu-m4", "firmware": {"runtime_version": "0.3", "kernels": "dsp",
                                                                "optimize": "speed"},
                               "model": {"variant": {"prune_structure": "channel"}}, "effective_macs": 9081})
        assert new == 3
        run = store.get_run(3)
        assert run["firmware"]["kernels"] == "dsp" and run["firmware"]["optimize"] == "speed"
        assert run["model"]["variant"]["prune_structure"] == "channel" and run["effective_macs"] == 9081
    with ResultStore(store_path) as again:  # reopening does not migrate twice
        assert again.schema_version == SCHEMA_VERSION and len(again.list_runs()) == 3
