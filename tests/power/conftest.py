"""Builds the C parts of the power tests (INA driver + simulated register files) once per session."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SENSORS = REPO / "firmware" / "sensors"
CFLAGS = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-g", "-O1"]
SAN = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]


def _cc() -> str:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no host C compiler (gcc) to build the INA driver tests")
    return cc


@pytest.fixture(scope="session")
def ina_test_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ina") / "test_ina"
    subprocess.run([_cc(), *CFLAGS, *SAN, f"-I{SENSORS}", f"-I{HERE}", str(HERE / "test_ina.c"),
                    str(HERE / "ina_sim.c"), str(SENSORS / "fm_ina.c"), "-lm", "-o", str(out)], check=True)
    return out


@pytest.fixture(scope="session")
def ina_shared_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # no sanitizers here: ASan cannot be preloaded into the Python process
    out = tmp_path_factory.mktemp("ina_so") / "libina_sim.so"
    subprocess.run([_cc(), *CFLAGS, "-shared", "-fPIC", f"-I{SENSORS}", f"-I{HERE}", str(HERE / "ina_ctypes.c"),
                    str(HERE / "ina_sim.c"), str(SENSORS / "fm_ina.c"), "-lm", "-o", str(out)], check=True)
    return out
