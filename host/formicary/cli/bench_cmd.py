"""`formicary bench MODEL|PROJECT --board B`: run on the board, stream timings, compare with TFLM, record."""
from __future__ import annotations

from pathlib import Path

import typer

from formicary.cli._bench_options import (
    DATA_OPTION,
    HOST_OPTION,
    INPUTS_OPTION,
    KERNELS_OPTION,
    MEMORY_PLAN_OPTION,
    PROFILE_OPTION,
    PYTHON_OPTION,
    RUNTIME_OPTION,
    SENSOR_OPTION,
    STORE_OPTION,
    THREADS_OPTION,
    WARMUP_OPTION,
    WORKDIR_OPTION,
    XNNPACK_OPTION,
    sbc_options,
)
from formicary.cli._lab_options import COORDINATOR_OPTION, PLACE_OPTION, STEAL_OPTION, WAIT_OPTION, resolve_place
from formicary.cli._output import JSON_OPTION, emit


def register(app: typer.Typer) -> None:
    @app.command("bench")
    def bench(target: Path = typer.Argument(..., help="A model (.tflite/.keras/.h5) or a `formicary build` project."),
              board: str = typer.Option(None, "--board", help="Board name (see `formicary boards`); with "
                                                              "--place, read from the place's `board` tag."),
              port: str = typer.Option(None, "--port", help="Serial port / pyserial URL (real boards, or a QEMU "
                                                            "started by `formicary flash`); omit for virtual boards."),
              runs: int = typer.Option(None, "--runs", help="Timed inferences in total (default: one per input, "
                                                            "at least 10), spread over the inputs."),
              warmup: int = WARMUP_OPTION,
              data: Path = DATA_OPTION,
              inputs: int = INPUTS_OPTION,
              profile: bool = PROFILE_OPTION,
              store: Path = STORE_OPTION,
              no_store: bool = typer.Option(False, "--no-store", help="Do not record the run."),
              label: str = typer.Option(None, "--label", help="Model name that groups variants in reports."),
              build_dir: Path = typer.Option(None, "--build-dir", help="Where to build (default: a cache per "
                                                                       "model and board)."),
              rebuild: bool = typer.Option(False, "--rebuild", help="Build even if a cached build exists."),
              seed: int = typer.Option(0, "--seed", help="Seed for random inputs."),
              power: str = typer.Option(None, "--power", help="Host-side power monitor: joulescope, ppk2 or "
                                                              "ppk2:PORT (measured energy; see docs/power.md)."),
              kernels: str = KERNELS_OPTION,
              memory_plan: str = MEMORY_PLAN_OPTION,
              place: str = PLACE_OPTION,
              coordinator: str = COORDINATOR_OPTION,
              wait: float = WAIT_OPTION,
              steal: bool = STEAL_OPTION,
              host: str = HOST_OPTION, python: str = PYTHON_OPTION, runtime: str = RUNTIME_OPTION,
              threads: int = THREADS_OPTION, xnnpack: bool = XNNPACK_OPTION, sensor: str = SENSOR_OPTION,
              workdir: str = WORKDIR_OPTION,
              as_json: bool = JSON_OPTION) -> None:
        """Build and flash when needed, run N inferences, print latency statistics and the TFLM comparison."""
        from formicary.bench.runner import run_bench
        from formicary.boards import load_board
        from formicary.cli._models import model_for_board
        from formicary.errors import FormicaryError
        from formicary.power import open_power_source
        from formicary.progress import BoardProgress

        board, port = resolve_place(board, port, place, coordinator, wait, steal)
        if board is None:
            raise FormicaryError("no --board given.", "pass --board B (see `formicary boards`), or --place P.")
        monitor = open_power_source(power) if power else None
        sbc = sbc_options(python, runtime, threads, xnnpack, sensor, workdir)
        if load_board(board).is_sbc:
            sbc.setdefault("sensor", sensor)
            if host and port:
                raise FormicaryError("--host and --port both name the board.", "pass --host user@addr[:port] only.")
            port = host or port
            model = target if target.suffix == ".tflite" else model_for_board(target, board, build_dir)
        elif host:
            raise FormicaryError(f"--host is for SBC boards; {board} is a microcontroller.",
                                 "use --port for a serial port, or pick an SBC board.")
        else:
            model = model_for_board(target, board, build_dir)
        with BoardProgress() as show:
            result = run_bench(model, board, port=port, runs=runs, warmup=warmup, data=data, inputs=inputs,
                               profile=profile, store=False if no_store else store, out_dir=build_dir,
                               label=label, rebuild=rebuild, seed=seed, power=monitor, kernels=kernels,
                               memory_plan=memory_plan, on_event=show, sbc=sbc)
        emit(result, as_json, render)
        if result["mismatches"]:
            raise typer.Exit(1)


