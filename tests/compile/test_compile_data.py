"""formicary.data: .npz and MLPerf-Tiny .bin folders, shape checks. No TensorFlow."""
from __future__ import annotations

import numpy as np
import pytest

from formicary.data import fit_to_input, load_dataset, synthetic
from formicary.errors import FormicaryError


def test_npz_with_one_hot_labels(tmp_path):
    x = np.random.default_rng(0).random((5, 8, 8), dtype=np.float32)
    y = np.eye(10)[[3, 1, 4, 1, 5]]
    np.savez(tmp_path / "d.npz", x=x, y=y)
    ds = load_dataset(tmp_path / "d.npz")
    assert ds.y.tolist() == [3, 1, 4, 1, 5]
    # A missing trailing channel axis is added to match an (8, 8, 1) input.
    assert fit_to_input(ds, (None, 8, 8, 1), "--val").x.shape == (5, 8, 8, 1)


def test_npz_without_x_is_an_error(tmp_path):
    np.savez(tmp_path / "d.npz", images=np.zeros((2, 3)))
    with pytest.raises(FormicaryError, match="no array `x`"):
        load_dataset(tmp_path / "d.npz")


def test_npz_label_count_mismatch(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((3, 2)), y=np.zeros(2))
    with pytest.raises(FormicaryError, match="3 samples .* 2 labels"):
        load_dataset(tmp_path / "d.npz")


def test_missing_path_and_unsupported_file(tmp_path):
    with pytest.raises(FormicaryError, match="data not found"):
        load_dataset(tmp_path / "nope.npz")
    (tmp_path / "d.csv").write_text("1,2\n")
    with pytest.raises(FormicaryError, match="unsupported data file"):
        load_dataset(tmp_path / "d.csv")


def test_corrupt_npz(tmp_path):
    (tmp_path / "d.npz").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(FormicaryError, match="cannot read"):
        load_dataset(tmp_path / "d.npz")


def test_mlperf_bin_folder(kws_data_dir):
    ds = load_dataset(kws_data_dir)
    assert len(ds) == 200 and ds.x.dtype == np.int8 and ds.flat
    shaped = fit_to_input(ds, (1, 49, 10, 1), "--val")
    assert shaped.x.shape == (200, 49, 10, 1)
    # The first file is tst_000000_Stop_7.bin, label 7, and the bytes are the raw tensor.
    assert shaped.y[0] == 7
    assert shaped.x[0].tobytes() == (kws_data_dir / "tst_000000_Stop_7.bin").read_bytes()
    with pytest.raises(FormicaryError, match="each .bin holds 490 values"):
        fit_to_input(ds, (1, 8, 8, 1), "--val")


def _bin_folder(tmp_path, sizes, rows):
    for i, n in enumerate(sizes):
        (tmp_path / f"s{i}.bin").write_bytes(bytes(n))
    (tmp_path / "y_labels.csv").write_text("".join(rows))
    return tmp_path


def test_bin_folder_errors(tmp_path):
    with pytest.raises(FormicaryError, match="no y_labels.csv"):
        load_dataset(tmp_path)
    d = _bin_folder(tmp_path, [4, 4], ["s0.bin,2,0\n", "s1.bin,2,1\n", "gone.bin,2,1\n"])
    with pytest.raises(FormicaryError, match="missing, e.g. gone.bin"):
        load_dataset(d)
    (d / "y_labels.csv").write_text("s0.bin,2,0\ns1.bin,2,x\n")
    with pytest.raises(FormicaryError, match="not an integer"):
        load_dataset(d)
    (d / "s1.bin").write_bytes(bytes(5))
    (d / "y_labels.csv").write_text("s0.bin,2,0\ns1.bin,2,1\n")
    with pytest.raises(FormicaryError, match="differ in size"):
        load_dataset(d)


def test_wrong_shape_npz(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 7, 7, 1), np.float32), y=np.zeros(4))
    with pytest.raises(FormicaryError, match=r"samples are \(7, 7, 1\), the model takes \(8, 8, 1\)"):
        fit_to_input(load_dataset(tmp_path / "d.npz"), (None, 8, 8, 1), "--train")


def test_synthetic_is_seeded():
    a, b = synthetic((None, 8, 8, 1), seed=3), synthetic((None, 8, 8, 1), seed=3)
    assert a.x.shape == (64, 8, 8, 1) and np.array_equal(a.x, b.x)
