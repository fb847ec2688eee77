"""The host compiler pipeline: load (or build a built-in student) → distil / train → shrink (prune / cluster /
QAT) → convert → prove it runs in TFLM → report.

`compile_model` is the one public entry point (the CLI and `formicary demo` call it). Everything that can be
checked without TensorFlow (options, model file, data files) is checked first, so mistakes fail in well under a
second; TensorFlow is imported only when there is a Keras model to work on.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from formicary import progress
from formicary.data import Dataset, as_float, fit_to_input, load_dataset, synthetic
from formicary.errors import FormicaryError
from formicary.model.keras_io import ModelFile, identify
from formicary.model.onnx_io import OnnxModel
from formicary.model.students import BuiltinSpec, is_builtin, parse_builtin

SYNTHETIC = "synthetic"
ACCURACY_UNIT = "fraction of samples whose top-1 class matches the label"


@dataclass
class CompileOptions:
    """What `formicary compile` was asked to do (the CLI options, one to one)."""

    train: str | None = None
    calib: str | None = None           # a data path, or "synthetic"
    val: str | None = None
    prune: float | None = None
    prune_structure: str = "unstructured"
    cluster: int | None = None
    qat: bool = False
    quantize: str = "int8"
    epochs: int = 3
    seed: int = 0
    board: str | None = None
    batch_size: int = 32
    # Knowledge distillation (formicary.shrink.distill): train the model (a Keras student or a built-in
    # `builtin:NAME@WIDTH`) on this teacher's softened outputs before prune/cluster/QAT. None = library default.
    distill_from: str | None = None
    temperature: float | None = None
    distill_alpha: float | None = None
    save_keras: str | None = None      # write the trained student (+ provenance sidecar) here


@dataclass
class CompileResult:
    model_path: Path
    report_path: Path
    report: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


class _Steps:
    """Runs named steps with progress output and keeps their wall times for the report."""

    def __init__(self) -> None:
        self.timings: list[dict[str, Any]] = []

    def __call__(self, name: str):
        steps = self

        class _Ctx:
            def __enter__(self):
                self.start = time.perf_counter()
                self.cm = progress.step(name)
                self.cm.__enter__()

            def __exit__(self, *exc):
                self.cm.__exit__(*exc)
                steps.timings.append({"step": name, "seconds": round(time.perf_counter() - self.start, 3)})
                return False

        return _Ctx()


def validate_options(opts: CompileOptions) -> None:
    """Option errors that need neither TensorFlow nor the files."""
    from formicary.model.convert import QUANTIZE_MODES

    if opts.quantize not in QUANTIZE_MODES:
        raise FormicaryError(f"unknown --quantize {opts.quantize!r}", f"use one of {', '.join(QUANTIZE_MODES)}.")
    from formicary.shrink.prune import STRUCTURES

    if opts.prune_structure not in STRUCTURES:
        raise FormicaryError(f"unknown --prune-structure {opts.prune_structure!r}",
                             f"use one of {', '.join(STRUCTURES)}.")
    if opts.prune is not None and not 0.0 < opts.prune < 1.0:
        raise FormicaryError(f"--prune {opts.prune} is not a sparsity in (0, 1)", "pass e.g. --prune 0.5 for 50 %.")
    if opts.prune is not None and opts.prune_structure == "2:4" and abs(opts.prune - 0.5) > 1e-9:
        raise FormicaryError(f"2:4 pruning zeroes exactly half of every group of 4; --prune {opts.prune} "
                             "contradicts it", "use --prune 0.5 (or omit --prune) with --prune-structure 2:4.")
    if opts.cluster is not None and opts.cluster < 2:
        raise FormicaryError(f"--cluster {opts.cluster}: need at least 2 clusters", "pass e.g. --cluster 16.")
    if opts.qat and opts.quantize != "int8":
        raise FormicaryError(f"--qat trains for 8-bit quantization but --quantize is {opts.quantize}",
                             "use --qat with --quantize int8, or drop --qat.")
    if opts.epochs < 1:
        raise FormicaryError(f"--epochs {opts.epochs}: need at least 1", "pass --epochs 1 or more.")
    if opts.batch_size < 1:
        raise FormicaryError(f"batch size {opts.batch_size}: need at least 1", "use a positive batch size.")
    if opts.distill_from is None:
        given = [name for name, value in (("--temperature", opts.temperature),
                                          ("--distill-alpha", opts.distill_alpha)) if value is not None]
        if given:
            raise FormicaryError(f"{', '.join(given)} set(s) how to distil, but no --distill-from teacher was given",
                                 "add --distill-from TEACHER.keras, or drop the option.")
    else:
        from formicary.shrink.distill import validate

        validate(*_distill_settings(opts))


def _distill_settings(opts: CompileOptions) -> tuple[float, float]:
    from formicary.shrink.distill import DEFAULT_ALPHA, DEFAULT_TEMPERATURE

    return (DEFAULT_TEMPERATURE if opts.temperature is None else float(opts.temperature),
            DEFAULT_ALPHA if opts.distill_alpha is None else float(opts.distill_alpha))


def _pruning(opts: CompileOptions) -> float | None:
    # `--prune-structure 2:4` alone means 2:4 pruning (always 50 %).
    if opts.prune is None and opts.prune_structure == "2:4":
        return 0.5
    return opts.prune


def compile_model(model: str | Path, out_dir: str | Path, options: CompileOptions | None = None,
                  **overrides: Any) -> CompileResult:
    """Compile `model` into OUT_DIR/model.tflite and OUT_DIR/report.json; FormicaryError on any failure.

    `overrides` set CompileOptions fields directly (e.g. `compile_model(p, out, prune=0.5, calib="c.npz")`).
    """
    opts = options or CompileOptions()
    if overrides:
        opts = CompileOptions(**{**asdict(opts), **overrides})
    validate_options(opts)
    if opts.board is not None:
        from formicary.boards import load_board

        load_board(opts.board)  # an unknown board fails now, not after minutes of fine-tuning
    started = time.perf_counter()
    steps = _Steps()
    warnings: list[str] = []
    source: ModelFile | BuiltinSpec | OnnxModel = (parse_builtin(str(model)) if is_builtin(model) else
                                                   _onnx_source(model, opts) or identify(model))
    teacher = _teacher_file(opts, source)
    kind = source.kind if isinstance(source, (ModelFile, OnnxModel)) else "builtin"
    if any((opts.train, opts.val, opts.calib not in (None, SYNTHETIC))):
        with steps("loading data"):
            data = _load_data(opts, kind, source)
    else:
        data = _load_data(opts, kind, source)

    if isinstance(source, ModelFile) and source.kind == "tflite":
        model_bytes, compile_info, accuracy = _tflite_input(source, opts, data, steps, warnings)
    elif isinstance(source, OnnxModel):
        from formicary.compile.onnx_input import onnx_input

        model_bytes, compile_info, accuracy = onnx_input(source, opts, data, steps, warnings)
    else:
        model_bytes, compile_info, accuracy = _keras_input(source, opts, data, steps, warnings, teacher)

    from formicary.analysis import analyse
    from formicary.codegen.ops import supported_opcodes

    with steps("analysing the model (sizes, MACs, arena, energy floor)"):
        report = dict(analyse(model_bytes, opts.board, rt_ops=supported_opcodes()))
    if accuracy is not None:
        report["accuracy"] = accuracy
    compile_info.update({"steps": steps.timings, "wall_seconds": round(time.perf_counter() - started, 3),
                         "warnings": warnings})
    report["compile"] = compile_info

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / "model.tflite"
    report_path = out / "report.json"
    model_path.write_bytes(model_bytes)
    report_path.write_text(json.dumps(report, indent=2, default=_jsonable) + "\n")
    return CompileResult(model_path, report_path, report, warnings)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _onnx_source(model: str | Path, opts: CompileOptions) -> OnnxModel | None:
    """An .onnx MODEL checked (extra installed, static shapes, convertible ops, options that apply), else None."""
    from formicary.model import onnx_io

    if not onnx_io.is_onnx(model):
        return None
    from formicary.compile.onnx_input import check_onnx_options

    source = onnx_io.identify_onnx(model)
    check_onnx_options(opts, source)
    return source


# ---------------------------------------------------------------------------------------------------- data

@dataclass
class _Data:
    train: Dataset | None = None
    calib: Dataset | None = None
    val: Dataset | None = None
    calib_synthetic: bool = False


def _teacher_file(opts: CompileOptions, source: ModelFile | BuiltinSpec) -> ModelFile | None:
    """The --distill-from teacher, identified from its bytes (no TensorFlow): missing files and .tflite teachers
    fail here, before any data is loaded or anything is trained."""
    tflite_in = isinstance(source, ModelFile) and source.kind == "tflite"
    if opts.save_keras and tflite_in:
        raise FormicaryError("--save-keras writes the trained Keras student, but the input is a .tflite "
                             "(nothing is trained)", "pass a Keras model or builtin:NAME@WIDTH, or drop --save-keras.")
    if opts.distill_from is None:
        return None
    if tflite_in:
        raise FormicaryError(f"--distill-from trains the student, but {source.path.name} is a .tflite flatbuffer "
                             "(it cannot be trained)", "pass the student as a Keras model or as a built-in "
                             "architecture, e.g. builtin:cnn@0.25.")
    try:
        teacher = identify(opts.distill_from)
    except FormicaryError as err:
        raise FormicaryError(f"--distill-from teacher: {err.cause}", err.fix, details=err.details) from err
    if teacher.kind == "tflite":
        raise FormicaryError(f"teacher {teacher.path.name} is a .tflite flatbuffer: distillation needs the teacher's "
                             "float logits from a Keras model",
                             "pass the Keras model the .tflite was converted from (.keras, .h5 or SavedModel "
                             "folder) as --distill-from.")
    return teacher


def _load_data(opts: CompileOptions, kind: str, source: ModelFile | BuiltinSpec | None = None) -> _Data:
    """Load every data file up front (no TensorFlow needed) and check what the options require."""
    data = _Data()
    shrinking = [name for name, on in (("--prune", _pruning(opts) is not None), ("--cluster", opts.cluster),
                                       ("--qat", opts.qat)) if on]
    reoptimise = kind != "tflite"
    training = ("--distill-from" if opts.distill_from else
                f"{source.spec} (an untrained built-in architecture)" if isinstance(source, BuiltinSpec) else None)
    if opts.train:
        data.train = load_dataset(opts.train)
        if training and not data.train.has_labels:
            raise FormicaryError(f"{training} trains on --train {opts.train}, but it has no labels `y`",
                                 "save labels as `y` in the .npz (or use a .bin folder with y_labels.csv): the "
                                 "hard-label part of the loss needs them.")
    elif training:
        raise FormicaryError(f"{training} needs training data, and no --train was given",
                             "pass --train DATA with labels (an .npz with x and y, or a .bin folder with "
                             "y_labels.csv).")
    elif shrinking and reoptimise:
        raise FormicaryError(f"{', '.join(shrinking)} fine-tunes the model but no --train data was given",
                             "pass --train DATA (an .npz with x and y, or a .bin folder with y_labels.csv).")
    if opts.calib == SYNTHETIC:
        data.calib_synthetic = True
    elif opts.calib:
        data.calib = load_dataset(opts.calib)
    elif reoptimise and opts.quantize != "float32":
        raise FormicaryError(f"--quantize {opts.quantize} needs calibration data to set activation ranges, "
                             "and none was given",
                             "pass --calib DATA (a few hundred representative inputs), or --calib synthetic "
                             "to calibrate on random inputs (usually costs accuracy).")
    if opts.val:
        data.val = load_dataset(opts.val)
        if not data.val.has_labels:
            raise FormicaryError(f"--val data {opts.val} has no labels `y`, so accuracy cannot be measured",
                                 "save labels as `y` in the .npz (or use a .bin folder with y_labels.csv).")
    return data


def _check_labels(ds: Dataset | None, classes: int, role: str) -> None:
    if ds is None or ds.y is None or classes < 2:
        return
    if ds.y.min() < 0 or ds.y.max() >= classes:
        raise FormicaryError(f"{role} labels run from {ds.y.min()} to {ds.y.max()} but the model has {classes} "
                             "outputs", "give labels that are class indices 0 … outputs-1 for this model.")


# -------------------------------------------------------------------------------------------- .tflite in

def _tflite_input(model_file: ModelFile, opts: CompileOptions, data: _Data, steps: _Steps,
                  warnings: list[str]) -> tuple[bytes, dict, dict | None]:
    from formicary.oracle.tflm import check_tflm
    from formicary.tflite import read_model

    model_bytes = model_file.path.read_bytes()
    try:
        ir = read_model(model_bytes)
    except FormicaryError:
        raise
    except Exception as exc:  # noqa: BLE001 - a TFL3 header with a broken body
        raise FormicaryError(f"{model_file.path.name} is not a readable .tflite flatbuffer (truncated or corrupt): "
                             f"{exc}", "re-export the model; check that the file was copied completely.") from exc
    ignored = [f"--{name.replace('_', '-')}" for name in ("train", "calib", "prune", "cluster", "qat")
               if getattr(opts, name) not in (None, False)]
    note = ("input is already a .tflite flatbuffer: analysed and validated with TFLM, not re-optimised "
            "(pass a Keras model to prune, cluster, quantize)")
    progress.info(f"note: {note}")
    if ignored:
        warnings.append(f"ignored for a .tflite input: {', '.join(ignored)}")
        progress.warn(warnings[-1])
    with steps("checking the model runs in the TFLM interpreter"):
        check_tflm(model_bytes)
    accuracy = None
    if data.val is not None:
        tin = ir.tensors[ir.inputs[0]]
        tout = ir.tensors[ir.outputs[0]]
        val = fit_to_input(data.val, (None,) + tuple(tin.shape[1:]), "--val")
        _check_labels(val, int(tout.shape[-1]), "--val")
        with steps(f"measuring accuracy with TFLM ({len(val)} samples)"):
            quantized = tflm_accuracy(model_bytes, val)
        accuracy = {"float": None, "quantized": quantized, "samples": len(val), "unit": ACCURACY_UNIT,
                    "method": {"float": "not measured: no Keras model was given",
                               "quantized": "TFLM Python interpreter on the given .tflite"}}
    info = {"input": str(model_file.path), "input_kind": "tflite", "reoptimised": False, "note": note,
            "quantize": None, "board": opts.board, "tflm_check": "passed",
            "val": _describe(data.val)}
    return model_bytes, info, accuracy


# ---------------------------------------------------------------------------------------------- Keras in

def _keras_input(source: ModelFile | BuiltinSpec, opts: CompileOptions, data: _Data, steps: _Steps,
                 warnings: list[str], teacher_file: ModelFile | None = None) -> tuple[bytes, dict, dict | None]:
    import sys

    from formicary.model import keras_io

    if "tensorflow" not in sys.modules:
        with steps("loading TensorFlow"):
            keras_io.import_tensorflow()
    from formicary.model.convert import convert
    from formicary.oracle.tflm import check_tflm
    from formicary.shrink import FineTune, sparsity_of

    keras_io.make_deterministic(opts.seed)
    teacher = None
    if teacher_file is not None:
        with steps(f"loading teacher {teacher_file.path.name}"):
            teacher = keras_io.load_keras_model(teacher_file)
        teacher, _ = _in_tf_keras(teacher, teacher_file, ["--distill-from (the teacher)"], None, opts.seed, steps)
    from formicary.model.provenance import class_label_map, read_provenance

    if isinstance(source, BuiltinSpec):
        import tf_keras

        from formicary.model.students import build_builtin

        student_in, student_classes = _builtin_io(source, teacher, data)
        tf_keras.utils.set_random_seed(opts.seed)  # same initial weights with or without a teacher loaded first
        model = build_builtin(source, student_in, student_classes)
        provenance: list[dict[str, Any]] = []
    else:
        with steps(f"loading {source.path.name}"):
            model = keras_io.load_keras_model(source)
        provenance, provenance_warning = read_provenance(source.path)
        if provenance_warning:
            warnings.append(provenance_warning)
            progress.warn(provenance_warning)
    student_name = source.spec if isinstance(source, BuiltinSpec) else source.path.name
    if teacher is not None:
        from formicary.shrink.distill import check_pair

        check_pair(teacher, model, teacher_file.path.name, student_name)  # type: ignore[union-attr]
    in_shape = keras_io.input_shape(model)
    classes = int(model.outputs[0].shape[-1] or 0)
    # A Keras model works on float values: raw int8 .bin samples are taken as those values (they are
    # quantized for the produced model's int8 input like any float data, see quantize_input).
    train = _floats(fit_to_input(data.train, in_shape, "--train")) if data.train else None
    calib = _floats(fit_to_input(data.calib, in_shape, "--calib")) if data.calib else None
    val = _floats(fit_to_input(data.val, in_shape, "--val")) if data.val else None
    label_map = class_label_map(provenance)
    train, val = (_as_class_indices(ds, label_map, warnings) for ds in (train, val))
    _check_labels(train, classes, "--train")
    _check_labels(val, classes, "--val")
    keras3_info = None
    if isinstance(source, ModelFile) and source.flavour != "tf_keras":
        sample = next((d.x for d in (calib, train, val) if d is not None), None)
        stages = _tfmot_stages(opts) + (["--save-keras"] if opts.save_keras and source.flavour == "graph" else [])
        model, keras3_info = _in_tf_keras(model, source, stages, sample, opts.seed, steps)
    if data.calib_synthetic and opts.quantize != "float32":
        calib = synthetic(in_shape, seed=opts.seed)
        warnings.append("CALIBRATING ON SYNTHETIC RANDOM INPUTS (--calib synthetic): activation ranges do not "
                        "come from real data, so the quantized model may be badly wrong. Use --calib DATA for "
                        "anything real.")
        progress.warn(warnings[-1])

    student = None
    if teacher is not None or isinstance(source, BuiltinSpec):
        student = _train_student(source, model, teacher, teacher_file, opts, train, val, steps)  # type: ignore[arg-type]
        if student.get("stage"):
            provenance = [*provenance, student["stage"]]
    if opts.save_keras:
        from formicary.model.provenance import write_provenance

        with steps(f"saving the Keras model to {opts.save_keras}"):
            saved = keras_io.save_keras_model(model, opts.save_keras)
            write_provenance(saved, provenance)

    float_acc = None
    if val is not None:
        with steps(f"measuring float accuracy with TensorFlow ({len(val)} samples)"):
            float_acc = keras_accuracy(model, val)

    is_file = isinstance(source, ModelFile)
    info: dict[str, Any] = {"input": str(source.path) if is_file else source.spec,
                            "input_kind": source.kind if is_file else "builtin",
                            "keras_version": source.keras_version if is_file else None, "reoptimised": True,
                            "quantize": opts.quantize, "epochs": opts.epochs, "seed": opts.seed,
                            "batch_size": opts.batch_size, "board": opts.board,
                            "train": _describe(train), "calib": _describe(calib), "val": _describe(val),
                            "calibration": None if opts.quantize == "float32" else
                            "synthetic random inputs" if data.calib_synthetic else "representative samples of --calib",
                            "prune": None, "cluster": None, "qat": None,
                            # How the Keras model given was made (its sidecar, see formicary.model.provenance);
                            # stages run here (e.g. distillation) are appended: bench labels the variant from it.
                            "provenance": provenance,
                            # The student trained here (built-in or --distill-from), null otherwise.
                            "student": None if student is None else student["student"],
                            "saved_keras": opts.save_keras,
                            # Keras 3 / SavedModel-graph inputs: converted directly, or rebuilt in tf_keras for tfmot.
                            "keras3": keras3_info}
    tune = FineTune(train, opts.epochs, opts.batch_size) if train is not None else None
    sparsity = _pruning(opts)
    if sparsity is not None:
        from formicary.shrink.prune import prune

        label = "2:4 sparsity" if opts.prune_structure == "2:4" else f"{sparsity:.0%} {opts.prune_structure}"
        with steps(f"pruning ({label}) and fine-tuning ({opts.epochs} epochs)"):
            model, pruned = prune(model, tune, sparsity, opts.prune_structure)  # type: ignore[arg-type]
        info["prune"] = pruned.to_dict()
    if opts.cluster is not None:
        from formicary.shrink.cluster import cluster

        with steps(f"clustering weights into {opts.cluster} centroids and fine-tuning ({opts.epochs} epochs)"):
            model, clustered = cluster(model, tune, opts.cluster, preserve_sparsity=sparsity is not None)  # type: ignore[arg-type]
        info["cluster"] = clustered.to_dict()
    if sparsity is not None or opts.cluster is not None:
        info["sparsity_after_shrink"] = round(sparsity_of(model)["overall"], 4)
    shrunk_acc = None
    if val is not None and (sparsity is not None or opts.cluster is not None):
        with steps("measuring float accuracy after shrinking"):
            shrunk_acc = keras_accuracy(model, val)
    if opts.qat:
        from formicary.shrink.qat import qat

        with steps(f"quantization-aware training ({opts.epochs} epochs)"):
            model, info["qat"] = qat(model, tune, pruned=sparsity is not None,  # type: ignore[arg-type]
                                     clustered=opts.cluster is not None)
    with steps(f"converting to TFLite ({opts.quantize})"):
        model_bytes = convert(model, opts.quantize,  # type: ignore[arg-type]
                              calib.x if calib is not None else None)
    with steps("checking the model runs in the TFLM interpreter"):
        check_tflm(model_bytes)
    info["tflm_check"] = "passed"
    info["versions"] = _versions()

    accuracy = None
    if val is not None:
        with steps(f"measuring {opts.quantize} accuracy with TFLM ({len(val)} samples)"):
            quantized = tflm_accuracy(model_bytes, val)
        accuracy = {"float": float_acc, "quantized": quantized, "samples": len(val), "unit": ACCURACY_UNIT,
                    "method": {"float": "TensorFlow on the Keras model as given (before shrinking)"
                               if student is None else "TensorFlow on the trained student (before shrinking)",
                               "quantized": f"TFLM Python interpreter on the produced {opts.quantize} .tflite"},
                    "drop_points": round((float_acc - quantized) * 100, 2)}
        if shrunk_acc is not None:
            accuracy["float_after_shrink"] = shrunk_acc
    return model_bytes, info, accuracy


def _tfmot_stages(opts: CompileOptions) -> list[str]:
    """The requested stages that train through tf_keras/tfmot (a Keras 3 model must be rebuilt for them)."""
    return [name for name, on in (("--prune", _pruning(opts) is not None), ("--cluster", opts.cluster is not None),
                                  ("--qat", opts.qat), ("--distill-from", opts.distill_from is not None)) if on]


def _in_tf_keras(model: Any, source: ModelFile, stages: list[str], sample: np.ndarray | None, seed: int,
                 steps: _Steps) -> tuple[Any, dict[str, Any] | None]:
    """`model` as compile needs it: a tf_keras model passes; a Keras 3 model is kept for direct quantization, or
    rebuilt in tf_keras (outputs checked) when `stages` need tfmot; a SavedModel graph cannot be trained."""
    if source.flavour == "tf_keras":
        return model, None
    from formicary.model import keras3

    if source.flavour == "graph":
        if stages:
            keras3.refuse_shrinking(model, stages)
        return model, {"rebuilt_in_tf_keras": False, "source": "SavedModel without Keras metadata",
                       "converted_from": f"serving signature {model.signature_key!r}"}
    if not stages:
        return model, {"rebuilt_in_tf_keras": False, "source": f"Keras {source.keras_version}",
                       "converted_from": "the Keras 3 model's inference call, traced (training=False)"}
    with steps(f"rebuilding {source.path.name} (Keras {source.keras_version}) in tf_keras for "
               f"{', '.join(stages)}"):
        rebuilt, done = keras3.to_tf_keras(model, sample, seed)
    return rebuilt, {**done.to_dict(), "source": f"Keras {source.keras_version}", "for": stages}


def _builtin_io(spec: BuiltinSpec, teacher: Any, data: _Data) -> tuple[tuple[int | None, ...], int]:
    """Input shape and class count of a built-in student: the teacher's, else the --train data's."""
    from formicary.model import keras_io

    if teacher is not None:
        return keras_io.input_shape(teacher), int(teacher.outputs[0].shape[-1] or 0)
    train = data.train
    assert train is not None and train.y is not None  # _load_data demands labelled --train for a builtin
    if train.flat:
        raise FormicaryError(f"{spec.spec}: the --train data is raw .bin tensors without a shape, so the input "
                             "shape of the built-in architecture is unknown",
                             "save the training data as an .npz with x shaped (samples, height, width, channels), "
                             "or distil from a teacher (--distill-from) whose input shape is used.")
    shape = tuple(int(d) for d in train.x.shape[1:])
    if len(shape) == 2:
        shape = shape + (1,)
    labels = [int(train.y.max())] + ([int(data.val.y.max())] if data.val is not None and data.val.y is not None
                                      else [])
    return (None, *shape), max(labels) + 1


def _train_student(source: ModelFile | BuiltinSpec, model: Any, teacher: Any, teacher_file: ModelFile | None,
                   opts: CompileOptions, train: Dataset, val: Dataset | None, steps: _Steps) -> dict[str, Any]:
    """Distil `model` from the teacher (or, for a built-in without one, train it on the labels) in place.

    Returns {"student": what compile.student reports, "stage": the provenance stage (distillation only)}."""
    from formicary.model.provenance import model_digest
    from formicary.shrink.channel import count_params, keras_macs
    from formicary.shrink.distill import StudentTraining, distill, train_student

    temperature, alpha = _distill_settings(opts)
    how = StudentTraining(train, opts.epochs, opts.batch_size, opts.seed, temperature=temperature, alpha=alpha)
    builtin = isinstance(source, BuiltinSpec)
    student = {"model": source.spec if builtin else str(source.path),  # type: ignore[union-attr]
               "arch": source.name if builtin else None, "width": source.width if builtin else None,  # type: ignore[union-attr]
               "macs": keras_macs(model), "params": count_params(model)}
    if teacher is None:
        with steps(f"training {source.spec} from scratch on the --train labels ({opts.epochs} epochs)"):  # type: ignore[union-attr]
            student["training"] = train_student(model, how)
        return {"student": student, "stage": None}
    assert teacher_file is not None
    teacher_macs = keras_macs(teacher)
    with steps(f"distilling from {teacher_file.path.name} (T={temperature:g}, alpha={alpha:g}, "
               f"{opts.epochs} epochs)"):
        student["training"] = distill(model, teacher, how, teacher_name=teacher_file.path.name,
                                      student_name=student["model"])
    teacher_acc = None
    if val is not None:
        with steps(f"measuring the teacher's float accuracy ({len(val)} samples)"):
            teacher_acc = keras_accuracy(teacher, val)
    training = student["training"]
    stage = {"stage": "distill", "teacher": str(teacher_file.path), "teacher_sha256": model_digest(teacher_file.path),
             "teacher_macs": teacher_macs, "teacher_params": count_params(teacher),
             "student": student["model"], "student_arch": student["arch"], "student_width": student["width"],
             "student_macs": student["macs"], "student_params": student["params"],
             "macs_ratio": round(teacher_macs / student["macs"], 2) if student["macs"] else None,
             "temperature": temperature, "alpha": alpha, "epochs": opts.epochs, "batch_size": opts.batch_size,
             "learning_rate": training["learning_rate"], "seed": opts.seed, "train_samples": training["samples"],
             "teacher_float_accuracy": teacher_acc, "teacher_logits": training["teacher_logits"],
             "student_logits": training["student_logits"], "final_loss": training["epoch_losses"][-1],
             "train_seconds": training["train_seconds"], "label": "distilled"}
    return {"student": student, "stage": stage}


def _as_class_indices(ds: Dataset | None, label_map: list[int] | None, warnings: list[str]) -> Dataset | None:
    """Data labelled with the original labels of a model adapted to new classes, as its class indices."""
    from formicary.model.provenance import to_class_indices

    if ds is None or ds.y is None:
        return ds
    mapped = to_class_indices([int(y) for y in ds.y], label_map)
    if mapped is None:
        return ds
    note = (f"{ds.source}: labels {sorted(set(int(y) for y in ds.y))} read as the original labels of the adapted "
            f"model's classes (class i = label {label_map}[i], from its provenance)")
    warnings.append(note)
    progress.info(f"note: {note}")
    return Dataset(ds.x, np.asarray(mapped, dtype=np.int64), ds.source)


def _floats(ds: Dataset) -> Dataset:
    return Dataset(as_float(ds.x), ds.y, ds.source)


def _describe(ds: Dataset | None) -> dict | None:
    return None if ds is None else {"source": ds.source, "samples": len(ds)}


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("tensorflow", "tf-keras", "tensorflow-model-optimization", "tflite-micro"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


# -------------------------------------------------------------------------------------------- accuracy

def _top1(outputs: np.ndarray, y: np.ndarray) -> float:
    outputs = outputs.reshape(len(y), -1)
    pred = (outputs[:, 0] > 0.5).astype(np.int64) if outputs.shape[1] == 1 else outputs.argmax(axis=1)
    return round(float((pred == y).mean()), 4)


def keras_accuracy(model: Any, val: Dataset) -> float:
    """Top-1 accuracy of a Keras model measured with TensorFlow."""
    from formicary.model.keras_io import quiet_native_logs

    with quiet_native_logs():
        out = model.predict(val.x.astype(np.float32, copy=False), batch_size=256, verbose=0)
    return _top1(np.asarray(out), val.y)


def _dequantize(y: np.ndarray, quant) -> np.ndarray:
    if quant is None or not np.issubdtype(y.dtype, np.integer):
        return y.astype(np.float32)
    return (y.astype(np.float32) - float(quant.zero_point[0])) * float(quant.scale[0])


def tflm_accuracy(model_bytes: bytes, val: Dataset) -> float:
    """Top-1 accuracy of a .tflite model measured with the TFLM interpreter, one sample per invocation."""
    from formicary.oracle.inputs import tensor_quant, to_input_type
    from formicary.oracle.tflm import run_tflm
    from formicary.tflite import read_model

    ir = read_model(model_bytes)
    tin, tout = ir.tensors[ir.inputs[0]], ir.tensors[ir.outputs[0]]
    x = to_input_type(val.x, tin.np_dtype, *tensor_quant(tin), what="--val")
    shape = (1,) + tuple(tin.shape[1:])
    results = run_tflm(model_bytes, [x[i].reshape(shape) for i in range(len(x))])
    outputs = np.stack([_dequantize(np.asarray(r[0]), tout.quant).reshape(-1) for r in results])
    return _top1(outputs, val.y)


def to_tflite(model: str | Path, out_dir: str | Path | None = None, *, board: str | None = None) -> Path:
    """MODEL as a .tflite for the stages below the compiler (codegen, build, targets): a .tflite passes through;
    a Keras model or SavedModel is compiled with default options (int8, TFLM-checked) into OUT_DIR/compiled, or
    into the cache keyed by the model's bytes, so a second bench of the same Keras file does not recompile."""
    model = Path(model)
    if not model.exists():
        raise FormicaryError(f"model {model} does not exist.", "pass a .tflite or a Keras model file.")
    if model.is_file() and model.suffix == ".tflite":
        return model
    if out_dir is None:
        from formicary.target.firmware import cache_root, file_sha256

        out = cache_root().parent / "compiled" / f"{model.stem}-{file_sha256(model)[:16]}-{board or 'any'}"
    else:
        out = Path(out_dir) / "compiled"
    tflite = out / "model.tflite"
    if out_dir is None and tflite.is_file():
        return tflite
    from formicary import progress

    with progress.step(f"compile {model.name}"):
        return Path(compile_model(model, out, board=board).model_path)
