"""The built-in default: a small CNN for scikit-learn's 8x8 digits (real data, no download) and its trainer.

Used by `formicary demo` and by the tests, so it is small enough to train in a few seconds on 2 cores.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from formicary.data import Dataset

DIGITS_INPUT_SHAPE = (8, 8, 1)
DIGITS_CLASSES = 10


@dataclass
class DigitsSplits:
    """Disjoint train / calibration / validation splits of sklearn digits (pixels scaled to [0, 1])."""

    train: Dataset
    calib: Dataset
    val: Dataset

    def save(self, out_dir: str | Path) -> dict[str, Path]:
        """Write train.npz, calib.npz and val.npz (the format `formicary compile` reads) and return the paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {}
        for name in ("train", "calib", "val"):
            ds: Dataset = getattr(self, name)
            paths[name] = out / f"{name}.npz"
            np.savez(paths[name], x=ds.x, y=ds.y)
        return paths


def digits_splits(seed: int = 0, calib: int = 200, val: int = 400) -> DigitsSplits:
    """Shuffle the 1,797 digits with `seed` and split them; the rest (~1,200) is for training."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]  # pixels are 0..16
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    n_train = len(x) - calib - val
    cut = [n_train, n_train + calib]
    return DigitsSplits(
        train=Dataset(x[:cut[0]], y[:cut[0]], "sklearn digits (train)"),
        calib=Dataset(x[cut[0]:cut[1]], y[cut[0]:cut[1]], "sklearn digits (calib)"),
        val=Dataset(x[cut[1]:], y[cut[1]:], "sklearn digits (val)"),
    )


def build_digits_cnn():
    """Two small convolutions and a classifier: ~5k parameters, ~100k MACs."""
    import tf_keras as keras

    return keras.Sequential([
        keras.layers.InputLayer(input_shape=DIGITS_INPUT_SHAPE, name="image"),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1"),
        keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="conv2"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(32, activation="relu", name="fc1"),
        keras.layers.Dense(DIGITS_CLASSES, activation="softmax", name="probs"),
    ], name="digits_cnn")


def train_digits_cnn(splits: DigitsSplits, epochs: int = 15, seed: int = 0, batch_size: int = 32):
    """Train the digits CNN deterministically (seeded, op determinism on) and return the compiled model."""
    import tf_keras as keras

    from formicary.model.keras_io import make_deterministic, quiet_native_logs

    make_deterministic(seed)
    model = build_digits_cnn()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=3e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    with quiet_native_logs():
        model.fit(splits.train.x, splits.train.y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0)
    return model
