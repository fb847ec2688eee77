"""A writer killed with SIGKILL mid-run leaves every committed sample, and the run reads as interrupted."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from formicary.store import ResultStore

WRITER = Path(__file__).with_name("writer_proc.py")


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX only")
def test_sigkill_mid_run_keeps_samples_and_marks_interrupted(store_path):
    proc = subprocess.Popen([sys.executable, str(WRITER), str(store_path), "qemu-m4", "100000"],
                            stdout=subprocess.PIPE, text=True)
    durable = -1
    try:
        run_line = proc.stdout.readline()
        assert run_line.startswith("run "), run_line
        run_id = int(run_line.split()[1])
        for line in proc.stdout:
            if line.startswith("wrote "):
                durable = int(line.split()[1])
                if durable >= 120:
                    break
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    with ResultStore(store_path) as store:
        assert store.integrity_check() == "ok"
        run = store.get_run(run_id)
        assert run["status"] == "interrupted" and run["complete"] is False
        assert "ended without finishing" in run["incomplete_reason"]
        samples = run["latency"]["samples"]
        # Everything reported as written before the kill is there, in order, with nothing torn.
        assert len(samples) >= durable + 1 and len(samples) < 100000
        assert samples == [1000 + i for i in range(len(samples))]
        assert len(run["outputs"]) >= durable // 25 + 1
        assert run["layers"][0]["samples"][: durable // 25 + 1] == [25 * k for k in range(durable // 25 + 1)]
        # The store stays writable after the crash.
        store.add_samples(run_id, [7])
        store.finish_run(run_id, False, "resumed by test")
        assert store.get_run(run_id)["status"] == "incomplete"
