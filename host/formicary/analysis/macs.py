"""Arithmetic counts per operator, from tensor shapes alone.

MACs are counted only for the ops that are multiply-accumulate by nature (convolutions, fully connected,
matmul); other ops get element-wise `adds`/`mults` counts so the energy floor still includes them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from formicary.tflite import ModelIR, Operator


@dataclass(frozen=True)
class OpCounts:
    macs: int = 0     # multiply-accumulates (conv/depthwise/fc/matmul only)
    adds: int = 0     # stand-alone additions/comparisons outside MACs
    mults: int = 0    # stand-alone multiplications/divisions outside MACs


def _numel(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape)) if shape else 1


def count_op(model: ModelIR, op: Operator) -> OpCounts:
    ins = model.op_inputs(op)
    outs = model.op_outputs(op)
    out = outs[0].shape if outs else ()
    n_out = _numel(out) if outs else 0
    code = op.opcode

    if code == "CONV_2D":
        # filter [out_c, k_h, k_w, in_c/groups]; output [n, out_h, out_w, out_c]
        _, k_h, k_w, k_in = ins[1].shape
        return OpCounts(macs=n_out * k_h * k_w * k_in)
    if code == "DEPTHWISE_CONV_2D":
        # filter [1, k_h, k_w, out_c]: one k_h*k_w window per output element
        _, k_h, k_w, _ = ins[1].shape
        return OpCounts(macs=n_out * k_h * k_w)
    if code == "TRANSPOSE_CONV":
        # inputs: output_shape, filter [out_c, k_h, k_w, in_c], input [n, h, w, in_c]
        out_c, k_h, k_w, _ = ins[1].shape
        return OpCounts(macs=_numel(ins[2].shape) * out_c * k_h * k_w)
    if code == "FULLY_CONNECTED":
        # weights [units, depth]; every row of the input (batch) does units*depth MACs
        units, depth = ins[1].shape[0], ins[1].shape[-1]
        rows = _numel(ins[0].shape) // depth if depth else 0
        return OpCounts(macs=rows * units * depth)
    if code == "BATCH_MATMUL":
        a = ins[0].shape
        adj_x = bool(op.options.get("adj_x", False))
        inner = a[-2] if adj_x else a[-1]
        return OpCounts(macs=n_out * inner)
    if code in ("AVERAGE_POOL_2D", "L2_POOL_2D"):
        win = int(op.options.get("filter_height", 1)) * int(op.options.get("filter_width", 1))
        return OpCounts(adds=n_out * max(win - 1, 0), mults=n_out)  # sum the window, one scale/divide
    if code == "MAX_POOL_2D":
        win = int(op.options.get("filter_height", 1)) * int(op.options.get("filter_width", 1))
        return OpCounts(adds=n_out * max(win - 1, 0))  # comparisons counted as adds
    if code in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN"):
        n_in = _numel(ins[0].shape)
        return OpCounts(adds=max(n_in - n_out, 0), mults=n_out if code == "MEAN" else 0)
    if code in ("ADD", "SUB", "SQUARED_DIFFERENCE", "MAXIMUM", "MINIMUM"):
        return OpCounts(adds=n_out, mults=n_out if code == "SQUARED_DIFFERENCE" else 0)
    if code in ("MUL", "DIV"):
        return OpCounts(mults=n_out)
    if code in ("SOFTMAX", "LOG_SOFTMAX"):
        # per element: one exp (≥1 mult), one add to the sum, one multiply by the reciprocal
        return OpCounts(adds=n_out, mults=2 * n_out)
    if code in ("LOGISTIC", "TANH", "HARD_SWISH", "PRELU", "LEAKY_RELU", "ELU", "QUANTIZE", "DEQUANTIZE"):
        return OpCounts(mults=n_out)
    if code in ("RELU", "RELU6", "RELU_N1_TO_1"):
        return OpCounts(adds=n_out)  # one comparison each
    # Data movement only (RESHAPE, PAD, CONCATENATION, TRANSPOSE, …) or unknown ops: no arithmetic counted.
    return OpCounts()


MAC_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED", "BATCH_MATMUL"})


def effective_macs(model: ModelIR, op: Operator, macs: int) -> int:
    """MACs whose weight is not exactly zero: what a kernel that skips zero weights must still do. Equal to
    `macs` for ops without constant weights; conv/depthwise/fc scale by the non-zero fraction of the weights
    (every weight is used the same number of times, so the fraction carries over exactly)."""
    if op.opcode not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") or not macs:
        return macs
    ins = model.op_inputs(op)
    w = ins[1] if len(ins) > 1 else None
    if w is None or w.data is None:
        return macs
    data = np.asarray(w.data)
    zp = int(w.quant.zero_point[0]) if w.quant is not None and w.quant.zero_point.size == 1 else 0
    nonzero = int((data != zp).sum()) if data.size else 0
    return macs * nonzero // data.size if data.size else macs
