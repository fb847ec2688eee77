"""`formicary compile MODEL -o OUTDIR`: shrink, quantize and TFLM-check a model; write model.tflite + report.json."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from formicary.cli._output import JSON_OPTION, emit


def render_report(console: Console, result: dict[str, Any]) -> None:
    """A readable summary of a compile report (shared with `formicary demo`)."""
    report = result["report"]
    info = report.get("compile", {})
    console.print(f"[bold]model.tflite[/] {result['model_path']}  ({_kib(report.get('model_bytes'))})")
    if info.get("reoptimised") is False:
        console.print(f"[yellow]{info.get('note')}[/]")
    onnx = info.get("onnx") or {}
    if onnx:
        layout = onnx.get("layout") or {}
        console.print(f"ONNX opset {onnx.get('opset')} converted by {onnx.get('conversion', {}).get('converter')}; "
                      + (layout.get("note") or f"input layout {layout.get('transform')}"))
    for line in _training_lines(info):
        console.print(line)
    keras3 = info.get("keras3")
    if keras3:
        if keras3.get("rebuilt_in_tf_keras"):
            check = keras3["check"]
            console.print(f"{keras3.get('source')}: rebuilt in tf_keras for {', '.join(keras3.get('for') or [])} "
                          f"({keras3['layers']} layers; outputs match, max |diff| {check['max_abs_diff']:.2g} on "
                          f"{check['samples']} samples)")
        else:
            console.print(f"{keras3.get('source')}: converted directly from {keras3.get('converted_from')}")
    distilled = any(s.get("stage") == "distill" for s in info.get("provenance") or [] if isinstance(s, dict))
    student = info.get("student") or {}
    stages = [s.get("stage") for s in info.get("provenance") or [] if isinstance(s, dict)]
    steps = ["adapt" if "transfer" in stages else None, "LoRA" if "lora" in stages else None,
             "distil" if distilled and student else
             "train on labels" if student.get("training") else None,
             f"prune {info['prune']['structure']} {info['prune']['achieved']:.1%}" if info.get("prune") else None,
             f"cluster {info['cluster']['clusters']}" if info.get("cluster") else None,
             info["qat"]["scheme"] if info.get("qat") else None,
             f"quantize {info['quantize']}" if info.get("quantize") else None]
    if any(steps):
        console.print("pipeline: " + " → ".join(s for s in steps if s))
    console.print(f"weights: {_kib(report.get('weights_bytes'))}, params: {_num(report.get('params'))}, "
                  f"MACs: {_num(report.get('macs'))}, sparsity: {_sparsity(report.get('sparsity'))}")
    console.print(f"TFLM arena: {_kib(report.get('tflm_arena_bytes'))} (measured by the TFLM interpreter); "
                  f"TFLM check: {info.get('tflm_check', '?')}")
    energy = report.get("energy_floor_uj") or {}
    if energy:
        console.print("energy floor per inference: " + ", ".join(
            f"{v:.4g} µJ @ {k}" for k, v in energy.items() if isinstance(v, (int, float))))
    acc = report.get("accuracy")
    if acc:
        parts = []
        if acc.get("float") is not None:
            reference = "onnxruntime" if info.get("input_kind") == "onnx" else "TensorFlow"
            parts.append(f"float {acc['float']:.2%} ({reference})")
        if acc.get("float_after_shrink") is not None:
            parts.append(f"shrunk float {acc['float_after_shrink']:.2%}")
        parts.append(f"{info.get('quantize') or 'model'} {acc['quantized']:.2%} (TFLM)")
        drop = (f"; {info.get('quantize')} vs float: {0.0 - acc['drop_points']:+.2f} points"
                if acc.get("drop_points") is not None else "")
        console.print(f"accuracy on {acc['samples']} samples: " + ", ".join(parts) + drop)
    fit = report.get("board_fit")
    if fit:
        console.print(f"board fit: {fit}")
    for w in info.get("warnings", []):
        console.print(f"[bold yellow]warning:[/] {w}")
    console.print(f"report: {result['report_path']}  (compile {info.get('wall_seconds', 0):.1f} s)")


def _training_lines(info: dict[str, Any]) -> list[str]:
    """How the Keras model was made: its recorded stages (distilled, adapted, …) and a student trained here."""
    lines = []
    for stage in info.get("provenance") or []:
        if not isinstance(stage, dict):
            continue
        if stage.get("stage") == "distill":
            teacher_acc = stage.get("teacher_float_accuracy")
            lines.append(
                f"distilled: student {stage.get('student')} ({_num(stage.get('student_macs'))} MACs) from teacher "
                f"{Path(str(stage.get('teacher'))).name} ({_num(stage.get('teacher_macs'))} MACs, "
                f"{stage.get('macs_ratio')}× the student's"
                + (f", float {teacher_acc:.2%}" if isinstance(teacher_acc, (int, float)) else "")
                + f"); T={stage.get('temperature'):g}, alpha={stage.get('alpha'):g}, {stage.get('epochs')} epochs, "
                  f"seed {stage.get('seed')}, {_num(stage.get('train_samples'))} training samples")
        elif stage.get("stage") == "transfer":
            acc = stage.get("val_accuracy")
            lines.append(f"adapted: from {Path(str(stage.get('base'))).name} to {stage.get('classes')} classes "
                         f"({stage.get('method', 'head')}), {_num(stage.get('train_samples'))} examples, "
                         f"{stage.get('epochs')} epochs, seed {stage.get('seed')}"
                         + (f", float {acc:.2%} on its validation data" if isinstance(acc, (int, float)) else ""))
        elif stage.get("stage") == "lora":
            lines.append(f"LoRA: rank {stage.get('rank')}, alpha {stage.get('alpha')}, "
                         f"{_num(stage.get('trainable_params'))} trainable parameters (full fine-tuning "
                         f"{_num(stage.get('full_finetune_params'))}), "
                         + ("merged into the base weights" if stage.get("merged") else "adapters kept as separate ops"))
        else:  # a stage this formicary does not know (a newer writer): its scalar facts
            lines.append(f"{stage.get('stage')}: " + ", ".join(
                f"{k}={v}" for k, v in stage.items() if k != "stage" and isinstance(v, (int, float, str))))
    student = info.get("student") or {}
    training = student.get("training") or {}
    if student and training.get("loss", "").startswith("labels"):
        lines.append(f"model {student.get('model')} ({_num(student.get('macs'))} MACs) trained from scratch on the "
                     f"labels: {training.get('epochs')} epochs, seed {training.get('seed')}, "
                     f"{training.get('samples')} samples")
    if info.get("saved_keras"):
        lines.append(f"trained Keras model saved: {info['saved_keras']} (+ .formicary.json provenance)")
    return lines


def _kib(n: Any) -> str:
    return f"{n / 1024:.1f} KiB" if isinstance(n, (int, float)) else "?"


def _num(n: Any) -> str:
    return f"{n:,}" if isinstance(n, int) else str(n)


def _sparsity(s: Any) -> str:
    if isinstance(s, (int, float)):
        return f"{s:.1%}"
    if isinstance(s, dict):
        for key in ("overall", "weights", "total"):
            if isinstance(s.get(key), (int, float)):
                return f"{s[key]:.1%}"
    return "?"


def register(app: typer.Typer) -> None:
    @app.command("compile")
    def compile_command(
        model: str = typer.Argument(..., help="Keras model, tf_keras or Keras 3 (.keras, .h5, SavedModel dir), "
                                              ".onnx (needs formicary[onnx]; --calib/--val data in the ONNX layout, "
                                              "e.g. NCHW), .tflite, or a built-in architecture builtin:cnn@WIDTH / "
                                              "builtin:dscnn@WIDTH (trained on --train, from scratch or distilled "
                                              "with --distill-from)."),
        out_dir: Path = typer.Option(..., "-o", "--out", help="Output directory for model.tflite and report.json."),
        train: Optional[str] = typer.Option(None, "--train", help="Fine-tuning data: .npz (x, y) or .bin folder."),
        calib: Optional[str] = typer.Option(None, "--calib", help="Calibration data, or 'synthetic' (warns)."),
        val: Optional[str] = typer.Option(None, "--val", help="Validation data with labels: reports accuracy."),
        prune: Optional[float] = typer.Option(None, "--prune",
                                              help="Target sparsity, e.g. 0.5 (channel: fraction of channels)."),
        prune_structure: str = typer.Option(
            "unstructured", "--prune-structure",
            help="channel (narrower model: pays on every device), block (1x4 blocks, sparse kernels), 2:4, or "
                 "unstructured (accuracy studies)."),
        cluster: Optional[int] = typer.Option(None, "--cluster", help="Weight clusters per kernel, e.g. 16."),
        qat: bool = typer.Option(False, "--qat", help="Quantization-aware training (int8)."),
        quantize: str = typer.Option("int8", "--quantize", help="int8, int16x8 or float32."),
        epochs: int = typer.Option(3, "--epochs", help="Training epochs of each stage (distillation or training a "
                                                       "built-in, prune/cluster/QAT fine-tuning)."),
        seed: int = typer.Option(0, "--seed", help="Random seed: same seed, byte-identical model.tflite."),
        board: Optional[str] = typer.Option(None, "--board", help="Check that the model fits this board."),
        distill_from: Optional[str] = typer.Option(
            None, "--distill-from", help="Teacher Keras model: train MODEL (the student) on its softened outputs "
                                         "mixed with the --train labels, before prune/cluster/QAT."),
        temperature: Optional[float] = typer.Option(None, "--temperature",
                                                    help="Distillation temperature T (default 4)."),
        distill_alpha: Optional[float] = typer.Option(
            None, "--distill-alpha", help="Weight of the teacher's soft targets in [0, 1]; 1 - alpha weighs the "
                                          "labels (default 0.7)."),
        save_keras: Optional[str] = typer.Option(
            None, "--save-keras", help="Also save the trained student as a Keras model (+ provenance sidecar), "
                                       "before prune/cluster/QAT, e.g. student.keras."),
        as_json: bool = JSON_OPTION,
    ) -> None:
        """Shrink, quantize and convert a model to a TFLite Micro flatbuffer checked by the TFLM interpreter."""
        from formicary.compile import CompileOptions, compile_model

        opts = CompileOptions(train=train, calib=calib, val=val, prune=prune, prune_structure=prune_structure,
                              cluster=cluster, qat=qat, quantize=quantize, epochs=epochs, seed=seed, board=board,
                              distill_from=distill_from, temperature=temperature, distill_alpha=distill_alpha,
                              save_keras=save_keras)
        result = compile_model(model, out_dir, opts)
        emit({"model_path": str(result.model_path), "report_path": str(result.report_path),
              "report": result.report}, as_json, render_report)