def render(console, r: dict) -> None:
    from formicary.bench.runner import latency_line

    if r.get("sbc") is not None or r.get("reference"):
        render_sbc(console, r)
        return

    kind = "virtual board" if r["virtual"] else "board"
    console.print(f"[bold]{r['model']['name']}[/] ({r['model']['variant']['label']}) on {kind} [bold]{r['board']}[/]"
                  f", formicary-rt {r['firmware']['runtime_version']}"
                  f" ({r['firmware'].get('kernels', 'reference')} kernels)")
    console.print(f"latency: {latency_line(r)}  ({len(r['latency']['samples'])} timed, "
                  f"{r['settings']['warmup']} warm-up)")
    mem = r.get("memory") or {}
    if mem.get("plans"):
        per_plan = ", ".join(f"{p['plan']} {p['arena_bytes']:,} B (+{p['extra_instructions_pct']:.1f} % instructions "
                             f"modelled{'; this build' if p['plan'] == mem['plan'] else ''})" for p in mem["plans"])
        console.print(f"memory plan {mem['plan']}: arena {r['arena_bytes']:,} B; per plan: {per_plan}")
    from formicary.cli._routes import print_routes

    print_routes(console, r)  # a table only when the inferences took several routes (mixture of experts)
    if r["layers"]:
        from formicary.cli._output import new_table

        total = sum(layer["median"] or 0 for layer in r["layers"]) or 1
        names = {g["index"]: g["name"] for g in r.get("subgraphs") or []}
        several = len(names) > 1
        table = new_table(title=f"per layer: median {r['latency']['unit']}"
                          + (" of the inferences that ran the layer's subgraph" if several else ""))
        for col in ("#", "op", *(("subgraph", "ran") if several else ()), "MACs", r["latency"]["unit"], "share"):
            table.add_column(col, justify="left" if col in ("op", "subgraph") else "right")
        for layer in r["layers"]:
            median = layer["median"]
            where = (names.get(layer.get("subgraph"), "?"), str(len(layer["samples"]))) if several else ()
            table.add_row(str(layer["index"]), layer["op"], *where, f"{layer['macs']:,}",
                          f"{median:,.0f}" if median is not None else "never ran",
                          f"{100 * median / total:.1f} %" if median is not None else "—")
        console.print(table)
    if r["bit_exact"]:
        verdict = "[green]bit-exact[/]"
    elif r["mismatches"] == 0:
        verdict = "[green]within float tolerance[/]"
    else:
        verdict = f"[red]{r['mismatches']} input(s) differ[/]"
    console.print(f"outputs vs TFLM interpreter: {verdict} on {r['inputs']} input(s)")
    if r["accuracy"] is not None:
        labelled = sum(1 for o in r["outputs"] if o["label"] is not None)
        right = sum(1 for o in r["outputs"] if o["label"] is not None and o["label"] == o["predicted"])
        console.print(f"accuracy on the device: {right}/{labelled} = {r['accuracy']:.3f}")
    console.print(f"firmware: flash {r['flash_bytes']:,} B, RAM {r['ram_bytes']:,} B (from the ELF); "
                  f"arena {r['arena_bytes']:,} B; {r['macs']:,} MACs "
                  f"({r.get('effective_macs', r['macs']):,} effective: non-zero weight)")
    e = r.get("energy")
    if e:
        floor = r.get("energy_floor_uj") or {}
        console.print(f"energy: {e['uj_per_inference']:.2f} µJ/inference ([bold]{e['method']}[/]: {e['source']})"
                      + (f"; energy floor (every byte once) {floor['45nm']:.3g} µJ at 45 nm (modelled)"
                         if "45nm" in floor else ""))
    em = r.get("energy_model")
    if em:
        t = em["total"]
        # The per-operation table prices only the model's own arithmetic and memory traffic; the board figure
        # above is the whole chip's power over the run, so this is not a split of it.
        console.print(f"compute vs data movement (modelled from the {em['kernels']} kernels' loops at the "
                      f"per-operation table's prices, docs/energy.md; not a split of the board figure): "
                      f"{t['45nm']['total_uj']:.3g} µJ at 45 nm, {t['45nm']['data_movement_share']:.0%} data movement "
                      f"(weights {t['45nm']['weight_read_uj']:.3g}, activations {t['45nm']['activation_uj']:.3g}, "
                      f"compute {t['45nm']['compute_uj']:.3g} µJ); {t['7nm']['total_uj']:.3g} µJ at 7 nm, "
                      f"{t['7nm']['data_movement_share']:.0%} data movement", highlight=False)
    if r.get("run_id") is not None:
        console.print(f"recorded as run {r['run_id']} in {r['store_path']}")


