"""The README's main job, `formicary demo`, end to end in a fresh process as a user runs it: train, compile
three variants, build, flash a virtual board, bench against TFLM, report. Checked against the 3-minute budget."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

pytestmark = [pytest.mark.qemu, pytest.mark.slow, pytest.mark.tf, pytest.mark.usefixtures("arm_qemu_tools")]


def test_demo_end_to_end(tmp_path):
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", "from formicary.cli import main; main()", "demo", "-o",
                           str(tmp_path / "demo"), "--json"], capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout)
    assert wall < 180, f"the main job took {wall:.0f} s, over its 3-minute budget"
    benches = {b["variant"]: b for b in r["benches"]}
    assert set(benches) == {"float32", "int8", "int8-pruned50"}
    for name, b in benches.items():
        assert b["inputs"] == 400 and b["mismatches"] == 0, name
        assert b["latency"]["unit"] == "instructions" and b["latency"]["median"] > 0
    assert benches["int8"]["bit_exact"] and benches["int8-pruned50"]["bit_exact"]
    # the device's accuracy is TFLM's accuracy for the same model (bit-exact outputs)
    assert benches["int8-pruned50"]["accuracy"] == pytest.approx(r["report"]["accuracy"]["quantized"])
    assert benches["int8"]["model_bytes"] < benches["float32"]["model_bytes"] / 2
    html = (tmp_path / "demo" / "report.html").read_text()
    assert html.count("<img") >= 3 and "int8-pruned50" in html
    # the runs are in the demo's store, complete
    from formicary.store import ResultStore

    with ResultStore(r["store_path"]) as st:
        runs = [st.get_run(b["run_id"]) for b in r["benches"]]
    assert all(run["status"] == "complete" and len(run["latency"]["samples"]) == 400 for run in runs)
