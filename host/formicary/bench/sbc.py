"""`formicary bench` on a Linux single-board computer: the same bench JSON (docs/bench-json.md) from a model run
by a TFLite runtime on the board, reached over SSH (formicary.target.sbc).

Differences from a microcontroller bench, all said in the result: latency is wall-clock milliseconds measured on
the board (`method` `perf_counter`; on the virtual SBC, emulated time: `virtual` true and `latency.emulated`);
there is no firmware (`firmware` names the runtime, its version, threads and XNNPACK; `flash_bytes` and
`arena_bytes` are null, `ram_bytes` is the agent's peak RSS); the outputs are compared with a host reference
(`reference`: TFLM for integer models the MCU path runs, the LiteRT interpreter otherwise) within a stated
tolerance, since runtimes with XNNPACK need not be bit-exact with TFLM; per-op timings need a runtime
profiler, which the Python runtimes lack, so `layers` stays empty and `settings.profile_note` says why.

Every result is stored as it arrives: a connection that drops keeps what was collected, stored incomplete.
"""
from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from formicary.boards import Board, load_board
from formicary.errors import FormicaryError
from formicary.oracle.inputs import LabelledInputs

Event = dict[str, Any]
METHOD = "perf_counter"
METHOD_TEXT = "wall-clock ms: time.perf_counter() around each invoke() on the board"
# A TFLite runtime on the board is not TFLM: XNNPACK's int8 kernels and the builtin kernels optimized for the
# board's CPU requantize their own way. Measured on the virtual SBC (KWS, 200 inputs): tflite-runtime 2.14 is
# bit-exact with TFLM; ai-edge-litert 2.3 leaves 60-72 of 200 outputs off by up to 30 steps, and with XNNPACK 2
# predictions flip. So an output matches when its prediction (argmax of output 0) agrees and float outputs are
# within the tolerance below; `bit_exact` and `max_abs_diff` say how close the bytes were.
SBC_FLOAT_RTOL, SBC_FLOAT_ATOL = 1e-3, 1e-4


_TOLERANCE = {"float_rtol": SBC_FLOAT_RTOL, "float_atol": SBC_FLOAT_ATOL,
              "rule": "the same prediction (argmax of output 0) and float outputs np.allclose(float_rtol, "
                      "float_atol); integer outputs may differ by a few quantization steps (the runtime's kernels "
                      "requantize their own way): bit_exact and outputs[].max_abs_diff say by how much"}


def host_reference(model: Path, sets: list[list[np.ndarray]], quantization: str) -> tuple[list, dict[str, Any]]:
    """Reference outputs on the host: TFLM for integer models (as the MCU path), else the LiteRT interpreter."""
    if quantization != "float32":
        from formicary.oracle.tflm import run_tflm

        try:
            return run_tflm(model.read_bytes(), sets), {
                "name": "tflm", "what": "TFLite Micro Python interpreter (the MCU path's oracle)",
                "tolerance": _TOLERANCE}
        except FormicaryError:
            pass  # an op TFLM lacks: the LiteRT reference below
    return _litert(model, sets), {
        "name": "litert", "what": "LiteRT (ai_edge_litert) interpreter on the host", "tolerance": _TOLERANCE}


