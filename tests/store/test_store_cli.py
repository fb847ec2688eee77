"""`formicary runs list|show|export|import` through the real CLI entry point."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

from formicary.store import ResultStore

CLI = "from formicary.cli import main; main()"  # the `formicary` entry point


def _cli(*args, env=None):
    # Wide terminal so rich does not truncate table cells the test looks for.
    return subprocess.run([sys.executable, "-c", CLI, *args], capture_output=True, text=True, check=False, timeout=60,
                          env={**os.environ, "COLUMNS": "250", **(env or {})})


def test_import_list_show_export(tmp_path, store_path, make_result):
    bench_json = tmp_path / "bench.json"
    bench_json.write_text(json.dumps(make_result("int8-lora4", seed=5)))
    # FORMICARY_STORE selects the store when --store is not given.
    imported = _cli("runs", "import", str(bench_json), "--json", env={"FORMICARY_STORE": str(store_path)})
    assert imported.returncode == 0, imported.stderr
    run_id = json.loads(imported.stdout)["imported"][0]

    listed = _cli("runs", "list", "--store", str(store_path), "--json")
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)["runs"]
    assert [r["id"] for r in runs] == [run_id] and runs[0]["latency"]["unit"] == "instructions"
    human = _cli("runs", "list", "--store", str(store_path))
    assert human.returncode == 0 and "qemu-icount-systick" in human.stdout

    shown = _cli("runs", "show", str(run_id), "--store", str(store_path), "--json")
    with ResultStore(store_path) as s:
        expected = json.loads(json.dumps(s.get_run(run_id), default=str))
    assert json.loads(shown.stdout) == expected
    human_show = _cli("runs", "show", str(run_id), "--store", str(store_path))
    assert "µJ/inference (modelled" in human_show.stdout and "instructions" in human_show.stdout
    assert "trained   lora: rank 4" in human_show.stdout

    out = tmp_path / "runs.csv"
    exported = _cli("runs", "export", "--format", "csv", "-o", str(out), "--store", str(store_path))
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 1 and rows[0]["latency_method"] == "qemu-icount-systick"
    samples = _cli("runs", "export", str(run_id), "-f", "csv", "--table", "samples", "--store", str(store_path))
    assert len(samples.stdout.strip().splitlines()) == 1 + 40
    as_json = _cli("runs", "export", "--store", str(store_path))
    assert json.loads(as_json.stdout)["runs"][0]["latency"]["samples"] == expected["latency"]["samples"]


def test_import_rejects_garbage(tmp_path, store_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = _cli("runs", "import", str(bad), "--store", str(store_path))
    assert result.returncode == 2 and "cannot read bench JSON" in result.stderr


def test_store_modules_do_not_import_tensorflow():
    code = ("import sys, formicary.store, formicary.store.compare, formicary.report, formicary.cli.runs_cmd, "
            "formicary.cli.report_cmd; assert 'tensorflow' not in sys.modules; print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60)
    assert result.stdout.strip() == "ok", result.stderr
