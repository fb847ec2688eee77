"""How formicary made a Keras model (distilled, adapted to new classes, LoRA-tuned): a sidecar beside the model.

A .keras/.h5 file or a SavedModel folder has no portable place for that history, so the stages that write Keras
models (`formicary adapt`, `formicary compile --distill-from ... --save-keras`) put MODEL.formicary.json next to
it. `compile` copies the stages into report.json (`compile.provenance`), bench turns them into the variant's
`training` list and label suffixes, and the results store keeps them with the run. The sidecar records the model's
SHA-256: a model changed after it was written is not described by it, and reading says so instead of
mislabelling the variant.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

SUFFIX = ".formicary.json"
FORMAT_VERSION = 1

Stage = dict[str, Any]


def sidecar_path(model_path: str | Path) -> Path:
    """MODEL.formicary.json beside MODEL (a file or a SavedModel folder)."""
    p = Path(model_path)
    return p.with_name(p.name + SUFFIX)


def model_digest(model_path: str | Path) -> str:
    """SHA-256 of a model file, or of a SavedModel folder's files (relative names and contents, sorted)."""
    p = Path(model_path)
    h = hashlib.sha256()
    if p.is_dir():
        for f in sorted(q for q in p.rglob("*") if q.is_file()):
            h.update(str(f.relative_to(p)).encode() + b"\0")
            h.update(f.read_bytes())
    else:
        h.update(p.read_bytes())
    return h.hexdigest()


def write_provenance(model_path: str | Path, stages: list[Stage]) -> Path:
    """Write the sidecar for a model just saved: `stages` in the order they were applied, oldest first.

    Each stage is a JSON-able dict with at least `stage` (e.g. "distill", "transfer", "lora") and, when the
    variant label should say so, `label` (e.g. "distilled", "adapted", "lora4").
    """
    for s in stages:
        if not isinstance(s, dict) or not s.get("stage"):
            raise ValueError(f"a provenance stage needs a 'stage' name: {s!r}")
    path = sidecar_path(model_path)
    doc = {"formicary_provenance": FORMAT_VERSION, "model": Path(model_path).name,
           "model_sha256": model_digest(model_path), "stages": stages}
    path.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
    return path


def read_provenance(model_path: str | Path) -> tuple[list[Stage], str | None]:
    """(stages, warning): the stages recorded for this exact model, [] when there is no usable sidecar.

    The warning (None when all is well) names why a sidecar present was not used, so the caller can pass it on.
    """
    path = sidecar_path(model_path)
    if not path.is_file():
        return [], None
    try:
        doc = json.loads(path.read_text())
        stages = doc["stages"]
        recorded = doc["model_sha256"]
        if not isinstance(stages, list) or not all(isinstance(s, dict) and s.get("stage") for s in stages):
            raise ValueError("'stages' is not a list of stages")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [], f"ignored {path.name}: not a readable formicary provenance file ({exc})"
    if recorded != model_digest(model_path):
        return [], (f"ignored {path.name}: the model changed after it was written (SHA-256 differs), so its "
                    "history (distilled/adapted/LoRA) no longer describes this model")
    return stages, None


def variant_suffix(stages: list[Stage]) -> str:
    """The label suffix of a variant made by these stages, e.g. '-adapted-lora4'."""
    return "".join(f"-{s['label']}" for s in stages if s.get("label"))


def class_label_map(stages: list[Stage]) -> list[int] | None:
    """The original label of each class index when the model was adapted to new classes (the last transfer stage's
    `label_map`), or None when its classes are the data's labels as they are."""
    for stage in reversed(stages):
        if stage.get("stage") == "transfer":
            label_map = stage.get("label_map")
            if isinstance(label_map, list) and label_map != list(range(len(label_map))):
                return [int(v) for v in label_map]
            return None
    return None


def to_class_indices(labels: list[int | None], label_map: list[int] | None) -> list[int | None] | None:
    """Labels given as the original labels of an adapted model (e.g. digits 5-9 for classes 0-4) as its class
    indices; None when they are class indices already. The original labels are recognised only when all of them
    are in the map and at least one is not a valid class index, so data already written as indices is never
    remapped by accident."""
    known = [y for y in labels if y is not None]
    if not label_map or not known:
        return None
    index = {v: i for i, v in enumerate(label_map)}
    if all(y in index for y in known) and any(not 0 <= y < len(label_map) for y in known):
        return [None if y is None else index[y] for y in labels]
    return None


def compiled_stages(tflite: str | Path) -> list[Stage]:
    """The stages recorded in the `formicary compile` report.json beside a .tflite ([] for a bare .tflite)."""
    report = Path(tflite).parent / "report.json"
    try:
        stages = (json.loads(report.read_text()).get("compile") or {}).get("provenance") or []
    except (OSError, ValueError, AttributeError):
        return []
    return [s for s in stages if isinstance(s, dict) and s.get("stage")] if isinstance(stages, list) else []
