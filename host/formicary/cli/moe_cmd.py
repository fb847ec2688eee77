"""`formicary moe --data TRAIN -o OUT`: train a mixture of experts and export it with conditional execution."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from formicary.cli._output import JSON_OPTION, emit, new_table


def render(console: Console, result: dict[str, Any]) -> None:
    s, c = result["moe"], result["costs"]
    console.print(f"[bold]mixture of experts[/] {s['experts']} × {s['expert_arch']}, top-{s['top_k']}, stem "
                  f"{s['stem'] or 'none'}, balance weight {s['balance_weight']:g}, {s['epochs']} epochs "
                  f"({s['train_seconds']:.1f} s, seed {s['seed']})")
    table = new_table("part", "params", "MACs", "train use", "val use", "val use (TFLM)")
    table.add_row("stem", f"{c['stem_params']:,}", f"{c['stem_macs']:,}", "", "", "")
    table.add_row("gate", f"{c['gate_params']:,}", f"{c['gate_macs']:,}", "", "", "")
    u = result["usage"]
    for i, (p, m) in enumerate(zip(c["params_per_expert"], c["macs_per_expert"])):
        cell = [str(u[k][i]) if u.get(k) else "" for k in ("train", "val", "val_tflm")]
        table.add_row(f"expert_{i}", f"{p:,}", f"{m:,}", *cell)
    console.print(table)
    console.print(f"total {c['total_params']:,} parameters; per inference {c['macs_per_inference']:,} MACs "
                  f"(stem + gate + {'one expert' if s['top_k'] == 1 else str(s['top_k']) + ' experts'}; all experts: "
                  f"{c['macs_all_experts']:,})")
    if s.get("prune"):
        pr = s["prune"]
        console.print(f"experts pruned to {pr['sparsity']:.0%} (achieved " +
                      ", ".join(f"expert_{e['expert']} {e['achieved']:.0%}" for e in pr["experts"]) +
                      f"); float accuracy before pruning {s.get('val_accuracy')}")
    if s.get("cluster"):
        cl = s["cluster"]
        most = max(max(e["distinct_values"].values(), default=0) for e in cl["experts"])
        console.print(f"experts clustered into {cl['clusters']} centroids (at most {most} distinct values per "
                      "kernel" + (", zeros kept" if cl["preserve_sparsity"] else "") + ")")
    a = result["accuracy"]
    if a["float"] is not None:
        line = f"validation accuracy: float {a['float']:.2%}"
        if a["int8_tflm"] is not None:
            line += f", int8 TFLM {a['int8_tflm']:.2%}; TFLM routes = float routes on {result['route_agreement']:.1%}"
        console.print(line)
    if result["model_path"]:
        e = result["export"]
        console.print(f"[bold]{result['model_path']}[/] {result['model_bytes']:,} bytes, TFLM arena "
                      f"{result['tflm_arena_bytes']:,} bytes; {len(e['subgraphs'])} subgraphs "
                      f"({', '.join(sg['name'] for sg in e['subgraphs'])}), int8 across IF boundaries: "
                      f"{e['int8_boundaries']}")
    for w in result.get("warnings", []):
        console.print(f"[bold yellow]warning:[/] {w}")
    console.print(f"Keras model {result['keras_path']}; report {result['report_path']}")


def register(app: typer.Typer) -> None:
    @app.command("moe")
    def moe_command(
        data: str = typer.Option(..., "--data", help="Labelled training data: .npz (x, y) or .bin folder."),
        out: Path = typer.Option(..., "-o", "--out", help="Output folder: model.tflite, moe.keras, report.json."),
        val: Optional[str] = typer.Option(None, "--val", help="Labelled validation data (accuracy, expert usage)."),
        calib: Optional[str] = typer.Option(None, "--calib", help="Calibration data for int8 (default: --data)."),
        experts: int = typer.Option(4, "--experts", help="Number of experts E (2 or more)."),
        top_k: int = typer.Option(1, "--top-k", help="Experts run per input (the export supports 1)."),
        expert: str = typer.Option("builtin:cnn@0.5", "--expert",
                                   help="Expert architecture: builtin:NAME@WIDTH or a tf_keras model file."),
        stem: str = typer.Option("8", "--stem", help="Shared stem: 3x3 conv channels, e.g. 8 or 8,16; none."),
        balance_weight: float = typer.Option(0.5, "--balance-weight", help="Weight of the load-balancing loss."),
        gate_noise: float = typer.Option(0.3, "--gate-noise", help="Routing noise (std) while training."),
        epochs: int = typer.Option(30, "--epochs", help="Training epochs."),
        learning_rate: float = typer.Option(3e-3, "--lr", help="Learning rate (Adam)."),
        batch_size: int = typer.Option(32, "--batch-size", help="Examples per training step."),
        seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same model)."),
        prune: Optional[float] = typer.Option(None, "--prune",
                                              help="Then magnitude-prune every expert to this sparsity (0-1)."),
        prune_epochs: int = typer.Option(5, "--prune-epochs",
                                         help="Fine-tuning epochs per expert when pruning or clustering."),
        cluster: Optional[int] = typer.Option(None, "--cluster",
                                              help="Then cluster every expert's kernels into this many centroids."),
        export: bool = typer.Option(True, "--export/--no-export", help="Export model.tflite (top-1 only)."),
        as_json: bool = JSON_OPTION,
    ) -> None:
        """Train a mixture of experts (gate + E experts, top-k routing) and export it: only the chosen expert runs."""
        from formicary.shrink.moe import MoEOptions, moe_files

        opts = MoEOptions(experts=experts, top_k=top_k, expert=expert, stem=stem, balance_weight=balance_weight,
                          gate_noise=gate_noise, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                          seed=seed, prune=prune, prune_epochs=prune_epochs, cluster=cluster)
        result = moe_files(data, out, opts, val=val, calib=calib, export=export).to_dict()
        result["analysis"] = _analysis(result["model_path"])
        emit(result, as_json, render)


def _analysis(model_path: str | None) -> dict[str, Any] | None:
    """formicary's static analysis of the exported .tflite, per route (a cross-check of the Keras-side counts)."""
    if not model_path:
        return None
    from formicary.analysis import analyse

    a = analyse(model_path, measure_arena=False)
    cf = a.get("control_flow") or {}
    return {"macs_per_route": cf.get("macs_per_route"), "macs_all_subgraphs": cf.get("macs_all_subgraphs"),
            "params_all_subgraphs": cf.get("params_all_subgraphs"),
            "routes": [{"names": r["names"], "macs": r["macs"]} for r in cf.get("routes") or []],
            "energy_floor_uj": a.get("energy_floor_uj")}
