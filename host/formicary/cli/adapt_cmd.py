"""`formicary adapt BASE --data NEW -o OUT.keras`: transfer learning (new head, frozen features) or LoRA."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from formicary.cli._output import JSON_OPTION, emit


def render(console: Console, result: dict[str, Any]) -> None:
    t = result["transfer"]
    console.print(f"[bold]adapted model[/] {result['model_path']}")
    labels = t["label_map"]
    if t["new_head"]:
        mapping = ", ".join(f"{i}←{lab}" for i, lab in enumerate(labels[:10])) + (" …" if len(labels) > 10 else "")
        console.print(f"new head {t['head']!r}: {t['classes']} classes (class←label: {mapping})")
    else:
        console.print(f"kept the base's head: {t['classes']} classes")
    console.print(f"examples per class: {', '.join(map(str, t['examples_per_class']))} "
                  f"({t['train_samples']} in all)")
    if t["method"] == "lora":
        lora = result.get("lora") or {}
        console.print(f"LoRA rank {lora.get('rank')}: {_count(lora.get('trainable_params'))} trainable parameters "
                      f"(full fine-tuning: {_count(lora.get('full_finetune_params'))}), merged: {lora.get('merged')}")
    else:
        console.print(f"frozen up to {t['freeze_until']!r}: {t['frozen_params']:,} frozen, "
                      f"{t['trainable_params']:,} trained parameters; head {t['epochs']} epochs")
        if t["fine_tune_epochs"]:
            console.print(f"then top block ({', '.join(t['top_block'])}) {t['fine_tune_epochs']} epochs at "
                          f"lr {t['fine_tune_lr']:g}")
    console.print(f"training: {t['train_seconds']:.1f} s (seed {t['seed']})")
    if t.get("val_accuracy") is not None:
        console.print(f"validation accuracy (float, TensorFlow): {t['val_accuracy']:.2%} on {t['val_samples']} "
                      "samples")
    for w in result.get("warnings", []):
        console.print(f"[bold yellow]warning:[/] {w}")
    console.print(f"provenance: {result['provenance_path']}  (next: formicary compile {result['model_path']} -o OUT "
                  "--calib DATA)")


def _count(n: object) -> str:
    return f"{n:,}" if isinstance(n, int) else "?"


def register(app: typer.Typer) -> None:
    @app.command("adapt")
    def adapt_command(
        base: Path = typer.Argument(..., help="Trained Keras model, tf_keras or Keras 3 "
                                                    "(.keras, .h5, SavedModel dir) to adapt."),
        data: str = typer.Option(..., "--data", help="Labelled examples of the new task: .npz (x, y) or .bin "
                                                     "folder; labels may be any integers."),
        out: Path = typer.Option(..., "-o", "--out", help="Where to write the adapted model (.keras)."),
        val: Optional[str] = typer.Option(None, "--val", help="Labelled validation data (same labels as --data)."),
        freeze_until: str = typer.Option("auto", "--freeze-until",
                                         help="Freeze this layer and all it depends on; auto = the last feature layer "
                                              "(the last Flatten/GlobalPooling before the classifier)."),
        classes: Optional[int] = typer.Option(None, "--classes",
                                              help="New head for N classes (= distinct labels in --data, mapped in "
                                                   "sorted order to 0..N-1); omit to keep the base's head."),
        epochs: int = typer.Option(30, "--epochs", help="Epochs training the head (or the LoRA adapters)."),
        learning_rate: float = typer.Option(1e-2, "--lr", help="Learning rate of the head training."),
        fine_tune_epochs: int = typer.Option(0, "--fine-tune-epochs",
                                             help="Then unfreeze the top block for this many epochs."),
        fine_tune_lr: float = typer.Option(1e-4, "--fine-tune-lr", help="Learning rate of the top-block epochs."),
        batch_size: int = typer.Option(16, "--batch-size", help="Examples per training step."),
        seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same model)."),
        lora_rank: Optional[int] = typer.Option(None, "--lora-rank",
                                                help="Train LoRA adapters of this rank instead of freezing."),
        lora_alpha: Optional[float] = typer.Option(None, "--lora-alpha", help="LoRA scaling alpha."),
        lora_separate: bool = typer.Option(False, "--lora-separate",
                                           help="Keep the LoRA adapters as separate low-rank ops."),
        as_json: bool = JSON_OPTION,
    ) -> None:
        """Adapt a trained model to a new task from a few labelled examples (transfer learning or LoRA)."""
        from formicary.shrink.transfer import AdaptOptions, adapt_files

        opts = AdaptOptions(classes=classes, freeze_until=freeze_until, epochs=epochs,
                            fine_tune_epochs=fine_tune_epochs, fine_tune_lr=fine_tune_lr,
                            learning_rate=learning_rate, batch_size=batch_size, seed=seed, lora_rank=lora_rank,
                            lora_alpha=lora_alpha, lora_separate=lora_separate)
        result = adapt_files(base, data, out, opts, val=val)
        emit(result.to_dict(), as_json, render)
