"""`formicary codegen MODEL.tflite -o DIR`: ahead-of-time compile a .tflite to C for formicary-rt."""
from __future__ import annotations

from pathlib import Path

import typer

from formicary.cli._bench_options import MEMORY_PLAN_OPTION
from formicary.cli._output import JSON_OPTION, emit


def register(app: typer.Typer) -> None:
    @app.command("codegen")
    def codegen(model: Path = typer.Argument(..., help="Quantized .tflite model."),
                out: Path = typer.Option(..., "-o", "--out", help="Output folder for fm_model.h / fm_model.c."),
                preserve_inputs: bool = typer.Option(
                    False, "--preserve-inputs",
                    help="Keep inputs intact across fm_invoke() calls (costs their size in RAM)."),
                kernels: str = typer.Option("reference", "--kernels",
                                            help="Kernel set to link with (a folder of firmware/kernels/: "
                                                 "reference, dsp, helium)."),
                memory_plan: str = MEMORY_PLAN_OPTION,
                as_json: bool = JSON_OPTION) -> None:
        """Generate C (weights in flash, planned static arena, fm_invoke) for formicary-rt. No TensorFlow."""
        from formicary import progress
        from formicary.codegen import generate

        with progress.step(f"codegen {model.name}"):
            result = generate(model, out, preserve_inputs=preserve_inputs, kernels=kernels,
                              memory_plan=memory_plan).to_dict()
        result["units"] = {"arena_bytes": "bytes", "arena_lower_bound_bytes": "bytes", "const_bytes": "bytes",
                           "macs": "multiply-accumulates", "packed_bytes": "bytes", "replaced_bytes": "bytes"}
        emit(result, as_json, _human)


def _human(console, r: dict) -> None:
    console.print(f"wrote {', '.join(r['files'])}")
    ratio = r["arena_bytes"] / r["arena_lower_bound_bytes"] if r["arena_lower_bound_bytes"] else 1.0
    console.print(f"arena: {r['arena_bytes']} bytes (lower bound {r['arena_lower_bound_bytes']}, x{ratio:.3f}); "
                  f"constants in flash: ~{r['const_bytes']} bytes")
    for p in r.get("plans", []):
        mark = "*" if p["plan"] == r.get("memory_plan") else " "
        console.print(f" {mark} plan {p['plan']}: arena {p['arena_bytes']} bytes, "
                      f"+{p['extra_instructions_pct']:.1f} % instructions ({p['cost_model']})")
    packed = [o for o in r["ops"] if o.get("packed_bytes")]
    if packed:
        delta = sum(o["packed_bytes"] - o["replaced_bytes"] for o in packed)
        console.print(f"kernel set {r['kernel_set']}: weights of {len(packed)} ops re-laid out ahead of time, "
                      f"{sum(o['packed_bytes'] for o in packed)} bytes of flash for "
                      f"{sum(o['replaced_bytes'] for o in packed)} in TFLite layout ({delta:+d} bytes)")
    if r.get("routes"):
        subs = r["subgraphs"]
        console.print(f"{len(subs)} subgraphs (IF): the arena is the largest route's peak, not the sum of the "
                      f"subgraphs' own peaks ({sum(s['peak_bytes'] for s in subs)} bytes)")
        names = {s["index"]: s["name"] for s in subs}
        for route in r["routes"]:
            console.print(f"  route 0x{route['route']:x} ({' > '.join(names[i] for i in route['subgraphs'])}): "
                          f"peak {route['peak_bytes']} bytes")
    console.print(f"{len(r['ops'])} ops, {sum(o['macs'] for o in r['ops'])} MACs; link with firmware/"
                  f"{{{', '.join(r['kernel_sources'])}}}")
