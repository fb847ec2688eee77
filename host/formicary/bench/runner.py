"""`formicary bench`: run a compiled model on a board and measure it, recording as it goes.

One bench = firmware (built or reused) → board (QEMU launched, or a serial port) → inputs (a labelled data folder
or seeded random tensors) → for each input: load, W warm-ups before the first, its share of the N timed runs,
read the outputs → compare every output with the TFLM interpreter → statistics, per-layer times, energy.

Every batch of results goes into the results store as soon as it arrives, so a board that dies, a Ctrl-C or a
crash leaves a run marked incomplete with everything collected so far; the FormicaryError raised then carries
the partial bench result (`partial`). The result dict is the contract in docs/bench-json.md.
"""
from __future__ import annotations

import json
import platform
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from formicary import __version__
from formicary.boards import Board, load_board
from formicary.device.session import TIMING_METHOD_TEXT
from formicary.errors import FormicaryError
from formicary.oracle.inputs import LabelledInputs
from formicary.power.sources import InferenceWindow, PowerSource
from formicary.store.routes import (
    layer_subgraphs,
    runs_subgraph,
    subgraph_usage,
    summarize_routes,
)
from formicary.store.stats import summarize
from formicary.target.firmware import file_sha256, prepare_firmware

Event = dict[str, Any]
DEFAULT_RANDOM_INPUTS = 10
MIN_DEFAULT_RUNS = 10


def load_inputs(tflite: Path, data: str | Path | None, count: int | None, seed: int = 0) -> LabelledInputs:
    """Labelled inputs from a data folder/.npz (the first COUNT), or COUNT seeded random tensors."""
    from formicary.oracle.inputs import model_inputs
    from formicary.tflite import read_model

    return model_inputs(read_model(tflite), data, count, seed=seed, default_count=DEFAULT_RANDOM_INPUTS)


def _variant(analysis: dict[str, Any], tflite: Path) -> dict[str, Any]:
    """Quantization and sparsity read from the model itself; clusters, QAT and how the Keras model was trained
    (distilled, adapted, LoRA: `training`) from the `formicary compile` report beside it when there is one (a bare
    .tflite does not say how it was made: null / [])."""
    from formicary.model.provenance import compiled_stages, variant_suffix

    quant = analysis["quantization"]["precision"]
    sparsity = round(float(analysis["sparsity"]["overall"]), 4)
    clusters = qat = structure = None
    training: list[dict[str, Any]] = []
    pruned = sparsity
    report = tflite.parent / "report.json"
    if report.is_file():
        try:
            info = json.loads(report.read_text()).get("compile") or {}
        except (OSError, ValueError):
            info = {}
        if "cluster" in info:
            clusters = (info["cluster"] or {}).get("clusters")
        if "qat" in info:
            qat = bool(info["qat"])
        training = compiled_stages(tflite)
        prune = info.get("prune") or {}
        structure = prune.get("structure")
        if structure == "channel":  # channels removed, not zeroed: the model has no zeros to count
            pruned = float(prune.get("target") or 0.0)
    label = quant + variant_suffix(training) + (f"-pruned{round(pruned * 100)}" if pruned >= 0.05 else "") + \
        (f"-clustered{clusters}" if clusters else "") + ("-qat" if qat else "")
    return {"quantization": quant, "sparsity": sparsity, "clusters": clusters, "qat": qat, "label": label,
            "prune_structure": structure, "training": training}


def _per_inference_macs(analysis: dict[str, Any]) -> dict[str, int]:
    """MACs of one inference: the model's, or for a model with IF branches its heaviest route's (the subgraphs one
    invocation runs; a mixture of experts holds every expert in flash but runs one)."""
    routes = (analysis.get("control_flow") or {}).get("routes") or []
    if routes:
        heaviest = max(routes, key=lambda r: r["macs"])
        return {"macs": int(heaviest["macs"]), "effective_macs": int(heaviest["effective_macs"])}
    return {"macs": int(analysis["macs"]), "effective_macs": int(analysis["effective_macs"])}


