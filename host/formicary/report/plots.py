"""The report's plots, drawn with matplotlib's Agg backend (no display needed) and returned as PNG bytes.

Every axis names its unit and method: latencies in instructions (QEMU -icount) are never drawn on the same axis
as cycles (DWT), and energy says whether it was measured or modelled.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import EngFormatter

from formicary.report.pareto import pareto_front

DPI = 110


@dataclass
class Plot:
    name: str      # file-name-safe id, also the PNG file name
    title: str
    caption: str   # unit and method of what is drawn
    png: bytes


def run_label(run: dict[str, Any]) -> str:
    variant = run["model"]["variant"].get("label") or run["model"]["variant"].get("quantization") or ""
    status = "" if run.get("status") in (None, "complete") else f" [{run['status']}]"
    return f"#{run['id']} {run['model'].get('name') or '?'} {variant} @{run['board']}{status}".replace("  ", " ")


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _methods(runs: list[dict[str, Any]]) -> str:
    return ", ".join(sorted({r["latency"].get("method") or "unknown method" for r in runs}))


def _eng(ax, axis: str = "x") -> None:
    # 3.05M instead of 3050000: instruction and cycle counts run to millions.
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_formatter(EngFormatter(sep=""))


def latency_distributions(runs: list[dict[str, Any]]) -> list[Plot]:
    """One figure per latency unit, one row per run: histogram of every sample, median and p90 marked.

    Rows keep their own x range so a 2 % spread stays visible next to a run 3x slower.
    """
    plots = []
    by_unit: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        if run["latency"].get("samples"):
            by_unit.setdefault(run["latency"].get("unit") or "unknown unit", []).append(run)
    for unit, group in by_unit.items():
        fig, axes = plt.subplots(len(group), 1, figsize=(9, 0.4 + 1.25 * len(group)), squeeze=False)
        method = _methods(group)
        for ax, run in zip(axes[:, 0], group):
            values = np.asarray(run["latency"]["samples"], dtype=float)
            lat = run["latency"]
            distinct = len(np.unique(values))
            if distinct == 1:  # deterministic (QEMU -icount): one bar, centred, with a sensible width
                v = values[0]
                ax.bar([v], [len(values)], width=max(abs(v) * 0.002, 1), color="#1f77b4")
                ax.set_xlim(v - max(abs(v) * 0.01, 5), v + max(abs(v) * 0.01, 5))
            else:
                ax.hist(values, bins=min(40, distinct), color="#1f77b4", alpha=0.85)
            ax.axvline(lat["median"], color="#d62728", linewidth=2, label="median")
            ax.axvline(lat["p90"], color="#ff7f0e", linestyle="--", linewidth=1.5, label="p90")
            ax.set_title(f"{run_label(run)} — median {lat['median']:,.0f}, p90 {lat['p90']:,.0f}, "
                         f"n={len(values)}", fontsize=8.5, loc="left")
            ax.set_ylabel("count", fontsize=8)
            ax.tick_params(labelsize=8)
            _eng(ax)
            ax.grid(axis="x", alpha=0.3)
        axes[0, 0].legend(fontsize=7, loc="upper right")
        axes[-1, 0].set_xlabel(f"latency per inference [{unit}] — method: {method}")
        fig.tight_layout()
        caption = (f"Histogram of every per-inference latency in {unit} ({method}), one row per run with its own "
                   f"x range; red = median, orange dashed = p90.")
        plots.append(Plot(f"latency-{unit}", f"Latency distribution ({unit})", caption, _png(fig)))
    return plots


def layer_breakdown(run: dict[str, Any]) -> Plot | None:
    """Per-layer median time of one run, largest share first labelled with its percentage."""
    layers = [layer for layer in run.get("layers") or [] if layer.get("median") is not None]
    if not layers:
        return None
    unit = layers[0].get("unit") or run["latency"].get("unit") or "unknown unit"
    method = run["latency"].get("method") or "unknown method"
    medians = np.array([float(layer["median"]) for layer in layers])
    total = medians.sum() or 1.0
    fig, ax = plt.subplots(figsize=(9, 0.9 + 0.32 * len(layers)))
    ypos = np.arange(len(layers))
    ax.barh(ypos, medians, color="#2ca02c")
    graphs = {g["index"]: g["name"] for g in run.get("subgraphs") or []}
    where = (lambda layer: f" [{graphs.get(layer.get('subgraph'), '?')}]") if len(graphs) > 1 else (lambda layer: "")
    ax.set_yticks(ypos, [f"{layer['index']} {layer.get('op') or '?'}{where(layer)}" for layer in layers], fontsize=8)
    ax.invert_yaxis()
    for y, value in zip(ypos, medians):
        ax.text(value, y, f" {100 * value / total:.1f}%", va="center", fontsize=7)
    ax.set_xlabel(f"median time per layer [{unit}] — method: {method}")
    ax.set_title(f"Per-layer breakdown — {run_label(run)}")
    _eng(ax)
    ax.margins(x=0.12)
    ax.grid(axis="x", alpha=0.3)
    caption = (f"Median time of each layer in {unit} ({method}) over the profiled inferences; "
               f"percentages are shares of the sum of layer medians ({total:,.0f} {unit}).")
    if len(graphs) > 1:
        caption += (" [brackets]: the layer's subgraph; a layer's median is over the inputs whose route ran it, "
                    "layers no input reached are left out.")
    return Plot(f"layers-run{run['id']}", f"Per-layer breakdown — run #{run['id']}", caption, _png(fig))


def route_plot(run: dict[str, Any]) -> Plot | None:
    """For a run whose inferences took several routes (a mixture of experts): the expert-usage histogram (how
    many measured inferences ran each subgraph, unused ones included) beside the latency distribution of each
    route (a box per route, every sample drawn over it). None for runs with one route or none recorded."""
    routes = run.get("routes") or []
    lat = run["latency"]
    samples, per_sample = lat.get("samples") or [], lat.get("routes")
    if len(routes) < 2 or not per_sample or len(per_sample) != len(samples):
        return None
    unit = lat.get("unit") or "unknown unit"
    method = lat.get("method") or "unknown method"
    usage = [g for g in run.get("subgraphs") or [] if g.get("inferences") is not None]
    known = sum(r["count"] for r in routes)
    fig, (ax_use, ax_lat) = plt.subplots(1, 2, figsize=(11, 0.9 + max(3.2, 0.45 * len(routes))),
                                         gridspec_kw={"width_ratios": [1, 1.5]})
    if usage:
        ypos = np.arange(len(usage))
        counts = np.array([g["inferences"] for g in usage], dtype=float)
        ax_use.barh(ypos, counts, color=["#7f7f7f" if g["index"] == 0 else "#9467bd" for g in usage])
        ax_use.set_yticks(ypos, [f"{g['index']} {g['name']}" for g in usage], fontsize=8)
        for y, value in zip(ypos, counts):
            ax_use.text(value, y, f" {value:.0f} ({100 * value / max(known, 1):.0f}%)", va="center", fontsize=7)
    else:  # subgraph names not recorded: one bar per route
        ypos = np.arange(len(routes))
        ax_use.barh(ypos, [r["count"] for r in routes], color="#9467bd")
        ax_use.set_yticks(ypos, [f"{r['mask']:#x}" for r in routes], fontsize=8)
    ax_use.invert_yaxis()
    ax_use.set_xlabel(f"measured inferences that ran the subgraph (of {known})", fontsize=9)
    ax_use.set_title("Expert usage", fontsize=10, loc="left")
    ax_use.margins(x=0.25)
    ax_use.grid(axis="x", alpha=0.3)

    values = np.asarray(samples, dtype=float)
    masks = np.asarray([-1 if r is None else int(r) for r in per_sample])
    groups = [values[masks == r["mask"]] for r in routes]
    labels = [f"{r['mask']:#x} " + "+".join(n or f"#{i}" for i, n in zip(r["subgraphs"], r["names"])
                                            if i != 0 or len(r["subgraphs"]) == 1) + f"\nn={r['count']}"
              for r in routes]
    ypos = np.arange(1, len(routes) + 1)
    ax_lat.boxplot(groups, positions=ypos, orientation="horizontal", widths=0.55, showfliers=False,
                   medianprops={"color": "#d62728", "linewidth": 2})
    jitter = np.random.default_rng(0)
    for y, g in zip(ypos, groups):
        ax_lat.scatter(g, y + jitter.uniform(-0.18, 0.18, len(g)), s=9, color="#1f77b4", alpha=0.6, zorder=3)
    ax_lat.set_yticks(ypos, labels, fontsize=8)
    ax_lat.invert_yaxis()
    ax_lat.set_xlabel(f"latency per inference [{unit}] — method: {method}", fontsize=9)
    ax_lat.set_title("Latency per route", fontsize=10, loc="left")
    _eng(ax_lat)
    ax_lat.grid(axis="x", alpha=0.3)
    fig.suptitle(f"Routes — {run_label(run)}", fontsize=10)
    fig.tight_layout()
    caption = (f"Left: how many of the {known} measured inferences ran each subgraph (grey: the main graph, "
               f"purple: the branches/experts; an expert never picked shows 0). Right: latency per inference in "
               f"{unit} ({method}) of each route (bitmask of the subgraphs run, from the firmware's "
               f"fm_model_route()): box = quartiles, red = median, dots = every sample.")
    return Plot(f"routes-run{run['id']}", f"Routes — run #{run['id']}", caption, _png(fig))


def _size(run: dict[str, Any]) -> tuple[float | None, str]:
    if run.get("model_bytes"):
        return float(run["model_bytes"]), "model size [bytes, flatbuffer]"
    if run.get("flash_bytes"):
        return float(run["flash_bytes"]), "flash used [bytes, firmware ELF]"
    return None, ""


def variant_tradeoffs(runs: list[dict[str, Any]]) -> list[Plot]:
    """Accuracy vs latency / size / energy across the variants of each model on each board, Pareto front marked.

    Grouped by (model name, board, latency unit) so that only comparable numbers share an axis.
    """
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for run in runs:
        if run.get("accuracy") is None:
            continue
        key = (run["model"].get("name") or "?", run["board"], run["latency"].get("unit") or "unknown unit")
        groups.setdefault(key, []).append(run)
    plots = []
    for (model, board, unit), group in groups.items():
        panels: list[tuple[str, list[float | None], str]] = [
            ("latency", [r["latency"].get("median") for r in group],
             f"median latency [{unit}] — {_methods(group)}")]
        sizes = [_size(r) for r in group]
        size_label = next((s[1] for s in sizes if s[0] is not None), "")
        if size_label:
            panels.append(("size", [s[0] for s in sizes], size_label))
        energies = [(r.get("energy") or {}).get("uj_per_inference") for r in group]
        if any(e is not None for e in energies):
            methods = sorted({(r.get("energy") or {}).get("method") for r in group if r.get("energy")})
            panels.append(("energy", energies, f"energy per inference [µJ] — {'/'.join(methods)}"))
        fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.4), squeeze=False)
        acc = [100.0 * r["accuracy"] for r in group]
        # Points on the 3-D front (accuracy up, latency down, size down) get a black ring in every panel.
        # Incomplete runs are drawn hollow but never put on a front: their figures are partial.
        done = [r.get("status") in (None, "complete") for r in group]
        full = [i for i, r in enumerate(group) if done[i] and all(p[1][i] is not None for p in panels)]
        front3 = {full[i] for i in pareto_front([(acc[j], *[p[1][j] for p in panels]) for j in full],
                                                ("max", *["min"] * len(panels)))} if full else set()
        size_pts = None
        if size_label:
            s = np.array([v if v is not None else np.nan for v in panels[1][1]], dtype=float)
            lo, hi = np.nanmin(s), np.nanmax(s)
            size_pts = 40 + 260 * ((s - lo) / (hi - lo) if hi > lo else np.zeros_like(s))
            size_pts = np.nan_to_num(size_pts, nan=40)
        for ax, (kind, xs, xlabel) in zip(axes[0], panels):
            idx = [i for i, x in enumerate(xs) if x is not None]
            ranked = [i for i in idx if done[i]]
            front = [ranked[k] for k in pareto_front([(float(xs[i]), acc[i]) for i in ranked], ("min", "max"))]
            for i in idx:
                incomplete = group[i].get("status") not in (None, "complete")
                ax.scatter(xs[i], acc[i], s=size_pts[i] if (size_pts is not None and kind != "size") else 60,
                           facecolors="none" if incomplete else ("#ff7f0e" if i in front else "#1f77b4"),
                           edgecolors="black" if i in front3 else ("#ff7f0e" if i in front else "#1f77b4"),
                           linewidths=1.8 if i in front3 else 1.0, alpha=0.85, zorder=3)
                label = group[i]["model"]["variant"].get("label") or f"#{group[i]['id']}"
                ax.annotate(label, (xs[i], acc[i]), textcoords="offset points", xytext=(5, 5), fontsize=8)
            fx = sorted((float(xs[i]), acc[i]) for i in front)
            if len(fx) > 1:
                ax.step([p[0] for p in fx], [p[1] for p in fx], where="post", color="#ff7f0e", linestyle="--",
                        label="Pareto front", zorder=2)
            elif fx:
                ax.plot([], [], color="#ff7f0e", linestyle="--", label="Pareto front")
            ax.set_xlabel(xlabel, fontsize=9)
            ax.set_ylabel("accuracy [% of labelled inputs, on device]", fontsize=9)
            _eng(ax)
            ax.margins(x=0.12, y=0.12)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8, loc="lower right")
        fig.suptitle(f"Variants of {model} on {board}: accuracy vs " + " vs ".join(p[0] for p in panels))
        fig.tight_layout()
        caption = ("Each point is a run of a variant. Orange, dashed: Pareto front of that panel (higher "
                   "accuracy, lower x); black ring: on the front of all axes together. "
                   + ("In the latency/energy panels, marker area grows with size. " if size_label else "")
                   + "Hollow markers: incomplete runs (never on a front).")
        safe = "".join(c if c.isalnum() else "-" for c in f"{model}-{board}-{unit}")
        plots.append(Plot(f"variants-{safe}", f"Variants of {model} on {board}", caption, _png(fig)))
    return plots


# Energy model (docs/energy.md): the three parts a layer's energy is split into, in stacking order.
ENERGY_PARTS = (("compute", "compute_pj", "#2ca02c"), ("weight reads (flash)", "weight_read_pj", "#d62728"),
                ("activation traffic (arena)", "activation_pj", "#1f77b4"))


def energy_model_of(run: dict[str, Any]) -> dict[str, Any] | None:
    """The run's modelled energy breakdown: the bench JSON's `energy_model`, or where the store keeps it."""
    return run.get("energy_model") or (run.get("extra") or {}).get("energy_model")


def _energy_caption(em: dict[str, Any], node: str) -> str:
    return (f"Modelled, not measured: counts from the shapes and the {em.get('kernels')} kernels' loops, priced "
            f"at {node} per Jouppi et al. ISCA 2021 Table 2 (45 nm: Horowitz ISSCC 2014); weights in "
            f"{em.get('weights_level')}, activations in {em.get('activations_level')} (docs/energy.md).")


def energy_layers(run: dict[str, Any], node: str = "45nm") -> Plot | None:
    """One stacked bar per layer: compute / weight reads / activation traffic, in pJ (modelled)."""
    em = energy_model_of(run)
    if not em:
        return None
    layers = [layer for layer in em["layers"] if layer["per_node"][node]["total_pj"]]
    if not layers:
        return None
    fig, ax = plt.subplots(figsize=(9, 0.9 + 0.32 * len(layers)))
    ypos = np.arange(len(layers))
    left = np.zeros(len(layers))
    for label, key, color in ENERGY_PARTS:
        vals = np.array([float(layer["per_node"][node][key]) for layer in layers])
        ax.barh(ypos, vals, left=left, color=color, label=label)
        left += vals
    for y, layer, value in zip(ypos, layers, left):
        ax.text(value, y, f" {layer['per_node'][node]['data_movement_share']:.0%} moving", va="center", fontsize=7)
    ax.set_yticks(ypos, [f"{layer['index']} {layer['op']}" for layer in layers], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"energy per inference [pJ, {node}] — modelled")
    ax.set_title(f"Where the energy goes — {run_label(run)}")
    _eng(ax)
    ax.margins(x=0.14)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    t = em["total"][node]
    caption = (f"Per layer: compute, weight reads and activation traffic; labels: share of data movement. Total "
               f"{t['total_uj']:.3g} µJ, {t['data_movement_share']:.0%} data movement. " + _energy_caption(em, node))
    return Plot(f"energy-layers-run{run['id']}", f"Where the energy goes — run #{run['id']}", caption, _png(fig))


def _variant_bar_label(run: dict[str, Any]) -> str:
    v = run["model"]["variant"]
    structure = v.get("prune_structure")
    return (f"{v.get('label') or v.get('quantization') or ''}{' ' + structure if structure else ''}\n"
            f"#{run['id']} {energy_model_of(run).get('kernels')}")


def energy_variants(runs: list[dict[str, Any]], node: str = "45nm") -> list[Plot]:
    """One stacked bar per variant of the same model on the same board: compute / weights / activations (µJ)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        if energy_model_of(run):
            groups.setdefault((run["model"].get("name") or "?", run["board"]), []).append(run)
    plots = []
    for (model, board), group in groups.items():
        if len(group) < 2:
            continue
        fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(group) + 2), 4.4))
        xpos = np.arange(len(group))
        bottom = np.zeros(len(group))
        for label, key, color in ENERGY_PARTS:
            key_uj = key.replace("_pj", "_uj")
            vals = np.array([float(energy_model_of(r)["total"][node][key_uj]) for r in group])
            ax.bar(xpos, vals, bottom=bottom, color=color, label=label)
            bottom += vals
        for x, r, value in zip(xpos, group, bottom):
            ax.text(x, value, f"{energy_model_of(r)['total'][node]['data_movement_share']:.0%}", ha="center",
                    va="bottom", fontsize=7)
        labels = [_variant_bar_label(r) for r in group]
        ax.set_xticks(xpos, labels, fontsize=8)
        ax.set_ylabel(f"energy per inference [µJ, {node}] — modelled", fontsize=9)
        ax.set_title(f"Where the energy goes: variants of {model} on {board}")
        ax.margins(y=0.12)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        caption = ("One bar per run; above each bar its share of data movement. Fewer and narrower weights (int8, "
                   "pruning) shrink the red part. " + _energy_caption(energy_model_of(group[0]), node))
        safe = "".join(c if c.isalnum() else "-" for c in f"{model}-{board}")
        plots.append(Plot(f"energy-variants-{safe}", f"Where the energy goes: variants of {model} on {board}",
                          caption, _png(fig)))
    return plots


