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


# ------------------------------------------------------------------------------------ distillation (test_distill)

@pytest.fixture(scope="session")
def distill_example(tf, tmp_path_factory):
    """examples/distill_digits.py run once at reduced size (1 seed, 3 epochs, no board), in this process: its JSON
    document, and its working directory (data/, teacher/teacher.keras) for the CLI tests to reuse."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "distill_digits.py"
    spec = importlib.util.spec_from_file_location("distill_digits_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    out = tmp_path_factory.mktemp("distill-example")
    doc = module.run(["--out", str(out), "--seeds", "1", "--epochs", "3", "--board", "none"])
    return doc, out
