"""Fixtures for the hardware-in-the-loop tests: the device side comes from the formicary pytest plugin
(`dut_factory`, host/formicary/pytest_plugin.py); here are the tools check, the KWS set with its labels and
the digits model (TensorFlow imported only by tests that ask for it)."""
from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module", autouse=True)
def _boards_closed_after_each_module(dut_factory):
    """The plugin keeps every board connected until the session ends (cheap for a real board). A virtual board's
    QEMU spins a core while its firmware polls the UART, so in this suite, where the HIL modules are a small part
    of a long session, each module closes its boards (QEMU killed); firmware builds stay cached."""
    yield
    dut_factory.close()


@pytest.fixture(scope="session")
def hil_tools() -> None:
    missing = [t for t in ("qemu-system-arm", "arm-none-eabi-gcc") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (apt-get install qemu-system-arm gcc-arm-none-eabi "
                    "libnewlib-arm-none-eabi)")


@dataclass
class KwsSet:
    files: list[Path]
    inputs: list[np.ndarray]   # int8 [1, 49, 10, 1], already quantized (MLPerf Tiny .bin files)
    labels: list[int]


@pytest.fixture(scope="session")
def kws_set(kws_data_dir) -> KwsSet:
    """All MLPerf Tiny KWS inputs with their labels from y_labels.csv (which must agree with the file names)."""
    rows = list(csv.reader((kws_data_dir / "y_labels.csv").open()))
    files, labels = [], []
    for name, _classes, label in rows:
        assert int(name.rsplit(".", 1)[0].rsplit("_", 1)[1]) == int(label), f"{name}: csv label {label}"
        files.append(kws_data_dir / name)
        labels.append(int(label))
    assert sorted(files) == sorted(kws_data_dir.glob("*.bin")), "y_labels.csv does not list exactly the .bin files"
    inputs = [np.fromfile(f, dtype=np.int8).reshape(1, 49, 10, 1) for f in files]
    return KwsSet(files, inputs, labels)


@dataclass
class DigitsInt8:
    keras_model: Path
    tflite: Path
    val_x: np.ndarray          # float pixels in [0, 1], [400, 8, 8, 1]
    val_y: np.ndarray
    report: dict


@pytest.fixture(scope="session")
def digits_int8(tmp_path_factory) -> DigitsInt8:
    """The digits CNN trained once (seed 0) and compiled to full int8 with TFLM-measured accuracy."""
    from formicary.compile import compile_model
    from formicary.model.keras_io import import_tensorflow, save_keras_model
    from formicary.model.zoo import digits_splits, train_digits_cnn

    root = tmp_path_factory.mktemp("hil-digits")
    splits = digits_splits(seed=0)
    paths = splits.save(root / "data")
    import_tensorflow()
    model_path = save_keras_model(train_digits_cnn(splits, epochs=10, seed=0), root / "digits_cnn.keras")
    result = compile_model(model_path, root / "compiled", calib=str(paths["calib"]), val=str(paths["val"]),
                           quantize="int8", seed=0)
    return DigitsInt8(model_path, Path(result.model_path), splits.val.x, splits.val.y, result.report)
