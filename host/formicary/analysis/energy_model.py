"""Where the energy of one inference goes, per layer: arithmetic vs weight reads vs activation traffic (modelled).

Prices come from the energy-per-operation table (energy_table.json, kept as data with its sources: Jouppi et al.,
ISCA 2021, Table 2; its 45 nm column is Horowitz, ISSCC 2014); counts come from the tensor shapes and the loop
structure of the formicary-rt kernel that runs each layer (reference / dsp / helium; `firmware/kernels/<set>/`).
Nothing here is measured. docs/energy.md has the same rules as tables, with worked numbers.

Pricing
- Memory energy scales with the bits moved: a byte costs 1/8 of the table's per-64-bit-access figure. Narrow
  loads (the reference kernels' LDRSB) therefore cost less here than on silicon, where a narrow read still
  activates a whole SRAM row: the model favours the reference kernels, never the optimized ones.
- Weights, biases and requantization constants are `static const` arrays: the linker puts them in flash on
  every board formicary builds for (`weights_memory`). The table has no flash entry; embedded NOR flash is priced
  as the 1 MB SRAM level (an assumption written in the table's `memory_assumed` entry).
- Activations and kernel scratch live in the arena, priced at the smallest SRAM level that holds it (<= 8 KB,
  <= 32 KB, <= 1 MB; DRAM beyond). The arena is the caller's number: formicary-rt's planned arena in `bench`,
  TFLM's measured arena (else the live-activation lower bound) in `inspect`.
- Compute: an int8 MAC is an int8 multiply + an int32 add (accumulation in 32 bits, also for SMLAD / VMLADAVA
  whose lanes are widened int8); int16x8 uses int32 multiply + int32 add (no 16-bit entry); float32 uses fp32.
  Padding lanes the optimized kernels compute (depth rounded to 4 or 16, channels to 2, 4 or 8) are counted:
  they are executed. Requantization per int8 output: 1 int32 multiply + 2 int32 adds (rounding, output offset);
  a bias added in the loop's epilogue: 1 add. The reference int8 kernels add the input offset per MAC (and
  FULLY_CONNECTED the filter offset too): 1 int32 add each; dsp and helium fold them into the bias ahead of time.
- Not counted: instruction fetch, address arithmetic, loop control, register traffic, widening instructions
  (SXTB16), leakage.

Access counts per op and kernel set (P output pixels x batches, OC output channels, K = kh*kw*in_c/groups the
reduction depth, M = P*OC*K MACs, Kn = K rounded up to n, OCn = OC rounded up to n, b() bytes per element):
- reference CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED (and every float or int16 layer, whatever the set):
  each weight read once per output pixel (M weight reads), each input read once per MAC (M), each output written
  once, bias + multiplier + shift read once per output. Block-sparse (int8, when codegen picks it): only stored
  1x4 blocks are read and multiplied, plus a 2-byte column index per block and pixel.
- dsp CONV_2D: 2 pixels x 2 channels micro-kernel over an int16 panel: the input window read once per pixel and
  written to the panel (int16), each packed weight read once per pixel pair (int16 pre-extended weights: 2 bytes
  each, compact int8: 1; `gemm.wide_weights` decides per layer), each panel element read once per channel pair,
  int32 accumulators written and read once, folded bias + requantization row (16 B) per channel and pixel pair.
- dsp FULLY_CONNECTED: 4-row GEMV: each weight read once per batch row, each input byte once per 4 output rows.
- dsp DEPTHWISE_CONV_2D (multiplier 1): input read once into an int16 zero-point-padded slab; 3x3 / stride-1
  path: the channel's 9 weights stay in registers (read once per band), two neighbouring outputs take 9 word
  loads (36 B for 18 MACs: 2 slab bytes per MAC), int32 accumulators through the stack; other windows: 1 weight
  byte and 2 slab bytes per MAC.
- helium CONV_2D / FULLY_CONNECTED: 2 rows x 4 channels VMLADAVA tile: each weight read once per row pair, each
  row byte once per 4 channels; 1x1 and FULLY_CONNECTED read the input in place, other windows copy each pixel's
  window into an im2col row (read K, write K16) first; folded bias + requantization (16 B) per channel per pair.
- helium DEPTHWISE_CONV_2D (multiplier 1): input rows staged once; per block of 8 channels, tap and output
  pixel one 8-byte activation load and one int16 weight load; 128 B of bias/requantization per block and pixel.
- TRANSPOSE_CONV, BATCH_MATMUL (no modelled kernel loop): every operand read once per MAC.
- every other op, every set: each input element read once per use (pooling: once per window tap; SOFTMAX: three
  passes), each output written once, constant operands read from flash once per use; RESHAPE/SQUEEZE/EXPAND_DIMS
  alias their input (no traffic). Their arithmetic is `macs.count_op`'s adds/mults at the layer's precision.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from formicary.analysis import energy, stats
from formicary.analysis.macs import count_op
from formicary.tflite import ModelIR, Operator, Tensor

METHOD = "modelled"
ALIAS_OPS = frozenset({"RESHAPE", "SQUEEZE", "EXPAND_DIMS"})
_KERNEL_FN = {"CONV_2D": "fm_conv2d", "DEPTHWISE_CONV_2D": "fm_depthwise_conv2d",
              "FULLY_CONNECTED": "fm_fully_connected"}
REQUANT_BYTES = 8  # reference int8: multiplier + shift (int32 each) per output


@dataclass
class LayerCounts:
    """What one layer does per inference: arithmetic by table entry, bytes by where they live."""
    kernel: str                                    # which kernel path the counts follow
    ops: Counter = field(default_factory=Counter)  # table op entry -> count
    macs: int = 0                                  # MACs executed (padding lanes included)
    weight_read_bytes: int = 0                     # constant weights, from flash
    param_read_bytes: int = 0                      # bias / requantization constants, from flash
    act_read_bytes: int = 0                        # activations and scratch read from the arena
    act_write_bytes: int = 0                       # activations and scratch written to the arena


def _up(n: int, m: int) -> int:
    return -(-n // m) * m


def _elem(t: Tensor | None) -> int:
    return t.nbytes // t.numel if t is not None and t.numel else 1


def _mac_ops(c: LayerCounts, precision: str, macs: int) -> None:
    mult, add = energy.arithmetic_types(precision)
    c.macs += macs
    c.ops[mult] += macs
    c.ops[add] += macs


def _epilogue(c: LayerCounts, precision: str, outputs: int, *, bias_in_loop: bool) -> None:
    """Per output: bias add (when not folded) and, for integer layers, TFLM's requantization."""
    _, add = energy.arithmetic_types(precision)
    if bias_in_loop:
        c.ops[add] += outputs
    if precision in ("int8", "int16x8"):
        c.ops["int32_mult"] += outputs
        c.ops["int32_add"] += 2 * outputs