def render_sbc(console, r: dict) -> None:
    """The human view of a bench on a Linux SBC (a TFLite runtime over SSH)."""
    from formicary.bench.sbc import latency_line

    fw, sbc = r.get("firmware") or {}, r.get("sbc") or {}
    kind = "virtual SBC" if r["virtual"] else "SBC"
    console.print(f"[bold]{r['model']['name']}[/] ({r['model']['variant']['label']}) on {kind} [bold]{r['board']}[/]"
                  f" ({sbc.get('url')}, {sbc.get('machine')}, Python {sbc.get('python')}): "
                  f"{fw.get('runtime')} {fw.get('runtime_version')}, threads {fw.get('threads') or 'default'}, "
                  f"XNNPACK {fw.get('xnnpack')}", highlight=False)
    if r["latency"] and r["latency"].get("samples"):
        from rich.markup import escape

        console.print(escape(f"latency: {latency_line(r)}  ({len(r['latency']['samples'])} timed, "
                             f"{r['settings']['warmup']} warm-up)"), highlight=False)
    if r["settings"].get("profile_note"):
        console.print(f"per-layer profile: not available ({r['settings']['profile_note']})")
    ref = r.get("reference") or {}
    verdict = ("[green]bit-exact[/]" if r["bit_exact"] else
               "[green]within tolerance[/]" if r["mismatches"] == 0 else f"[red]{r['mismatches']} input(s) differ[/]")
    worst = max((o.get("max_abs_diff", 0.0) for o in r["outputs"]), default=0.0)
    console.print(f"outputs vs {ref.get('what', 'the host reference')}: {verdict} on {r['inputs']} input(s)"
                  + (f" (same predictions; largest output difference {worst:g} "
                     f"{'step(s)' if r['model']['variant']['quantization'] != 'float32' else ''})" if worst else ""),
                  highlight=False)
    if r["accuracy"] is not None:
        labelled = sum(1 for o in r["outputs"] if o["label"] is not None)
        right = sum(1 for o in r["outputs"] if o["label"] is not None and o["label"] == o["predicted"])
        console.print(f"accuracy on the board: {right}/{labelled} = {r['accuracy']:.3f}")
    console.print(f"memory: peak RSS {r['ram_bytes'] or 0:,} B (the agent process: runtime + model + inputs); "
                  f"model {r['model_bytes']:,} B; {r['macs']:,} MACs")
    e = r.get("energy")
    if e:
        console.print(f"energy: {e['uj_per_inference']:.2f} µJ/inference ([bold]{e['method']}[/]: {e['source']})")
    if r.get("run_id") is not None:
        console.print(f"recorded as run {r['run_id']} in {r['store_path']}")
