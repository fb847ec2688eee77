"""Static analysis of a .tflite model: sizes, MACs, sparsity, quantization, TFLM verdict and arena, energy
floor and board fit. TensorFlow is never imported; the TFLM interpreter is imported only for the measured parts.

`analyse()` returns the report.json contract (docs/report-json.md): keys are added over time, never renamed.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from formicary.analysis import compat, energy, routes, stats
from formicary.analysis.fit import board_fit
from formicary.analysis.macs import MAC_OPS, count_op, effective_macs
from formicary.tflite import ModelIR, read_model

ARENA_METHOD = "measured: smallest arena_size the TFLM interpreter allocates and invokes with (host build, bisection)"


def analyse(model: bytes | str | Path, board: str | None = None, measure_arena: bool = True,
            rt_ops: Iterable[str] | None = None, kernels: str | None = None,
            arena_bytes: int | None = None) -> dict[str, Any]:
    """The report for `model` (.tflite path or bytes); with `board`, whether it fits that board. `rt_ops`: the
    opcodes formicary-rt lowers (`formicary.codegen.supported_opcodes()`, passed in by the caller because
    analysis sits below codegen); without it, per-op `support.formicary_rt` is null (unknown).

    `energy_model` (docs/energy.md) follows the loops of the `kernels` set (default: the board's, else
    reference) with activations priced at the level of `arena_bytes` (default: TFLM's measured arena, else the
    largest live activation set).

    Raises FormicaryError for unreadable models or an unknown board. A model TFLM refuses is reported
    (tflm_compatible false, tflm_error) rather than raised.
    """
    if isinstance(model, (str, Path)):
        ir = read_model(model)  # names the path in its error for missing or malformed files
        data = Path(model).read_bytes()
    else:
        data = bytes(model)
        ir = read_model(data)
    report = _static(ir, data, None if rt_ops is None else set(rt_ops))

    compatible, error = compat.tflm_verdict(data)
    report["tflm_compatible"] = compatible
    report["tflm_error"] = error
    arena = None
    if compatible and measure_arena:
        from formicary.oracle.tflm import measure_arena as _measure

        arena = _measure(data)
    report["tflm_arena_bytes"] = arena
    report["tflm_arena"] = {"bytes": arena, "unit": "B",
                            "method": ARENA_METHOD if arena is not None else
                            ("not measured: TFLM refused the model" if not compatible else "not measured (skipped)")}
    report["board_fit"] = _fit(board, len(data), arena) if board else None
    if board and report["board_fit"] is not None:
        report["board_fit"]["formicary_rt"] = _rt_fit(data, board, kernels)
    report["energy_model"] = _energy_model(ir, report, board, kernels, arena_bytes)
    return report


def _energy_model(ir: ModelIR, report: dict, board: str | None, kernels: str | None,
                  arena_bytes: int | None) -> dict:
    from formicary.analysis.energy_model import model_energy, weights_memory

    b = None
    if board:
        from formicary.boards import load_board

        b = load_board(board)
    ks = kernels or (b.kernels if b is not None else "reference")
    if arena_bytes is not None:
        arena, method = arena_bytes, "given: formicary-rt's planned arena"
    elif report.get("tflm_arena_bytes") is not None:
        arena, method = report["tflm_arena_bytes"], "measured: TFLM arena (host build)"
    else:
        arena, method = report["peak_live_activations_bytes"], "lower bound: largest live activation set"
    kwargs = {"kernels": ks, "arena_bytes": int(arena), "arena_method": method,
              "board": b.name if b is not None else None, "weights_in": weights_memory(b)}
    if ir.subgraph_count > 1:
        per_route = routes.route_energy(ir, lambda view: model_energy(view, **kwargs))
        if per_route:
            return per_route
    return model_energy(ir, **kwargs)


def _rt_fit(data: bytes, board: str, kernels: str | None) -> dict | None:
    """formicary-rt's arena under each memory plan (as a firmware build plans it: inputs preserved) against the
    board's RAM, and the plans it fits with; None when formicary-rt cannot compile the model."""
    from formicary.boards import load_board
    from formicary.codegen import memory_plans
    from formicary.errors import FormicaryError

    b = load_board(board)
    try:
        plans = memory_plans(data, kernels or b.kernels, preserve_inputs=True)
    except FormicaryError:
        return None
    fits = [p["plan"] for p in plans["plans"] if p["arena_bytes"] <= b.ram_bytes]
    only = fits[0] if len(fits) == 1 and len(plans["plans"]) > 1 else None
    return {**plans, "ram_available_bytes": b.ram_bytes, "fits_with": fits, "fits_only_with": only,
            "method": "arena bytes per plan (codegen, inputs preserved as in firmware builds); the firmware's "
                      "other RAM (stack, protocol buffers) not counted"}


def _fit(board: str, flash_needed: int, arena: int | None) -> dict:
    from formicary.boards import load_board

    b = load_board(board)
    fit = board_fit(board_name=b.name, flash_available=b.flash_bytes, ram_available=b.ram_bytes,
                    flash_needed=flash_needed, ram_needed=arena, ram_method=ARENA_METHOD)
    fit["core"] = b.core
    fit["clock_hz"] = b.clock_hz
    return fit


