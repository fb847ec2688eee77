"""The provenance sidecar: written beside a model, read back only for that exact model, labels the variant."""
from __future__ import annotations

import json

from formicary.model.provenance import read_provenance, sidecar_path, variant_suffix, write_provenance


def test_round_trip_for_file_and_savedmodel_folder(tmp_path):
    stages = [{"stage": "transfer", "classes": 5, "label": "adapted"}, {"stage": "lora", "rank": 4, "label": "lora4"}]
    model = tmp_path / "m.keras"
    model.write_bytes(b"PK fake model bytes")
    assert write_provenance(model, stages) == tmp_path / "m.keras.formicary.json"
    assert read_provenance(model) == (stages, None)
    folder = tmp_path / "saved"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"graph")
    (folder / "variables" / "v.data").write_bytes(b"weights")
    write_provenance(folder, stages[:1])
    assert read_provenance(folder) == (stages[:1], None)
    assert variant_suffix(stages) == "-adapted-lora4"


def test_a_changed_or_broken_sidecar_is_ignored_with_a_reason(tmp_path):
    model = tmp_path / "m.h5"
    model.write_bytes(b"v1")
    write_provenance(model, [{"stage": "distill", "label": "distilled"}])
    model.write_bytes(b"v2: retrained by hand")
    stages, warning = read_provenance(model)
    assert stages == [] and "changed after it was written" in warning
    sidecar_path(model).write_text("{not json")
    stages, warning = read_provenance(model)
    assert stages == [] and "not a readable" in warning
    sidecar_path(model).write_text(json.dumps({"stages": [{"no": "name"}], "model_sha256": "x"}))
    assert read_provenance(model)[0] == []
    assert read_provenance(tmp_path / "absent.keras") == ([], None)


def test_original_labels_of_an_adapted_model_become_class_indices(tmp_path):
    from formicary.model.provenance import class_label_map, compiled_stages, to_class_indices

    stages = [{"stage": "transfer", "label_map": [5, 6, 7, 8, 9], "label": "adapted"}]
    label_map = class_label_map(stages)
    assert label_map == [5, 6, 7, 8, 9]
    assert to_class_indices([9, 5, None, 7], label_map) == [4, 0, None, 2]
    assert to_class_indices([0, 1, 4], label_map) is None          # already class indices
    assert to_class_indices([5, 3], label_map) is None             # 3 is no original label: not this model's data
    assert class_label_map([{"stage": "transfer", "label_map": [0, 1, 2]}]) is None  # identity: nothing to map
    assert class_label_map([{"stage": "lora"}]) is None
    tfl = tmp_path / "model.tflite"
    tfl.write_bytes(b"x")
    assert compiled_stages(tfl) == []
    (tmp_path / "report.json").write_text(json.dumps({"compile": {"provenance": stages}}))
    assert compiled_stages(tfl) == stages
