"""Two bench processes writing to one (initially nonexistent) store at once: no corruption, no lost rows."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from formicary.store import SCHEMA_VERSION, ResultStore

WRITER = Path(__file__).with_name("writer_proc.py")
N = 400


def test_two_concurrent_writers(store_path):
    start_at = time.time() + 1.5  # both processes create and migrate the store at the same moment
    procs = [subprocess.Popen([sys.executable, str(WRITER), str(store_path), f"board-{k}", str(N), str(start_at)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert out.rstrip().endswith("done")
    with ResultStore(store_path) as store:
        assert store.integrity_check() == "ok"
        assert store.schema_version == SCHEMA_VERSION
        runs = store.list_runs()
        assert sorted(r["board"] for r in runs) == ["board-0", "board-1"]
        for summary in runs:
            run = store.get_run(summary["id"])
            assert run["status"] == "complete"
            assert run["latency"]["samples"] == [1000 + i for i in range(N)]
            assert len(run["outputs"]) == len(range(0, N, 25))
            assert run["layers"][0]["samples"] == list(range(0, N, 25))
