"""The C DUT parser (firmware/mlperf/fm_mlperf.c) on the host with sanitizers: scripted sessions and garbage."""
from __future__ import annotations

import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
MLPERF = HERE.parents[1] / "firmware" / "mlperf"


def session(binary: Path, data: bytes, *args: str) -> list[str]:
    proc = subprocess.run([str(binary), *args], input=data, capture_output=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout.decode("ascii").split("\r\n")[:-1]


def test_scripted_session(dut_host_binary: Path) -> None:
    lines = session(dut_host_binary, b"name%profile%help%timestamp%db load 4%db 0102%db 0304%db print%"
                                     b"infer 2 1%results%bogus%", "4", "500")
    # the EEMBC reference firmware's banner, and its profile reply (model id) + formicary's model hash line
    assert lines[:3] == ["m-timestamp-mode-performance", "m-init-done", "m-ready"]
    assert "m-name-dut-[formicary-host]" in lines
    i = lines.index("m-model-[fake-kws]")
    assert lines[i + 1] == "m-model-hash-[0123abcd]"
    assert "m-[Expecting 4 bytes]" in lines and lines.count("m-load-done") == 1
    assert "m-buffer-01-02-03-04" in lines
    i = lines.index("m-infer-start-2")
    assert lines[i - 2:i] == ["m-warmup-start-1", "m-warmup-done"]
    t0, t1 = (int(re.match(r"m-lap-us-(\d+)", ln).group(1)) for ln in lines[i + 1:i + 3])
    assert t1 - t0 == 2 * 500 + 7  # two invokes of the fake's 500 µs + one timestamp read
    # input bytes sum to 10 -> class 10 of 12 at 127 -> (127 + 128) / 256
    expected = "m-results-[" + ",".join("0.996" if k == 10 else "0.000" for k in range(12)) + "]"
    assert lines[i + 3:i + 5] == ["m-infer-done", expected]
    assert lines.count(expected) == 2
    assert "e-[Unknown command: bogus]" in lines
    # every command is answered with m-ready: banner + 11 commands
    assert lines.count("m-ready") == 12


@pytest.mark.parametrize("cmd,error", [
    (b"infer 0%", "e-[infer: N must be at least 1]"),
    (b"infer 2 x%", "e-[infer: W must be a number 0..10000000]"),
    (b"infer 99999999999%", "e-[infer: N must be a number 1..10000000]"),
    (b"infer 1 2 3%", "e-[infer: usage infer N W]"),
    (b"db load 5%", "e-[db load: larger than the model input]"),
    (b"db load%", "e-[db load: usage db load N]"),
    (b"db 00%", "e-[db: no db load pending]"),
    (b"db load 2%db 0g%", "e-[db: not a hex byte string]"),
    (b"db load 2%db 001122%", "e-[db: more bytes than announced by db load]"),
    (b"A" * 300 + b"%", "e-[Command too long]"),
    (b"\x00\xff[]%", "e-[Unknown command: ????]"),
])
def test_errors_and_resync(dut_host_binary: Path, cmd: bytes, error: str) -> None:
    lines = session(dut_host_binary, cmd + b"name%", "4")
    assert error in lines
    # the parser is back in step: the next command is answered normally
    assert lines[-2:] == ["m-name-dut-[formicary-host]", "m-ready"]


def test_rejected_hex_changes_nothing(dut_host_binary: Path) -> None:
    lines = session(dut_host_binary, b"db load 4%db aabb%db 0z%db ccdd%db print%", "4")
    assert "m-buffer-aa-bb-cc-dd" in lines and "m-load-done" in lines


def test_reference_firmware_defaults(dut_host_binary: Path) -> None:
    """What the EEMBC reference firmware does where a command leaves things out: `infer` = 1 inference after 10
    warm-ups, `infer N` = N after 10; `db print` prints the whole announced buffer, 8 dash-separated bytes a line."""
    lines = session(dut_host_binary, b"infer%infer 3%db load 10%db 00010203040506070809%db print%", "10", "5")
    starts = [ln for ln in lines if ln.startswith(("m-warmup-start-", "m-infer-start-"))]
    assert starts == ["m-warmup-start-10", "m-infer-start-1", "m-warmup-start-10", "m-infer-start-3"]
    i = lines.index("m-buffer-00-01-02-03-04-05-06-07")
    assert lines[i + 1:i + 3] == ["m-buffer-08-09", "m-ready"]
    # a partly loaded buffer prints its announced size too (as the reference does), nothing before any load
    lines = session(dut_host_binary, b"db print%db load 3%db 0a%db print%", "10")
    assert [ln for ln in lines if ln.startswith("m-buffer-")] == ["m-buffer-0a-00-00"]


def test_invoke_failure_is_reported(dut_host_binary: Path) -> None:
    lines = session(dut_host_binary, b"infer 1 0%name%", "4", "10", "fail")
    assert "e-[invoke failed]" in lines and "m-infer-done" not in lines
    assert lines[-1] == "m-ready"


def test_random_garbage_never_crashes(dut_host_binary: Path) -> None:
    rng = random.Random(5)
    for _ in range(20):
        blob = bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 5000)))
        lines = session(dut_host_binary, blob + b"%name%", "490")
        assert all(ln.startswith(("m-", "e-")) for ln in lines)
        assert lines[-2:] == ["m-name-dut-[formicary-host]", "m-ready"]


def test_fuzz_standalone(fuzz_standalone_binary: Path) -> None:
    # 20k random sessions of valid commands, hex and garbage; sanitizers abort on any memory error
    proc = subprocess.run([str(fuzz_standalone_binary), "20000", "7"], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok 20000 sessions"


def test_libfuzzer_short_run(tmp_path: Path) -> None:
    clang = shutil.which("clang")
    if clang is None:
        pytest.skip("clang not installed: libFuzzer run skipped (the standalone fuzz driver still ran)")
    exe = tmp_path / "fuzz_lf"
    build = subprocess.run([clang, "-g", "-O1", "-std=c11", "-Wall", "-Wextra", "-Werror",
                            "-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=all", f"-I{MLPERF}",
                            str(HERE / "fuzz_mlperf.c"), str(MLPERF / "fm_mlperf.c"), "-o", str(exe)],
                           capture_output=True, text=True, check=False)
    if build.returncode != 0 and "fuzzer" in build.stderr and "cannot find" in build.stderr:
        pytest.skip("libFuzzer runtime missing (apt-get install libclang-rt-14-dev)")
    assert build.returncode == 0, build.stderr[-3000:]  # a warning or a compile error is a failure, not a skip
    proc = subprocess.run([str(exe), "-runs=100000", "-max_len=2048", "-seed=1"], capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Done 100000 runs in" in proc.stderr, proc.stderr[-2000:]
