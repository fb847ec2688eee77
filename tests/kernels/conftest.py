"""Session fixtures for the per-kernel property tests: TensorFlow is imported once per session; the model
builder and the checks against TFLM are in kernel_checks.py.
"""
from __future__ import annotations

import pytest
from kernel_checks import OpModels

# Hypothesis profile for every test in this folder: reproducible (derandomized) and fast enough for CI.
try:
    from hypothesis import HealthCheck, settings

    settings.register_profile("kernels", deadline=None, derandomize=True, database=None, print_blob=True,
                              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                     HealthCheck.function_scoped_fixture])
    settings.load_profile("kernels")
except ImportError:  # pragma: no cover - hypothesis is a dev dependency
    pass


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
