"""`formicary runs list|show|compare|export|import`: the results store from the command line.

Exit codes of `runs compare`: 0 no threshold tripped, 1 at least one `--fail-if` threshold tripped,
2 error (unknown run, bad expression, latency units differ, metric missing).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from formicary.cli._output import JSON_OPTION, emit

STORE_OPTION = typer.Option(None, "--store", help="Results store (SQLite). Default: $FORMICARY_STORE, else "
                            "results.sqlite in the user data directory.")


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and (digits or not value.is_integer()):
        return f"{value:,.{digits or 2}f}"
    return f"{int(value):,}" if isinstance(value, (int, float)) else str(value)


def _list_human(console, result: dict[str, Any]) -> None:
    from formicary.cli._output import new_table

    table = new_table(title=f"runs in {result['store']}")
    for col in ("id", "started", "board", "model", "variant", "status", "n", "median latency", "accuracy",
                "energy", "flash"):
        table.add_column(col)
    for r in result["runs"]:
        lat = r["latency"]
        energy = r.get("energy")
        table.add_row(
            str(r["id"]), (r["started_at"] or "")[:19], r["board"], r["model"]["name"] or "?",
            r["model"]["variant"]["label"] or "", r["status"], str(lat["count"]),
            f"{_fmt(lat['median'])} {lat['unit'] or ''} ({lat['method'] or '?'})" if lat["median"] is not None
            else "—",
            f"{100 * r['accuracy']:.2f} %" if r["accuracy"] is not None else "—",
            f"{energy['uj_per_inference']:.3f} µJ ({energy['method']})" if energy else "—",
            f"{_fmt(r['flash_bytes'])} B" if r["flash_bytes"] is not None else "—")
    console.print(table)


def _show_human(console, run: dict[str, Any]) -> None:
    lat = run["latency"]
    v = run["model"]["variant"]
    console.print(f"[bold]run {run['id']}[/] ({run['uid']}) — {run['status']}"
                  + (f": {run['incomplete_reason']}" if run.get("incomplete_reason") else ""))
    console.print(f"  board     {run['board']} ({'virtual' if run['virtual'] else 'real'})")
    console.print(f"  model     {run['model']['name']} {v['label'] or ''} sha256 {(run['model']['sha256'] or '')[:16]}"
                  f" ({v['quantization']}, sparsity {v['sparsity']}, clusters {v['clusters']}, qat {v['qat']})")
    for stage in v.get("training") or []:
        details = ", ".join(f"{k} {val}" for k, val in stage.items()
                            if k not in ("stage", "label") and isinstance(val, (str, int, float, bool)))
        console.print(f"  trained   {stage['stage']}: {details}")
    console.print(f"  firmware  runtime {run['firmware']['runtime_version']}, protocol "
                  f"{run['firmware']['protocol_version']}")
    console.print(f"  time      {run['started_at']} → {run['finished_at'] or 'not finished'}")
    unit = lat["unit"] or "?"
    console.print(f"  latency   [{unit}, {lat['method']}] n={lat['count']} " + "  ".join(
        f"{k} {_fmt(lat[k])}" for k in ("min", "median", "p90", "p99", "max", "mean")))
    if lat.get("estimate_ms") is not None:
        console.print(f"            ≈ {lat['estimate_ms']:.3f} ms (estimate from {unit} at the board clock)")
    from formicary.cli._routes import print_routes

    print_routes(console, run, always=True)
    if run["accuracy"] is not None:
        console.print(f"  accuracy  {100 * run['accuracy']:.2f} % (top-1 on device, {run['inputs']} inputs)")
    if run["bit_exact"] is not None:
        console.print(f"  bit-exact {run['bit_exact']} vs TFLM ({run['mismatches']} mismatches)")
    if run["energy"]:
        e = run["energy"]
        console.print(f"  energy    {e['uj_per_inference']:.3f} µJ/inference ({e['method']}: {e['source']})")
    for key in ("flash_bytes", "ram_bytes", "arena_bytes", "model_bytes"):
        if run[key] is not None:
            console.print(f"  {key:<13} {_fmt(run[key])} bytes")
    if run["layers"]:
        console.print(f"  layers ({len(run['layers'])}), median [{run['layers'][0]['unit'] or unit}]:")
        for layer in run["layers"]:
            graph = layer.get("subgraph")
            console.print(f"    {layer['index']:>3} {layer['op'] or '?':<20} {_fmt(layer['median']):>14}"
                          + (f"  subgraph {graph}" if graph else ""))


def _compare_human(console, result: dict[str, Any]) -> None:
    from formicary.cli._output import new_table

    a, b = result["a"], result["b"]
    table = new_table(title=f"A = run {a['id']} ({a['model']} {a['variant'] or ''} @{a['board']})   "
                        f"B = run {b['id']} ({b['model']} {b['variant'] or ''} @{b['board']})")
    for col in ("metric", "A", "B", "B − A", "relative", "unit", "method"):
        table.add_column(col)
    for m in result["metrics"]:
        rel = m["relative_pct"]
        delta = f"{m['delta_pt']:+.2f} pt" if m.get("delta_pt") is not None else (
            f"{m['delta']:+,.6g}" if m["delta"] is not None else "—")
        table.add_row(m["metric"], _fmt(m["a"]), _fmt(m["b"]), delta, f"{rel:+.2f} %" if rel is not None else "—",
                      m["unit"] or "", m["method"] or "")
    console.print(table)
    for w in result["warnings"]:
        console.print(f"[yellow]warning:[/] {w}")
    for c in result["checks"]:
        mark = "[red]TRIPPED[/]" if c["tripped"] else "[green]ok[/]"
        console.print(f"{mark} {c['expr']}  (observed {c['observed']:+.4g}, {c['meaning']})")


def register(app: typer.Typer) -> None:
    runs_app = typer.Typer(no_args_is_help=True, help="List, show, compare and export recorded bench runs.")
    app.add_typer(runs_app, name="runs")

    @runs_app.command("list")
    def list_(board: str | None = typer.Option(None, help="Only this board."),
              model: str | None = typer.Option(None, help="Model name or sha256 prefix."),
              label: str | None = typer.Option(None, help="Variant label."),
              status: str | None = typer.Option(None, help="complete|incomplete|interrupted|running"),
              since: str | None = typer.Option(None, help="ISO date/time: runs started at or after."),
              limit: int = typer.Option(50, help="At most this many runs, newest first (0: all)."),
              store: Path | None = STORE_OPTION, as_json: bool = JSON_OPTION) -> None:
        """List recorded runs, newest first."""
        from formicary.store import ResultStore

        with ResultStore(store) as s:
            runs = s.list_runs(board=board, model=model, label=label, status=status, since=since,
                               limit=limit or None)
            emit({"store": str(s.path), "runs": runs}, as_json, _list_human)

    @runs_app.command("show")
    def show(run: str = typer.Argument(..., help="Run id or uid prefix."),
             store: Path | None = STORE_OPTION, as_json: bool = JSON_OPTION) -> None:
        """Everything recorded for one run (all samples with --json)."""
        from formicary.store import ResultStore

        with ResultStore(store) as s:
            emit(s.get_run(run), as_json, _show_human)

    @runs_app.command("compare")
    def compare(a: str = typer.Argument(..., help="Baseline run (id or uid prefix)."),
                b: str = typer.Argument(..., help="Candidate run."),
                fail_if: list[str] = typer.Option([], "--fail-if", help="Regression threshold, repeatable: "
                                                  "'latency.median>+5%', 'accuracy<-1pt', 'flash_bytes>+0'."),
                store: Path | None = STORE_OPTION, as_json: bool = JSON_OPTION) -> None:
        """Per-metric deltas of B against A; exit 1 when a --fail-if threshold trips (2 on errors)."""
        from formicary.store import ResultStore
        from formicary.store.compare import compare_runs, parse_threshold

        thresholds = [parse_threshold(t) for t in fail_if]  # bad expressions fail before opening the store
        with ResultStore(store) as s:
            result = compare_runs(s.get_run(a), s.get_run(b), thresholds)
        emit(result, as_json, _compare_human)
        if result["failed"]:
            raise typer.Exit(1)

    @runs_app.command("export")
    def export(runs: list[str] = typer.Argument(None, help="Run ids (default: all)."),
               fmt: str = typer.Option("json", "--format", "-f", help="json or csv"),
               table: str = typer.Option("runs", help="CSV table: runs|samples|layers|outputs"),
               output: Path | None = typer.Option(None, "-o", "--output", help="File (default: stdout)."),
               store: Path | None = STORE_OPTION, as_json: bool = JSON_OPTION) -> None:
        """Export runs as JSON (everything) or CSV (one table)."""
        from formicary.store import ResultStore

        with ResultStore(store) as s:
            text = s.export(runs or None, fmt=fmt, table=table)
        if output is None:
            print(text, end="" if text.endswith("\n") else "\n")
            return
        output.write_text(text, encoding="utf-8")
        emit({"path": str(output), "format": fmt, "table": table if fmt == "csv" else None,
              "bytes": len(text.encode())}, as_json, lambda c, r: c.print(f"wrote {r['path']} ({r['bytes']} bytes)"))

    @runs_app.command("import")
    def import_(files: list[Path] = typer.Argument(..., help="Bench result JSON files (`formicary bench --json`)."),
                store: Path | None = STORE_OPTION, as_json: bool = JSON_OPTION) -> None:
        """Record finished bench results (JSON from `formicary bench --json`) in the store."""
        import json

        from formicary.errors import FormicaryError
        from formicary.store import ResultStore

        ids = []
        with ResultStore(store) as s:
            for f in files:
                try:
                    data = json.loads(f.read_text(encoding="utf-8"))
                except (OSError, ValueError) as exc:
                    raise FormicaryError(f"cannot read bench JSON {f}: {exc}",
                                         "pass the output of `formicary bench --json`") from exc
                ids.append(s.record_result(data))
        emit({"store": str(s.path), "imported": ids}, as_json,
             lambda c, r: c.print(f"imported run(s) {', '.join(map(str, r['imported']))} into {r['store']}"))