def _geometry(op: Operator, ins: list, out: Tensor) -> dict[str, int]:
    n, oh, ow, oc = (list(out.shape) + [1, 1, 1, 1])[:4] if len(out.shape) == 4 else (1, 1, 1, out.shape[-1])
    f = ins[1].shape
    return {"n": n, "oh": oh, "ow": ow, "oc": oc, "kh": f[1], "kw": f[2], "kc": f[3],
            "in_h": ins[0].shape[1], "in_w": ins[0].shape[2], "in_c": ins[0].shape[3],
            "sh": int(op.options.get("stride_h", 1)), "sw": int(op.options.get("stride_w", 1)),
            "dh": int(op.options.get("dilation_h_factor", 1)), "dw": int(op.options.get("dilation_w_factor", 1))}


class _SetShim:
    """What codegen.ops.sparse.pays reads from a lowering context."""
    def __init__(self, ks) -> None:
        self.kernel_set = ks


def _owner(kernels: str, fn: str) -> str:
    from formicary.codegen.kernel_sets import kernel_set

    return kernel_set(kernels).owner_of_kernel(fn).name


def _sparse_blocks(kernels: str, op_code: str, filt: Tensor) -> int | None:
    """Stored 1x4 blocks when codegen lowers this filter to a block-sparse kernel, else None."""
    from formicary.codegen.kernel_sets import kernel_set
    from formicary.codegen.ops import sparse

    dense = _KERNEL_FN[op_code] + "_s8"
    if not sparse.pays(filt, _SetShim(kernel_set(kernels)), dense):
        return None
    return int((sparse.blocks_of(np.asarray(filt.data)) != 0).any(axis=2).sum())


