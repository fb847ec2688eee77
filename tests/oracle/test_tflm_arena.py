"""The TFLM arena measurement: the smallest arena TFLM runs with, probed in child processes that cannot crash the
caller and do not inherit its threads."""
from __future__ import annotations

import subprocess
import sys

from formicary.oracle.tflm import measure_arena


def _probe(model, arena: int) -> int:
    return subprocess.run([sys.executable, "-m", "formicary.oracle.tflm_probe", str(model), str(arena)],
                          capture_output=True).returncode


def test_measured_arena_is_the_smallest_that_runs(kws_model_path):
    arena = measure_arena(kws_model_path)
    assert _probe(kws_model_path, arena) == 0
    assert _probe(kws_model_path, arena - 1) != 0  # exit 1, or TFLM's constructor crashing on a too-small arena


def test_probe_usage_errors_are_not_verdicts(kws_model_path):
    assert _probe(kws_model_path, "12abc") == 2
    assert subprocess.run([sys.executable, "-m", "formicary.oracle.tflm_probe"], capture_output=True).returncode == 2


def test_probes_do_not_fork_this_process(kws_model_path, monkeypatch):
    """A fork copies this process's threads' locks and runs its atfork handlers (gRPC's crashed children): the
    probes must be fresh processes (subprocess uses vfork/exec, never os.fork)."""
    import os

    def no_fork():
        raise AssertionError("measure_arena forked the calling process")

    monkeypatch.setattr(os, "fork", no_fork)
    assert measure_arena(kws_model_path) > 0


def test_arena_is_the_same_while_grpc_threads_are_busy(kws_model_path):
    """A forked probe died with the caller's gRPC threads (labgrid) and read as "does not run": a larger arena."""
    from tests.support.busy_grpc import busy_grpc_threads

    quiet = measure_arena(kws_model_path)
    with busy_grpc_threads():
        assert [measure_arena(kws_model_path) for _ in range(3)] == [quiet] * 3
