"""One self-contained HTML report from stored runs: tables with every figure's unit and method, plots inline.

No external resources: CSS is inline and plots are PNG data URIs, so the file can be mailed or attached to CI.
"""
from __future__ import annotations

import base64
import html
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from formicary.errors import FormicaryError

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1150px;color:#222;
padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em} h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.86em;margin:.6em 0;width:100%}
th,td{border:1px solid #ddd;padding:.3em .5em;vertical-align:top;text-align:left}
th{background:#f3f5f7} td.num{text-align:right} td b{white-space:nowrap} small,.meta{color:#666}
.status-complete{color:#2a7d2a}.status-incomplete,.status-interrupted{color:#b02a2a}.status-running{color:#b07a00}
figure{margin:1em 0} figure img{max-width:100%;border:1px solid #eee} figcaption{color:#555;font-size:.86em}
.scroll{overflow-x:auto} .warn{background:#fff4e0;border-left:4px solid #f0a000;padding:.4em .8em}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not value.is_integer() or digits:
        return f"{value:,.{digits or 2}f}"
    return f"{int(value):,}"


def _with(value_html: str, unit: str, method: str | None = None) -> str:
    """A figure next to its unit, and the method on a second line."""
    if value_html == "—":
        return "—"
    out = f"<b>{value_html}</b> {_e(unit)}"
    if method:
        out += f"<br><small>{_e(method)}</small>"
    return out


def _latency_cell(run: dict[str, Any], key: str) -> str:
    lat = run["latency"]
    return _with(_num(lat.get(key)), lat.get("unit") or "(unit unknown)",
                 f"{lat.get('method') or 'method unknown'}, n={lat.get('count', 0)}")


def _accuracy_cell(run: dict[str, Any]) -> str:
    if run.get("accuracy") is None:
        return "—<br><small>no labelled data</small>"
    labelled = [o for o in run.get("outputs") or [] if o.get("label") is not None]
    basis = (f"{sum(o['predicted'] == o['label'] for o in labelled)}/{len(labelled)} labelled inputs"
             if labelled else f"{run.get('inputs') or '?'} inputs")
    return _with(f"{100 * run['accuracy']:.2f}", "%", f"top-1 on device, {basis}")


def _energy_cell(run: dict[str, Any]) -> str:
    energy = run.get("energy")
    if not energy:
        return "—<br><small>no power source</small>"
    source = energy.get("source") or "source not recorded"
    short = source.split(" (")[0]  # the full datasheet citation is in the run's details below
    return _with(_num(float(energy["uj_per_inference"]), 3), "µJ/inference",
                 f"{energy['method']}: {short}" + (" (source in the run details)" if short != source else ""))


def _sizes_cell(run: dict[str, Any]) -> str:
    lines = [f"{what} {_with(_num(run.get(key)), unit)}" for what, key, unit in (
        ("flash", "flash_bytes", "bytes"), ("RAM", "ram_bytes", "bytes"), ("arena", "arena_bytes", "bytes"),
        ("model", "model_bytes", "bytes"), ("", "macs", "MACs")) if run.get(key) is not None]
    if not lines:
        return "—"
    return "<br>".join(lines) + ("<br><small>flash/RAM: firmware ELF sections reported by bench; arena: "
                                 "tensor arena; model: flatbuffer; MACs: counted from the graph</small>")


def _bit_exact_cell(run: dict[str, Any]) -> str:
    if run.get("bit_exact") is None:
        return "—<br><small>not compared</small>"
    if run["bit_exact"]:
        verdict = "yes"
    elif run.get("mismatches") == 0:
        # float32 kernels sum in another order than TFLM: compared within tolerance, not byte for byte
        verdict = "within float tolerance"
    else:
        verdict = "NO"
    return (f"<b>{verdict}</b><br><small>vs TFLM interpreter, {_num(run.get('mismatches'))} mismatching of "
            f"{_num(run.get('inputs'))} inputs</small>")


def _summary_table(runs: list[dict[str, Any]]) -> str:
    head = ("<tr><th>run</th><th>model / variant</th><th>board</th><th>status</th><th>latency median / p90</th>"
            "<th>accuracy</th><th>bit-exact</th><th>energy</th><th>flash / RAM / model</th></tr>")
    rows = []
    for r in runs:
        variant = r["model"]["variant"]
        vdesc = ", ".join(str(x) for x in (
            variant.get("quantization"), variant.get("sparsity") and f"sparsity {variant['sparsity']:.0%}",
            variant.get("clusters") and f"{variant['clusters']} clusters", variant.get("qat") and "QAT") if x)
        status = f"<span class='status-{_e(r['status'])}'>{_e(r['status'])}</span>"
        if r.get("incomplete_reason"):
            status += f"<br><small>{_e(r['incomplete_reason'])}</small>"
        virtual = "virtual" if r.get("virtual") else "real" if r.get("virtual") is not None else ""
        rows.append(
            f"<tr><td>#{r['id']}<br><small>{_e(r['uid'][:10])}<br>{_e(r['started_at'])}</small></td>"
            f"<td>{_e(r['model'].get('name'))} <b>{_e(variant.get('label'))}</b><br><small>{_e(vdesc)}<br>"
            f"sha256 {_e((r['model'].get('sha256') or '')[:12])}</small></td>"
            f"<td>{_e(r['board'])}<br><small>{virtual}</small></td><td>{status}</td>"
            f"<td class=num>{_latency_cell(r, 'median')}{_estimate(r)}<br>p90 {_latency_cell(r, 'p90')}</td>"
            f"<td class=num>{_accuracy_cell(r)}</td><td>{_bit_exact_cell(r)}</td>"
            f"<td class=num>{_energy_cell(r)}{_floor(r)}</td>"
            f"<td class=num>{_sizes_cell(r)}</td></tr>")
    return f"<div class=scroll><table>{head}{''.join(rows)}</table></div>"


def _variant_groups(runs: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Runs of one model on one board with one latency unit, in run order: the variants a reader compares."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in runs:
        if r["latency"].get("median") is None:
            continue
        groups.setdefault((r["model"].get("name"), r["board"], r["latency"].get("unit")), []).append(r)
    return [g for g in groups.values() if len(g) > 1]


def _baseline(group: list[dict[str, Any]]) -> dict[str, Any]:
    """float32 when the group has it (what shrinking is measured against), else its first run."""
    return next((r for r in group if r["model"]["variant"].get("quantization") == "float32"), group[0])


def _why_no_gain(run: dict[str, Any], base: dict[str, Any], speedup: float) -> str:
    """A short, honest reason when a shrunk variant is not faster than its baseline."""
    if speedup >= 1.05:
        return ""
    variant = run["model"]["variant"]
    kernels = (run.get("firmware") or {}).get("kernels") or "reference"
    if variant.get("quantization") == "int8" and base["model"]["variant"].get("quantization") == "float32" \
            and kernels == "reference":
        return ("int8 on the portable reference kernels: plain loops with per-tap offsets, which the FPU's float "
                "loops match; the board's optimized kernel set (--kernels dsp / helium) is what makes int8 pay")
    if variant.get("prune_structure") in ("unstructured", "2:4"):
        return (f"{variant['prune_structure']} pruning leaves every layer's shape dense: the zeros are multiplied "
                "like any weight (prune by channel, or by block with a sparse kernel, to gain)")
    return "no gain measured for this variant on this board"


def _speedup_table(runs: list[dict[str, Any]]) -> str:
    """Each variant against its group's baseline (float32 when present): speed-up in the measured unit, flash,
    model size and accuracy, with the kernel set it ran on; a reason where a shrunk variant does not gain."""
    blocks = []
    for group in _variant_groups(runs):
        base = _baseline(group)
        b_lat, unit = float(base["latency"]["median"]), base["latency"].get("unit") or ""
        rows = []
        for r in group:
            lat = float(r["latency"]["median"])
            speedup = b_lat / lat if lat else float("nan")
            flash = (f"{_num(r.get('flash_bytes'))} bytes ({base['flash_bytes'] / r['flash_bytes']:.2f}× smaller)"
                     if r.get("flash_bytes") and base.get("flash_bytes") else "—")
            model = (f"{_num(r.get('model_bytes'))} bytes ({base['model_bytes'] / r['model_bytes']:.2f}×)"
                     if r.get("model_bytes") and base.get("model_bytes") else "—")
            acc = "—"
            if r.get("accuracy") is not None:
                acc = f"{100 * r['accuracy']:.2f} %"
                if base.get("accuracy") is not None and r is not base:
                    acc += f" ({100 * (r['accuracy'] - base['accuracy']):+.2f} points)"
            macs = _num(r.get("macs"))
            if r.get("effective_macs") is not None and r.get("macs") and r["effective_macs"] != r["macs"]:
                macs += f"<br><small>{_num(r['effective_macs'])} with a non-zero weight</small>"
            note = "baseline" if r is base else _why_no_gain(r, base, speedup)
            pruned = r["model"]["variant"].get("prune_structure")
            structure = f"<br>pruned: {_e(pruned)}" if pruned else ""
            rows.append(
                f"<tr><td><b>{_e(r['model']['variant'].get('label'))}</b> <small>#{r['id']}{structure}</small></td>"
                f"<td>{_e((r.get('firmware') or {}).get('kernels') or 'reference')}</td>"
                f"<td class=num>{_with(_num(lat), unit)}</td>"
                f"<td class=num><b>{speedup:.2f}×</b></td><td class=num>{flash}</td><td class=num>{model}</td>"
                f"<td class=num>{macs}</td><td class=num>{acc}</td><td><small>{_e(note)}</small></td></tr>")
        blocks.append(
            f"<h3>{_e(group[0]['model'].get('name'))} on {_e(group[0]['board'])}</h3>"
            f"<p class=meta>speed-up = baseline median / variant median, both in {_e(unit)} "
            f"({_e(base['latency'].get('method'))}); flash = firmware ELF; accuracy on the bench --data.</p>"
            "<div class=scroll><table><tr><th>variant</th><th>kernel set</th><th>latency median</th>"
            "<th>speed-up vs baseline</th><th>flash</th><th>model</th><th>MACs</th><th>accuracy</th>"
            f"<th>why no gain</th></tr>{''.join(rows)}</table></div>")
    return "".join(blocks) or "<p>No model was benched in more than one variant on the same board.</p>"


def _estimate(run: dict[str, Any]) -> str:
    ms = run["latency"].get("estimate_ms")
    if ms is None:
        return ""
    return f"<br><small>≈ {ms:,.3f} ms (estimate from {_e(run['latency'].get('unit'))} at the board clock)</small>"


def _floor(run: dict[str, Any]) -> str:
    floor = run.get("energy_floor_uj")
    if not floor:
        return ""
    parts = ", ".join(f"{_num(float(v), 3)} µJ @{_e(k)}" for k, v in floor.items())
    from formicary.report.plots import energy_model_of

    em = energy_model_of(run)
    model = ""
    if em:
        t = em["total"]["45nm"]
        model = (f"<br><small>where it goes (modelled, {_e(em.get('kernels'))} kernels): "
                 f"{_num(float(t['total_uj']), 3)} µJ @45nm, {t['data_movement_share']:.0%} data movement</small>")
    return f"<br><small>floor (every byte once, modelled): {parts}</small>" + model


def _details(run: dict[str, Any]) -> str:
    lat = run["latency"]
    stats = "".join(f"<td class=num>{_with(_num(lat.get(k)), lat.get('unit') or '')}</td>"
                    for k in ("min", "median", "p90", "p99", "max", "mean"))
    fw = run.get("firmware") or {}
    settings = run.get("settings") or {}
    host = run.get("host") or {}
    return (f"<h3>Run #{run['id']} — {_e(run['model'].get('name'))} {_e(run['model']['variant'].get('label'))} "
            f"on {_e(run['board'])}</h3>"
            f"<p class=meta>method: {_e(lat.get('method'))} · samples: {lat.get('count', 0)} · "
            f"started {_e(run['started_at'])} · finished {_e(run.get('finished_at') or 'never')} · "
            f"runtime {_e(fw.get('runtime_version'))} (protocol {_e(fw.get('protocol_version'))}) · "
            f"settings: runs={_e(settings.get('runs'))}, warmup={_e(settings.get('warmup'))}, "
            f"profile={_e(settings.get('profile'))}, data={_e(settings.get('data'))} · "
            f"host: {_e(', '.join(f'{k}={v}' for k, v in host.items()))}</p>"
            + (f"<p class=meta>energy ({_e(run['energy'].get('method'))}): {_e(run['energy'].get('source'))}</p>"
               if run.get("energy") else "") +
            f"<table><tr><th>min</th><th>median</th><th>p90</th><th>p99</th><th>max</th><th>mean</th></tr>"
            f"<tr>{stats}</tr></table>" + _routes_table(run))


def _routes_table(run: dict[str, Any]) -> str:
    """The run's routes when its inferences took more than one: share, latency and accuracy of each."""
    routes = run.get("routes") or []
    if len(routes) < 2:
        return ""
    unit = run["latency"].get("unit") or ""
    rows = []
    for r in routes:
        names = " + ".join(n or f"#{i}" for i, n in zip(r["subgraphs"], r["names"]))
        stats = "".join(f"<td class=num>{_with(_num(r['latency'].get(k)), unit)}</td>"
                        for k in ("min", "median", "p90", "max"))
        acc = "—" if r["accuracy"] is None else f"{100 * r['accuracy']:.1f} %"
        rows.append(f"<tr><td>{r['mask']:#x}</td><td>{_e(names)}</td>"
                    f"<td class=num>{r['count']} ({100 * r['share']:.1f} %)</td>{stats}"
                    f"<td class=num>{acc} <small>({r['labelled']} labelled)</small></td></tr>")
    return ("<p class=meta>routes (bitmask of the subgraphs an inference ran, from the firmware's "
            f"fm_model_route()); latency method {_e(run['latency'].get('method'))}:</p><table><tr><th>route</th>"
            "<th>subgraphs</th><th>inferences</th><th>min</th><th>median</th><th>p90</th><th>max</th>"
            f"<th>accuracy</th></tr>{''.join(rows)}</table>")


def _figure(plot) -> str:
    data = base64.b64encode(plot.png).decode("ascii")
    return (f"<figure id='{_e(plot.name)}'><img alt='{_e(plot.title)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{_e(plot.caption)}</figcaption></figure>")


def _figures(plots: list, empty: str) -> str:
    return "".join(_figure(p) for p in plots) if plots else f"<p>{_e(empty)}</p>"


def build_report(runs: list[dict[str, Any]], output: str | Path, png_dir: str | Path | None = None,
                 title: str = "formicary benchmark report") -> dict[str, Any]:
    """Write one self-contained HTML report for `runs` (full dicts from ResultStore.get_run).

    Returns {"path", "bytes", "runs": [ids], "plots": [{"name", "title", "png": path|None}]}.
    """
    if not runs:
        raise FormicaryError("no runs to report on", "run `formicary bench` first, or pick runs from "
                             "`formicary runs list`")
    from formicary.report import plots as P

    plots_latency = P.latency_distributions(runs)
    plots_layers = [p for p in (P.layer_breakdown(r) for r in runs) if p is not None]
    plots_routes = [p for p in (P.route_plot(r) for r in runs) if p is not None]
    plots_variants = P.variant_tradeoffs(runs)
    plots_energy = [p for p in (P.energy_layers(r) for r in runs) if p is not None] + P.energy_variants(runs)
    plots_memory = P.memory_plans(runs)
    warnings = []
    units = sorted({r["latency"].get("unit") for r in runs if r["latency"].get("unit")})
    if len(units) > 1:
        warnings.append("These runs measured latency in different units (" + ", ".join(units) + "): "
                        "instructions (QEMU -icount) and cycles (DWT) are plotted separately and never compared.")
    if any(r["status"] != "complete" for r in runs):
        warnings.append("Some runs are not complete: their figures cover only what was collected before they "
                        "stopped (see the status column).")
    if any(r.get("virtual") for r in runs):
        warnings.append("Virtual boards (QEMU) count instructions, not time; their energy can only be modelled.")

    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset='utf-8'>",
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        (f"<h1>{_e(title)}</h1><p class=meta>{len(runs)} run(s) · generated "
         f"{datetime.now(UTC).isoformat(timespec='seconds')} by formicary</p>"),
        *(f"<p class=warn>{_e(w)}</p>" for w in warnings),
        "<h2>Summary</h2>", _summary_table(runs),
        "<h2>Shrinking: speed-ups against the baseline</h2>", _speedup_table(runs),
        "<h2>Latency distribution</h2>",
        _figures(plots_latency, "No latency samples recorded."),
        *(("<h2>Routes: expert usage and latency per route</h2>", _figures(plots_routes, "")) if plots_routes
          else ()),
        "<h2>Per-layer breakdown</h2>",
        _figures(plots_layers, "No per-layer timings (bench with --profile)."),
        "<h2>Variants: accuracy vs size vs latency/energy</h2>",
        _figures(plots_variants, "No run has an accuracy (bench with labelled --data), so there is no "
                 "trade-off plot."),
        "<h2>Peak memory vs latency per memory plan</h2>",
        _figures(plots_memory, "No run records its memory plans (runs recorded before they existed)."),
        "<h2>Where the energy goes (modelled)</h2>",
        _figures(plots_energy, "No run carries an energy model (runs recorded before it existed)."),
        "<h2>Runs</h2>", *(_details(r) for r in runs),
        "</body></html>",
    ]
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(parts)
    output.write_text(text, encoding="utf-8")
    all_plots = plots_latency + plots_routes + plots_layers + plots_variants + plots_energy + plots_memory
    exported = []
    if png_dir is not None:
        png_dir = Path(png_dir)
        png_dir.mkdir(parents=True, exist_ok=True)
        for p in all_plots:
            (png_dir / f"{p.name}.png").write_bytes(p.png)
    for p in all_plots:
        exported.append({"name": p.name, "title": p.title, "caption": p.caption,
                         "png": str(Path(png_dir) / f"{p.name}.png") if png_dir is not None else None})
    return {"path": str(output), "bytes": len(text.encode("utf-8")), "runs": [r["id"] for r in runs],
            "plots": exported}
