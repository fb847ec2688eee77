"""`formicary inspect MODEL.tflite`: what is in a model and what it costs, without importing TensorFlow."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from formicary.cli._output import JSON_OPTION, emit


def _quant_short(q: dict) -> str:
    if q["scheme"] == "none":
        return "-"
    if q["scheme"] == "per-tensor":
        return f"s={q['scale'][0]:.3g} zp={q['zero_point'][0]}"
    s = q["scale"]
    zps = sorted(set(q["zero_point"]))
    zp = str(zps[0]) if len(zps) == 1 else f"{min(zps)}..{max(zps)}"
    return f"{q['channels']}ch s={min(s):.2g}..{max(s):.2g} zp={zp}"


def _shape(t: dict) -> str:
    short = {"int8": "i8", "int16": "i16", "int32": "i32", "float32": "f32", "float16": "f16", "uint8": "u8"}
    return ("x".join(str(d) for d in t["shape"]) or "scalar") + f" {short.get(t['dtype'], t['dtype'])}"


def _energy_table(console, em: dict[str, Any]) -> None:
    from formicary.cli._output import new_table

    table = new_table(title=f"where the energy goes, per layer (modelled: {em['kernels']} kernels, weights in "
                            f"{em['weights_level']}, activations in {em['activations_level']})",
                      pad_edge=False, box=None)
    for col in ("#", "op", "compute pJ", "weights pJ", "activ. pJ", "total pJ", "moving", "total pJ 7nm",
                "moving 7nm"):
        table.add_column(col, justify="left" if col == "op" else "right", no_wrap=True)
    for layer in em["layers"]:
        a, b = layer["per_node"]["45nm"], layer["per_node"]["7nm"]
        if not a["total_pj"]:
            continue
        table.add_row(str(layer["index"]), layer["op"].replace("DEPTHWISE_CONV_2D", "DW_CONV")
                      .replace("FULLY_CONNECTED", "FC"), f"{a['compute_pj']:,.0f}", f"{a['weight_read_pj']:,.0f}",
                      f"{a['activation_pj']:,.0f}", f"{a['total_pj']:,.0f}", f"{a['data_movement_share']:.1%}",
                      f"{b['total_pj']:,.0f}", f"{b['data_movement_share']:.1%}")
    console.print(table)
    console.print("45 nm unless marked; weights = weight, bias and requantization reads; activ. = activation and "
                  "scratch reads + writes in the arena; moving = (weights + activ.) / total; kernel path and "
                  "access counts per layer: --json energy_model.layers", style="dim")


def _human(console, r: dict[str, Any]) -> None:
    from formicary.cli._output import new_table

    table = new_table(title=f"{r['model_path']}: {len(r['layers'])} operators", pad_edge=False, box=None)
    for col, just in (("#", "right"), ("op", "left"), ("output", "left"), ("weights", "left"), ("params", "right"),
                      ("MACs", "right"), ("eff. MACs", "right"), ("other", "right"), ("zero", "right"), ("TFLM/rt", "left")):
        table.add_column(col, justify=just, no_wrap=True)
    for layer in r["layers"]:
        ins = [t for t in layer["tensors"] if t["direction"] == "input"]
        outs = [t for t in layer["tensors"] if t["direction"] == "output"]
        w = next((t for t in ins if t["role"] == "weights"), None)
        other = layer["adds"] + layer["mults"]
        sup = layer["support"]
        rt = "?" if sup["formicary_rt"] is None else ("yes" if sup["formicary_rt"] else "no")
        table.add_row(str(layer["index"]), layer["op"].replace("DEPTHWISE_CONV_2D", "DW_CONV").replace("_POOL_2D", "_POOL").replace("FULLY_CONNECTED", "FC"),
                      ", ".join(_shape(t) for t in outs), _shape(w) if w else "-", f"{layer['params']:,}",
                      f"{layer['macs']:,}", f"{layer.get('effective_macs', layer['macs']):,}",
                      f"{other:,}" if other else "-",
                      "-" if layer["sparsity"] is None else f"{layer['sparsity']:.1%}",
                      f"{'y' if sup['tflm'] else '[red]NO[/]'}/{rt[0] if rt != '?' else rt}")
    console.print(table)
    console.print("params = weight+bias elements; MACs only for conv/depthwise/fc/matmul, eff. MACs those with a non-zero "
                  "weight; other = adds+mults of "
                  "pool/softmax/element-wise ops; zero w = fraction of weights exactly 0; TFLM/rt = op registered "
                  "by TFLM / lowered by formicary-rt; full tensors and per-channel scales: --json", style="dim")

    qt = new_table(title="quantization (real = scale × (q − zero_point))", pad_edge=False, box=None)
    for col in ("#", "op", "input", "weights", "output"):
        qt.add_column(col, no_wrap=col == "op")
    for layer in r["layers"]:
        ins = [t for t in layer["tensors"] if t["direction"] == "input"]
        act = next((t for t in ins if t["role"] == "activation"), None)
        w = next((t for t in ins if t["role"] == "weights"), None)
        out = next((t for t in layer["tensors"] if t["direction"] == "output"), None)
        qt.add_row(str(layer["index"]), layer["op"], *(_quant_short(t["quantization"]) if t else "-"
                                                         for t in (act, w, out)))
    console.print(qt)

    if r.get("energy_model"):
        _energy_table(console, r["energy_model"])

    ef = r["energy_floor"]
    q = r["quantization"]
    ops = ", ".join(f"{k}×{v}" for k, v in r["ops"].items())
    lines = [
        f"model        {r['model_bytes']:,} B (file size)",
        (f"weights      {r['weights_bytes']:,} B (constant tensors in the flatbuffer), params {r['params']:,} "
         "(weight + bias elements)"),
        (f"MACs         {r['macs']:,} per inference (counted from shapes: conv/depthwise/fc/matmul only), "
         f"{r.get('effective_macs', r['macs']):,} effective (non-zero weight); other arithmetic "
         f"{sum(layer['adds'] + layer['mults'] for layer in r['layers']):,} adds+mults"),
        f"ops          {ops}",
    ]
    cf = r.get("control_flow")
    if cf:
        lines.append(f"subgraphs    {len(cf['subgraphs'])} (IF control flow; the table above is subgraph 0): MACs "
                     f"{cf['macs_all_subgraphs']:,} over all subgraphs, params {cf['params_all_subgraphs']:,}")
        for sg in cf["subgraphs"]:
            lines.append(f"             #{sg['index']} {sg['name']}: {sg['ops']} ops, {sg['macs']:,} MACs, "
                         f"{sg['params']:,} params")
        for route in cf["routes"]:
            lines.append(f"route 0x{route['route']:x}   {route['macs']:,} MACs per inference through "
                         + " > ".join(route["names"]))
    lines += [
        (f"sparsity     {r['sparsity']['overall']:.2%} ({r['sparsity']['zero_weights']:,} of "
         f"{r['sparsity']['weights']:,} weights exactly zero)"),
        f"quantization {q['precision']}; tensors " + ", ".join(f"{v} {k}" for k, v in q["tensors"].items()) + "; input "
        + ", ".join(f"{t['dtype']} s={t['scale']:.4g} zp={t['zero_point']}" if t["scale"] is not None
                  else t["dtype"] for t in q["inputs"]) + "; output "
        + ", ".join(f"{t['dtype']} s={t['scale']:.4g} zp={t['zero_point']}" if t["scale"] is not None
                  else t["dtype"] for t in q["outputs"]),
    ]
    if r["tflm_compatible"]:
        lines.append("TFLM         compatible (measured: loaded and invoked by the TFLM interpreter)")
    else:
        lines.append(f"TFLM         [bold red]NOT compatible[/]: {r['tflm_error']['cause']}")
        if r["tflm_error"].get("fix"):
            lines.append(f"             fix: {r['tflm_error']['fix']}")
    if r["unknown_ops"]:
        lines.append(f"             ops TFLM does not register: {', '.join(r['unknown_ops'])}")
    arena = r["tflm_arena_bytes"]
    lines.append(f"arena        {arena:,} B (measured: TFLM interpreter, host build, bisection)" if arena is not None
                 else f"arena        unknown ({r['tflm_arena']['method']})")
    for node in ("45nm", "7nm"):
        p = ef["per_node"][node]
        lines.append(f"energy floor {p['total_uj']:.4g} µJ/inference @ {node} (modelled lower bound, every byte moved "
                     f"once: compute {p['compute_uj']:.3g} µJ, memory {p['memory_uj']:.3g} µJ)")
    lines.append(f"             {ef['precision']} MAC = {ef['mult']} + {ef['add']}; memory "
                 f"{ef['memory_bytes']:,} B moved once = {ef['memory_accesses_64bit']:,} 64-bit accesses to "
                 f"{ef['memory_level']} (working set {ef['working_set_bytes']:,} B)")
    em = r.get("energy_model")
    if em:
        for node in ("45nm", "7nm"):
            t = em["total"][node]
            lines.append(f"energy model {t['total_uj']:.4g} µJ/inference @ {node} (modelled, {em['kernels']} kernels' "
                         f"loops): compute {t['compute_uj']:.3g}, weight reads {t['weight_read_uj']:.3g}, "
                         f"activations {t['activation_uj']:.3g} µJ; data movement {t['data_movement_share']:.1%}")
        lines.append(f"             weights in {em['weights_level']}, activations in {em['activations_level']} "
                     f"(arena {em['arena_bytes']:,} B, {em['arena_method']}); table: Jouppi et al. ISCA 2021 "
                     "Table 2 (45 nm: Horowitz ISSCC 2014); docs/energy.md")
    fit = r.get("board_fit")
    if fit:
        verdict = "[bold green]fits[/]" if fit["fits"] else "[bold red]does NOT fit[/]"
        ram = fit["ram"]
        ram_txt = (f"{ram['needed_bytes']:,} of {ram['available_bytes']:,} B (margin {ram['margin_bytes']:,} B)"
                   if ram["needed_bytes"] is not None else f"unknown of {ram['available_bytes']:,} B")
        lines.append(f"board        {fit['board']} ({fit['core']}, {fit['clock_hz'] / 1e6:g} MHz): {verdict}; "
                     f"flash {fit['flash']['needed_bytes']:,} of {fit['flash']['available_bytes']:,} B "
                     f"(margin {fit['flash']['margin_bytes']:,} B, flatbuffer only); RAM {ram_txt} (TFLM arena)")
        if fit["reason"]:
            lines.append(f"             {fit['reason']}")
        rt = fit.get("formicary_rt")
        if rt:
            per_plan = ", ".join(f"{p['plan']} {p['arena_bytes']:,} B (+{p['extra_instructions_pct']:.1f} % "
                                 "instructions)" for p in rt["plans"])
            lines.append(f"formicary-rt arena per memory plan ({rt['kernels']} kernels): {per_plan}; auto picks "
                         f"{rt['auto']}")
            if rt["fits_only_with"]:
                lines.append(f"             [bold]fits only with plan {rt['fits_only_with']}[/] "
                             f"(--memory-plan {rt['fits_only_with']}, or auto)")
            elif not rt["fits_with"]:
                lines.append("             formicary-rt's arena does not fit under any plan")
    for line in lines:
        console.print(line, highlight=False)


_MODEL_ARG = typer.Argument(..., help="a .tflite model")


def register(app: typer.Typer) -> None:
    @app.command("inspect")
    def inspect(model: Path = _MODEL_ARG,
                board: str = typer.Option(None, "--board", "-b", help="check fit on this board (`formicary boards`)"),
                require_fit: bool = typer.Option(False, "--require-fit",
                                                 help="exit 2 with an error when the model does not fit --board"),
                no_arena: bool = typer.Option(False, "--no-arena", help="skip measuring the TFLM arena"),
                kernels: str = typer.Option(None, "--kernels", "-k",
                                            help="kernel set whose loops the energy model follows (reference, dsp, "
                                                 "helium; default: the board's, else reference)"),
                as_json: bool = JSON_OPTION) -> None:
        """Ops, tensors, parameters, MACs, sparsity, quantization, TFLM verdict and arena, energy per layer
        (compute vs data movement, modelled), board fit."""
        from formicary.analysis import analyse
        from formicary.codegen.ops import supported_opcodes
        from formicary.errors import FormicaryError

        if require_fit and not board:
            raise FormicaryError("--require-fit needs --board.", "add `--board NAME` (see `formicary boards`).")
        if kernels:
            from formicary.codegen.kernel_sets import kernel_set

            kernel_set(kernels)  # an unknown set is one FormicaryError naming the known ones
        result = {"model_path": str(model), **analyse(model, board, measure_arena=not no_arena,
                                                      rt_ops=supported_opcodes(), kernels=kernels)}
        fit = result.get("board_fit")
        if require_fit and not fit["fits"]:
            raise FormicaryError(f"model does not fit {fit['board']}: {fit['reason']}.",
                                 "shrink the model (`formicary compile --prune/--quantize int8`) or pick a larger "
                                 "board.", details={"board_fit": fit}, partial=result)
        emit(result, as_json, _human)
