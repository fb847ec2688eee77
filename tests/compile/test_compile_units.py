"""Pieces of the compiler that need no TensorFlow: the pruning schedule, option checks, model recognition."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from formicary.compile import CompileOptions, validate_options
from formicary.data import Dataset
from formicary.errors import FormicaryError
from formicary.model.keras_io import identify
from formicary.shrink import FineTune
from formicary.shrink.prune import groups_of_four_ok, schedule_for


@pytest.mark.parametrize("samples,epochs,batch", [(1197, 3, 32), (1197, 1, 32), (10, 1, 4), (3, 1, 2),
                                                  (50_000, 20, 64), (64, 2, 64)])
def test_pruning_schedule_ends_on_an_update_before_the_last_step(samples, epochs, batch):
    tune = FineTune(Dataset(np.zeros((samples, 1)), np.zeros(samples), "t"), epochs, batch)
    end, freq = schedule_for(tune)
    assert 0 < end < tune.total_steps      # PolynomialDecay only reaches its target at end_step …
    assert end % freq == 0                  # … and only if a pruning update falls on it


def test_pruning_schedule_needs_two_steps():
    with pytest.raises(FormicaryError, match="at least 2 training steps"):
        schedule_for(FineTune(Dataset(np.zeros((4, 1)), np.zeros(4), "t"), 1, 32))


def test_groups_of_four():
    dense = np.zeros((8, 3), np.float32)           # TF layout [in, out]
    dense[0:2, :] = 1
    dense[4:6, :] = 1
    assert groups_of_four_ok(dense)
    dense[2, 0] = 1
    assert not groups_of_four_ok(dense)


@pytest.mark.parametrize("opts,match", [
    (dict(quantize="fp8"), "unknown --quantize"),
    (dict(prune=0.0), "not a sparsity"),
    (dict(prune=0.25, prune_structure="2:4"), "2:4 pruning"),
    (dict(prune_structure="blocks"), "unknown --prune-structure"),
    (dict(cluster=1), "at least 2 clusters"),
    (dict(qat=True, quantize="float32"), "--qat trains for 8-bit"),
    (dict(epochs=0), "at least 1"),
])
def test_option_errors(opts, match):
    with pytest.raises(FormicaryError, match=match) as exc:
        validate_options(CompileOptions(**opts))
    assert exc.value.fix


def test_identify_keras3_from_metadata_alone(tmp_path):
    p = tmp_path / "m.keras"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.4.1"}))
        zf.writestr("config.json", "{}")
    found = identify(p)  # accepted: formicary.model.keras3 loads it, quantizes it, rebuilds it for tfmot
    assert (found.kind, found.keras_version, found.flavour) == ("keras", "3.4.1", "keras3")


def test_identify_savedmodel_dir_rules(tmp_path):
    with pytest.raises(FormicaryError, match="not a SavedModel"):
        identify(tmp_path)
    (tmp_path / "saved_model.pb").write_bytes(b"\0")
    # No Keras metadata (Keras 3 model.export, tf.saved_model.save): a traced graph, quantized from its signature.
    assert (identify(tmp_path).kind, identify(tmp_path).flavour) == ("savedmodel", "graph")
    (tmp_path / "keras_metadata.pb").write_bytes(b"\0")
    assert (identify(tmp_path).kind, identify(tmp_path).flavour) == ("savedmodel", "tf_keras")
