"""Bench pieces that need no board: how runs are spread over inputs, input loading and quantization."""
from __future__ import annotations

import numpy as np
import pytest

from formicary.bench.runner import _split_runs, load_inputs
from formicary.errors import FormicaryError


@pytest.mark.parametrize("runs,k", [(10, 10), (24, 12), (7, 3), (1000, 7), (5, 1)])
def test_split_runs_covers_every_input_and_sums(runs, k):
    parts = _split_runs(runs, k)
    assert len(parts) == k and sum(parts) == runs and min(parts) >= 1 and max(parts) - min(parts) <= 1


def test_load_inputs_from_bin_folder_keeps_names_and_labels(kws_model_path, kws_data_dir):
    ins = load_inputs(kws_model_path, kws_data_dir, 5)
    assert len(ins.sets) == 5 and ins.sets[0][0].shape == (1, 49, 10, 1) and ins.sets[0][0].dtype == np.int8
    assert all(n.endswith(".bin") for n in ins.names)
    assert ins.labels == [int(n.rsplit("_", 1)[1].split(".")[0]) for n in ins.names]
    raw = np.fromfile(kws_data_dir / ins.names[0], np.int8)
    assert np.array_equal(ins.sets[0][0].reshape(-1), raw)


def test_random_inputs_are_seeded(kws_model_path):
    a = load_inputs(kws_model_path, None, 3, seed=1)
    b = load_inputs(kws_model_path, None, 3, seed=1)
    c = load_inputs(kws_model_path, None, 3, seed=2)
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(a.sets, b.sets))
    assert not np.array_equal(a.sets[0][0], c.sets[0][0])
    assert a.labels == [None] * 3


def test_bad_inputs_count_and_data_are_clear_errors(kws_model_path, tmp_path):
    with pytest.raises(FormicaryError, match="at least 1"):
        load_inputs(kws_model_path, None, 0)
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 7), np.float32))
    with pytest.raises(FormicaryError, match="does not match the model input"):
        load_inputs(kws_model_path, tmp_path / "d.npz", None)
