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


@pytest.fixture(scope="session")
def arm_qemu_tools() -> None:
    """Skip tests that build firmware and run it on a virtual board when the tools are not installed."""
    import shutil

    if shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("qemu-system-arm and arm-none-eabi-gcc are needed (apt-get install qemu-system-arm "
                    "gcc-arm-none-eabi libnewlib-arm-none-eabi)")