def _dsp_wide(op_code: str, filt: Tensor, out_shape: tuple, filter_offset: int) -> bool:
    from formicary.codegen.packing import PackRequest
    from formicary.codegen.sets.dsp.gemm import wide_weights

    shape4 = tuple((list(out_shape) + [1, 1, 1, 1])[:4]) if len(out_shape) == 4 else \
        (1, 1, int(np.prod(out_shape[:-1])), out_shape[-1])
    req = PackRequest(kernel=_KERNEL_FN[op_code] + "_s8", filter=np.asarray(filt.data), bias=None,
                      input_offset=0, filter_offset=filter_offset, output_shape=shape4)
    return wide_weights(req)


def layer_counts(ir: ModelIR, op: Operator, kernels: str = "reference") -> LayerCounts:
    """Arithmetic and memory traffic of one operator run by formicary-rt's `kernels` set (module docstring)."""
    ins = ir.op_inputs(op)
    outs = [t for t in ir.op_outputs(op) if t is not None]
    code = op.opcode
    precision = stats.layer_precision(ins)
    out = outs[0] if outs else None
    if code in ALIAS_OPS:
        return LayerCounts(kernel="alias (no copy)")
    if code in _KERNEL_FN and out is not None and len(ins) > 1 and ins[1] is not None and ins[1].is_constant:
        return _mac_layer(ir, op, ins, out, precision, kernels)
    return _other_layer(ir, op, ins, outs, precision)