def _host() -> dict[str, str]:
    return {"hostname": socket.gethostname(), "os": platform.platform(), "python": platform.python_version(),
            "formicary": __version__}


def _open_store(store: Any):
    from formicary.store import ResultStore

    if store is False:
        return None, False
    if isinstance(store, ResultStore):
        return store, False
    return ResultStore(store), True


def _split_runs(runs: int, k: int) -> list[int]:
    """N timed runs over K inputs, in input order: every input at least once, the rest spread evenly."""
    return [runs // k + (1 if i < runs % k else 0) for i in range(k)]


def run_bench(target: str | Path, board: str | Board, *, port: str | None = None, baud: int | None = None,
              runs: int | None = None,
              warmup: int = 1, data: str | Path | None = None, inputs: int | None = None, profile: bool = False,
              store: Any = None, out_dir: str | Path | None = None, label: str | None = None, seed: int = 0,
              rebuild: bool = False, timeout: float = 2.0, run_timeout: float = 60.0,
              power: PowerSource | None = None, kernels: str | None = None, memory_plan: str | None = None,
              on_event: Callable[[Event], None] | None = None, sbc: dict[str, Any] | None = None) -> dict[str, Any]:
    """Bench TARGET (model or built project) on BOARD and return the bench result (docs/bench-json.md).

    runs: timed inferences in total (default: one per input, at least 10), spread over the inputs in order;
    warmup: untimed inferences before the first timed one; store: a ResultStore, a path, None (the default
    store) or False (do not record). `power`: a host-side power monitor (Joulescope, PPK2, …) sampled for the
    whole bench, synchronised with every RUN by its GPIO sync line when it recorded one, else by serial markers;
    its energy (`measured`) replaces the board model's (`modelled`). `kernels`: a kernel set overriding the
    board's (A/B runs). `on_event` receives progress events (build,
    flash, connected, start, inference, input, warning, done) for progress bars and fleets.
    """
    from formicary.analysis import analyse
    from formicary.oracle.compare import match
    from formicary.oracle.tflm import run_tflm
    from formicary.power.ina import combine_device_energy, device_energy
    from formicary.target.bringup import LinkOptions, bring_up, target_for

    b = load_board(board) if isinstance(board, str) else board
    if b.is_sbc:  # a Linux SBC: a TFLite runtime over SSH, same result schema (bench/sbc.py); `port` is the host
        from formicary.bench.sbc import run_sbc_bench

        if kernels:
            raise FormicaryError(f"--kernels picks formicary-rt kernels; {b.name} runs the model in a TFLite "
                                 "runtime.", "drop --kernels (use --runtime, --threads, --xnnpack on an SBC).")
        return run_sbc_bench(target, b, host=port, runs=runs, warmup=warmup, data=data, inputs=inputs,
                             profile=profile, store=store, label=label, seed=seed,
                             run_timeout=None if run_timeout == 60.0 else run_timeout,  # 60: the MCU default
                             power=power, on_event=on_event, **(sbc or {}))
    if sbc:
        raise FormicaryError(f"--host, --runtime, --threads, --xnnpack, --sensor are for SBC boards; {b.name} is a "
                             "microcontroller.", "drop them, or pick an SBC board (`formicary boards`).")
    if warmup < 0:
        raise FormicaryError(f"--warmup must be >= 0, got {warmup}.", "pass --warmup 0 or more.")
    if runs is not None and runs < 1:
        raise FormicaryError(f"--runs must be >= 1, got {runs}.", "pass --runs 1 or more.")
    target_for(b, port)  # a real board without a port fails before anything is built
    if data is None and inputs is None and runs is not None:
        inputs = min(DEFAULT_RANDOM_INPUTS, runs)  # random inputs: no more than there are runs
    fw = prepare_firmware(target, b, out_dir=out_dir, rebuild=rebuild, on_event=on_event, kernels=kernels,
                          memory_plan=memory_plan)
    ins = load_inputs(fw.tflite, data, inputs, seed=seed)
    if runs is not None and runs < len(ins.sets):
        if on_event:
            on_event({"event": "warning", "board": b.name,
                      "message": f"--runs {runs} < {len(ins.sets)} inputs: only the first {runs} inputs are used"})
        ins = LabelledInputs(ins.sets[:runs], ins.labels[:runs], ins.names[:runs], ins.source)
    total_runs = runs if runs is not None else max(len(ins.sets), MIN_DEFAULT_RUNS)
    per_input = _split_runs(total_runs, len(ins.sets))

    analysis = analyse(fw.tflite, measure_arena=False, kernels=fw.kernels, arena_bytes=fw.arena_bytes or None)
    analysis["energy_model"]["board"] = b.name
    reference = run_tflm(fw.tflite.read_bytes(), ins.sets)
    variant = _variant(analysis, fw.tflite)
    # Data labelled with the original labels of a model `formicary adapt` mapped to new classes: score by index.
    from formicary.model.provenance import class_label_map, to_class_indices

    label_map = class_label_map(variant["training"])
    mapped = to_class_indices(ins.labels, label_map)
    if mapped is not None:
        ins = LabelledInputs(ins.sets, mapped, ins.names, ins.source)
    from formicary.bench.routes import read_subgraphs

    graphs = read_subgraphs(fw.tflite)
    graph_names, graph_ops = [g["name"] for g in graphs], [g["ops"] for g in graphs]
    result: dict[str, Any] = {
        "schema": 1, "board": b.name, "virtual": b.virtual, "host": _host(),
        "started_at": None, "finished_at": None, "complete": False, "incomplete_reason": None,
        "model": {"path": str(fw.tflite), "sha256": file_sha256(fw.tflite), "name": label or fw.tflite.stem,
                  "variant": variant},
        "firmware": None,
        "settings": {"runs": total_runs, "warmup": warmup, "profile": profile, "data": ins.source,
                     "labels_mapped_by": label_map if mapped is not None else None},
        "latency": None, "layers": [], "bit_exact": None, "mismatches": 0, "inputs": 0, "accuracy": None,
        "outputs": [], "flash_bytes": fw.flash_bytes, "ram_bytes": fw.ram_bytes,
        "arena_bytes": fw.arena_bytes, **_per_inference_macs(analysis), "model_bytes": int(analysis["model_bytes"]),
        "energy": None, "energy_floor_uj": analysis.get("energy_floor_uj"), "power_samples": None,
        "energy_model": analysis.get("energy_model"),
        "subgraphs": subgraph_usage(None, graph_names, graph_ops), "routes": None,
        "memory": _memory_plans(fw),
        "lab": None,  # a board reached through a labgrid place: {place, host, coordinator}
    }
    st, owns_store = _open_store(store)
    run_id: int | None = None
    samples: list[int] = []
    sample_routes: list[int | None] = []  # the route of each sample, while the firmware reports routes
    routes_known = False
    op_graph: list[int | None] | None = None  # subgraph of each profiled op
    layer_samples: dict[int, dict[str, Any]] = {}
    correct = labelled = 0
    conn = None
    window_counts: list[int] = []  # inferences (warm-ups included) per RUN, for a power monitor's windows
    ina_parts: list = []           # energy measured by an INA219/226 on the device, per RUN

    def emit(event: Event) -> None:
        if on_event:
            on_event({"board": b.name, **event})

    def snapshot() -> dict[str, Any]:
        """The result as collected so far (statistics recomputed from the samples)."""
        if result["latency"] is not None:
            result["latency"].update({k: v for k, v in summarize(samples).items() if k != "count"})
            result["latency"]["samples"] = list(samples)
            med = result["latency"]["median"]
            result["latency"]["estimate_ms"] = None if med is None else round(med / b.clock_hz * 1e3, 4)
            result["latency"]["routes"] = list(sample_routes) if routes_known else None
            result["routes"] = summarize_routes(samples, result["latency"]["routes"], names=graph_names,
                                                outputs=result["outputs"], unit=result["latency"]["unit"],
                                                method=result["latency"]["method"])
            result["subgraphs"] = subgraph_usage(result["latency"]["routes"], graph_names, graph_ops)
        result["layers"] = [{**meta, "median": float(np.median(meta["samples"])) if meta["samples"] else None}
                            for _, meta in sorted(layer_samples.items())]
        result["accuracy"] = (correct / labelled) if labelled else None
        return result

    try:
        conn = bring_up(b, fw, port=port, baud=baud, options=LinkOptions(timeout=timeout, run_timeout=run_timeout),
                        on_event=on_event)
        session = conn.session
        info = session.info
        if conn.place is not None:
            result["lab"] = {"place": conn.place, "host": conn.lab_host, "coordinator": conn.coordinator}
        # `connection` is for in-process observers (fault-injection tests); fleets ignore it
        emit({"event": "connected", "url": conn.url, "runtime_version": info.runtime_version,
              "connection": conn.handle})
        from formicary.store.results import now_iso

        result["started_at"] = now_iso()
        result["firmware"] = {"runtime_version": info.runtime_version, "protocol_version": info.protocol_version,
                              "optimize": fw.optimize, "kernels": fw.kernels,
                              "memory_plan": fw.memory_plan}
        routes_known = info.routes
        result["latency"] = {"unit": info.timing_unit, "method": info.timing_method, "estimate_ms": None,
                             "clock_hz": b.clock_hz, "samples": [], "routes": [] if routes_known else None}
        if st is not None:
            run_id = st.begin_run({k: v for k, v in result.items() if k not in ("outputs", "layers")})
            result["run_id"], result["store_path"] = run_id, str(st.path)
        emit({"event": "start", "total": total_runs, "inputs": len(ins.sets), "run_id": run_id})
        if power is not None:
            power.start()
        done = 0
        for k, (x, ref, n_runs) in enumerate(zip(ins.sets, reference, per_input)):
            for i, tensor in enumerate(x):
                session.load_input(i, np.ascontiguousarray(tensor).tobytes())
            got: list[int] = []
            last_route: int | None = None  # the route of this input's last inference (the profiled one)
            remaining, first = n_runs, True
            while remaining:
                chunk = min(remaining, info.max_runs)
                warm = warmup if (k == 0 and first) else 0
                try:
                    if power is not None:
                        power.mark("start")
                    rr = session.run(runs=chunk, warmup=warm, profile=profile,
                                     on_result=lambda idx, v: emit({"event": "inference", "done": done + len(got)
                                                                    + idx + 1, "total": total_runs, "value": v}))
                    if power is not None:
                        power.mark("stop")
                        window_counts.append(chunk + warm)
                    if info.power_sensor:  # read the device's samples before the next command overwrites them
                        part = device_energy(session, rr,
                                             energy_floor_uj=(result["energy_floor_uj"] or {}).get("45nm"))
                        if part is not None:
                            ina_parts.append(part)
                except FormicaryError as exc:  # keep the inferences that finished before the failure
                    lost = list((exc.partial or {}).get("values") or [])
                    if lost:
                        lost_routes = (exc.partial or {}).get("routes") if routes_known else None
                        lost_routes = list(lost_routes) if lost_routes is not None else [None] * len(lost)
                        samples.extend(lost)
                        sample_routes.extend(lost_routes)
                        if st is not None and run_id is not None:
                            st.add_samples(run_id, lost, routes=lost_routes if routes_known else None)
                    raise
                got.extend(rr.values)
                remaining -= chunk
                first = False
                run_routes = rr.routes if routes_known and rr.routes is not None else [None] * len(rr.values)
                if st is not None and run_id is not None:
                    st.add_samples(run_id, rr.values, routes=run_routes if routes_known else None)
                samples.extend(rr.values)
                sample_routes.extend(run_routes)
                last_route = run_routes[-1]
            done += len(got)
            outs = []
            for j, spec in enumerate(info.outputs):
                raw = session.read_output(j)
                outs.append(np.frombuffer(raw, dtype=np.dtype(spec.dtype)).reshape(spec.shape))
            m = match(outs, ref)
            exact, close, diff = m.bit_exact, m.within_tolerance, m.max_abs_diff
            predicted = int(np.argmax(outs[0]))
            verdict = {"input": ins.names[k], "label": ins.labels[k], "predicted": predicted,
                       "reference_predicted": int(np.argmax(np.asarray(ref[0]))),
                       "match_reference": bool(exact or close), "route": last_route}
            if not exact:
                verdict["max_abs_diff"] = diff
            result["outputs"].append(verdict)
            result["inputs"] += 1
            result["mismatches"] += int(not (exact or close))
            result["bit_exact"] = (result["bit_exact"] is not False) and exact
            if ins.labels[k] is not None:
                labelled += 1
                correct += int(predicted == ins.labels[k])
            new_layers = []
            if profile:
                timings = session.read_layer_timings()
                if op_graph is None:
                    op_graph = layer_subgraphs(graph_ops, len(timings))
                for lt in timings:
                    graph = op_graph[lt.index] if lt.index < len(op_graph) else None
                    meta = layer_samples.setdefault(lt.index, {"index": lt.index, "op": lt.op_type, "name": lt.name,
                                                              "macs": lt.macs, "unit": info.timing_unit,
                                                              "subgraph": graph, "samples": []})
                    # the profile is of this input's last inference: a layer its route skipped did not run
                    ran = graph is None or last_route is None or runs_subgraph(last_route, graph)
                    if ran:
                        meta["samples"].append(lt.value)
                    new_layers.append({**{k2: v for k2, v in meta.items() if k2 != "samples"},
                                       "samples": [lt.value] if ran else []})
            if st is not None and run_id is not None:
                st.add_outputs(run_id, [verdict])
                if new_layers:
                    st.add_layer_timings(run_id, new_layers)
                st.update_run(run_id, {"bit_exact": result["bit_exact"], "mismatches": result["mismatches"],
                                       "inputs": result["inputs"],
                                       "accuracy": (correct / labelled) if labelled else None})
            emit({"event": "input", "done_inputs": k + 1, "inputs": len(ins.sets), "match": bool(exact or close)})
        snapshot()
        result["energy"] = _modelled_energy(b, samples, result["energy_floor_uj"])
        if power is None and ina_parts:
            result["energy"], result["power_samples"] = combine_device_energy(ina_parts)
            if st is not None and run_id is not None:
                st.add_power_samples(run_id, result["power_samples"])
        if power is not None:
            result["energy"], result["power_samples"] = _measured_energy(power, window_counts,
                                                                         result["energy_floor_uj"])
            if st is not None and run_id is not None:
                st.add_power_samples(run_id, result["power_samples"])
        result["complete"], result["finished_at"] = True, now_iso()
        if st is not None and run_id is not None:
            layers_medians = [{"index": m["index"], "median": m["median"]} for m in result["layers"]]
            if layers_medians:
                st.add_layer_timings(run_id, layers_medians)
            st.set_energy(run_id, result["energy"], result["energy_floor_uj"])
            st.finish_run(run_id, True, finished_at=result["finished_at"])
        emit({"event": "done", "run_id": run_id})
        return result
    except BaseException as exc:
        snapshot()
        record_incomplete(exc, result, st, run_id, len(samples))
        raise
    finally:
        if power is not None and getattr(power, "_running", False):
            try:
                power.stop()
            except Exception:  # the monitor's own failure must not hide the bench's
                pass
        if conn is not None:
            conn.close()
        if owns_store and st is not None:
            st.close()


def _modelled_energy(board: Board, samples: list[int], floor: dict[str, float] | None) -> dict[str, Any] | None:
    """Energy per inference from the board's power model x the measured time; None without a power model."""
    if board.power is None or not samples:
        return None
    from formicary.power.modelled import modelled_energy

    e = modelled_energy(board.power, board.clock_hz, samples, board.name,
                        energy_floor_uj=(floor or {}).get("45nm"))
    return e


def _measured_energy(power: PowerSource, counts: list[int], floor: dict[str, float] | None
                     ) -> tuple[dict[str, Any], list[list[float]]]:
    """Energy per inference from a host-side monitor over the RUN windows: the sync line's windows when the
    monitor recorded one per RUN, otherwise the host's serial markers (coarser: they include the serial
    round trip, so the energy is an upper bound)."""
    from formicary.power.energy import energy_per_inference, windows_from_gpio

    trace = power.stop()
    sync = "serial markers around each RUN command (includes the serial round trip)"
    windows: list[InferenceWindow] | None = None
    if trace.gpio is not None and np.any(trace.gpio):
        try:
            windows = windows_from_gpio(trace, counts)
            sync = "DUT GPIO sync line"
        except FormicaryError:
            windows = None
    if windows is None:
        starts = [t for name, t in trace.markers if name == "start"]
        stops = [t for name, t in trace.markers if name == "stop"]
        if len(starts) != len(counts) or len(stops) != len(counts):
            raise FormicaryError(f"the {trace.source} trace has {len(starts)} start / {len(stops)} stop markers "
                                 f"for {len(counts)} runs.", "report this bug with the trace.")
        windows = [InferenceWindow(a, b, n) for a, b, n in zip(starts, stops, counts)]
    e = energy_per_inference(trace, windows, energy_floor_uj=(floor or {}).get("45nm")).to_json()
    e["sync"] = sync
    j = trace.to_json()
    pairs = [[t, mw / 1e3] for t, mw in zip(j["t"], j["power"])]
    return e, pairs


def record_incomplete(exc: BaseException, result: dict[str, Any], st: Any, run_id: int | None, n_samples: int,
                      stored_note: str = "") -> str | None:
    """What a bench that failed keeps: the run stored incomplete with the reason, and a FormicaryError carrying
    the partial result and a `kept` sentence (also returned; None for other exceptions, which pass unchanged)."""
    reason = ("interrupted by the user (Ctrl-C)" if isinstance(exc, KeyboardInterrupt) else
              exc.cause if isinstance(exc, FormicaryError) else f"{type(exc).__name__}: {exc}")
    result["incomplete_reason"] = reason
    if st is not None and run_id is not None:
        try:
            st.finish_run(run_id, False, reason)
        except Exception:  # noqa: BLE001 - never mask the original failure
            pass
    if not isinstance(exc, FormicaryError):
        return None
    kept = f"{n_samples} inference(s) and {result['inputs']} output check(s) were kept" + (
        f" in run {run_id} of {st.path}{stored_note}." if run_id is not None else ".")
    exc.partial = result
    exc.details = {**(exc.details or {}), "kept": kept, "run_id": run_id}
    return kept


def latency_line(result: dict[str, Any]) -> str:
    """min/median/p90/p99/max with the unit and method, for human views."""
    lat = result["latency"]
    unit = lat["unit"]
    if unit == "ms":  # an SBC: wall-clock milliseconds on the board
        from formicary.bench.sbc import latency_line as sbc_line

        return sbc_line(result)
    parts = ", ".join(f"{k} {lat[k]:,.0f}" for k in ("min", "median", "p90", "p99", "max") if lat.get(k) is not None)
    est = f" (≈ {lat['estimate_ms']:.2f} ms at {result['latency'].get('clock_hz', 0) / 1e6:g} MHz, an estimate)" \
        if lat.get("estimate_ms") is not None and unit == "instructions" else ""
    how = TIMING_METHOD_TEXT.get(lat["method"], lat["method"])
    return f"{parts} {unit}/inference{est} [{how}]"


__all__ = ["latency_line", "load_inputs", "run_bench"]


def _memory_plans(fw) -> dict[str, Any]:
    """The memory plan the firmware was built with and every plan's arena for this model and kernel set (codegen,
    inputs preserved as firmware builds do; docs/memory.md): peak memory per plan beside the measured latency."""
    from formicary.codegen import memory_plans
    from formicary.errors import FormicaryError

    try:
        plans = memory_plans(fw.tflite, fw.kernels, preserve_inputs=True)
    except FormicaryError:
        plans = {"plans": [], "auto": None}
    return {"plan": fw.memory_plan, "plans": plans["plans"], "auto": plans["auto"],
            "instruction_cost": "in-place runs the same kernel calls (0 extra instructions, measured on qemu-m4: "
                                "docs/memory.md); only the plan benched is measured"}
