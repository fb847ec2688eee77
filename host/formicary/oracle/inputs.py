"""Input tensors for a model from what users have: random draws, a data folder or .npz, or arrays of any dtype.

One quantization rule for every caller (compile's accuracy, verify, bench, the HIL plugin): real-valued samples
for an integer input become q = round(x / scale) + zero_point, computed in float64 and saturated to the type's
range, as the TFLite converter's int8 input expects; the reference interpreter then gets the very same integers.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from formicary.errors import FormicaryError

INTEGER_TYPES = ("int8", "int16", "uint8", "int32")


def quantize(x: np.ndarray, dtype: Any, scale: float, zero_point: int) -> np.ndarray:
    """Real values -> the integer type `dtype` with (scale, zero_point): round half to even, saturate."""
    dt = np.dtype(dtype)
    info = np.iinfo(dt)
    q = np.round(np.asarray(x, np.float64) / float(scale)) + int(zero_point)
    return np.clip(q, info.min, info.max).astype(dt)


def to_input_type(x: np.ndarray, dtype: Any, scale: float | None, zero_point: int, *, what: str = "--data"
                  ) -> np.ndarray:
    """Samples as an input tensor of `dtype` takes them: integer data passes through (already quantized, e.g.
    MLPerf .bin tensors), real data is quantized for an integer tensor, anything goes to float32 for a float one."""
    dt = np.dtype(dtype)
    x = np.asarray(x)
    if np.issubdtype(dt, np.floating):
        return x.astype(dt)
    if np.issubdtype(x.dtype, np.integer):
        return x.astype(dt)
    if not scale:
        raise FormicaryError(f"{what} holds {x.dtype} samples but the model input is {dt} without quantization "
                             "parameters.", "give samples already in the model's input type.")
    return quantize(x, dt, scale, zero_point)


def tensor_quant(tensor: Any) -> tuple[float | None, int]:
    """(scale, zero_point) of a formicary.tflite Tensor, (None, 0) when it has none."""
    q = tensor.quant
    if q is None or len(q.scale) == 0:
        return None, 0
    return float(q.scale[0]), int(q.zero_point[0])


def random_inputs(model: Any, n: int, seed: int = 0) -> list[list[np.ndarray]]:
    """n input sets drawn uniformly over each input's integer range (standard normal for float inputs)."""
    rng = np.random.default_rng(seed)
    sets = []
    for _ in range(n):
        row = []
        for t in model.input_tensors:
            dt = np.dtype(t.np_dtype)
            if np.issubdtype(dt, np.integer):
                info = np.iinfo(dt)
                row.append(rng.integers(info.min, int(info.max) + 1, size=t.shape, dtype=np.int64).astype(dt))
            else:
                row.append(rng.standard_normal(t.shape).astype(dt))
        sets.append(row)
    return sets


@dataclass
class LabelledInputs:
    """Input sets (one list of arrays per inference) with their labels and names, from a data source."""
    sets: list[list[np.ndarray]]
    labels: list[int | None]
    names: list[str]
    source: str | None


def dataset_inputs(model: Any, data: str | Path, count: int | None = None) -> LabelledInputs:
    """The first COUNT samples of a data folder (MLPerf-style .bin + y_labels.csv) or .npz, shaped and typed
    like the model's single input; real-valued samples are quantized for an integer input."""
    from formicary.data import fit_to_input, load_dataset

    if len(model.inputs) != 1:
        raise FormicaryError("--data works for single-input models only.", "use random inputs (omit --data).")
    t = model.input_tensors[0]
    ds = fit_to_input(load_dataset(data), (None, *t.shape[1:]), "--data")
    n = len(ds) if count is None else min(count, len(ds))
    scale, zp = tensor_quant(t)
    x = to_input_type(ds.x[:n], t.np_dtype, scale, zp)
    names = ds.names or [f"{Path(data).name}#{i}" for i in range(len(ds))]
    labels = [int(v) for v in ds.y[:n]] if ds.y is not None else [None] * n
    return LabelledInputs(sets=[[x[i].reshape(t.shape)] for i in range(n)], labels=labels, names=list(names[:n]),
                          source=str(data))


def model_inputs(model: Any, data: str | Path | None, count: int | None, seed: int = 0,
                 default_count: int = 10) -> LabelledInputs:
    """Labelled inputs from DATA (the first COUNT), or COUNT (default `default_count`) seeded random tensors."""
    if count is not None and count < 1:
        raise FormicaryError(f"--inputs must be at least 1, got {count}.", "pass --inputs N with N >= 1.")
    if data is None:
        n = count or default_count
        return LabelledInputs(sets=random_inputs(model, n, seed=seed), labels=[None] * n,
                              names=[f"random-{seed}-{i}" for i in range(n)], source=None)
    return dataset_inputs(model, data, count)


def prepare_inputs(inputs: Any, specs: Sequence[Any]) -> list[np.ndarray]:
    """Inputs as a device takes them: one array per model input, in the tensor's dtype and shape.

    `specs` have `dtype`, `shape`, `scale` and `zero_point` (a device's TensorSpec). Accepts one array
    (single-input models), a list of arrays, or raw bytes. Arrays of the tensor's dtype pass through; float
    arrays for an integer tensor are quantized (the module's one rule). Anything else is a ValueError.
    """
    if isinstance(inputs, (bytes, bytearray, memoryview, np.ndarray)):
        items = [inputs]
    else:
        items = list(inputs)
    if len(items) != len(specs):
        raise ValueError(f"the model has {len(specs)} input(s), got {len(items)}.")
    out = []
    for i, (x, spec) in enumerate(zip(items, specs)):
        dtype = np.dtype(spec.dtype)
        if isinstance(x, (bytes, bytearray, memoryview)):
            arr = np.frombuffer(bytes(x), dtype=dtype)
        else:
            arr = np.asarray(x)
            if arr.dtype != dtype:
                if np.issubdtype(arr.dtype, np.floating) and np.issubdtype(dtype, np.integer):
                    if not spec.scale:
                        raise ValueError(f"input {i} is {dtype} without quantization: pass {dtype} data.")
                    arr = quantize(arr, dtype, spec.scale, spec.zero_point)
                elif not (np.issubdtype(dtype, np.floating) and np.issubdtype(arr.dtype, np.floating)):
                    raise ValueError(f"input {i} must be {dtype} (or float data to quantize), got {arr.dtype}.")
                arr = arr.astype(dtype)
        n = int(np.prod(spec.shape))
        if arr.size != n:
            raise ValueError(f"input {i} must have {n} elements (shape {list(spec.shape)}), got {arr.size} "
                             f"(shape {list(arr.shape)}).")
        out.append(np.ascontiguousarray(arr.reshape(spec.shape)))
    return out


__all__ = ["LabelledInputs", "dataset_inputs", "model_inputs", "prepare_inputs", "quantize", "random_inputs",
           "tensor_quant", "to_input_type"]
