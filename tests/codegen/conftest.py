"""Codegen tests: TensorFlow-free. Single-op models come from tfl_builder (flatbuffers), the oracle is the TFLM
Python interpreter; the host C compiler builds the generated code."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session", autouse=True)
def _private_native_cache(tmp_path_factory):
    # Builds go to a per-session cache so tests never depend on (or fill) the user's cache.
    import os

    old = os.environ.get("FORMICARY_CACHE_DIR")
    os.environ["FORMICARY_CACHE_DIR"] = str(tmp_path_factory.mktemp("fm-cache"))
    yield
    if old is None:
        os.environ.pop("FORMICARY_CACHE_DIR", None)
    else:
        os.environ["FORMICARY_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def host_cc() -> str:
    for cc in ("cc", "gcc", "clang"):
        if shutil.which(cc):
            return cc
    pytest.skip("no host C compiler (cc/gcc/clang) installed")


@pytest.fixture(scope="session")
def tflm():
    return pytest.importorskip("tflite_micro", reason="the TFLM wheel (tflite-micro) is the oracle")
