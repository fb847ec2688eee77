"""The EEMBC model id an MLPerf firmware reports in `m-model-[…]`.

The MLCommons runner (`benchmark/runner/` of mlcommons/tiny) and EEMBC's EnergyRunner use that string as the key
into their test scripts and dataset folders (`kws01`, `vww01`, `ic01`, `ad01`), so it must be the benchmark's id,
not a hash. The four reference models are recognised by their input and output shapes (the MLPerf Tiny v1.x
tasks fix them); any other model gets the id the user passes (`--model-id`), else a name made from its file name.
"""
from __future__ import annotations

import re
from pathlib import Path

from formicary.errors import FormicaryError

# (input shape, output shape) of the MLPerf Tiny reference models -> EEMBC model id
REFERENCE_MODEL_IDS: dict[tuple[tuple[int, ...], tuple[int, ...]], str] = {
    ((1, 49, 10, 1), (1, 12)): "kws01",      # keyword spotting, DS-CNN on 49x10 MFCC
    ((1, 96, 96, 3), (1, 2)): "vww01",       # visual wake words, MobileNetV1 0.25 at 96x96
    ((1, 32, 32, 3), (1, 10)): "ic01",       # image classification, ResNet-8 on CIFAR-10
    ((1, 640), (1, 640)): "ad01",            # anomaly detection, FC autoencoder on 5 frames x 128 mel bins
}

# What the runner's regex `^m-(model|profile)-\[([^]]+)]$` and a C string literal both accept
_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


def check_model_id(model_id: str) -> str:
    if not _ID_RE.match(model_id):
        raise FormicaryError(f"MLPerf model id {model_id!r} is not usable.",
                             "use 1-32 letters, digits, '_', '.' or '-' (e.g. kws01, the key of the runner's "
                             "test script for this model).")
    return model_id


def reference_model_id(tflite: Path) -> str | None:
    """kws01/vww01/ic01/ad01 when TFLITE has a reference model's input and output shapes, else None."""
    from formicary.tflite import read_model

    model = read_model(tflite)
    ins = [tuple(model.tensors[i].shape) for i in model.inputs]
    outs = [tuple(model.tensors[i].shape) for i in model.outputs]
    if len(ins) != 1 or len(outs) != 1:
        return None
    return REFERENCE_MODEL_IDS.get((ins[0], outs[0]))


def resolve_model_id(tflite: Path, model_id: str | None = None) -> tuple[str, str]:
    """(id, how it was chosen): the user's, a reference model's, or one made from the file name."""
    if model_id:
        return check_model_id(model_id), "given (--model-id)"
    ref = reference_model_id(tflite)
    if ref:
        return ref, "MLPerf Tiny reference model (recognised by its input/output shapes)"
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(tflite).stem)[:32] or "model"
    return stem, "the model's file name (pass --model-id to match your runner's test script)"


def model_id_flag(model_id: str) -> str:
    """The build flag that puts MODEL_ID into the firmware (fm_mlperf_app.c)."""
    return f'-DFM_MLPERF_MODEL_ID=\\"{check_model_id(model_id)}\\"'
