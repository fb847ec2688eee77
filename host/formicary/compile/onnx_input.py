"""The ONNX branch of the compiler: onnx2tf → tf_keras → the same converter as Keras models (int8 full-integer
calibrated on --calib) → TFLM check; accuracy of the float original with onnxruntime, of the .tflite with TFLM.

Fine-tuning stages (prune, cluster, QAT, distillation) need the training framework the model came from, so they
are refused with a pointer to pruning before export (docs/models.md, "PyTorch").
"""
from __future__ import annotations

import sys
from typing import Any

import numpy as np

from formicary import progress
from formicary.data import Dataset, as_float, synthetic
from formicary.errors import FormicaryError
from formicary.model.onnx_io import OnnxModel

# How far the converted float model may drift from onnxruntime on the calibration samples before the
# conversion is called wrong (float32 reordering differences are ~1e-6 of the output range).
CONVERSION_RTOL = 1e-3


def check_onnx_options(opts: Any, source: OnnxModel) -> None:
    """Options that cannot apply to an ONNX model, refused before any data is read."""
    tuning = [name for name, on in (("--prune", opts.prune is not None or opts.prune_structure == "2:4"),
                                    ("--cluster", opts.cluster is not None), ("--qat", opts.qat),
                                    ("--distill-from", opts.distill_from), ("--save-keras", opts.save_keras),
                                    ("--train", opts.train)) if on]
    if tuning:
        raise FormicaryError(f"{', '.join(tuning)}: {source.path.name} is an ONNX model, which formicary converts "
                             "and quantizes but does not train",
                             "prune (or cluster, or QAT) in the framework the model comes from, before export "
                             "(docs/models.md, section PyTorch: block-structured pruning that formicary's sparse "
                             "kernels use), then compile the exported .onnx with --calib.")


