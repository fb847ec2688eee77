"""`formicary bench`: run a compiled model on a board and measure it, recording as it goes.

One bench = firmware (built or reused) → board (QEMU launched, or a serial port) → inputs (a labelled data folder
or seeded random tensors) → for each input: load, W warm-ups before the first, its share of the N timed runs,
read the outputs → compare every output with the TFLM interpreter → statistics, per-layer times, energy.

Every batch of results goes into the results store as soon as it arrives, so a board that dies, a Ctrl-C or a
crash leaves a run marked incomplete with everything collected so far; the FormicaryError raised then carries
the partial bench result (`partial`). The result dict is the contract in docs/bench-json.md.
"""
from __future__ import annotations

import hashlib
import json
import platform
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from formicary import __version__
from formicary.bench.power.sources import InferenceWindow, PowerSource
from formicary.boards import Board, load_board
from formicary.errors import FormicaryError
from formicary.store.stats import summarize

Event = dict[str, Any]
DEFAULT_RANDOM_INPUTS = 10
MIN_DEFAULT_RUNS = 10


@dataclass(frozen=True)
class Firmware:
    """A built firmware and the model it runs."""
    project_dir: Path
    elf: Path
    tflite: Path
    model_hash: str
    flash_bytes: int
    ram_bytes: int
    arena_bytes: int
    built: bool  # False when an existing build was reused
    optimize: str = "size"  # compiler optimisation (builds that predate the field were -Os)
    kernels: str = "reference"  # kernel set (builds that predate the field used the reference kernels)


@dataclass
class BenchInputs:
    sets: list[list[np.ndarray]]
    labels: list[int | None]
    names: list[str]
    source: str | None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def default_build_dir(model: Path, board: Board, firmware_mode: str = "bench", kernels: str = "reference") -> Path:
    """Builds are cached per model content, board, firmware mode and formicary version in the user cache
    directory."""
    from platformdirs import user_cache_dir

    from formicary.device.frames import PROTO_VERSION

    # the protocol version is in the key: a firmware speaking an older protocol must never be reused
    key = f"{model.stem}-{_sha256_of_target(model)[:12]}-{board.name}-{__version__}-p{PROTO_VERSION}"
    if firmware_mode != "bench":
        key += f"-{firmware_mode}"
    if kernels != "reference":  # A/B runs of kernel sets keep one build each
        key += f"-k{kernels}"
    return Path(user_cache_dir("formicary")) / "builds" / key


