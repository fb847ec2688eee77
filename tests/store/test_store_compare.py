"""Regression thresholds: parsing, evaluation, unit safety, and the `runs compare` exit codes."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from formicary.errors import FormicaryError
from formicary.store import ResultStore

CLI = "from formicary.cli import main; main()"  # the `formicary` entry point
from formicary.store.compare import compare_runs, parse_threshold


def _run(latency=(100,), accuracy=0.9, unit="instructions", energy=None, flash=1000, ram=500, board="qemu-m4"):
    return {"id": 1, "board": board, "status": "complete", "model": {"name": "m", "variant": {"label": "v"}},
            "latency": {"unit": unit, "method": "qemu-icount-systick" if unit == "instructions" else "dwt-cyccnt",
                        "median": latency[0], "p90": latency[-1]},
            "accuracy": accuracy, "flash_bytes": flash, "ram_bytes": ram,
            "energy": None if energy is None else {"uj_per_inference": energy, "method": "modelled", "source": "x"}}


@pytest.mark.parametrize("text, metric, op, value, mode", [
    ("latency.median>+5%", "latency.median", ">", 5.0, "relative"),
    ("accuracy<-1pt", "accuracy", "<", -1.0, "points"),
    ("flash_bytes>+1024", "flash_bytes", ">", 1024.0, "delta"),
    ("ram>=+0", "ram_bytes", ">=", 0.0, "delta"),
    ("accuracy < 0.9", "accuracy", "<", 0.9, "absolute"),
    ("energy>+2.5%", "energy.uj_per_inference", ">", 2.5, "relative"),
    ("latency.p90<=-.5%", "latency.p90", "<=", -0.5, "relative"),
])
def test_parse_threshold(text, metric, op, value, mode):
    t = parse_threshold(text)
    assert (t.metric, t.op, t.value, t.mode) == (metric, op, value, mode)


@pytest.mark.parametrize("text, message", [
    ("latency.median>5%", "needs a sign"),
    ("latency.median>+5pt", "accuracy only"),
    ("speed>+5%", "unknown metric"),
    ("latency.median=+5%", "cannot parse"),
    ("latency.median>+five%", "cannot parse"),
])
def test_parse_threshold_rejects(text, message):
    with pytest.raises(FormicaryError, match=message):
        parse_threshold(text)


def test_thresholds_trip_exactly_at_their_boundary():
    a = _run(latency=(1000, 1100), accuracy=0.90, flash=1000)
    slower = _run(latency=(1051, 1100), accuracy=0.885, flash=1000)
    result = compare_runs(a, slower, ["latency.median>+5%", "accuracy<-1pt", "flash_bytes>+0", "accuracy<0.88"])
    assert [c["tripped"] for c in result["checks"]] == [True, True, False, False]
    assert result["failed"] is True
    ok = compare_runs(a, _run(latency=(1050, 1100), accuracy=0.891, flash=1000),
                      ["latency.median>+5%", "accuracy<-1pt"])
    assert [c["tripped"] for c in ok["checks"]] == [False, False] and ok["failed"] is False
    medians = next(m for m in result["metrics"] if m["metric"] == "latency.median")
    assert medians == {"metric": "latency.median", "a": 1000, "b": 1051, "unit": "instructions",
                       "method": "qemu-icount-systick", "delta": 51, "relative_pct": pytest.approx(5.1)}
    acc = next(m for m in result["metrics"] if m["metric"] == "accuracy")
    assert acc["delta_pt"] == pytest.approx(-1.5)


def test_refuses_instructions_vs_cycles():
    with pytest.raises(FormicaryError, match="not comparable") as err:
        compare_runs(_run(unit="instructions"), _run(unit="cycles"))
    assert err.value.details == {"a_unit": "instructions", "b_unit": "cycles"}


def test_missing_metric_is_an_error_not_a_pass():
    with pytest.raises(FormicaryError, match="has no energy"):
        compare_runs(_run(energy=1.0), _run(energy=None), ["energy>+5%"])
    # Without a threshold the missing metric is simply shown with no delta.
    rows = compare_runs(_run(energy=1.0), _run(energy=None))["metrics"]
    energy = next(m for m in rows if m["metric"] == "energy.uj_per_inference")
    assert energy["b"] is None and energy["delta"] is None


def test_warnings_for_incomplete_and_different_boards():
    b = {**_run(board="qemu-m7"), "status": "interrupted"}
    warnings = compare_runs(_run(), b)["warnings"]
    assert any("interrupted" in w for w in warnings) and any("different boards" in w for w in warnings)


def _cli(*args, store):
    return subprocess.run([sys.executable, "-c", CLI, *args, "--store", str(store)], capture_output=True,
                          text=True, check=False, timeout=60, env={**os.environ, "COLUMNS": "250"})


@pytest.fixture
def cli_store(store_path, make_result):
    with ResultStore(store_path) as s:
        base = s.record_result(make_result("int8", base=1_000_000, accuracy=0.90, seed=1))
        slow = s.record_result(make_result("int8", base=1_200_000, accuracy=0.90, seed=2))
        real = s.record_result(make_result("int8", unit="cycles", board="nucleo-f446re", seed=3))
    return store_path, base, slow, real


def test_cli_compare_exit_codes(cli_store):
    store, base, slow, real = cli_store
    ok = _cli("runs", "compare", str(base), str(base), "--fail-if", "latency.median>+5%", "--json", store=store)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["failed"] is False
    tripped = _cli("runs", "compare", str(base), str(slow), "--fail-if", "latency.median>+5%",
                   "--fail-if", "accuracy<-1pt", "--json", store=store)
    assert tripped.returncode == 1, tripped.stderr
    checks = json.loads(tripped.stdout)["checks"]
    assert [c["tripped"] for c in checks] == [True, False]
    human = _cli("runs", "compare", str(base), str(slow), "--fail-if", "latency.median>+5%", store=store)
    assert human.returncode == 1 and "TRIPPED" in human.stdout and "instructions" in human.stdout
    units = _cli("runs", "compare", str(base), str(real), store=store)
    assert units.returncode == 2 and "not comparable" in units.stderr
    units_json = _cli("runs", "compare", str(base), str(real), "--json", store=store)
    assert units_json.returncode == 2 and json.loads(units_json.stdout)["error"]["details"]["b_unit"] == "cycles"
    bad = _cli("runs", "compare", str(base), str(slow), "--fail-if", "latency.median>5%", store=store)
    assert bad.returncode == 2 and "needs a sign" in bad.stderr
    missing = _cli("runs", "compare", str(base), "999", store=store)
    assert missing.returncode == 2 and "not in the results store" in missing.stderr