def _static(ir: ModelIR, data: bytes, rt_ops: set[str] | None) -> dict[str, Any]:
    layers: list[dict] = []
    const_seen: set[int] = set()
    param_seen: set[int] = set()
    weights_bytes = params = zeros = weight_elems = 0
    total_adds = total_mults = 0
    precisions: list[str] = []
    peak_live = 0
    compute_pj = {n: 0.0 for n in energy.NODES}
    quant_counter: Counter = Counter()

    for op in ir.operators:
        ins = ir.op_inputs(op)
        outs = ir.op_outputs(op)
        counts = count_op(ir, op)
        precision = stats.layer_precision(ins)
        if counts.macs or counts.adds or counts.mults:
            precisions.append(precision)
        tensors = []
        l_params = l_wbytes = l_zeros = l_welems = 0
        for pos, t in enumerate(ins):
            if t is None:
                continue
            role = stats.tensor_role(ir, op, pos, t)
            tensors.append(_tensor_entry(t, role, "input"))
            if t.is_constant:
                l_wbytes += t.nbytes
                if t.index not in const_seen:
                    const_seen.add(t.index)
                    weights_bytes += t.nbytes
            if role in ("weights", "bias"):
                l_params += t.numel
                if role == "weights":
                    z = stats.zero_count(t)
                    l_zeros += z
                    l_welems += t.numel
                if t.index not in param_seen:
                    param_seen.add(t.index)
                    params += t.numel
                    if role == "weights":
                        zeros += z
                        weight_elems += t.numel
        tensors += [_tensor_entry(t, "activation", "output") for t in outs]
        live = sum(t.nbytes for t in {t.index: t for t in ins + outs if t is not None and not t.is_constant}.values())
        peak_live = max(peak_live, live)
        mult_key, add_key = energy.arithmetic_types(precision)
        table_ops = energy.table()["ops"]
        l_pj = {n: (counts.macs + counts.mults) * table_ops[mult_key][n] + (counts.macs + counts.adds)
                * table_ops[add_key][n] for n in energy.NODES}
        for n in energy.NODES:
            compute_pj[n] += l_pj[n]
        total_adds += counts.adds
        total_mults += counts.mults
        layers.append({
            "index": op.index, "op": op.opcode, "version": op.version, "options": op.options,
            "tensors": tensors, "params": l_params, "weights_bytes": l_wbytes,
            "macs": counts.macs, "effective_macs": effective_macs(ir, op, counts.macs), "adds": counts.adds, "mults": counts.mults, "precision": precision,
            "sparsity": (l_zeros / l_welems) if l_welems else None,
            "support": compat.op_support(op.opcode, rt_ops),
            "energy_compute_pj": {n: round(v, 3) for n, v in l_pj.items()},
        })

    # Every constant tensor lives in flash, even ones no operator reads (counted so weights_bytes is the truth).
    for t in ir.tensors:
        if t.is_constant and t.index not in const_seen:
            const_seen.add(t.index)
            weights_bytes += t.nbytes
    activations = [t for t in ir.tensors if not t.is_constant]
    act_bytes = sum(t.nbytes for t in activations)
    for t in ir.tensors:
        quant_counter[_scheme(t)] += 1

    macs = sum(layer["macs"] for layer in layers)
    eff_macs = sum(layer["effective_macs"] for layer in layers)
    precision = stats.model_precision(precisions)
    working_set = weights_bytes + peak_live
    memory_bytes = weights_bytes + 2 * act_bytes
    floor = energy.energy_floor(macs=macs, adds=total_adds, mults=total_mults,
                                precision=precision if precision in ("int8", "int16x8", "float16", "float32")
                                else "float32", memory_bytes=memory_bytes, working_set_bytes=working_set)
    # Per-layer precisions may differ (mixed models): the compute part is the per-layer sum.
    mem_pj = {n: floor["per_node"][n]["memory_uj"] * 1e6 for n in energy.NODES}
    floor_uj = {n: round((compute_pj[n] + mem_pj[n]) * 1e-6, 6) for n in energy.NODES}
    floor["per_node"] = {n: {"total_uj": floor_uj[n], "compute_uj": round(compute_pj[n] * 1e-6, 6),
                             "memory_uj": round(mem_pj[n] * 1e-6, 6)} for n in energy.NODES}
    floor["precision"] = precision
    floor["table_sources"] = energy.table()["sources"]

    unknown = sorted({layer["op"] for layer in layers if not layer["support"]["tflm"]})
    return {
        "model_bytes": len(data),
        "weights_bytes": weights_bytes,
        "params": params,
        "macs": macs,
        "effective_macs": eff_macs,   # MACs with a non-zero weight (what a zero-skipping kernel still does)
        "ops": dict(Counter(layer["op"] for layer in layers)),
        "layers": layers,
        "sparsity": {"overall": (zeros / weight_elems) if weight_elems else 0.0, "zero_weights": zeros,
                     "weights": weight_elems,
                     "method": "fraction of weight elements (not biases) whose real value is exactly 0"},
        "quantization": {
            "precision": precision,
            "inputs": [stats.io_quant(t) for t in ir.input_tensors],
            "outputs": [stats.io_quant(t) for t in ir.output_tensors],
            "tensors": dict(quant_counter),
            "dtypes": dict(Counter(t.dtype for t in ir.tensors)),
        },
        "energy_floor_uj": floor_uj,
        "energy_floor": floor,
        "activations_bytes": act_bytes,
        "peak_live_activations_bytes": peak_live,
        "unknown_ops": unknown,
        "mac_ops": sorted(MAC_OPS),
        "subgraphs": ir.subgraph_count,
        # multi-subgraph (IF) models: MACs/params per subgraph and per route (null for one subgraph); the keys
        # above count subgraph 0 only, as they always have
        "control_flow": routes.control_flow(ir),
        "schema_version": ir.schema_version,
    }


def _scheme(t) -> str:
    q = t.quant
    if q is None or q.scale.size == 0:
        return "none"
    return "per-channel" if q.per_channel else "per-tensor"


def _tensor_entry(t, role: str, direction: str) -> dict:
    return {"index": t.index, "name": t.name, "direction": direction, "role": role, "shape": list(t.shape),
            "dtype": t.dtype, "bytes": t.nbytes, "quantization": stats.quant_dict(t)}
