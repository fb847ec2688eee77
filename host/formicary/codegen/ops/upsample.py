"""The upsampling family: RESIZE_NEAREST_NEIGHBOR, RESIZE_BILINEAR and TRANSPOSE_CONV, int8 (bit-exact with TFLM's
reference_ops::ResizeNearestNeighbor, ResizeBilinearInteger and reference_integer_ops::TransposeConv) and float32.

The resizes' source coordinates are what TFLM computes per output row and column at run time (GetNearestNeighbor
and ComputeInterpolationValues in float32, ComputeInterpolationValuesInteger in 10-bit fixed point); here they are
evaluated once, with the same float32 / C-integer arithmetic, into small const tables, so the kernels only index
and (bilinear) weight. Both resizes need a constant size input, as TFLM's Prepare does.

TRANSPOSE_CONV mirrors TFLM's Prepare: the padding is ComputePaddingHeightWidth over the *output* size (dilation
1), the int8 requantization PopulateConvolutionQuantizationParams with per-channel filter scales on axis 0, and the
int8 kernel accumulates into an int32 scratch buffer of one word per output element, which the reference kernel set
declares (kernel_sets.py) so the arena planner places it like TFLM's RequestScratchBufferInArena.
"""
from __future__ import annotations

import math

import numpy as np

from formicary.codegen import quant
from formicary.codegen.ops import register
from formicary.codegen.ops.base import (
    FLOAT_ACT,
    ON_INT8,
    LowerContext,
    LoweredOp,
    Unsupported,
    dims4,
    dims4_c,
    first_input_dtype,
    fused_activation,
    qparams,
    require_dtype,
)
from formicary.codegen.ops.conv import bias_ref, check_filter_quant
from formicary.tflite.ir import Operator, Tensor

_F = np.float32
_REEXPORT = "re-export the model."


# ---- the size input and the shapes both resizes share -----------------------------------------------------------

def _resize_shapes(op: Operator, ctx: LowerContext) -> tuple[Tensor, Tensor, tuple, tuple]:
    ins = ctx.inputs()
    if len(ins) != 2 or ins[0] is None or ins[1] is None:
        raise Unsupported(f"{op.opcode} takes an input and a size tensor", _REEXPORT)
    inp, size, out = ins[0], ins[1], ctx.outputs()[0]
    if len(inp.shape) != 4:
        raise Unsupported(f"{op.opcode} input has rank {len(inp.shape)}; TFLM takes 4-D NHWC", _REEXPORT)
    if size.dtype != "int32" or len(size.shape) != 1 or int(size.shape[0]) != 2:
        raise Unsupported(f"{op.opcode} size must be an int32 vector of 2 (height, width)", _REEXPORT)
    if not size.is_constant:
        raise Unsupported(f"{op.opcode} with a size computed at run time (TFLM refuses a non-constant size)",
                          "export the model with a fixed output size (e.g. a fixed input shape and batch size 1).")
    out_hw = [int(v) for v in np.asarray(size.data).reshape(-1)]
    in_d, out_d = dims4(inp), dims4(out)
    if min(out_hw) < 1 or (out_d[1], out_d[2]) != tuple(out_hw) or out_d[0] != in_d[0] or out_d[3] != in_d[3]:
        raise Unsupported(f"{op.opcode} output shape {list(out.shape)} disagrees with input {list(inp.shape)} and "
                          f"size {out_hw}", _REEXPORT)
    return inp, out, in_d, out_d


def _flags(op: Operator) -> tuple[bool, bool]:
    return bool(op.options.get("align_corners", False)), bool(op.options.get("half_pixel_centers", False))


# ---- RESIZE_NEAREST_NEIGHBOR -------------------------------------------------------------------------------------

def nearest_index(out_pos: int, in_size: int, out_size: int, align_corners: bool, half_pixel: bool) -> int:
    """tflite::reference_ops::GetNearestNeighbor, in float32 as TFLM evaluates it."""
    if align_corners and out_size > 1:
        scale = _F(in_size - 1) / _F(out_size - 1)
    else:
        scale = _F(in_size) / _F(out_size)
    value = (_F(out_pos) + _F(0.5 if half_pixel else 0.0)) * scale
    src = int(quant.tflite_round(float(value))) if align_corners else math.floor(float(value))
    src = min(src, in_size - 1)
    if half_pixel:
        src = max(0, src)
    return src


