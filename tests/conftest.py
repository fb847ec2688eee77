"""Session-wide fixtures. TensorFlow is never imported here: TF tests get it from tests/compile/conftest.py."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
KWS_MODEL = SHARED / "models" / "kws_ref_model.tflite"
KWS_DATA = SHARED / "data" / "kws01"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def kws_model_path() -> Path:
    if not KWS_MODEL.is_file():
        pytest.skip(f"MLPerf Tiny KWS model not found at {KWS_MODEL}: these tests need ../shared beside the repo")
    return KWS_MODEL


@pytest.fixture(scope="session")
def kws_data_dir() -> Path:
    if not (KWS_DATA / "y_labels.csv").is_file():
        pytest.skip(f"KWS test inputs not found at {KWS_DATA}: these tests need ../shared beside the repo")
    return KWS_DATA
