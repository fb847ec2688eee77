"""Session fixtures for the per-kernel property tests: TensorFlow is imported once per session (per xdist worker),
single-op models come from tests.support.opmodels and every example is checked against the TFLM interpreter through
codegen + a sanitized host build, once per kernel set with its own file for the op (tests/support/kernel_params.py;
FORMICARY_TEST_KERNEL_SET=name=folder adds a set for one run, registered here before the test modules collect).
"""
from __future__ import annotations

import pytest

from tests.support.kernel_params import register_env_set
from tests.support.opmodels import OpModels

register_env_set()


@pytest.fixture(scope="session")
def tf():
    import os

    import formicary  # noqa: F401 - sets TF_USE_LEGACY_KERAS before TensorFlow loads

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow

    return tensorflow


@pytest.fixture(scope="session")
def opmodels(tf) -> OpModels:
    return OpModels(tf)