def prepare_firmware(target: str | Path, board: Board, *, out_dir: str | Path | None = None,
                     rebuild: bool = False, on_event: Callable[[Event], None] | None = None,
                     firmware_mode: str = "bench", command: str = "formicary bench",
                     kernels: str | None = None) -> Firmware:
    """TARGET is a project from `formicary build` (used as is) or a model (built unless a build of the same
    model for the same board, firmware mode and kernel set already exists in OUT_DIR). `kernels` overrides
    the board's kernel set."""
    from formicary.build import DEFAULT_OPTIMIZE, build_model, read_build_info, require_firmware_mode

    target = Path(target)
    if not target.exists():
        raise FormicaryError(f"{target} does not exist.",
                             "pass a model (.tflite/.keras/.h5) or a project made by `formicary build`.")
    built = False
    if target.is_dir() and (target / "formicary-build.json").is_file():
        project = target
        info = read_build_info(project)
        if info["board"] != board.name:
            raise FormicaryError(f"{target} was built for {info['board']}, not {board.name}.",
                                 f"build it for {board.name}: `formicary build MODEL --board {board.name} -o DIR`.")
        require_firmware_mode(info, project, (firmware_mode,), command)
        if kernels and info.get("kernels", "reference") != kernels:
            raise FormicaryError(f"{target} was built with the {info.get('kernels', 'reference')} kernels, not "
                                 f"{kernels}.", f"build it with them: `formicary build MODEL --board {board.name} "
                                 f"--kernels {kernels} -o DIR`, or drop --kernels.")
    elif target.is_file() or (target / "saved_model.pb").is_file():
        kernels = kernels or board.kernels
        project = Path(out_dir) if out_dir else default_build_dir(target, board, firmware_mode, kernels)
        info = None
        if not rebuild and (project / "formicary-build.json").is_file():
            info = read_build_info(project)
            if info.get("board") != board.name or not Path(info.get("elf", "")).is_file() \
                    or not Path(info.get("tflite", "")).is_absolute() or not Path(info["tflite"]).is_file() \
                    or info.get("model_sha256") != _sha256_of_target(target) \
                    or info.get("firmware_mode", "bench") != firmware_mode \
                    or info.get("optimize") != DEFAULT_OPTIMIZE \
                    or info.get("kernels", "reference") != kernels:
                info = None
        if info is None:
            if on_event:
                on_event({"event": "build", "board": board.name})
            # absolute paths: the cache outlives the cwd
            build_model(target.resolve(), board, project.resolve(), firmware_mode=firmware_mode, kernels=kernels)
            info = read_build_info(project)
            info["model_sha256"] = _sha256_of_target(target)
            (project / "formicary-build.json").write_text(json.dumps(info, indent=2) + "\n")
            built = True
    else:
        raise FormicaryError(f"{target} is a folder but not a project made by `formicary build`.",
                             "pass a model file, or run `formicary build MODEL --board B -o DIR` first.")
    elf = Path(info["elf"])
    if not elf.is_file():
        raise FormicaryError(f"the firmware {elf} of {project} is missing.", "rebuild it (`formicary build`).")
    return Firmware(project_dir=project, elf=elf, tflite=Path(info["tflite"]), model_hash=info["model_hash"],
                    flash_bytes=int(info["flash_bytes"]), ram_bytes=int(info["ram_bytes"]),
                    arena_bytes=int(info.get("arena_bytes") or 0), built=built,
                    optimize=str(info.get("optimize", "size")), kernels=str(info.get("kernels") or "reference"))