def _check_rows(op: Operator, rows, in_size: int) -> None:
    if any(r < 0 or r >= in_size for r in rows):  # TFLM would read outside the input
        raise Unsupported(f"{op.opcode} source coordinates fall outside the input for this size and options",
                          "use half_pixel_centers or align_corners, or another output size.")


@register("RESIZE_NEAREST_NEIGHBOR")
def lower_resize_nearest(op: Operator, ctx: LowerContext) -> LoweredOp:
    inp, out, in_d, out_d = _resize_shapes(op, ctx)
    dtype = first_input_dtype(ctx)
    require_dtype(inp, ("int8", "float32"), "input")
    require_dtype(out, (inp.dtype,), "output")
    align, half = _flags(op)
    ys = [nearest_index(y, in_d[1], out_d[1], align, half) for y in range(out_d[1])]
    xs = [nearest_index(x, in_d[2], out_d[2], align, half) for x in range(out_d[2])]
    _check_rows(op, ys, in_d[1])
    _check_rows(op, xs, in_d[2])
    # int8 copies bytes: TFLM keeps the input's quantized values whatever the output's parameters say
    params = ctx.const_struct("params", "fm_resize_nearest_params_t", {
        "batches": in_d[0], "in_h": in_d[1], "in_w": in_d[2], "out_h": out_d[1], "out_w": out_d[2],
        "pixel_bytes": in_d[3] * (1 if dtype == "int8" else 4),
        "y_index": ctx.const_array("y_index", "int32_t", np.array(ys)),
        "x_index": ctx.const_array("x_index", "int32_t", np.array(xs))})
    fn = "fm_resize_nearest_neighbor"
    return LoweredOp(call=f"{fn}({params}, {ctx.tensor_ref(inp)}, {ctx.tensor_ref(out)})",
                     sources=(fn[3:] + ".c",), kernel=fn)


# ---- RESIZE_BILINEAR ---------------------------------------------------------------------------------------------

def _c_div(a: int, b: int) -> int:
    """C integer division (truncation toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def bilinear_scale_10(in_size: int, out_size: int, align_corners: bool) -> int:
    """ResizeBilinearInteger's 10-bit scale of one dimension."""
    if align_corners and out_size > 1:
        return _c_div(1024 * (in_size - 1) + (out_size - 1) // 2, out_size - 1)
    return _c_div(1024 * in_size + out_size // 2, out_size)


def bilinear_rows_int(out_pos: int, scale_10: int, half_pixel: bool, in_size: int) -> tuple[int, int, int]:
    """TFLM ComputeInterpolationValuesInteger: (lower, upper, scaled - 1024 * lower), the last being the weight of
    `upper` in 1/1024 (TFLM's (input_y - (1 << 10) * y0))."""
    scaled = out_pos * scale_10 + _c_div(scale_10, 2) - (1 << 9) if half_pixel else out_pos * scale_10
    lower = max(_c_div(scaled, 1 << 10), 0)
    upper = min(_c_div(scaled + (1 << 10) - 1, 1 << 10), in_size - 1)
    return lower, upper, scaled - (1 << 10) * lower


def bilinear_rows_f32(out_pos: int, in_size: int, out_size: int, align_corners: bool,
                      half_pixel: bool) -> tuple[int, int, float]:
    """TFLM ComputeInterpolationValues (float32): (lower, upper, scaled - lower) as the float kernel uses it."""
    scale = _F(in_size) / _F(out_size)
    if align_corners and out_size > 1:
        scale = _F(in_size - 1) / _F(out_size - 1)
    scaled = (_F(out_pos) + _F(0.5)) * scale - _F(0.5) if half_pixel else _F(out_pos) * scale
    lower = max(math.floor(float(scaled)), 0)
    upper = min(math.ceil(float(scaled)), in_size - 1)
    return lower, upper, float(_F(scaled) - _F(lower))


@register("RESIZE_BILINEAR")
def lower_resize_bilinear(op: Operator, ctx: LowerContext) -> LoweredOp:
    inp, out, in_d, out_d = _resize_shapes(op, ctx)
    require_dtype(inp, ("int8", "float32"), "input")
    require_dtype(out, (inp.dtype,), "output")
    align, half = _flags(op)
    if align and half:
        raise Unsupported("RESIZE_BILINEAR with both align_corners and half_pixel_centers (TFLM refuses it)",
                          "set at most one of align_corners / half_pixel_centers.")
    dims = {"batches": in_d[0], "in_h": in_d[1], "in_w": in_d[2], "depth": in_d[3],
            "out_h": out_d[1], "out_w": out_d[2]}
    if inp.dtype == "float32":
        rows = [bilinear_rows_f32(y, in_d[1], out_d[1], align, half) for y in range(out_d[1])]
        cols = [bilinear_rows_f32(x, in_d[2], out_d[2], align, half) for x in range(out_d[2])]
        _check_rows(op, [r for lo, hi, _ in rows for r in (lo, hi)], in_d[1])
        _check_rows(op, [c for lo, hi, _ in cols for c in (lo, hi)], in_d[2])
        params = ctx.const_struct("params", "fm_resize_bilinear_f32_params_t", {
            **dims,
            "y_index": ctx.const_array("y_index", "int32_t", np.array([(lo, hi) for lo, hi, _ in rows])),
            "x_index": ctx.const_array("x_index", "int32_t", np.array([(lo, hi) for lo, hi, _ in cols])),
            "y_frac": ctx.const_array("y_frac", "float", np.array([f for *_, f in rows], np.float32)),
            "x_frac": ctx.const_array("x_frac", "float", np.array([f for *_, f in cols], np.float32))})
        fn = "fm_resize_bilinear_f32"
    else:
        sy, sx = bilinear_scale_10(in_d[1], out_d[1], align), bilinear_scale_10(in_d[2], out_d[2], align)
        if max(out_d[1] * abs(sy), out_d[2] * abs(sx)) >= 2 ** 30:
            raise Unsupported("RESIZE_BILINEAR sizes too large for TFLM's 10-bit fixed point", _REEXPORT)
        rows = [bilinear_rows_int(y, sy, half, in_d[1]) for y in range(out_d[1])]
        cols = [bilinear_rows_int(x, sx, half, in_d[2]) for x in range(out_d[2])]
        _check_rows(op, [r for lo, hi, _ in rows for r in (lo, hi)], in_d[1])
        _check_rows(op, [c for lo, hi, _ in cols for c in (lo, hi)], in_d[2])
        # the kernel sums in int32: exact (as TFLM's int64) while 128 * (|w0| + |w1|)^2 < 2^31
        if any(abs(1024 - w) + abs(w) > 2048 for *_, w in (*rows, *cols)):
            raise Unsupported("RESIZE_BILINEAR weights outside the kernel's int32 range", _REEXPORT)
        params = ctx.const_struct("params", "fm_resize_bilinear_s8_params_t", {
            **dims,
            "y_table": ctx.const_array("y_table", "int32_t", np.array(rows)),
            "x_table": ctx.const_array("x_table", "int32_t", np.array(cols))})
        fn = "fm_resize_bilinear_s8"
    # no MACs counted, as analysis/macs.py counts none for a resize (the layer MACs add up to the model's)
    return LoweredOp(call=f"{fn}({params}, {ctx.tensor_ref(inp)}, {ctx.tensor_ref(out)})",
                     sources=(fn[3:] + ".c",), kernel=fn)


# ---- TRANSPOSE_CONV ----------------------------------------------------------------------------------------------

def transpose_conv_scratch_bytes(op: Operator, ctx: LowerContext) -> int:
    """The int8 kernel's accumulators: one int32 per output element (TFLM requests the same in Prepare)."""
    return 4 * ctx.outputs()[0].numel


def _transpose_operands(op: Operator, ctx: LowerContext) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
    ins = ctx.inputs()
    if len(ins) not in (3, 4) or any(t is None for t in ins[:3]):
        raise Unsupported("TRANSPOSE_CONV takes output_shape, filter, input and an optional bias", _REEXPORT)
    shape_t, filt, inp = ins[0], ins[1], ins[2]
    bias = ins[3] if len(ins) == 4 else None
    out = ctx.outputs()[0]
    if not shape_t.is_constant or shape_t.dtype != "int32":
        raise Unsupported("TRANSPOSE_CONV with an output_shape computed at run time",
                          "export the model with a fixed input shape and batch size 1, so the converter folds "
                          "the output shape into a constant.")
    if [int(v) for v in np.asarray(shape_t.data).reshape(-1)] != [int(d) for d in out.shape]:
        raise Unsupported(f"TRANSPOSE_CONV output_shape {np.asarray(shape_t.data).tolist()} disagrees with the "
                          f"output tensor {list(out.shape)}", _REEXPORT)
    if not filt.is_constant:
        raise Unsupported("the filter is not a constant tensor", "export the model with constant weights.")
    if len(filt.shape) != 4 or len(inp.shape) != 4 or len(out.shape) != 4:
        raise Unsupported("TRANSPOSE_CONV needs 4-D input, filter and output", _REEXPORT)
    in_d, f_d, out_d = dims4(inp), dims4(filt), dims4(out)
    if in_d[3] != f_d[3] or out_d[3] != f_d[0] or in_d[0] != out_d[0]:
        raise Unsupported(f"TRANSPOSE_CONV shapes disagree: input {list(inp.shape)}, filter {list(filt.shape)}, "
                          f"output {list(out.shape)}", _REEXPORT)
    return inp, filt, bias, out


def _transpose_geometry(op: Operator, in_d, f_d, out_d) -> dict[str, int]:
    """Strides and TFLM's padding: ComputePaddingHeightWidth(stride, dilation 1, output size, filter size)."""
    padding = op.options.get("padding", "SAME")
    if padding not in ("SAME", "VALID"):
        raise Unsupported(f"padding {padding}", "use SAME or VALID padding.")
    sh, sw = int(op.options.get("stride_h", 1)), int(op.options.get("stride_w", 1))
    if sh < 1 or sw < 1:
        raise Unsupported(f"strides {sh}x{sw}", _REEXPORT)
    pads = []
    for size, k, s in ((out_d[1], f_d[1], sh), (out_d[2], f_d[2], sw)):
        pads.append(quant.compute_padding(s, 1, size, k, quant.compute_out_size(padding, size, k, s, 1)))
    return {"stride_h": sh, "stride_w": sw, "pad_h": pads[0], "pad_w": pads[1]}


@register("TRANSPOSE_CONV")
def lower_transpose_conv(op: Operator, ctx: LowerContext) -> LoweredOp:
    inp, filt, bias, out = _transpose_operands(op, ctx)
    in_d, f_d, out_d = dims4(inp), dims4(filt), dims4(out)
    geometry = _transpose_geometry(op, in_d, f_d, out_d)
    macs = inp.numel * f_d[0] * f_d[1] * f_d[2]
    shapes = {"input_dims": dims4_c(in_d), "filter_dims": dims4_c(f_d), "output_dims": dims4_c(out_d)}
    if inp.dtype == "float32":  # (the first input is the int32 output_shape: the data input picks the kernel)
        for t, role in ((inp, "input"), (filt, "filter"), (out, "output")):
            require_dtype(t, ("float32",), role)
        lo, hi = FLOAT_ACT[fused_activation(op)]
        params = ctx.const_struct("params", "fm_transpose_conv_f32_params_t", {
            **shapes, **geometry, "act_min": lo, "act_max": hi,
            "filter": ctx.tensor_ref(filt), "bias": bias_ref(ctx, bias, "float32")})
        fn = "fm_transpose_conv_f32"
        return LoweredOp(call=f"{fn}({params}, {ctx.tensor_ref(inp)}, {ctx.tensor_ref(out)})", macs=macs,
                         sources=(fn[3:] + ".c",), kernel=fn)
    require_dtype(inp, ("int8",), "input")
    require_dtype(out, ("int8",), "output")
    require_dtype(filt, ("int8",), "filter")
    if bias is not None:
        require_dtype(bias, ("int32",), "bias")
    if in_d[3] > 65536:  # the kernel's per-tap dot product (|term| <= 255 * 128) must fit an int32
        raise Unsupported(f"TRANSPOSE_CONV with {in_d[3]} input channels (at most 65536)", _REEXPORT)
    in_scale, in_zp = qparams(inp)
    out_scale, out_zp = qparams(out)
    scales = check_filter_quant(filt, f_d[0], 0)
    mult, shift = quant.conv_per_channel_multipliers(in_scale, scales, out_scale, f_d[0])
    # the fused activation is applied (older TFLM releases passed kTfLiteActNone here; the oracle applies it)
    act_min, act_max = quant.activation_range(fused_activation(op, ON_INT8), out_scale, out_zp)
    params = ctx.const_struct("params", "fm_transpose_conv_s8_params_t", {
        **shapes, **geometry, "input_offset": -in_zp, "output_offset": out_zp, "act_min": act_min,
        "act_max": act_max, "filter": ctx.tensor_ref(filt), "bias": bias_ref(ctx, bias, "int32"),
        "multiplier": ctx.const_array("mult", "int32_t", mult), "shift": ctx.const_array("shift", "int32_t", shift)})
    fn = "fm_transpose_conv_s8"
    return LoweredOp(call=f"{fn}({params}, {ctx.tensor_ref(inp)}, {ctx.tensor_ref(out)}, {ctx.scratch_ref()})",
                     macs=macs, sources=(fn[3:] + ".c",), kernel=fn)