def _litert(model: Path, sets: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        raise FormicaryError("the host has no LiteRT interpreter for the reference outputs of this model.",
                             "pip install ai-edge-litert on the host.") from exc
    interp = Interpreter(model_path=str(model), num_threads=1)
    interp.allocate_tensors()
    out = []
    for s in sets:
        for d, t in zip(interp.get_input_details(), s):
            interp.set_tensor(d["index"], np.asarray(t).astype(d["dtype"]).reshape(d["shape"]))
        interp.invoke()
        out.append([interp.get_tensor(d["index"]).copy() for d in interp.get_output_details()])
    return out


def compare(device: list[np.ndarray], reference: list[np.ndarray]) -> tuple[bool, bool, float]:
    """(bit_exact, matches under the SBC rule above, largest absolute difference)."""
    exact, ok, diff = True, True, 0.0
    for d, r in zip(device, reference):
        r = np.asarray(r).reshape(d.shape)
        same = d.tobytes() == r.astype(d.dtype).tobytes()
        exact &= same
        if same:
            continue
        delta = np.abs(d.astype(np.float64) - r.astype(np.float64))
        diff = max(diff, float(delta.max()) if delta.size else 0.0)
        if d.dtype.kind == "f":
            ok &= bool(np.allclose(d, r, rtol=SBC_FLOAT_RTOL, atol=SBC_FLOAT_ATOL))
    if device and reference:
        ok &= int(np.argmax(device[0])) == int(np.argmax(np.asarray(reference[0])))
    return exact, ok, diff


def _decode(outputs: list[dict[str, Any]]) -> list[np.ndarray]:
    return [np.frombuffer(base64.b64decode(o["b64"]), dtype=np.dtype(o["dtype"])).reshape(o["shape"])
            for o in outputs]


def _energy(board: Board, samples: list[float], power_event: Event | None, host_power: Any,
            windows_counts: list[int], floor: float | None) -> tuple[dict | None, list | None]:
    """Measured energy (a sensor read on the board, or a host-side monitor) when there is one, else modelled."""
    from formicary.power.energy import energy_per_inference
    from formicary.power.sources import InferenceWindow, PowerSamples

    if power_event and power_event.get("samples") and len(power_event["samples"]) >= 2:
        pts = np.asarray(power_event["samples"], dtype=np.float64)
        keep = np.concatenate(([True], np.diff(pts[:, 0]) > 0))
        trace = PowerSamples(power_event["source"], "measured", pts[keep, 0], pts[keep, 1])
        wins = [InferenceWindow(a, b, int(n)) for a, b, n in power_event["windows"]
                if trace.t_s[0] <= a and b <= trace.t_s[-1] and n]
        if wins:
            e = energy_per_inference(trace, wins, min_duration_s=0.0, energy_floor_uj=floor).to_json()
            e["source"] = f"{power_event['source']}, read on the board by the agent"
            t0 = float(trace.t_s[0])
            return e, [[float(t) - t0, float(w)] for t, w in zip(trace.t_s, trace.power_w)]
    if host_power is not None:
        from formicary.bench.runner import _measured_energy

        e, trace = _measured_energy(host_power, windows_counts, {"45nm": floor} if floor else None)
        e["sync"] = ("host markers at the agent's hello and done events (they include the SSH round trip and the "
                     "warm-ups: an upper bound)")
        return e, trace
    if board.power is None or not samples:
        return None, None
    from formicary.power.modelled import modelled_energy

    e = modelled_energy(board.power, board.clock_hz, samples, board.name, energy_floor_uj=floor, timing_unit="ms")
    if board.virtual:
        e["source"] += "; EMULATED time (QEMU), not a real board's"
    return e, None


def run_sbc_bench(target: str | Path, board: str | Board, *, host: str | None = None, python: str | None = None,
                  workdir: str | None = None, runtime: str | None = None, threads: int | None = None,
                  xnnpack: bool | None = None, sensor: str | None = "auto", runs: int | None = None,
                  warmup: int = 1, data: str | Path | None = None, inputs: int | None = None,
                  profile: bool = False, store: Any = None, label: str | None = None, seed: int = 0,
                  run_timeout: float | None = None, power: Any = None, key: Path | None = None,
                  known_hosts: Path | None = None, on_event: Callable[[Event], None] | None = None,
                  _pause_after_input: float = 0.0) -> dict[str, Any]:
    """Bench TARGET (a .tflite) on the SBC BOARD and return the bench result (docs/bench-json.md, docs/sbc.md)."""
    from formicary.analysis import analyse
    from formicary.bench.routes import read_subgraphs
    from formicary.bench.runner import (
        DEFAULT_RANDOM_INPUTS,
        MIN_DEFAULT_RUNS,
        _host,
        _open_store,
        _split_runs,
        _variant,
        load_inputs,
        record_incomplete,
    )
    from formicary.store.results import now_iso
    from formicary.store.routes import subgraph_usage
    from formicary.store.stats import summarize
    from formicary.target.firmware import file_sha256
    from formicary.target.sbc import AgentRequest, open_sbc

    b = load_board(board) if isinstance(board, str) else board
    if run_timeout is None:  # the longest silence between two agent events (interpreter start-up included)
        run_timeout = 600.0 if b.virtual else 120.0  # emulation on a loaded host is slow to import numpy
    if not b.is_sbc:
        raise FormicaryError(f"{b.name} is not a single-board computer.", "use `formicary bench` without --host.")
    model = Path(target)
    if model.suffix != ".tflite" or not model.is_file():
        raise FormicaryError(f"{model} is not a .tflite file: an SBC runs the model in a TFLite runtime.",
                             "pass a .tflite (compile a Keras model first with `formicary compile`).")
    if warmup < 0:
        raise FormicaryError(f"--warmup must be >= 0, got {warmup}.", "pass --warmup 0 or more.")
    if runs is not None and runs < 1:
        raise FormicaryError(f"--runs must be >= 1, got {runs}.", "pass --runs 1 or more.")
    if data is None and inputs is None and runs is not None:
        inputs = min(DEFAULT_RANDOM_INPUTS, runs)
    ins = load_inputs(model, data, inputs, seed=seed)
    if runs is not None and runs < len(ins.sets):
        ins = LabelledInputs(ins.sets[:runs], ins.labels[:runs], ins.names[:runs], ins.source)
    total_runs = runs if runs is not None else max(len(ins.sets), MIN_DEFAULT_RUNS)
    per_input = _split_runs(total_runs, len(ins.sets))

    analysis = analyse(model, measure_arena=False)
    variant = _variant(analysis, model)
    reference, ref_info = host_reference(model, ins.sets, variant["quantization"])
    graphs = read_subgraphs(model)
    result: dict[str, Any] = {
        "schema": 1, "board": b.name, "virtual": b.virtual, "host": _host(),
        "started_at": None, "finished_at": None, "complete": False, "incomplete_reason": None,
        "model": {"path": str(model), "sha256": file_sha256(model), "name": label or model.stem, "variant": variant},
        "firmware": None,
        "settings": {"runs": total_runs, "warmup": warmup, "profile": profile, "data": ins.source,
                     "labels_mapped_by": None, "threads": threads, "xnnpack": xnnpack, "runtime": runtime,
                     "sensor": sensor, "profile_note": None},
        "latency": None, "layers": [], "bit_exact": None, "mismatches": 0, "inputs": 0, "accuracy": None,
        "outputs": [], "flash_bytes": None, "ram_bytes": None, "arena_bytes": None,
        "macs": int(analysis["macs"]), "effective_macs": int(analysis["effective_macs"]),
        "model_bytes": int(analysis["model_bytes"]),
        "energy": None, "energy_floor_uj": analysis.get("energy_floor_uj"), "power_samples": None,
        "energy_model": None,
        "subgraphs": subgraph_usage(None, [g["name"] for g in graphs], [g["ops"] for g in graphs]), "routes": None,
        "reference": ref_info, "sbc": None,
    }
    st, owns_store = _open_store(store)
    run_id: int | None = None
    samples: list[float] = []
    correct = labelled = 0
    link = None
    power_event: Event | None = None
    floor = (result["energy_floor_uj"] or {}).get("45nm")

    def emit(event: Event) -> None:
        if on_event:
            on_event({"board": b.name, **event})

    def snapshot() -> None:
        if result["latency"] is not None:
            result["latency"].update({k: v for k, v in summarize(samples).items() if k != "count"})
            result["latency"]["samples"] = list(samples)
            result["latency"]["estimate_ms"] = result["latency"]["median"]
        result["accuracy"] = (correct / labelled) if labelled else None

    try:
        link = open_sbc(b, host, python=python, workdir=workdir, key=key, known_hosts=known_hosts,
                        on_event=on_event)
        emit({"event": "connected", "url": link.url, "runtime_version": None, "connection": link.conn})
        request = AgentRequest(ins.sets, per_input, warmup, runtime=runtime, threads=threads, xnnpack=xnnpack,
                               profile=profile, sensor=sensor, pause_after_input=_pause_after_input)
        if power is not None:
            power.start()
        done = 0
        for ev in link.run_agent(model, request, timeout=run_timeout):
            kind = ev.get("event")
            if kind == "hello":
                result["started_at"] = now_iso()
                result["firmware"] = {"runtime": ev["runtime"], "runtime_version": ev["runtime_version"],
                                      "protocol_version": ev.get("agent"), "optimize": None, "kernels": None,
                                      "threads": ev.get("threads"), "xnnpack": ev.get("xnnpack")}
                result["sbc"] = {"url": link.url, "python": ev.get("python"), "executable": ev.get("executable"),
                                 "machine": ev.get("machine"), "kernel": ev.get("kernel"), "cpus": ev.get("cpus"),
                                 "runtimes_tried": ev.get("tried"), "sensor": ev.get("sensor"),
                                 "peak_rss_bytes": None, "emulated": b.virtual}
                result["settings"]["profile_note"] = ev.get("profile")
                result["latency"] = {"unit": "ms", "method": METHOD, "estimate_ms": None, "clock_hz": b.clock_hz,
                                     "samples": [], "routes": None, "emulated": b.virtual}
                if st is not None:
                    run_id = st.begin_run({k: v for k, v in result.items() if k not in ("outputs", "layers")})
                    result["run_id"], result["store_path"] = run_id, str(st.path)
                emit({"event": "start", "total": total_runs, "inputs": len(ins.sets), "run_id": run_id,
                      "runtime": ev["runtime"]})
                if power is not None:
                    power.mark("start")
            elif kind == "inference":
                samples.append(float(ev["ms"]))
                done += 1
                if st is not None and run_id is not None:
                    st.add_samples(run_id, [float(ev["ms"])])
                emit({"event": "inference", "done": done, "total": total_runs, "value": ev["ms"]})
            elif kind == "outputs":
                k = int(ev["input"])
                outs = _decode(ev["outputs"])
                exact, ok, diff = compare(outs, reference[k])
                predicted = int(np.argmax(outs[0]))
                verdict = {"input": ins.names[k], "label": ins.labels[k], "predicted": predicted,
                           "reference_predicted": int(np.argmax(np.asarray(reference[k][0]))),
                           "match_reference": ok, "route": None}
                if not exact:
                    verdict["max_abs_diff"] = diff
                result["outputs"].append(verdict)
                result["inputs"] += 1
                result["mismatches"] += int(not ok)
                result["bit_exact"] = (result["bit_exact"] is not False) and exact
                if ins.labels[k] is not None:
                    labelled += 1
                    correct += int(predicted == ins.labels[k])
                if st is not None and run_id is not None:
                    st.add_outputs(run_id, [verdict])
                    st.update_run(run_id, {"bit_exact": result["bit_exact"], "mismatches": result["mismatches"],
                                           "inputs": result["inputs"],
                                           "accuracy": (correct / labelled) if labelled else None})
                emit({"event": "input", "done_inputs": k + 1, "inputs": len(ins.sets), "match": ok})
            elif kind == "power":
                power_event = ev
                if ev.get("error"):
                    emit({"event": "warning", "message": f"power sensor stopped: {ev['error']}"})
            elif kind == "done":
                if power is not None:
                    power.mark("stop")
                result["ram_bytes"] = result["sbc"]["peak_rss_bytes"] = int(ev["peak_rss_bytes"])
        snapshot()
        # a host-side monitor's markers bracket the warm-ups too
        result["energy"], result["power_samples"] = _energy(b, samples, power_event, power,
                                                               [len(samples) + warmup], floor)
        result["complete"], result["finished_at"] = True, now_iso()
        if st is not None and run_id is not None:
            st.update_run(run_id, {"ram_bytes": result["ram_bytes"]})
            if result["power_samples"]:
                st.add_power_samples(run_id, result["power_samples"])
            st.set_energy(run_id, result["energy"], result["energy_floor_uj"])
            st.finish_run(run_id, True, finished_at=result["finished_at"])
        emit({"event": "done", "run_id": run_id})
        return result
    except BaseException as exc:
        snapshot()
        kept = record_incomplete(exc, result, st, run_id, len(samples), " (stored incomplete)")
        if kept and (samples or result["inputs"]):
            exc.cause = f"{exc.cause} {kept}"
        raise
    finally:
        if power is not None and getattr(power, "_running", False):
            try:
                power.stop()
            except Exception:  # noqa: BLE001
                pass
        if link is not None:
            link.close()
        if owns_store and st is not None:
            st.close()


def latency_line(result: dict[str, Any]) -> str:
    lat = result["latency"]
    parts = ", ".join(f"{k} {lat[k]:.3f}" for k in ("min", "median", "p90", "p99", "max") if lat.get(k) is not None)
    emu = " — EMULATED time on the virtual SBC (QEMU), not a real board's" if lat.get("emulated") else ""
    return f"{parts} ms/inference [{METHOD_TEXT}]{emu}"


__all__ = ["METHOD", "compare", "host_reference", "latency_line", "run_sbc_bench"]
