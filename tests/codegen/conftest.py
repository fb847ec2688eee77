"""Codegen tests: TensorFlow-free. Single-op models come from tests.support.tfl_builder (flatbuffers), the oracle is
the TFLM Python interpreter; the host C compiler builds the generated code (its cache is the suite's, set up in
tests/conftest.py)."""
from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="session")
def host_cc() -> str:
    for cc in ("cc", "gcc", "clang"):
        if shutil.which(cc):
            return cc
    pytest.skip("no host C compiler (cc/gcc/clang) installed")


@pytest.fixture(scope="session")
def tflm():
    return pytest.importorskip("tflite_micro", reason="the TFLM wheel (tflite-micro) is the oracle")
