"""Session fixtures for the training stages (distillation, transfer learning, LoRA): TensorFlow imported once,
the sklearn digits splits loaded once. Each stage's own fixtures follow, one block per stage."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tf():
    import tensorflow

    return tensorflow


@pytest.fixture(scope="session")
def digits_splits():
    from formicary.model.zoo import digits_splits

    return digits_splits(seed=0)