def memory_plans(runs: list[dict[str, Any]]) -> list[Plot]:
    """Peak memory (arena) against latency per memory plan (docs/memory.md), one figure per latency unit: a filled
    marker for each run at the plan it was built with (measured latency), a hollow one for every other plan of
    the same build (its arena from codegen, its latency modelled: the run's median plus the plan's modelled extra
    instructions). Runs recorded before memory plans existed are left out."""
    by_unit: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        mem = (r.get("extra") or {}).get("memory") or r.get("memory")
        if mem and mem.get("plans") and r["latency"].get("median") is not None:
            by_unit.setdefault(r["latency"].get("unit") or "unknown unit", []).append(r)
    plots = []
    for unit, group in sorted(by_unit.items()):
        fig, ax = plt.subplots(figsize=(8, 4.5))
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for i, r in enumerate(group):
            mem = (r.get("extra") or {}).get("memory") or r.get("memory")
            color = colors[i % len(colors)]
            median = float(r["latency"]["median"])
            for p in mem["plans"]:
                measured = p["plan"] == mem.get("plan")
                x = median * (1 + p["extra_instructions_pct"] / 100.0)
                ax.scatter([x], [p["arena_bytes"]], s=60, color=color, facecolors=color if measured else "none",
                           label=f"{run_label(r)}: {p['plan']}{'' if measured else ' (modelled)'}")
                ax.annotate(p["plan"], (x, p["arena_bytes"]), textcoords="offset points", xytext=(6, 4),
                            fontsize=7)
        ax.set_xlabel(f"latency, median [{unit}] — method: {_methods(group)}")
        ax.set_ylabel("peak memory: arena [bytes]")
        _eng(ax, "x")
        _eng(ax, "y")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        ax.set_title("Peak memory vs latency per memory plan")
        caption = (f"Arena bytes (codegen's plan, inputs preserved as in firmware builds) against median latency in "
                   f"{unit}. Filled: the plan the run's firmware was built with, measured. Hollow: the other plans of "
                   "the same model and kernels, latency modelled (in-place runs the same kernel calls: +0 %).")
        plots.append(Plot(f"memory-plans-{unit.replace(' ', '-')}", f"Peak memory vs latency per plan ({unit})",
                          caption, _png(fig)))
    return plots
