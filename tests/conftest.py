"""Session-wide fixtures. TensorFlow is never imported here: TF tests get it from tests/compile/conftest.py and
tests/kernels/conftest.py.

The suite runs on every core with pytest-xdist (pyproject addopts: `-n auto --dist loadgroup`); tests whose
module- or session-scoped fixtures are expensive (TensorFlow training, firmware builds) carry
`pytest.mark.xdist_group(...)` so that one worker runs them all and the fixture is built once.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# xdist_group() on pytest 9.2 (see the module)
pytest_plugins = ["tests.support.xdist_groups"]

if os.environ.get("PYTEST_XDIST_WORKER"):
    # xdist workers start with COLUMNS=80 in their environment, which a single-process run without a terminal does
    # not have; rich (the CLI's console) fixes its width from COLUMNS when it is created. Same environment either way.
    for _var in ("COLUMNS", "LINES"):
        os.environ.pop(_var, None)

# One Hypothesis profile for the whole suite, whatever subset runs: reproducible (derandomized, no example
# database) and without timing-based health checks (examples build and run C, and the machine may be busy).
try:
    from hypothesis import HealthCheck, settings

    settings.register_profile("formicary", deadline=None, derandomize=True, database=None, print_blob=True,
                              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                     HealthCheck.function_scoped_fixture])
    settings.load_profile("formicary")
except ImportError:  # pragma: no cover - hypothesis is a test dependency
    pass

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
KWS_MODEL = SHARED / "models" / "kws_ref_model.tflite"
KWS_DATA = SHARED / "data" / "kws01"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest first, so that xdist workers finish together: tests marked `slow`, then Hypothesis tests (each
    example builds and runs C), then the rest; collection order within each class. (xdist also starts the
    xdist_group()s before single tests.)"""
    def weight(item: pytest.Item) -> int:
        if item.get_closest_marker("slow"):
            return 0
        return 1 if getattr(getattr(item, "obj", None), "is_hypothesis_test", False) else 2

    items.sort(key=weight)


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


@pytest.fixture(scope="session", autouse=True)
def _hermetic_caches(tmp_path_factory):
    """Builds (host builds of generated C, firmware, the HIL plugin's firmware) go to caches of this test run, so
    tests never depend on or fill the user's cache or .pytest_cache. Shared by the xdist workers of one run (their
    temp folders have a common parent); the caches lock what they build. Results stores default to a file of
    this worker."""
    base = tmp_path_factory.getbasetemp()
    run_root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    saved = {k: os.environ.get(k) for k in ("FORMICARY_CACHE_DIR", "FORMICARY_BUILD_DIR", "FORMICARY_STORE")}
    os.environ["FORMICARY_CACHE_DIR"] = str(run_root / "fm-cache")
    os.environ["FORMICARY_BUILD_DIR"] = str(run_root / "hil-builds")
    os.environ["FORMICARY_STORE"] = str(base / "default-results.sqlite")
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def virtual_sbc():
    """The virtual SBC (formicary.target.virtual_sbc), booted once per session (per xdist worker: mark its tests
    `xdist_group("virtual_sbc")`); yields its SshEndpoint. Skips when the image is not built (scripts/bootstrap.sh
    builds it when run as root) or qemu-system-aarch64 / ssh are missing."""
    import shutil

    from formicary.target import virtual_sbc as vsbc

    status = vsbc.image_status()
    if not status["built"]:
        pytest.skip(f"the virtual SBC image is not built (looked in {', '.join(status['searched'])}): "
                    f"{status['build_command']}")
    for tool, package in (("qemu-system-aarch64", "qemu-system-arm"), ("ssh", "openssh-client")):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is needed for the virtual SBC (apt-get install {package})")
    with vsbc.VirtualSbc() as endpoint:
        yield endpoint