_ELEMENTWISE = frozenset({"ADD", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE"})
_POOLS = frozenset({"AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D"})


def _other_layer(ir: ModelIR, op: Operator, ins: list, outs: list, precision: str) -> LayerCounts:
    """Ops without a modelled kernel loop: one read per input element used, one write per output."""
    c = LayerCounts(kernel="generic: each input element read once per use, each output written once")
    counts = count_op(ir, op)
    mult, add = energy.arithmetic_types(precision)
    c.ops[mult] += counts.mults
    c.ops[add] += counts.adds
    n_out = sum(t.numel for t in outs)
    code = op.opcode
    if counts.macs:  # TRANSPOSE_CONV, BATCH_MATMUL, a convolution with a run-time filter: reference-like loops
        c.kernel = "MAC op without a modelled kernel: every operand read once per MAC"
        _mac_ops(c, precision, counts.macs)
        for t in ins:
            if t is not None and t.dtype not in ("int32", "int64") and len(t.shape) > 1:
                if t.is_constant:
                    c.weight_read_bytes += counts.macs * _elem(t)
                else:
                    c.act_read_bytes += counts.macs * _elem(t)
        c.act_write_bytes += sum(t.nbytes for t in outs)
        return c
    for t in ins:
        if t is None:
            continue
        if t.is_constant:
            if t.dtype in ("int32", "int64") and code not in ("ADD", "SUB", "MUL"):
                continue  # shape / axis operands: read once at set-up, not per element
            c.weight_read_bytes += (n_out if code in _ELEMENTWISE else t.numel) * _elem(t)
        elif code in _POOLS:
            window = int(op.options.get("filter_height", 1)) * int(op.options.get("filter_width", 1))
            c.act_read_bytes += n_out * window * _elem(t)
            c.kernel = "pooling: each input read once per window tap"
        elif code in ("SOFTMAX", "LOG_SOFTMAX"):
            c.act_read_bytes += 3 * t.nbytes
            c.kernel = "softmax: three passes over the input (max, sum of exponentials, outputs)"
        elif code in _ELEMENTWISE:
            c.act_read_bytes += n_out * _elem(t)  # broadcasting reads an element once per output using it
        else:
            c.act_read_bytes += t.nbytes
    c.act_write_bytes += sum(t.nbytes for t in outs)
    return c


def _mac_layer(ir: ModelIR, op: Operator, ins: list, out: Tensor, precision: str, kernels: str) -> LayerCounts:
    code = op.opcode
    inp, filt = ins[0], ins[1]
    bias = ins[2] if len(ins) > 2 else None
    ab_in, ab_out, wb = _elem(inp), _elem(out), _elem(filt)
    bias_b = _elem(bias) if bias is not None else 0
    int8 = precision == "int8" and filt.dtype == "int8"
    owner = _owner(kernels, _KERNEL_FN[code] + "_s8") if int8 else "reference"

    if code == "FULLY_CONNECTED":
        units, depth = filt.shape[0], filt.shape[-1]
        rows = inp.numel // depth if depth else 0
        g = {"P": rows, "OC": units, "K": depth}
    else:
        geo = _geometry(op, ins, out)
        p = geo["n"] * geo["oh"] * geo["ow"]
        k = geo["kh"] * geo["kw"] * (1 if code == "DEPTHWISE_CONV_2D" else geo["kc"])
        g = {"P": p, "OC": geo["oc"], "K": k, **geo}
    P, OC, K = g["P"], g["OC"], g["K"]
    outputs = P * OC
    per_output_params = bias_b + (REQUANT_BYTES if precision in ("int8", "int16x8") else 0)

    sparse_blocks = None
    if int8 and code in ("CONV_2D", "FULLY_CONNECTED") and (code == "FULLY_CONNECTED" or g["in_c"] == g["kc"]):
        fzp = 0
        if code == "FULLY_CONNECTED" and filt.quant is not None and filt.quant.zero_point.size:
            fzp = int(filt.quant.zero_point[0])
        if fzp == 0:
            sparse_blocks = _sparse_blocks(kernels, code, filt)

    c = LayerCounts(kernel="")
    if sparse_blocks is not None:
        sp_owner = _owner(kernels, _KERNEL_FN[code] + "_sparse_s8")
        if sp_owner == "reference":
            c.kernel = "reference block-sparse: stored 1x4 blocks once per output pixel, 2 B column index each"
            _mac_ops(c, precision, P * sparse_blocks * 4)
            c.ops["int32_add"] += P * sparse_blocks * 4  # input offset per MAC
            c.weight_read_bytes = P * sparse_blocks * (4 + 2)
            c.act_read_bytes = P * sparse_blocks * 4
            c.param_read_bytes = outputs * (per_output_params + 4)  # + row start per output
            _epilogue(c, precision, outputs, bias_in_loop=bias is not None)
        else:
            quads = -(-P // 4)
            c.kernel = f"{sp_owner} block-sparse: 4-pixel int16 panel, stored blocks once per 4 pixels"
            _mac_ops(c, precision, quads * 4 * sparse_blocks * 4)
            c.weight_read_bytes = quads * sparse_blocks * (4 + 2)
            c.act_read_bytes = P * K * ab_in + quads * sparse_blocks * 32
            c.act_write_bytes = P * _up(K, 4) * 2
            c.param_read_bytes = outputs * 16
            _epilogue(c, precision, outputs, bias_in_loop=False)
        c.act_write_bytes += outputs * ab_out
        return c

    if owner == "dsp" and code in ("CONV_2D", "FULLY_CONNECTED"):
        fzp = 0
        if code == "FULLY_CONNECTED" and filt.quant is not None and filt.quant.zero_point.size == 1:
            fzp = -int(filt.quant.zero_point[0])
        wide = _dsp_wide(code, filt, out.shape, fzp)
        wbe = 2 if wide else 1
        layout = "int16 pre-extended weights" if wide else "compact int8 weights"
        Kp = _up(K, 4)
        if code == "CONV_2D":
            groups = max(g["in_c"] // g["kc"], 1)
            OCp = groups * _up(OC // groups, 2)
            pairs = -(-P // 2)
            c.kernel = f"dsp 2x2 micro-kernel over an int16 panel, {layout}"
            _mac_ops(c, precision, 2 * pairs * OCp * Kp)
            c.weight_read_bytes = pairs * OCp * Kp * wbe
            c.act_read_bytes = P * K * ab_in + 2 * pairs * OCp * Kp + 2 * pairs * OCp * 4
            c.act_write_bytes = P * Kp * 2 + 2 * pairs * OCp * 4
            c.param_read_bytes = pairs * OCp * 16
        else:
            OC4 = _up(OC, 4)
            c.kernel = f"dsp 4-row GEMV, {layout}"
            _mac_ops(c, precision, P * OC4 * Kp)
            c.weight_read_bytes = P * OC4 * Kp * wbe
            c.act_read_bytes = P * (OC4 // 4) * Kp * ab_in
            c.param_read_bytes = outputs * 16
        _epilogue(c, precision, outputs, bias_in_loop=False)
    elif owner == "dsp" and code == "DEPTHWISE_CONV_2D" and g["oc"] == g["in_c"]:
        C4 = _up(OC, 4)
        hp = (g["oh"] - 1) * g["sh"] + (g["kh"] - 1) * g["dh"] + 1
        wp = (g["ow"] - 1) * g["sw"] + (g["kw"] - 1) * g["dw"] + 1
        macs = P * C4 * K
        _mac_ops(c, precision, macs)
        c.act_read_bytes = inp.nbytes
        c.act_write_bytes = g["n"] * hp * wp * C4 * 2
        if g["kh"] == 3 and g["kw"] == 3 and g["sw"] == 1 and g["dw"] == 1:
            c.kernel = "dsp depthwise 3x3: int16 planes, weights in registers, 9 word loads per 2 outputs"
            c.weight_read_bytes = C4 * K
            c.act_read_bytes += 2 * macs + P * C4 * 4
            c.act_write_bytes += P * C4 * 4
            c.param_read_bytes = C4 * 16
        else:
            c.kernel = "dsp depthwise: interleaved int16 slab, 1 weight byte and 2 slab bytes per MAC"
            c.weight_read_bytes = macs
            c.act_read_bytes += 2 * macs
            c.param_read_bytes = C4 * 16
        _epilogue(c, precision, outputs, bias_in_loop=False)
    elif owner == "helium" and code in ("CONV_2D", "FULLY_CONNECTED"):
        K16 = _up(K, 16)
        groups = max(g["in_c"] // g["kc"], 1) if code == "CONV_2D" else 1
        OC4 = groups * _up(OC // groups, 4)
        pairs = -(-P // 2)
        in_place = code == "FULLY_CONNECTED" or (g["kh"] == 1 and g["kw"] == 1 and groups == 1)
        c.kernel = "helium 2-row x 4-channel VMLADAVA tile" + (", input read in place" if in_place
                                                               else ", im2col rows in scratch")
        _mac_ops(c, precision, 2 * pairs * OC4 * K16)
        c.weight_read_bytes = pairs * OC4 * K16 * wb
        c.act_read_bytes = 2 * pairs * (OC4 // 4) * K16 * ab_in
        if not in_place:
            c.act_read_bytes += P * K * ab_in
            c.act_write_bytes += P * K16 * ab_in
        c.param_read_bytes = pairs * OC4 * 16
        _epilogue(c, precision, outputs, bias_in_loop=False)
    elif owner == "helium" and code == "DEPTHWISE_CONV_2D" and g["oc"] == g["in_c"] and g["dw"] == 1:
        C8 = _up(OC, 8)
        macs = P * C8 * K
        c.kernel = "helium depthwise: staged input rows, int16 weights per tap, 8-channel blocks"
        _mac_ops(c, precision, macs)
        hp = (g["oh"] - 1) * g["sh"] + (g["kh"] - 1) * g["dh"] + 1
        wp = (g["ow"] - 1) * g["sw"] + (g["kw"] - 1) * g["dw"] + 1
        c.act_read_bytes = inp.nbytes + macs
        c.act_write_bytes = g["n"] * hp * wp * OC
        c.weight_read_bytes = macs * 2
        c.param_read_bytes = P * (C8 // 8) * 128
        _epilogue(c, precision, outputs, bias_in_loop=False)
    else:
        macs = P * OC * K
        folded = owner != "reference"  # an optimized set's plain fallback loop uses the folded bias
        per = "batch row" if code == "FULLY_CONNECTED" else "output pixel"
        c.kernel = (f"reference: each weight once per {per}, each input once per MAC" if not folded
                    else f"{owner} plain loop on the TFLite layout, folded bias")
        _mac_ops(c, precision, macs)
        if precision in ("int8", "int16x8") and not folded:
            c.ops["int32_add"] += macs * (2 if code == "FULLY_CONNECTED" else 1)  # input (and filter) offset
        c.weight_read_bytes = macs * wb
        c.act_read_bytes = macs * ab_in
        c.param_read_bytes = outputs * per_output_params
        _epilogue(c, precision, outputs, bias_in_loop=bias is not None and not folded)
    c.act_write_bytes += outputs * ab_out
    return c


def price(c: LayerCounts, weights_level: dict, arena_level: dict) -> dict[str, dict[str, float]]:
    """pJ per node: compute, weight reads (weights + bias/requant constants), activation traffic."""
    ops = energy.table()["ops"]
    out = {}
    for node in energy.NODES:
        compute = sum(n * ops[k][node] for k, n in c.ops.items() if n)
        weights = (c.weight_read_bytes + c.param_read_bytes) / 8 * weights_level[node]
        acts = (c.act_read_bytes + c.act_write_bytes) / 8 * arena_level[node]
        total = compute + weights + acts
        out[node] = {"compute_pj": compute, "weight_read_pj": weights, "activation_pj": acts, "total_pj": total,
                     "data_movement_share": (weights + acts) / total if total else 0.0}
    return out


def weights_memory(board: Any | None = None) -> str:
    """Where the model's constant arrays live on `board`: flash on every board formicary builds for (its linker
    scripts put .rodata in the flash region; on QEMU boards that region is modelled as memory but stands for
    the flash of the silicon)."""
    return "flash"


def model_energy(ir: ModelIR, *, kernels: str = "reference", arena_bytes: int, arena_method: str,
                 board: str | None = None, weights_in: str = "flash") -> dict[str, Any]:
    """The `energy_model` dict of report.json / inspect --json / the bench JSON (docs/energy.md)."""
    tab = energy.table()
    arena_level = energy.memory_level(arena_bytes)
    weights_level = energy.flash_level() if weights_in == "flash" else energy.memory_level(arena_bytes)
    layers = []
    totals = {n: {"compute_pj": 0.0, "weight_read_pj": 0.0, "activation_pj": 0.0, "total_pj": 0.0}
              for n in energy.NODES}
    for op in ir.operators:
        c = layer_counts(ir, op, kernels)
        pj = price(c, weights_level, arena_level)
        for n in energy.NODES:
            for k in totals[n]:
                totals[n][k] += pj[n][k]
        layers.append({"index": op.index, "op": op.opcode, "kernel": c.kernel,
                       "counts": {"macs": c.macs, "ops": dict(sorted((k, v) for k, v in c.ops.items() if v)),
                                  "weight_read_bytes": c.weight_read_bytes, "param_read_bytes": c.param_read_bytes,
                                  "act_read_bytes": c.act_read_bytes, "act_write_bytes": c.act_write_bytes},
                       "per_node": {n: {k: round(v, 3) if k != "data_movement_share" else round(v, 4)
                                        for k, v in pj[n].items()} for n in energy.NODES}})
    total = {}
    for n in energy.NODES:
        t = totals[n]
        moved = t["weight_read_pj"] + t["activation_pj"]
        total[n] = {"compute_uj": round(t["compute_pj"] * 1e-6, 6), "weight_read_uj": round(t["weight_read_pj"] * 1e-6, 6),
                    "activation_uj": round(t["activation_pj"] * 1e-6, 6), "total_uj": round(t["total_pj"] * 1e-6, 6),
                    "data_movement_share": round(moved / t["total_pj"], 4) if t["total_pj"] else 0.0}
    return {"method": METHOD, "source": tab["sources"], "kernels": kernels, "board": board,
            "weights_memory": weights_in, "weights_level": weights_level["name"],
            "weights_level_note": weights_level.get("assumption", ""),
            "arena_bytes": arena_bytes, "arena_method": arena_method, "activations_level": arena_level["name"],
            "unit": {"layers": "pJ", "total": "µJ"}, "layers": layers, "total": total}
