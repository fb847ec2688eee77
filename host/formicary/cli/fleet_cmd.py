"""`formicary fleet INVENTORY.toml MODEL…`: bench every model on every board of an inventory at once."""
from __future__ import annotations

from pathlib import Path

import typer

from formicary.cli._bench_options import (
    DATA_OPTION,
    INPUTS_OPTION,
    MEMORY_PLAN_OPTION,
    PROFILE_OPTION,
    STORE_OPTION,
    WARMUP_OPTION,
)
from formicary.cli._output import JSON_OPTION, emit


def register(app: typer.Typer) -> None:
    @app.command("fleet")
    def fleet(inventory: Path = typer.Argument(..., help="Inventory TOML: [[device]] tables (see docs/fleet.md)."),
              models: list[Path] = typer.Argument(..., help="Models to bench on every device, one after another."),
              data: Path = DATA_OPTION,
              inputs: int = INPUTS_OPTION,
              runs: int = typer.Option(None, "--runs", help="Timed inferences per bench (a device's `runs` "
                                                            "in the inventory wins)."),
              warmup: int = WARMUP_OPTION,
              profile: bool = PROFILE_OPTION,
              store: Path = STORE_OPTION,
              jobs: int = typer.Option(None, "--jobs", "-j", help="Devices benched at once (default: all)."),
              build_dir: Path = typer.Option(None, "--build-dir", help="Root of the per-model-and-board builds "
                                                                       "(default: the bench build cache)."),
              timeout: float = typer.Option(None, "--timeout", help="Seconds per device for all its models "
                                                                    "(default 3600; a device's `timeout` wins)."),
              memory_plan: str = MEMORY_PLAN_OPTION,
              as_json: bool = JSON_OPTION) -> None:
        """Bench MODELs on all devices in parallel (one worker process each); a failing device never stops the
        others. Exit code 1 when any device failed or any output differed from TFLM."""
        from formicary.bench.fleet import DEFAULT_DEVICE_TIMEOUT_S, run_fleet
        from formicary.cli._models import model_for_board
        from formicary.progress import BoardProgress

        with BoardProgress() as show:
            result = run_fleet(inventory, [model_for_board(m) if m.exists() else m for m in models], data=data, inputs=inputs, runs=runs, warmup=warmup,
                               profile=profile, store=store, jobs=jobs, build_dir=build_dir,
                               timeout=timeout or DEFAULT_DEVICE_TIMEOUT_S, memory_plan=memory_plan,
                               on_event=show)
        emit(result, as_json, render)
        if result["failed"] or result["mismatched"]:
            raise typer.Exit(1)


def render(console, r: dict) -> None:
    from formicary.cli._output import new_table

    units = {"instructions": "instr", "cycles": "cycles"}
    # one table per model, one row per device: fits a terminal whatever the number of models
    for model in r["models"]:
        rows = [res for res in r["results"] if res["model"] == model]
        table = new_table(title=f"{Path(model).name} on {len(rows)} device(s)", title_justify="left")
        for col in ("device", "board", "median latency", "bit-exact", "accuracy", "status", "run"):
            table.add_column(col, justify="left" if col in ("device", "board", "status") else "right",
                             no_wrap=col == "median latency")
        for res in rows:
            lat = res["latency"] or {}
            median = (f"{lat['median']:,.0f} {units.get(lat['unit'], lat['unit'])}"
                      if lat.get("median") is not None else "—")
            exact = {True: "[green]yes[/]", False: f"[red]no ({res['mismatches']})[/]"}.get(res["bit_exact"], "—")
            acc = f"{res['accuracy']:.3f}" if res["accuracy"] is not None else "—"
            status = "[green]ok[/]" if res["status"] == "ok" else "[red]failed[/]"
            table.add_row(res["device"], res["board"], median, exact, acc, status,
                          str(res["run_id"]) if res["run_id"] is not None else "—")
        console.print(table)
    for res in r["results"]:
        if res["error"]:
            err = res["error"]
            console.print(f"[red]✗[/] [bold]{res['device']}[/] ({res['board']}) × {res['model_name']}: "
                          f"{err['cause']}")
            if err.get("fix"):
                console.print(f"    fix: {err['fix']}")
            if err.get("kept"):
                console.print(f"    kept: {err['kept']}")
    for res in r["results"]:
        e, lat = res["energy"], res["latency"] or {}
        if res["status"] == "ok" and (e or lat.get("estimate_ms") is not None):
            parts = [f"≈ {lat['estimate_ms']:.2f} ms at the board clock (estimate from {lat['unit']})"
                     if lat.get("estimate_ms") is not None and lat["unit"] == "instructions" else None,
                     f"{e['uj_per_inference']:.1f} µJ/inference ({e['method']}: {str(e['source']).split(' (')[0]})"
                     if e else None]  # the full source is in --json and `formicary runs show`
            if any(parts):
                console.print(f"[dim]{res['device']} × {res['model_name']}: "
                              f"{'; '.join(p for p in parts if p)}[/]")
    ok = len(r["results"]) - r["failed"]
    console.print(f"{ok}/{len(r['results'])} bench(es) ok on {len(r['devices']) - r['failed_devices']}/"
                  f"{len(r['devices'])} device(s) in {r['seconds']:.1f} s; recorded in {r['store_path']} "
                  f"(fleet id {r['fleet_id'][:12]})")
