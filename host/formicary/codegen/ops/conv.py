"""The convolution family: CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED, int8 (bit-exact with TFLM's
reference_integer_ops::ConvPerChannel, DepthwiseConvPerChannel, FullyConnected(PerChannel)) and float32.

The three share their set-up: `Window` is the sliding-window geometry of both convolutions (strides, dilations,
SAME/VALID padding checked against the output shape, as tflite::ComputePaddingHeightWidth), `Requant` the int8
requantization of all three (offsets, fused-activation clamp, per-channel multipliers and shifts, as TFLM's
PopulateConvolutionQuantizationParams and CalculateActivationRangeQuantized), `fc_shape` the batch/depth view of
FULLY_CONNECTED. Each op checks its operands in a fixed order: a bad model is refused for its first problem.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from formicary.codegen import quant
from formicary.codegen.ops import register
from formicary.codegen.packing import PackRequest
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
from formicary.tflite.ir import Operator, Tensor

# ---- shared set-up -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Window:
    """Strides, dilations and padding mode of a convolution, from its options."""
    stride_h: int
    stride_w: int
    dilation_h: int
    dilation_w: int
    padding: str

    @classmethod
    def of(cls, op: Operator) -> Window:
        w = cls(int(op.options.get("stride_h", 1)), int(op.options.get("stride_w", 1)),
                int(op.options.get("dilation_h_factor", 1)), int(op.options.get("dilation_w_factor", 1)),
                op.options.get("padding", "SAME"))
        if w.padding not in ("SAME", "VALID"):
            raise Unsupported(f"padding {w.padding}", "use SAME or VALID padding.")
        return w

    def fields(self, in_d, f_d, out: Tensor, out_d, channels_match: bool = True) -> dict[str, int]:
        """The geometry fields of the kernel parameters, once the output shape is checked against the window."""
        oh = quant.compute_out_size(self.padding, in_d[1], f_d[1], self.stride_h, self.dilation_h)
        ow = quant.compute_out_size(self.padding, in_d[2], f_d[2], self.stride_w, self.dilation_w)
        if (oh, ow) != (out_d[1], out_d[2]) or not channels_match or in_d[0] != out_d[0]:
            raise Unsupported(f"output shape {list(out.shape)} disagrees with the convolution geometry",
                              "re-export the model.")
        return {"stride_h": self.stride_h, "stride_w": self.stride_w,
                "dilation_h": self.dilation_h, "dilation_w": self.dilation_w,
                "pad_h": quant.compute_padding(self.stride_h, self.dilation_h, in_d[1], f_d[1], oh),
                "pad_w": quant.compute_padding(self.stride_w, self.dilation_w, in_d[2], f_d[2], ow)}


@dataclass(frozen=True)
class Requant:
    """int8 output stage: acc * multiplier[c] >> shift[c] + output offset, clamped to the fused activation."""
    input_offset: int        # -input zero point
    output_offset: int       # output zero point
    act_min: int
    act_max: int
    multiplier: np.ndarray   # one per output channel, or one for all (per-tensor FULLY_CONNECTED)
    shift: np.ndarray

    @classmethod
    def per_channel(cls, inp: Tensor, out: Tensor, filt: Tensor, channels: int, axis: int, act: str) -> Requant:
        in_scale, in_zp = qparams(inp)
        out_scale, out_zp = qparams(out)
        scales = check_filter_quant(filt, channels, axis)
        mult, shift = quant.conv_per_channel_multipliers(in_scale, scales, out_scale, channels)
        return cls(-in_zp, out_zp, *quant.activation_range(act, out_scale, out_zp), mult, shift)

    def clamp_fields(self) -> dict[str, int]:
        return {"input_offset": self.input_offset, "output_offset": self.output_offset,
                "act_min": self.act_min, "act_max": self.act_max}

    def array_fields(self, ctx: LowerContext) -> dict[str, str]:
        return {"multiplier": ctx.const_array("mult", "int32_t", self.multiplier),
                "shift": ctx.const_array("shift", "int32_t", self.shift)}


def check_filter_quant(filter_t: Tensor, num_channels: int, axis: int) -> np.ndarray:
    """Filter scales broadcast to num_channels; symmetric (zero point 0) as TFLM requires for int8."""
    q = filter_t.quant
    if q is None or q.scale.size == 0:
        raise Unsupported(f"filter '{filter_t.name}' is not quantized", "quantize the model fully to int8.")
    if q.per_channel and (q.scale.size != num_channels or q.axis != axis):
        raise Unsupported(f"filter '{filter_t.name}' has {q.scale.size} scales on axis {q.axis}; expected "
                          f"{num_channels} on axis {axis}", "re-quantize with the TFLite converter.")
    if np.any(q.zero_point != 0):
        raise Unsupported(f"filter '{filter_t.name}' has a non-zero zero point (TFLM requires symmetric int8 "
                          "filters)", "re-quantize with the TFLite converter (symmetric weights).")
    return q.scale


def bias_ref(ctx: LowerContext, bias: Tensor | None, dtype: str) -> str:
    """The constant bias (int32 for int8 kernels, float32 for f32 ones), or NULL."""
    if bias is None:
        return "NULL"
    _check_bias(bias, dtype)
    return ctx.tensor_ref(bias)


def int8_weights(ctx: LowerContext, kernel: str, filt: Tensor, bias: Tensor | None, rq: Requant,
                 geometry: dict[str, int], in_d, out_d, filter_offset: int = 0) -> dict[str, str]:
    """The `filter`/`bias` fields of an int8 convolution-family kernel: TFLite-layout constants, or the kernel
    set's ahead-of-time packing of them (codegen/packing.py), which also gets this op's requantization `rq`."""
    if bias is not None:
        _check_bias(bias, "int32")
    channels = int(out_d[3])
    request = PackRequest(kernel=kernel, filter=np.asarray(filt.data, dtype=np.int8),
                          bias=None if bias is None else np.asarray(bias.data, dtype=np.int32).reshape(-1),
                          input_offset=int(rq.input_offset), filter_offset=int(filter_offset), geometry=dict(geometry),
                          input_shape=tuple(int(d) for d in in_d), output_shape=tuple(int(d) for d in out_d),
                          multiplier=np.broadcast_to(np.asarray(rq.multiplier, np.int64), channels).copy(),
                          shift=np.broadcast_to(np.asarray(rq.shift, np.int64), channels).copy(),
                          output_offset=int(rq.output_offset))
    return ctx.weight_fields(request, filt, bias)


def requant_fields(ctx: LowerContext, rq: Requant, weights: dict[str, str]) -> dict[str, str]:
    """`multiplier`/`shift` arrays, unless the kernel set's packer replaced them by its own requantization table
    (it then returns them as NULL itself, and the TFLite-layout arrays are not written to flash twice)."""
    return {} if "multiplier" in weights else rq.array_fields(ctx)


def _check_bias(bias: Tensor, dtype: str) -> None:
    require_dtype(bias, (dtype,), "bias")
    if not bias.is_constant:
        raise Unsupported(f"bias '{bias.name}' is not a constant", "fold the bias into the model as a constant.")


def fc_shape(inp: Tensor, filt: Tensor, out: Tensor) -> tuple[int, int, int]:
    """(batches, accum_depth, output_depth) of FULLY_CONNECTED with weights [output_depth, accum_depth]."""
    out_depth, accum = int(filt.shape[0]), int(filt.shape[1])
    if not out.shape or int(out.shape[-1]) != out_depth:
        raise Unsupported("output shape disagrees with the weights", "re-export the model.")
    batches = out.numel // out_depth
    if inp.numel != batches * accum:
        raise Unsupported(f"input has {inp.numel} values, expected {batches}x{accum}", "re-export the model.")
    return batches, accum, out_depth


def _operands(ctx: LowerContext) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
    ins = ctx.inputs()
    return ins[0], ins[1], ins[2] if len(ins) > 2 else None, ctx.outputs()[0]


def _conv_macs(out_d, f_d, depthwise: bool) -> int:
    return out_d[0] * out_d[1] * out_d[2] * out_d[3] * f_d[1] * f_d[2] * (1 if depthwise else f_d[3])


def _lowered(fn: str, params: str, ctx: LowerContext, inp: Tensor, out: Tensor, macs: int) -> LoweredOp:
    call = f"{fn}({params}, {ctx.tensor_ref(inp)}, {ctx.tensor_ref(out)}, {ctx.scratch_ref()})"
    return LoweredOp(call=call, macs=macs, sources=(fn[3:] + ".c",), kernel=fn)


# ---- CONV_2D and DEPTHWISE_CONV_2D ----------------------------------------------------------------------------

@register("CONV_2D", "DEPTHWISE_CONV_2D")
def lower_conv(op: Operator, ctx: LowerContext) -> LoweredOp:
    depthwise = op.opcode == "DEPTHWISE_CONV_2D"
    if first_input_dtype(ctx) == "float32":
        return _conv_f32(op, ctx, depthwise)
    return _depthwise_conv_s8(op, ctx) if depthwise else _conv_s8(op, ctx)


def _int8_conv_operands(op: Operator, inp, filt, out) -> str:
    require_dtype(inp, ("int8",), "input")
    require_dtype(out, ("int8",), "output")
    require_dtype(filt, ("int8",), "filter")
    if not filt.is_constant:
        raise Unsupported("the filter is not a constant tensor", "export the model with constant weights.")
    return fused_activation(op, ON_INT8)


def _conv_s8(op: Operator, ctx: LowerContext) -> LoweredOp:
    inp, filt, bias, out = _operands(ctx)
    act = _int8_conv_operands(op, inp, filt, out)
    in_d, f_d, out_d = dims4(inp), dims4(filt), dims4(out)
    if len(inp.shape) != 4 or len(filt.shape) != 4:
        raise Unsupported("CONV_2D needs 4-D input and filter", "re-export the model.")
    geometry = Window.of(op).fields(in_d, f_d, out, out_d, channels_match=out_d[3] == f_d[0])
    if in_d[3] % f_d[3] != 0 or f_d[0] % (in_d[3] // f_d[3]) != 0:
        raise Unsupported("input channels are not a multiple of the filter's input channels",
                          "re-export the model.")
    rq = Requant.per_channel(inp, out, filt, f_d[0], 0, act)
    from formicary.codegen.ops import sparse  # block-sparse weights (pruned models): zero blocks skipped

    if in_d[3] == f_d[3] and sparse.pays(filt, ctx, "fm_conv2d_s8"):
        return sparse.lower_conv(op, ctx, inp, filt, bias_ref(ctx, bias, "int32"), out, in_d, f_d, out_d, geometry,
                                 rq, _conv_macs(out_d, f_d, False))
    weights = int8_weights(ctx, "fm_conv2d_s8", filt, bias, rq, geometry, in_d, out_d)
    params = ctx.const_struct("params", "fm_conv_s8_params_t", {
        "input_dims": dims4_c(in_d), "filter_dims": dims4_c(f_d), "output_dims": dims4_c(out_d), **geometry,
        **rq.clamp_fields(), **weights, **requant_fields(ctx, rq, weights)})
    return _lowered("fm_conv2d_s8", params, ctx, inp, out, _conv_macs(out_d, f_d, False))


def _depthwise_conv_s8(op: Operator, ctx: LowerContext) -> LoweredOp:
    inp, filt, bias, out = _operands(ctx)
    act = _int8_conv_operands(op, inp, filt, out)
    in_d, f_d, out_d = dims4(inp), dims4(filt), dims4(out)
    window = Window.of(op)
    dm = _depth_multiplier(in_d, f_d, out_d)
    opt_dm = int(op.options.get("depth_multiplier", 0) or 0)
    if opt_dm not in (0, dm):
        raise Unsupported(f"depth_multiplier option {opt_dm} disagrees with the shapes ({dm})",
                          "re-export the model.")
    geometry = window.fields(in_d, f_d, out, out_d)
    rq = Requant.per_channel(inp, out, filt, out_d[3], 3, act)
    weights = int8_weights(ctx, "fm_depthwise_conv2d_s8", filt, bias, rq,
                           {**geometry, "depth_multiplier": dm}, in_d, out_d)
    params = ctx.const_struct("params", "fm_depthwise_conv_s8_params_t", {
        "input_dims": dims4_c(in_d), "filter_dims": dims4_c(f_d), "output_dims": dims4_c(out_d), **geometry,
        "depth_multiplier": dm, **rq.clamp_fields(), **weights, **requant_fields(ctx, rq, weights)})
    return _lowered("fm_depthwise_conv2d_s8", params, ctx, inp, out, _conv_macs(out_d, f_d, True))


def _depth_multiplier(in_d, f_d, out_d) -> int:
    # TFLM derives the multiplier from the shapes (the option may be 0 in some exported models).
    if in_d[3] == 0 or out_d[3] % in_d[3] != 0 or f_d[3] != out_d[3]:
        raise Unsupported("output channels are not a multiple of input channels", "re-export the model.")
    return out_d[3] // in_d[3]


def _conv_f32(op: Operator, ctx: LowerContext, depthwise: bool) -> LoweredOp:
    inp, filt, bias, out = _operands(ctx)
    for t, role in ((inp, "input"), (filt, "filter"), (out, "output")):
        require_dtype(t, ("float32",), role)
    if not filt.is_constant:
        raise Unsupported("the filter is not a constant tensor", "export the model with constant weights.")
    if len(inp.shape) != 4 or len(filt.shape) != 4:
        raise Unsupported(f"{op.opcode} needs 4-D input and filter", "re-export the model.")
    lo, hi = FLOAT_ACT[fused_activation(op)]
    in_d, f_d, out_d = dims4(inp), dims4(filt), dims4(out)
    geometry = Window.of(op).fields(in_d, f_d, out, out_d)
    if depthwise:
        dm = _depth_multiplier(in_d, f_d, out_d)
    else:
        if out_d[3] != f_d[0] or in_d[3] % f_d[3] != 0 or f_d[0] % (in_d[3] // f_d[3]) != 0:
            raise Unsupported("filter shape disagrees with the input/output channels", "re-export the model.")
        dm = 1
    params = ctx.const_struct("params", "fm_conv_f32_params_t", {
        "input_dims": dims4_c(in_d), "filter_dims": dims4_c(f_d), "output_dims": dims4_c(out_d), **geometry,
        "depth_multiplier": dm, "act_min": lo, "act_max": hi,
        "filter": ctx.tensor_ref(filt), "bias": bias_ref(ctx, bias, "float32")})
    fn = "fm_depthwise_conv2d_f32" if depthwise else "fm_conv2d_f32"
    return _lowered(fn, params, ctx, inp, out, _conv_macs(out_d, f_d, depthwise))


# ---- FULLY_CONNECTED -----------------------------------------------------------------------------------------

@register("FULLY_CONNECTED")
def lower_fully_connected(op: Operator, ctx: LowerContext) -> LoweredOp:
    if first_input_dtype(ctx) == "float32":
        return _fully_connected_f32(op, ctx)
    return _fully_connected_s8(op, ctx)


def _fully_connected_s8(op: Operator, ctx: LowerContext) -> LoweredOp:
    inp, filt, bias, out = _operands(ctx)
    require_dtype(inp, ("int8",), "input")
    require_dtype(out, ("int8",), "output")
    require_dtype(filt, ("int8",), "filter")
    if not filt.is_constant:
        raise Unsupported("the weights are not a constant tensor", "export the model with constant weights.")
    if op.options.get("weights_format", 0) not in (0, "DEFAULT"):
        raise Unsupported("shuffled weights format", "export with the default weights format.")
    act = fused_activation(op, ON_INT8)
    if len(filt.shape) != 2:
        raise Unsupported(f"weights of rank {len(filt.shape)}", "re-export the model.")
    batches, accum, out_depth = fc_shape(inp, filt, out)
    rq, filter_zp, per_channel = _fc_requant(inp, out, filt, out_depth, act)
    from formicary.codegen.ops import sparse  # block-sparse weights (pruned models): zero blocks skipped

    if filter_zp == 0 and sparse.pays(filt, ctx, "fm_fully_connected_s8"):
        return sparse.lower_fully_connected(op, ctx, inp, filt, bias_ref(ctx, bias, "int32"), out, batches, accum,
                                            out_depth, rq, per_channel)
    weights = int8_weights(ctx, "fm_fully_connected_s8", filt, bias, rq, {"per_channel": int(per_channel)},
                           (1, 1, batches, accum), (1, 1, batches, out_depth), filter_offset=-filter_zp)
    params = ctx.const_struct("params", "fm_fully_connected_s8_params_t", {
        "batches": batches, "accum_depth": accum, "output_depth": out_depth,
        "input_offset": rq.input_offset, "filter_offset": -filter_zp, "output_offset": rq.output_offset,
        "act_min": rq.act_min, "act_max": rq.act_max, "per_channel": int(per_channel),
        **weights, **requant_fields(ctx, rq, weights)})
    return _lowered("fm_fully_connected_s8", params, ctx, inp, out, batches * out_depth * accum)


def _fc_requant(inp: Tensor, out: Tensor, filt: Tensor, out_depth: int, act: str) -> tuple[Requant, int, bool]:
    """TFLM FullyConnected Prepare: per-channel weights as a convolution's; per-tensor weights multiply the input
    and filter scales in float first (quant.per_tensor_conv_multiplier) and may have a zero point."""
    in_scale, in_zp = qparams(inp)
    out_scale, out_zp = qparams(out)
    fq = filt.quant
    if fq is None or fq.scale.size == 0:
        raise Unsupported(f"weights '{filt.name}' are not quantized", "quantize the model fully to int8.")
    per_channel = fq.scale.size > 1
    if per_channel:
        if fq.scale.size != out_depth or fq.axis != 0:
            raise Unsupported("per-channel weight scales not along the output axis", "re-export the model.")
        mult, shift = quant.conv_per_channel_multipliers(in_scale, fq.scale, out_scale, out_depth)
        filter_zp = 0
        if np.any(fq.zero_point != 0):
            raise Unsupported("per-channel weights with non-zero zero points", "re-quantize symmetrically.")
    else:
        m, s = quant.per_tensor_conv_multiplier(in_scale, float(fq.scale[0]), out_scale)
        mult, shift = np.array([m], dtype=np.int32), np.array([s], dtype=np.int32)
        filter_zp = int(fq.zero_point[0])
    act_min, act_max = quant.activation_range(act, out_scale, out_zp)
    return Requant(-in_zp, out_zp, act_min, act_max, mult, shift), filter_zp, per_channel


def _fully_connected_f32(op: Operator, ctx: LowerContext) -> LoweredOp:
    inp, filt, bias, out = _operands(ctx)
    for t, role in ((inp, "input"), (filt, "weights"), (out, "output")):
        require_dtype(t, ("float32",), role)
    if not filt.is_constant or len(filt.shape) != 2:
        raise Unsupported("weights must be a constant 2-D tensor", "export the model with constant weights.")
    lo, hi = FLOAT_ACT[fused_activation(op)]
    batches, accum, out_depth = fc_shape(inp, filt, out)
    params = ctx.const_struct("params", "fm_fully_connected_f32_params_t", {
        "batches": batches, "accum_depth": accum, "output_depth": out_depth, "act_min": lo, "act_max": hi,
        "filter": ctx.tensor_ref(filt), "bias": bias_ref(ctx, bias, "float32")})
    return _lowered("fm_fully_connected_f32", params, ctx, inp, out, batches * out_depth * accum)
