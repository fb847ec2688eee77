"""fm_mve.h's portable MVE intrinsics against known lane values, and the helium vector requantization against TFLM's
scalar MultiplyByQuantizedMultiplier (fm_mbqm) over 8 M random and edge lanes, in an ASan/UBSan host build
(tests/kernels/c/helium_shim_check.c)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_mve_shim_and_vector_requant_match(tmp_path):
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no host C compiler")
    exe = tmp_path / "shim_check"
    subprocess.run([cc, "-std=c11", "-O1", "-Wall", "-Wextra", "-Werror", "-fsanitize=address,undefined",
                    "-fno-sanitize-recover=all", f"-I{ROOT / 'firmware/kernels/helium'}",
                    f"-I{ROOT / 'firmware/kernels/include'}", f"-I{ROOT / 'firmware/runtime/include'}",
                    str(ROOT / "tests/kernels/c/helium_shim_check.c"), "-o", str(exe)], check=True)
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr
