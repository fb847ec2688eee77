"""Declared access patterns of the kernels, per kernel set, and the output offsets they make safe.

An op whose input dies at that op may write its output over the input's bytes if no write lands on an input byte
the kernel still has to read. Every kernel here walks the output pixels (batch, row, column; FULLY_CONNECTED:
batch rows) in increasing order and reads, for a pixel, only bytes of that pixel's input window (all channels).
What differs between kernels is how far their writes may run ahead of their reads: the declared `lag` in output
pixels. Lag L means: once any byte of output pixel q is written, the kernel reads input only for pixels q - L
and later (the reference kernels finish a pixel before the next one: L = 0; the dsp convolution computes two
pixels together: L = 1; the dsp depthwise works a band of rows a group of 4 channels at a time: L = band * width
- 1). Reads earlier than declared are harmless; later ones would not be, so a kernel set declares its own
kernels' lag here, beside nothing else, and a kernel without a declaration is never overlapped.

From the lag and the window geometry, `max_output_offset` proves the largest D (bytes, may be negative) such that
output byte j placed at input byte D + j is never written before its last read: for every output pixel q,
D + (last byte of q) < the lowest input byte any pixel >= q - L reads. The planner may then put the output at any
offset <= D from the input's start (or entirely above the input). int8 tensors only (one byte per element).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from formicary.codegen import quant
from formicary.tflite.ir import ModelIR, Operator

# (model, op) -> lag in output pixels, "per_channel" (lag 0, channel by channel: see max_output_offset), or None
# when the kernel cannot run overlapped for this op
LagFn = Callable[[ModelIR, Operator], "int | str | None"]


@dataclass(frozen=True)
class Geometry:
    """Input/output NHWC dims and the window of one op (FULLY_CONNECTED: a 1x1 window over batch rows)."""
    in_d: tuple[int, int, int, int]
    out_d: tuple[int, int, int, int]
    kh: int = 1
    kw: int = 1
    sh: int = 1
    sw: int = 1
    dh: int = 1
    dw: int = 1
    ph: int = 0
    pw: int = 0


def _dims4(shape) -> tuple[int, int, int, int]:
    s = tuple(int(d) for d in shape)
    return (1,) * (4 - len(s)) + s  # type: ignore[return-value]


def geometry(model: ModelIR, op: Operator) -> Geometry | None:
    """The window geometry of a CONV_2D / DEPTHWISE_CONV_2D / pooling / FULLY_CONNECTED op, None for others."""
    inp, out = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    if len(inp.shape) > 4 or len(out.shape) > 4:
        return None
    o = op.options
    if op.opcode == "FULLY_CONNECTED":
        filt = model.tensors[op.inputs[1]]
        accum, depth = int(filt.shape[1]), int(filt.shape[0])
        batches = out.numel // max(depth, 1)
        return Geometry((1, 1, batches, accum), (1, 1, batches, depth))
    in_d, out_d = _dims4(inp.shape), _dims4(out.shape)
    if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        f = _dims4(model.tensors[op.inputs[1]].shape)
        kh, kw = f[1], f[2]
        sh, sw = int(o.get("stride_h", 1)), int(o.get("stride_w", 1))
        dh, dw = int(o.get("dilation_h_factor", 1)), int(o.get("dilation_w_factor", 1))
    elif op.opcode in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        kh, kw = int(o.get("filter_height", 1)), int(o.get("filter_width", 1))
        sh, sw = int(o.get("stride_h", 1)), int(o.get("stride_w", 1))
        dh = dw = 1
    else:
        return None
    return Geometry(in_d, out_d, kh, kw, sh, sw, dh, dw,
                    quant.compute_padding(sh, dh, in_d[1], kh, out_d[1]),
                    quant.compute_padding(sw, dw, in_d[2], kw, out_d[2]))


def max_output_offset(g: Geometry, lag: int, per_channel: bool = False) -> int:
    """The largest D (bytes) at which the output may start relative to the input's start, for a kernel of this
    lag (int8 input and output). Proof: see the module docstring; computed over every output pixel.

    `per_channel` (depth multiplier 1, lag 0 only): the kernel finishes output channel c of a pixel before it reads
    channel c + 1 of that pixel's window, and reads only channel c for output channel c (the reference depthwise
    loop), so after writing byte c of pixel q it reads pixel q's window from its lowest byte + c + 1 on."""
    n, oh, ow, oc = g.out_d
    _, ih, iw, ic = g.in_d
    oy = np.arange(oh)
    ox = np.arange(ow)
    # lowest input row/column a pixel's window touches (taps in the padding are not read)
    y0 = oy * g.sh - g.ph
    x0 = ox * g.sw - g.pw
    y_first = np.where(y0 >= 0, y0, y0 + (-y0 + g.dh - 1) // g.dh * g.dh)
    x_first = np.where(x0 >= 0, x0, x0 + (-x0 + g.dw - 1) // g.dw * g.dw)
    y_first = np.minimum(y_first, ih - 1)
    x_first = np.minimum(x_first, iw - 1)
    b = np.arange(n)
    low = ((b[:, None, None] * ih + y_first[None, :, None]) * iw + x_first[None, None, :]) * ic
    low = low.reshape(-1).astype(np.int64)  # lowest input byte read per output pixel, in pixel order
    suffix = np.minimum.accumulate(low[::-1])[::-1]  # lowest byte read by this pixel or any later one
    pixels = low.size
    q = np.arange(pixels)
    last_write = (q + 1) * oc - 1
    if per_channel and lag == 0 and oc == ic:
        # element (q, c < C-1): next read is channel c+1 of q's window, at low[q] + c + 1; written byte q*C + c
        inner = low - q * oc if oc > 1 else np.array([np.iinfo(np.int64).max])
        nxt = np.append(suffix[1:], np.iinfo(np.int64).max // 2)  # after the pixel's last channel: later pixels
        return int(min(np.min(inner), np.min(nxt - last_write - 1)))
    frontier = suffix[np.maximum(q - lag, 0)]
    return int(np.min(frontier - last_write - 1))


# ---- the declarations, per kernel set --------------------------------------------------------------------------

def _lag0(model: ModelIR, op: Operator) -> int:
    return 0


def _per_channel(model: ModelIR, op: Operator) -> str:
    return "per_channel"  # pooling: output channel c of a pixel from window channel c only, channels in order


def _ref_depthwise(model: ModelIR, op: Operator) -> int | str:
    g = geometry(model, op)
    return "per_channel" if g is not None and g.in_d[3] == g.out_d[3] else 0


def _dsp_conv(model: ModelIR, op: Operator) -> int:
    return 1  # two output pixels per panel (firmware/kernels/dsp/conv2d_s8.c)


def _dsp_depthwise(model: ModelIR, op: Operator) -> int | None:
    from formicary.codegen.sets.dsp import depthwise

    g = geometry(model, op)
    if g is None or g.out_d[3] != g.in_d[3]:
        return None  # depth multiplier > 1: the plain loop (not declared)
    band, _ = depthwise.slab_band(g.out_d[1], g.out_d[2], g.kh, g.kw, g.sh, g.sw, g.dh, g.dw)
    if band >= g.out_d[1]:
        return None  # one band: every output row is written before the last channel group's rows are read
    return band * g.out_d[2] - 1


def _helium_conv(model: ModelIR, op: Operator) -> int | None:
    from formicary.codegen.sets.helium import conv

    g = geometry(model, op)
    filt = model.tensors[op.inputs[1]]
    k_c = int(_dims4(filt.shape)[3])
    if g is None or k_c != g.in_d[3]:
        return None  # groups: the group loop is outside the pixel loop
    if g.kh == 1 and g.kw == 1 and g.ph == 0 and g.pw == 0:
        return None  # the GEMM path's order is not declared
    band_w = (g.out_d[2] - 1) * g.sw + (g.kw - 1) * g.dw + 1
    if ((g.kh - 1) * band_w + (g.kw - 1) * g.dw) * k_c + k_c - 1 <= 255:
        return None  # the band im2col (fm_he_conv_band) keeps a ring of input rows: not declared
    k16 = (g.kh * g.kw * k_c + 15) & ~15
    return conv.im2col_rows(k16) - 1  # im2col: a block of rows copied from the input, then written


# kernel function -> lag, per set. A kernel absent from its owning set's table is never overlapped.
ACCESS: dict[str, dict[str, LagFn]] = {
    "reference": {"fm_conv2d_s8": _lag0, "fm_depthwise_conv2d_s8": _ref_depthwise,
                  "fm_average_pool2d_s8": _per_channel, "fm_max_pool2d_s8": _per_channel, "fm_fully_connected_s8": _lag0},
    "dsp": {"fm_conv2d_s8": _dsp_conv, "fm_depthwise_conv2d_s8": _dsp_depthwise, "fm_average_pool2d_s8": _lag0,
            "fm_max_pool2d_s8": _lag0, "fm_fully_connected_s8": _lag0},
    "helium": {"fm_conv2d_s8": _helium_conv, "fm_average_pool2d_s8": _lag0, "fm_max_pool2d_s8": _lag0},
}


def kernel_lag(kset, kernel: str, model: ModelIR, op: Operator) -> int | str | None:
    """The lag the set owning `kernel`'s file declares for this op; None: not declared (no overlap)."""
    if not kernel:
        return None
    owner = kset.owner_of_kernel(kernel)
    fn = ACCESS.get(owner.name, {}).get(kernel)
    return fn(model, op) if fn is not None else None


def output_offset_limit(kset, kernel: str, model: ModelIR, op: Operator) -> int | None:
    """Max output offset (bytes, relative to the input's start) the op's kernel makes safe, or None."""
    if len(op.outputs) != 1 or not op.inputs or op.inputs[0] < 0:
        return None
    inp, out = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    if inp.dtype != "int8" or out.dtype != "int8" or inp.is_constant:
        return None
    if sum(1 for t in op.inputs if t == op.inputs[0]) != 1:
        return None
    lag = kernel_lag(kset, kernel, model, op)
    g = geometry(model, op) if lag is not None else None
    if g is None or g.in_d[0] != g.out_d[0] or int(np.prod(g.in_d)) != inp.numel:
        return None
    if lag == "per_channel":
        return max_output_offset(g, 0, per_channel=True)
    return max_output_offset(g, int(lag))


# ---- rows last to first ----------------------------------------------------------------------------------------
# A kernel whose output for an op is a pure function of its parameters (dims, padding) can be called once per output
# row with the row's input rows (`input_dims.h`, `pad_h` adjusted; generate.reversed_rows_call): the generated code
# then runs the rows last to first, each row forward. After row r is written only rows < r are computed, which read
# input rows below row r's window end: the output may then sit ABOVE the input, at an offset >= the returned D. The
# kernels below take their whole window geometry from the parameters and keep nothing between calls.
ROW_CALLABLE: dict[str, frozenset[str]] = {
    "reference": frozenset({"fm_conv2d_s8", "fm_average_pool2d_s8", "fm_max_pool2d_s8"}),
    "dsp": frozenset({"fm_conv2d_s8", "fm_average_pool2d_s8", "fm_max_pool2d_s8"}),
    "helium": frozenset({"fm_average_pool2d_s8", "fm_max_pool2d_s8"}),
}


def row_windows(g: Geometry) -> list[tuple[int, int, int]] | None:
    """Per output row (first input row read, end row, leading pad) of a row-by-row call; None when a row's
    window lies wholly in the padding (no input rows to pass)."""
    rows = []
    for r in range(g.out_d[1]):
        y0 = r * g.sh - g.ph
        lo, hi = max(y0, 0), min(y0 + (g.kh - 1) * g.dh + 1, g.in_d[1])
        if hi <= lo:
            return None
        rows.append((lo, hi, lo - y0))
    return rows


def min_output_offset_reversed(g: Geometry) -> int:
    """The smallest D (bytes) at which the output may start above the input's start when the rows run last to
    first: row r's bytes must lie wholly above every input byte rows 0..r read (row r reads its window while its
    own bytes are written, rows < r after it)."""
    n, oh, ow, oc = g.out_d
    _, ih, iw, ic = g.in_d
    ends = np.maximum.accumulate(np.array([hi for _, hi, _ in row_windows(g)], dtype=np.int64))
    r = np.arange(oh, dtype=np.int64)
    return int(np.max(ends * iw * ic - r * ow * oc))


def reversed_offset_limit(kset, kernel: str, model: ModelIR, op: Operator) -> int | None:
    """Min output offset (bytes above the input's start) of the op run rows last to first, or None when its kernel
    is not row-callable or the shapes do not allow it (batches, int8 only)."""
    if not kernel or len(op.outputs) != 1 or not op.inputs or op.inputs[0] < 0:
        return None
    if kernel not in ROW_CALLABLE.get(kset.owner_of_kernel(kernel).name, frozenset()):
        return None
    inp, out = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    if inp.dtype != "int8" or out.dtype != "int8" or inp.is_constant:
        return None
    g = geometry(model, op)
    if g is None or g.in_d[0] != 1 or g.out_d[0] != 1 or g.out_d[1] < 2 or row_windows(g) is None:
        return None
    return min_output_offset_reversed(g)
