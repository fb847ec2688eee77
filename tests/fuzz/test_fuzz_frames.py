"""Short libFuzzer run of the firmware's receive path (frame parser + command dispatcher) under ASan/UBSan.
A crash, sanitizer report, leak or assertion in fuzz_app.c fails the test. The budget is a number of executions
with a fixed seed (a couple of CPU seconds, the same work however busy the machine is); long runs:
benchmarks/fuzz_long.py and tests/fuzz/README.md."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def fuzzer(tmp_path_factory) -> Path:
    if shutil.which("clang") is None:
        pytest.skip("clang not installed (apt-get install clang libclang-rt-14-dev)")
    out = tmp_path_factory.mktemp("fuzz") / "fuzz_app"
    proc = subprocess.run([str(HERE / "build.sh"), str(out)], capture_output=True, text=True)
    if proc.returncode != 0 and "fuzzer" in proc.stderr and "cannot find" in proc.stderr:
        pytest.skip("libFuzzer runtime missing (apt-get install libclang-rt-14-dev)")
    assert proc.returncode == 0, proc.stderr
    return out


def test_fuzz_firmware_receive_path(fuzzer, tmp_path):
    from tests.fuzz.make_corpus import seeds

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, data in seeds().items():
        (corpus / name).write_bytes(data)
    runs = int(os.environ.get("FORMICARY_FUZZ_RUNS", "50000"))
    proc = subprocess.run([str(fuzzer), f"-runs={runs}", "-seed=1", "-max_len=4096", "-timeout=10",
                           f"-artifact_prefix={tmp_path}/", str(corpus)],
                          capture_output=True, text=True, timeout=600)
    tail = proc.stderr[-3000:]
    assert proc.returncode == 0, tail
    assert f"Done {runs} runs in" in proc.stderr, tail
    # the seeds got the fuzzer past the CRC: coverage must exceed the parser alone
    cov = [int(line.split("cov: ")[1].split()[0]) for line in proc.stderr.splitlines() if "cov: " in line]
    assert cov and max(cov) > 150, tail