def onnx_input(source: OnnxModel, opts: Any, data: Any, steps: Any, warnings: list[str]
               ) -> tuple[bytes, dict, dict | None]:
    from formicary.compile.pipeline import ACCURACY_UNIT, _check_labels, _describe, _top1, tflm_accuracy
    from formicary.model import keras_io, onnx_io

    for note in source.notes:
        warnings.append(note)
        progress.info(f"note: {note}")
    if "tensorflow" not in sys.modules:
        with steps("loading TensorFlow"):
            keras_io.import_tensorflow()
    from formicary.model.convert import convert
    from formicary.oracle.tflm import check_tflm

    keras_io.make_deterministic(opts.seed)
    with onnx_io.workdir() as work:
        with steps(f"converting {source.path.name} with onnx2tf"):
            model, layout, conversion = onnx_io.to_keras(source, work)
    layout_info: dict[str, Any] = {**layout.to_dict(), "data": {}, "note": None}
    if layout.perm is not None:
        note = (f"input layout: the ONNX model takes {layout.name.split(' ')[0]} {list(layout.onnx_shape)}, the "
                f".tflite takes {layout.name.split(' ')[-1]} {list(layout.tflite_shape)}; data given in the ONNX "
                f"layout is transposed {tuple(layout.perm)} for it (do the same on the device)")
        layout_info["note"] = note
        progress.info(f"note: {note}")

    def prepared(ds: Dataset | None, role: str) -> tuple[Dataset | None, np.ndarray | None]:
        """(model-layout float dataset, the same samples in the ONNX layout) for --calib / --val."""
        if ds is None:
            return None, None
        if ds.flat:
            raise FormicaryError(f"{role}: raw .bin tensors have no shape to tell the layout from",
                                 "give an .npz with x shaped like the ONNX model input (first axis = samples).")
        x, how = onnx_io.to_model_layout(as_float(ds.x), layout, role)
        layout_info["data"][role] = how
        inverse = np.argsort(layout.perm) if layout.perm is not None else None
        return Dataset(x, ds.y, ds.source), (x if inverse is None else x.transpose(inverse))

    calib, calib_onnx = prepared(data.calib, "--calib")
    val, val_onnx = prepared(data.val, "--val")
    classes = int(np.prod(model.outputs[0].shape[1:]))
    _check_labels(val, classes, "--val")
    if data.calib_synthetic and opts.quantize != "float32":
        calib = synthetic((None, *layout.tflite_shape[1:]), seed=opts.seed)
        calib_onnx = calib.x.transpose(np.argsort(layout.perm)) if layout.perm is not None else calib.x
        warnings.append("CALIBRATING ON SYNTHETIC RANDOM INPUTS (--calib synthetic): activation ranges do not "
                        "come from real data, so the quantized model may be badly wrong. Use --calib DATA for "
                        "anything real.")
        progress.warn(warnings[-1])

    # The conversion itself is checked: the float tf_keras model against onnxruntime on real samples.
    probe_onnx = calib_onnx if calib_onnx is not None else val_onnx
    check = None
    if probe_onnx is not None:
        probe_onnx = probe_onnx[:32]
        with steps(f"checking the conversion against onnxruntime ({len(probe_onnx)} samples)"):
            ref = onnx_io.onnxruntime_outputs(source.path, probe_onnx)
            got = onnx_io.keras_outputs(model, probe_onnx.transpose(layout.perm) if layout.perm else probe_onnx)
        ref, output_layout = onnx_io.align_output_layout(ref, got)
        diff = float(np.abs(ref - got).max())
        scale = float(np.abs(ref).max()) or 1.0
        check = {"samples": len(probe_onnx), "max_abs_diff": diff, "output_max_abs": scale,
                 "output_layout": output_layout, "passed": diff <= CONVERSION_RTOL * scale}
        if output_layout != "unchanged":
            warnings.append(f"the model's output is a feature map: the .tflite gives it {output_layout.split()[-1]} "
                            f"where the ONNX model gives {output_layout.split()[0]} ({output_layout}); read it so "
                            "on the device.")
            progress.warn(warnings[-1])
        if not check["passed"]:
            raise FormicaryError(f"the converted model disagrees with onnxruntime on the same inputs (max |diff| "
                                 f"{diff:.3g} against outputs up to {scale:.3g})",
                                 "this is a converter problem: simplify the model around its unusual ops, or "
                                 "report it with the .onnx file.", details=check)

    with steps(f"converting to TFLite ({opts.quantize})"):
        model_bytes = convert(model, opts.quantize, calib.x if calib is not None else None)
    with steps("checking the model runs in the TFLM interpreter"):
        check_tflm(model_bytes)

    accuracy = None
    if val is not None and val_onnx is not None:
        with steps(f"measuring float accuracy with onnxruntime ({len(val)} samples)"):
            float_acc = _top1(onnx_io.onnxruntime_outputs(source.path, val_onnx), val.y)
        with steps(f"measuring {opts.quantize} accuracy with TFLM ({len(val)} samples)"):
            quantized = tflm_accuracy(model_bytes, val)
        accuracy = {"float": float_acc, "quantized": quantized, "samples": len(val), "unit": ACCURACY_UNIT,
                    "method": {"float": "onnxruntime on the .onnx as given (CPU, float32, ONNX layout)",
                               "quantized": f"TFLM Python interpreter on the produced {opts.quantize} .tflite "
                                            "(TFLite layout)"},
                    "drop_points": round((float_acc - quantized) * 100, 2)}

    from formicary.compile.pipeline import _versions

    info: dict[str, Any] = {
        "input": str(source.path), "input_kind": "onnx", "keras_version": None, "reoptimised": True,
        "quantize": opts.quantize, "seed": opts.seed, "board": opts.board,
        "train": None, "calib": _describe(calib), "val": _describe(val),
        "calibration": None if opts.quantize == "float32" else
        "synthetic random inputs" if data.calib_synthetic else "representative samples of --calib",
        "prune": None, "cluster": None, "qat": None, "provenance": [], "student": None, "saved_keras": None,
        "onnx": {"opset": source.opset, "input": source.input_name, "output": source.output_name,
                 "ops": source.ops, "layout": layout_info, "conversion": {**conversion, "check": check}},
        "tflm_check": "passed", "versions": {**_versions(), **onnx_io.versions()},
    }
    return model_bytes, info, accuracy