def _sha256_of_target(target: Path) -> str:
    if target.is_file():
        return _sha256(target)
    h = hashlib.sha256()
    for p in sorted(target.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(target)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def load_inputs(tflite: Path, data: str | Path | None, count: int | None, seed: int = 0) -> BenchInputs:
    """Labelled inputs from a data folder/.npz (the first COUNT), or COUNT seeded random tensors."""
    from formicary.data import fit_to_input, load_dataset
    from formicary.tflite import read_model
    from formicary.verify import random_inputs

    model = read_model(tflite)
    if count is not None and count < 1:
        raise FormicaryError(f"--inputs must be at least 1, got {count}.", "pass --inputs N with N >= 1.")
    if data is None:
        n = count or DEFAULT_RANDOM_INPUTS
        return BenchInputs(sets=random_inputs(model, n, seed=seed), labels=[None] * n,
                           names=[f"random-{seed}-{i}" for i in range(n)], source=None)
    if len(model.inputs) != 1:
        raise FormicaryError("--data works for single-input models only.", "use random inputs (omit --data).")
    t = model.input_tensors[0]
    ds = fit_to_input(load_dataset(data), (None, *t.shape[1:]), "--data")
    dt = np.dtype(t.np_dtype)
    n = len(ds) if count is None else min(count, len(ds))
    x = ds.x[:n]
    if np.issubdtype(dt, np.integer) and not np.issubdtype(x.dtype, np.integer):
        x = quantize_input(x, t)
    names = ds.names or [f"{Path(data).name}#{i}" for i in range(len(ds))]
    labels = [int(v) for v in ds.y[:n]] if ds.y is not None else [None] * n
    sets = [[np.asarray(x[i], dtype=dt).reshape(t.shape)] for i in range(n)]
    return BenchInputs(sets=sets, labels=labels, names=names[:n], source=str(data))


def quantize_input(x: np.ndarray, tensor) -> np.ndarray:
    """Real-valued samples -> the model's integer input (q = round(x / scale) + zero_point, saturated), as the
    TFLite converter's int8 input expects; the TFLM reference gets the very same integers."""
    q = tensor.quant
    if q is None or len(q.scale) == 0:
        raise FormicaryError(f"--data holds {x.dtype} samples but the model input {tensor.name!r} is "
                             f"{tensor.np_dtype} without quantization parameters.",
                             "give samples already in the model's input type.")
    info = np.iinfo(np.dtype(tensor.np_dtype))
    scaled = np.round(np.asarray(x, np.float64) / float(q.scale[0])) + int(q.zero_point[0])
    return np.clip(scaled, info.min, info.max).astype(np.dtype(tensor.np_dtype))


def _variant(analysis: dict[str, Any], tflite: Path) -> dict[str, Any]:
    """Quantization and sparsity read from the model itself; clusters and QAT from the `formicary compile`
    report beside it when there is one (a bare .tflite does not say how it was made: null)."""
    quant = analysis["quantization"]["precision"]
    sparsity = round(float(analysis["sparsity"]["overall"]), 4)
    clusters = qat = None
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
    label = quant + (f"-pruned{round(sparsity * 100)}" if sparsity >= 0.05 else "") + \
        (f"-clustered{clusters}" if clusters else "") + ("-qat" if qat else "")
    return {"quantization": quant, "sparsity": sparsity, "clusters": clusters, "qat": qat, "label": label}


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


def _connect(board: Board, fw: Firmware, port: str | None, *, timeout: float, run_timeout: float,
             on_event: Callable[[Event], None] | None):
    """A Connection to the board running `fw`: QEMU for virtual boards without a port; otherwise the serial
    port, flashing the board first when it answers with another model (or not at all)."""
    from formicary.device import connect_qemu, connect_serial
    from formicary.device.session import DeviceTimeout, ModelMismatchError

    if board.virtual and port is None:
        if on_event:
            on_event({"event": "flash", "board": board.name, "how": "qemu"})
        return connect_qemu(board.name, fw.elf, expect_model_hash=fw.model_hash, timeout=timeout,
                            run_timeout=run_timeout)
    if port is None:
        raise FormicaryError(f"{board.name} is a real board and no --port was given.",
                             "pass the board's serial port, e.g. --port /dev/ttyACM0 (or rfc2217://host:port).")
    try:
        return connect_serial(port, baud=board.uart.baud, expect_model_hash=fw.model_hash, timeout=timeout,
                              run_timeout=run_timeout)
    except (ModelMismatchError, DeviceTimeout) as exc:
        if board.virtual:
            raise  # a detached QEMU cannot be re-flashed over its serial port
        from formicary.flash import flash

        if on_event:
            on_event({"event": "flash", "board": board.name, "how": board.upload_protocol, "why": exc.cause})
        flash(fw.project_dir, board.name, port=port)
        return connect_serial(port, baud=board.uart.baud, expect_model_hash=fw.model_hash, timeout=timeout,
                              run_timeout=run_timeout)


def _matches(device: list[np.ndarray], reference: list[np.ndarray]) -> tuple[bool, bool, float]:
    """(bit-exact, within float tolerance, max abs diff) of one input's outputs."""
    from formicary.verify import FLOAT_ATOL, FLOAT_RTOL

    exact, close, diff = True, True, 0.0
    for d, r in zip(device, reference):
        r = np.asarray(r).reshape(d.shape)
        same = d.tobytes() == r.astype(d.dtype).tobytes()
        exact &= same
        delta = np.abs(d.astype(np.float64) - r.astype(np.float64))
        diff = max(diff, float(delta.max()) if delta.size else 0.0)
        close &= same or (d.dtype.kind == "f" and bool(np.allclose(d, r, rtol=FLOAT_RTOL, atol=FLOAT_ATOL)))
    return exact, close, diff


def _split_runs(runs: int, k: int) -> list[int]:
    """N timed runs over K inputs, in input order: every input at least once, the rest spread evenly."""
    return [runs // k + (1 if i < runs % k else 0) for i in range(k)]


def run_bench(target: str | Path, board: str | Board, *, port: str | None = None, runs: int | None = None,
              warmup: int = 1, data: str | Path | None = None, inputs: int | None = None, profile: bool = False,
              store: Any = None, out_dir: str | Path | None = None, label: str | None = None, seed: int = 0,
              rebuild: bool = False, timeout: float = 2.0, run_timeout: float = 60.0,
              power: PowerSource | None = None, kernels: str | None = None,
              on_event: Callable[[Event], None] | None = None) -> dict[str, Any]:
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
    from formicary.bench.power.ina import combine_device_energy, device_energy
    from formicary.reference import run_tflm

    b = load_board(board) if isinstance(board, str) else board
    if warmup < 0:
        raise FormicaryError(f"--warmup must be >= 0, got {warmup}.", "pass --warmup 0 or more.")
    if runs is not None and runs < 1:
        raise FormicaryError(f"--runs must be >= 1, got {runs}.", "pass --runs 1 or more.")
    if not b.virtual and port is None:
        raise FormicaryError(f"{b.name} is a real board and no --port was given.",
                             "pass the board's serial port, e.g. --port /dev/ttyACM0 (or rfc2217://host:port).")
    if data is None and inputs is None and runs is not None:
        inputs = min(DEFAULT_RANDOM_INPUTS, runs)  # random inputs: no more than there are runs
    fw = prepare_firmware(target, b, out_dir=out_dir, rebuild=rebuild, on_event=on_event, kernels=kernels)
    ins = load_inputs(fw.tflite, data, inputs, seed=seed)
    if runs is not None and runs < len(ins.sets):
        if on_event:
            on_event({"event": "warning", "board": b.name,
                      "message": f"--runs {runs} < {len(ins.sets)} inputs: only the first {runs} inputs are used"})
        ins = BenchInputs(ins.sets[:runs], ins.labels[:runs], ins.names[:runs], ins.source)
    total_runs = runs if runs is not None else max(len(ins.sets), MIN_DEFAULT_RUNS)
    per_input = _split_runs(total_runs, len(ins.sets))

    analysis = analyse(fw.tflite, measure_arena=False)
    reference = run_tflm(fw.tflite.read_bytes(), ins.sets)
    result: dict[str, Any] = {
        "schema": 1, "board": b.name, "virtual": b.virtual, "host": _host(),
        "started_at": None, "finished_at": None, "complete": False, "incomplete_reason": None,
        "model": {"path": str(fw.tflite), "sha256": _sha256(fw.tflite), "name": label or fw.tflite.stem,
                  "variant": _variant(analysis, fw.tflite)},
        "firmware": None,
        "settings": {"runs": total_runs, "warmup": warmup, "profile": profile, "data": ins.source},
        "latency": None, "layers": [], "bit_exact": None, "mismatches": 0, "inputs": 0, "accuracy": None,
        "outputs": [], "flash_bytes": fw.flash_bytes, "ram_bytes": fw.ram_bytes,
        "arena_bytes": fw.arena_bytes, "macs": int(analysis["macs"]), "model_bytes": int(analysis["model_bytes"]),
        "energy": None, "energy_floor_uj": analysis.get("energy_floor_uj"), "power_samples": None,
    }
    st, owns_store = _open_store(store)
    run_id: int | None = None
    samples: list[int] = []
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
        result["layers"] = [{**meta, "median": float(np.median(meta["samples"])) if meta["samples"] else None}
                            for _, meta in sorted(layer_samples.items())]
        result["accuracy"] = (correct / labelled) if labelled else None
        return result

    try:
        conn = _connect(b, fw, port, timeout=timeout, run_timeout=run_timeout, on_event=on_event)
        session = conn.session
        info = session.info
        # `connection` is for in-process observers (fault-injection tests); fleets ignore it
        emit({"event": "connected", "url": conn.url, "runtime_version": info.runtime_version, "connection": conn})
        from formicary.store.results import now_iso

        result["started_at"] = now_iso()
        result["firmware"] = {"runtime_version": info.runtime_version, "protocol_version": info.protocol_version,
                              "optimize": fw.optimize, "kernels": fw.kernels}
        result["latency"] = {"unit": info.timing_unit, "method": info.timing_method, "estimate_ms": None,
                             "clock_hz": b.clock_hz, "samples": []}
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
                        samples.extend(lost)
                        if st is not None and run_id is not None:
                            st.add_samples(run_id, lost)
                    raise
                got.extend(rr.values)
                remaining -= chunk
                first = False
                if st is not None and run_id is not None:
                    st.add_samples(run_id, rr.values)
                samples.extend(rr.values)
            done += len(got)
            outs = []
            for j, spec in enumerate(info.outputs):
                raw = session.read_output(j)
                outs.append(np.frombuffer(raw, dtype=np.dtype(spec.dtype)).reshape(spec.shape))
            exact, close, diff = _matches(outs, ref)
            predicted = int(np.argmax(outs[0]))
            verdict = {"input": ins.names[k], "label": ins.labels[k], "predicted": predicted,
                       "reference_predicted": int(np.argmax(np.asarray(ref[0]))),
                       "match_reference": bool(exact or close)}
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
                for lt in session.read_layer_timings():
                    meta = layer_samples.setdefault(lt.index, {"index": lt.index, "op": lt.op_type, "name": lt.name,
                                                              "macs": lt.macs, "unit": info.timing_unit,
                                                              "samples": []})
                    meta["samples"].append(lt.value)
                    new_layers.append({**{k2: v for k2, v in meta.items() if k2 != "samples"},
                                       "samples": [lt.value]})
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
        reason = ("interrupted by the user (Ctrl-C)" if isinstance(exc, KeyboardInterrupt) else
                  exc.cause if isinstance(exc, FormicaryError) else f"{type(exc).__name__}: {exc}")
        snapshot()
        result["incomplete_reason"] = reason
        if st is not None and run_id is not None:
            try:
                st.finish_run(run_id, False, reason)
            except Exception:  # never mask the original failure
                pass
        if isinstance(exc, FormicaryError):
            kept = f" {len(samples)} inference(s) and {result['inputs']} output check(s) were kept" + (
                f" in run {run_id} of {st.path}." if run_id is not None else ".")
            exc.partial = result
            exc.details = {**(exc.details or {}), "kept": kept.strip(), "run_id": run_id}
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
    from formicary.bench.power.modelled import modelled_energy

    e = modelled_energy(board.power, board.clock_hz, samples, board.name,
                        energy_floor_uj=(floor or {}).get("45nm"))
    return e


def _measured_energy(power: PowerSource, counts: list[int], floor: dict[str, float] | None
                     ) -> tuple[dict[str, Any], list[list[float]]]:
    """Energy per inference from a host-side monitor over the RUN windows: the sync line's windows when the
    monitor recorded one per RUN, otherwise the host's serial markers (coarser: they include the serial
    round trip, so the energy is an upper bound)."""
    from formicary.bench.energy import energy_per_inference, windows_from_gpio

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


METHOD_TEXT = {"qemu-icount-systick": "retired instructions: QEMU -icount, read through SysTick",
               "dwt-cyccnt": "core cycles: DWT CYCCNT"}


def latency_line(result: dict[str, Any]) -> str:
    """min/median/p90/p99/max with the unit and method, for human views."""
    lat = result["latency"]
    unit = lat["unit"]
    parts = ", ".join(f"{k} {lat[k]:,.0f}" for k in ("min", "median", "p90", "p99", "max") if lat.get(k) is not None)
    est = f" (≈ {lat['estimate_ms']:.2f} ms at {result['latency'].get('clock_hz', 0) / 1e6:g} MHz, an estimate)" \
        if lat.get("estimate_ms") is not None and unit == "instructions" else ""
    how = METHOD_TEXT.get(lat["method"], lat["method"])
    return f"{parts} {unit}/inference{est} [{how}]"


__all__ = ["run_bench", "prepare_firmware", "load_inputs", "Firmware", "latency_line", "default_build_dir"]
