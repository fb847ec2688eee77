"""Datasets for training, calibration and validation: an `.npz` with `x` (and `y`), or an MLPerf-Tiny-style
folder of raw `.bin` tensors listed in `y_labels.csv` (rows `file,n_classes,label`).

No TensorFlow here: data errors must be reported before the (slow) TensorFlow import.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from formicary.errors import FormicaryError

FORMATS_HELP = ("an .npz file with arrays `x` (and `y` for labels), or a folder of raw .bin tensors with a "
                "y_labels.csv listing `file,n_classes,label` per row")


@dataclass
class Dataset:
    """Samples `x` (first axis = sample) and optional integer labels `y`; `source` names where they came from.

    `.bin` folders hold raw tensors whose shape is only known from the model, so they are loaded flat
    (shape `(n, elements)`) and reshaped by `fit_to_input`.
    """

    x: np.ndarray
    y: np.ndarray | None
    source: str
    flat: bool = False
    names: list[str] | None = None  # per-sample names (the .bin file names), for per-input results

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def has_labels(self) -> bool:
        return self.y is not None


def load_dataset(path: str | Path) -> Dataset:
    """Load an `.npz` or an MLPerf-Tiny `.bin` folder; FormicaryError naming the problem otherwise."""
    p = Path(path)
    if not p.exists():
        raise FormicaryError(f"data not found: {p}", f"pass an existing path: {FORMATS_HELP}.")
    if p.is_dir():
        return _load_bin_folder(p)
    if p.suffix == ".npz":
        return _load_npz(p)
    raise FormicaryError(f"unsupported data file {p.name}", f"use {FORMATS_HELP}.")


def _load_npz(p: Path) -> Dataset:
    try:
        with np.load(p, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as exc:  # noqa: BLE001 - numpy raises several types for corrupt archives
        raise FormicaryError(f"cannot read {p} as .npz: {exc}", f"use {FORMATS_HELP}.") from exc
    if "x" not in arrays:
        raise FormicaryError(f"{p.name} has no array `x` (found: {', '.join(arrays) or 'none'})",
                             "save the samples as `x` (and labels as `y`): np.savez(path, x=x, y=y).")
    x, y = arrays["x"], arrays.get("y")
    if x.ndim < 1 or x.shape[0] == 0:
        raise FormicaryError(f"{p.name}: `x` holds no samples", "save at least one sample in `x`.")
    if y is not None:
        y = _labels(y, p.name)
        if y.shape[0] != x.shape[0]:
            raise FormicaryError(f"{p.name}: {x.shape[0]} samples in `x` but {y.shape[0]} labels in `y`",
                                 "save one label per sample.")
    return Dataset(x=x, y=y, source=str(p))


def _labels(y: np.ndarray, name: str) -> np.ndarray:
    # One-hot labels are accepted and turned into class indices, the form every loss/metric here uses.
    if y.ndim == 2 and y.shape[1] > 1:
        y = np.argmax(y, axis=1)
    y = y.reshape(-1) if y.ndim == 2 else y
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.number):
        raise FormicaryError(f"{name}: labels `y` must be class indices (shape [n]) or one-hot (shape [n, k])",
                             "save integer class labels as `y`.")
    return y.astype(np.int64)


def _load_bin_folder(p: Path) -> Dataset:
    labels_csv = p / "y_labels.csv"
    if not labels_csv.is_file():
        raise FormicaryError(f"{p} has no y_labels.csv", f"a data folder needs {FORMATS_HELP}.")
    files: list[Path] = []
    labels: list[int] = []
    with labels_csv.open(newline="") as fh:
        for lineno, row in enumerate(csv.reader(fh), start=1):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 3:
                raise FormicaryError(f"{labels_csv}:{lineno}: expected `file,n_classes,label`, got {row!r}",
                                     "write one `file,n_classes,label` row per sample.")
            try:
                label = int(row[2])
            except ValueError:
                if lineno == 1:  # tolerate a header row
                    continue
                raise FormicaryError(f"{labels_csv}:{lineno}: label {row[2]!r} is not an integer",
                                     "labels must be integer class indices.") from None
            files.append(p / row[0].strip())
            labels.append(label)
    if not files:
        raise FormicaryError(f"{labels_csv} lists no samples", "add one `file,n_classes,label` row per sample.")
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise FormicaryError(f"{len(missing)} file(s) listed in {labels_csv.name} are missing, e.g. {missing[0]}",
                             "keep y_labels.csv and the .bin files together.")
    raw = [f.read_bytes() for f in files]
    sizes = {len(b) for b in raw}
    if len(sizes) != 1:
        raise FormicaryError(f"{p}: .bin files differ in size ({sorted(sizes)[:4]} bytes)",
                             "every .bin must hold one tensor of the model's input shape.")
    # MLPerf Tiny stores raw int8 tensors; their shape comes from the model (see fit_to_input).
    x = np.stack([np.frombuffer(b, dtype=np.int8) for b in raw])
    return Dataset(x=x, y=np.asarray(labels, dtype=np.int64), source=str(p), flat=True,
                   names=[f.name for f in files])


def fit_to_input(data: Dataset, input_shape: tuple[int | None, ...], role: str) -> Dataset:
    """Check (and for raw .bin data, apply) the model's input shape; FormicaryError on a mismatch.

    `input_shape` includes the batch axis (None or 1). `role` ("--train", …) names the option in errors.
    """
    sample_shape = tuple(int(d) for d in input_shape[1:] if d is not None)
    if any(d is None for d in input_shape[1:]):
        return data  # dynamic dimensions: nothing to check here, the model will say if it disagrees
    want = int(np.prod(sample_shape)) if sample_shape else 1
    got_shape = tuple(data.x.shape[1:])
    if data.flat:
        if int(np.prod(got_shape)) != want:
            raise FormicaryError(
                f"{role} data does not match the model input: each .bin holds {int(np.prod(got_shape))} values, "
                f"the model takes {sample_shape} = {want}",
                "give data recorded for this model's input shape.",
                details={"model_input": list(sample_shape), "data_sample": list(got_shape)})
        return Dataset(x=data.x.reshape((len(data),) + sample_shape), y=data.y, source=data.source, names=data.names)
    if got_shape != sample_shape:
        # A missing trailing channel axis of size 1 is a common, unambiguous difference: add it.
        if got_shape + (1,) == sample_shape:
            return Dataset(x=data.x[..., None], y=data.y, source=data.source, names=data.names)
        raise FormicaryError(
            f"{role} data does not match the model input: samples are {got_shape}, the model takes {sample_shape}",
            "give data shaped like the model input (first axis = samples).",
            details={"model_input": list(sample_shape), "data_sample": list(got_shape)})
    return data


def synthetic(input_shape: tuple[int | None, ...], n: int = 64, seed: int = 0) -> Dataset:
    """Uniform random calibration samples in [0, 1) for `--calib synthetic` (quantization ranges will be wrong
    for most real inputs, which is why the caller must warn)."""
    sample_shape = tuple(int(d) if d is not None else 1 for d in input_shape[1:])
    rng = np.random.default_rng(seed)
    return Dataset(x=rng.random((n,) + sample_shape, dtype=np.float32), y=None, source="synthetic")


def as_float(x: np.ndarray) -> np.ndarray:
    """Samples as float32, the dtype Keras models and the converter expect. Raw int8 .bin values are kept as
    numbers (a Keras model fed MLPerf .bin data must have been trained on those value ranges)."""
    return x.astype(np.float32, copy=False)
