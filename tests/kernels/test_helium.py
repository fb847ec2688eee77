"""The helium kernel set (firmware/kernels/helium/, MVE intrinsics through fm_mve.h's portable definitions on the
host) vs TFLM, bit for bit, in ASan/UBSan host builds: CONV_2D (1x1 path, im2col path, few input channels,
groups), DEPTHWISE_CONV_2D (3x3 and general, depth multiplier), FULLY_CONNECTED (per-tensor with a filter zero point
and per-channel), AVERAGE/MAX_POOL_2D and ADD, over odd and round channel counts, strides, SAME/VALID, dilation,
zero points at both ends, fused RELU/RELU6, and per-channel scales with an all-zero channel.

The packers' layouts are checked directly too (sets/helium/conv.py), and the MVE shim against known lane values
(tests/kernels/test_helium_mve_shim.py).
"""
from __future__ import annotations

import numpy as np
import pytest
from formicary.bench.verify import verify_model
from formicary.codegen import quant
from formicary.tflite.builder import fully_connected_model
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.kernels.test_conv_s8 import ACTS, PADS, _conv_model, log_uniform
from tests.support.tfl_builder import Op, T, build

DEPTHS = [1, 3, 15, 16, 17, 63, 64, 65]
N = 25


def check(model: bytes, seed: int, n: int = 3) -> None:
    r = verify_model(model, inputs=n, seed=seed, sanitize=True, measure_tflm_arena=False, kernels="helium")
    assert r["sanitize"] and r["bit_exact"], r


@st.composite
def conv_case(draw, depthwise: bool, one_by_one: bool = False):
    n = draw(st.sampled_from([1, 1, 2]))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    if one_by_one:
        kh = kw = 1
    else:
        kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = (1, 1) if one_by_one else (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pad = draw(st.sampled_from(list(PADS)))
    oh, ow = quant.compute_out_size(pad, h, kh, sh, dh), quant.compute_out_size(pad, w, kw, sw, dw)
    if oh <= 0 or ow <= 0:
        pad, dh, dw, kh, kw = "SAME", 1, 1, min(kh, h), min(kw, w)
        oh, ow = quant.compute_out_size(pad, h, kh, sh, dh), quant.compute_out_size(pad, w, kw, sw, dw)
    in_c = draw(st.sampled_from(DEPTHS))
    if depthwise:
        dm = draw(st.sampled_from([1, 1, 1, 2]))
        out_c, groups = in_c * dm, 1
    else:
        groups = draw(st.sampled_from([1, 1, 1, 2])) if in_c % 2 == 0 and not one_by_one else 1
        out_c = draw(st.sampled_from([1, 3, 4, 5, 8, 17])) * groups
        dm = 1
    per_channel = draw(st.booleans())
    f_scale = [log_uniform(draw, 1e-4, 0.05) for _ in range(out_c if per_channel else 1)]
    return dict(n=n, h=h, w=w, kh=kh, kw=kw, sh=sh, sw=sw, dh=dh, dw=dw, pad=pad, oh=oh, ow=ow, in_c=in_c,
                out_c=out_c, dm=dm, groups=groups, act=draw(st.sampled_from(list(ACTS))), per_channel=per_channel,
                in_scale=log_uniform(draw, 1e-3, 1.0), in_zp=draw(st.sampled_from([-128, 127, 0, -5, 33])),
                out_scale=log_uniform(draw, 1e-3, 2.0), out_zp=draw(st.sampled_from([-128, 127, 0, 9])),
                f_scale=f_scale, bias_bits=draw(st.sampled_from([8, 16, 24])),
                has_bias=True if depthwise else draw(st.booleans()), seed=draw(st.integers(0, 2 ** 16)),
                zero_channel=draw(st.booleans()))


def conv_model(c: dict, depthwise: bool) -> bytes:
    """test_conv_s8's builder, optionally with output channel 0's weights all zero."""
    if not c.get("zero_channel"):
        return _conv_model(c, depthwise)
    from tests.kernels import test_conv_s8 as base

    real_build = base.build

    def zeroing_build(tensors, ops, ins, outs):
        w = tensors[1]
        data = np.array(w.data, copy=True)
        if depthwise:
            data[..., 0] = 0
        else:
            data[0] = 0
        w.data = data
        return real_build(tensors, ops, ins, outs)

    base.build = zeroing_build
    try:
        return _conv_model(c, depthwise)
    finally:
        base.build = real_build


@settings(max_examples=N, deadline=None)
@given(conv_case(depthwise=False, one_by_one=True))
def test_conv2d_1x1_helium(c):
    check(conv_model(c, False), c["seed"])


@settings(max_examples=N, deadline=None)
@given(conv_case(depthwise=False))
def test_conv2d_im2col_helium(c):
    check(conv_model(c, False), c["seed"])


@pytest.mark.parametrize("in_c,stride,pad", [(1, 2, "SAME"), (1, 1, "VALID"), (2, 2, "SAME"), (3, 1, "SAME")])
def test_conv2d_few_input_channels_helium(in_c, stride, pad):
    """KWS's first layer shape: a 10x4 kernel over one input channel, stride 2, SAME."""
    h, w, kh, kw, out_c = 13, 7, 10, 4, 20
    oh, ow = quant.compute_out_size(pad, h, kh, stride, 1), quant.compute_out_size(pad, w, kw, stride, 1)
    c = dict(n=1, h=h, w=w, kh=kh, kw=kw, sh=stride, sw=stride, dh=1, dw=1, pad=pad, oh=oh, ow=ow, in_c=in_c,
             out_c=out_c, dm=1, groups=1, act="RELU", per_channel=True, in_scale=0.05, in_zp=-128,
             out_scale=0.1, out_zp=-128, f_scale=[0.002 + 0.0001 * i for i in range(out_c)], bias_bits=16,
             has_bias=True, seed=7, zero_channel=True)
    check(conv_model(c, False), 7)


@settings(max_examples=N, deadline=None)
@given(conv_case(depthwise=True))
def test_depthwise_conv2d_helium(c):
    check(conv_model(c, True), c["seed"])


@pytest.mark.parametrize("in_c", [8, 17, 64])
def test_depthwise_3x3_kws_like_helium(in_c):
    h, w = 9, 5
    c = dict(n=1, h=h, w=w, kh=3, kw=3, sh=1, sw=1, dh=1, dw=1, pad="SAME", oh=h, ow=w, in_c=in_c,
             out_c=in_c, dm=1, groups=1, act="RELU6", per_channel=True, in_scale=0.03, in_zp=127,
             out_scale=0.05, out_zp=-128, f_scale=[0.003 + 0.0001 * i for i in range(in_c)], bias_bits=16,
             has_bias=True, seed=in_c, zero_channel=True)
    check(conv_model(c, True), in_c)


@settings(max_examples=N, deadline=None)
@given(batches=st.integers(1, 3), accum=st.sampled_from(DEPTHS + [80]), out_depth=st.sampled_from([1, 3, 4, 12, 17]),
       per_channel=st.booleans(), filter_zp=st.sampled_from([0, 0, 3, -7]), act=st.sampled_from(list(ACTS)),
       has_bias=st.booleans(), in_zp=st.sampled_from([-128, 127, 0, 11]), out_zp=st.sampled_from([-128, 127, 4]),
       seed=st.integers(0, 2 ** 16), data=st.data())
def test_fully_connected_helium(batches, accum, out_depth, per_channel, filter_zp, act, has_bias, in_zp, out_zp,
                                seed, data):
    rng = np.random.default_rng(seed)
    if per_channel:
        filter_zp = 0
    in_scale = log_uniform(data.draw, 1e-3, 1.0)
    out_scale = log_uniform(data.draw, 1e-3, 4.0)
    f_scale = [log_uniform(data.draw, 1e-4, 0.05) for _ in range(out_depth if per_channel else 1)]
    w = rng.integers(-127, 128, (out_depth, accum)).astype(np.int8)
    bias = rng.integers(-2 ** 16, 2 ** 16, out_depth).astype(np.int32) if has_bias else None
    model = fully_connected_model(w, batches=batches, in_scale=in_scale, in_zp=in_zp, f_scale=f_scale,
                                  out_scale=out_scale, out_zp=out_zp, bias=bias, f_zp=filter_zp, act=act)
    check(model, seed)


def test_gemm_layout_blocks_channels_by_4_and_depth_by_16():
    from formicary.codegen.sets.helium.conv import gemm_matrix, requant_table

    w = np.arange(5 * 17, dtype=np.int64).reshape(5, 17).astype(np.int8)
    m = gemm_matrix(w).reshape(2, 2, 4, 16)  # [block][chunk][channel][16]
    assert m[0, 0, 1, 3] == w[1, 3] and m[0, 1, 2, 0] == w[2, 16] and m[1, 0, 0, 5] == w[4, 5]
    assert not m[0, 1, :, 1:].any() and not m[1, :, 1:].any()
    t = requant_table(np.array([7, 8, 9]), np.array([2, -3, 0])).reshape(1, 3, 4)
    assert t[0, 0].tolist() == [7, 8, 9, 0] and t[0, 1].tolist() == [2, 0, 0, 0] and t[0, 2].tolist() == [0, -3, 0, 0]


@settings(max_examples=N, deadline=None)
@given(n=st.integers(1, 2), h=st.integers(1, 12), w=st.integers(1, 12), c=st.sampled_from(DEPTHS),
       fh=st.integers(1, 5), fw=st.integers(1, 5), sh=st.integers(1, 3), sw=st.integers(1, 3),
       pad=st.sampled_from(list(PADS)), act=st.sampled_from(list(ACTS)), zp=st.sampled_from([-128, 127, 0, -7]),
       seed=st.integers(0, 2 ** 16))
def test_average_pool2d_helium(n, h, w, c, fh, fw, sh, sw, pad, act, zp, seed):
    fh, fw = min(fh, h), min(fw, w)
    oh, ow = quant.compute_out_size(pad, h, fh, sh), quant.compute_out_size(pad, w, fw, sw)
    scale = float(np.float32(0.02 + (seed % 100) / 400))
    tensors = [T((n, h, w, c), scale=[scale], zero_point=[zp]), T((n, oh, ow, c), scale=[scale], zero_point=[zp])]
    model = build(tensors, [Op("AVERAGE_POOL_2D", [0], [1], "Pool2DOptions",
                               dict(Padding=PADS[pad], StrideW=sw, StrideH=sh, FilterWidth=fw, FilterHeight=fh,
                                    FusedActivationFunction=ACTS[act]))], [0], [1])
    check(model, seed)


def test_average_pool2d_over_256_taps_helium():
    """A window of 20x15 = 300 taps: the int16 partial sums are flushed before they could overflow."""
    tensors = [T((1, 20, 15, 9), scale=[0.05], zero_point=[-128]), T((1, 1, 1, 9), scale=[0.05], zero_point=[-128])]
    model = build(tensors, [Op("AVERAGE_POOL_2D", [0], [1], "Pool2DOptions",
                               dict(Padding=1, StrideW=1, StrideH=1, FilterWidth=15, FilterHeight=20,
                                    FusedActivationFunction=0))], [0], [1])
    check(model, 3, n=4)


# 17 channels: one full 16-lane vector and a 1-lane tail; 64: full vectors only (a sub-vector-only width is
# covered by the single-op tests above and by the in-place/patch random chains)
@pytest.mark.parametrize("c,hw,seed", [(17, 12, 3), (64, 7, 5)])
def test_residual_separable_model_helium(c, hw, seed):
    """conv 3x3 -> depthwise 3x3 -> pointwise 1x1 -> residual ADD -> avg pool -> FC -> softmax."""
    from tests.codegen.test_models import residual_model

    check(residual_model(c=c, hw=hw, seed=seed), seed, n=5)


@settings(max_examples=N, deadline=None)
@given(n=st.integers(1, 2), h=st.integers(1, 10), w=st.integers(1, 10), c=st.sampled_from(DEPTHS + [32, 48]),
       fh=st.integers(1, 4), fw=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3),
       pad=st.sampled_from(list(PADS)), act=st.sampled_from(list(ACTS)), zp=st.sampled_from([-128, 127, 0, -7]),
       seed=st.integers(0, 2 ** 16))
def test_max_pool2d_helium(n, h, w, c, fh, fw, sh, sw, pad, act, zp, seed):
    """Channel tails (predicated blocks of 16), windows clipped at every border, fused clamps."""
    fh, fw = min(fh, h), min(fw, w)
    oh, ow = quant.compute_out_size(pad, h, fh, sh), quant.compute_out_size(pad, w, fw, sw)
    scale = float(np.float32(0.02 + (seed % 100) / 400))
    tensors = [T((n, h, w, c), scale=[scale], zero_point=[zp]), T((n, oh, ow, c), scale=[scale], zero_point=[zp])]
    model = build(tensors, [Op("MAX_POOL_2D", [0], [1], "Pool2DOptions",
                               {"Padding": PADS[pad], "StrideW": sw, "StrideH": sh, "FilterWidth": fw,
                                "FilterHeight": fh, "FusedActivationFunction": ACTS[act]})], [0], [1])
    check(model, seed)


def _add_model(shape1, shape2, out_shape, s1, z1, s2, z2, so, zo, act) -> bytes:
    tensors = [T(shape1, scale=[s1], zero_point=[z1]), T(shape2, scale=[s2], zero_point=[z2]),
               T(out_shape, scale=[so], zero_point=[zo])]
    return build(tensors, [Op("ADD", [0, 1], [2], "AddOptions", {"FusedActivationFunction": ACTS[act]})],
                 [0, 1], [2])


@settings(max_examples=N, deadline=None)
@given(shape=st.sampled_from([(1, 1, 1, 1), (1, 1, 1, 3), (1, 5, 5, 8), (2, 3, 7, 17), (1, 25, 5, 64), (37,)]),
       s1=st.floats(1e-3, 1.0), s2=st.floats(1e-3, 1.0), so=st.floats(1e-3, 2.0),
       z1=st.sampled_from([-128, 127, 0, 5]), z2=st.sampled_from([-128, 127, 0, -9]),
       zo=st.sampled_from([-128, 127, 0, 3]), act=st.sampled_from(list(ACTS)), seed=st.integers(0, 2 ** 16))
def test_add_helium(shape, s1, s2, so, z1, z2, zo, act, seed):
    """Same shapes (the vector path, tails of 1..3 elements), scales far apart either way, zero points at both ends."""
    s1, s2, so = (float(np.float32(v)) for v in (s1, s2, so))
    check(_add_model(shape, shape, shape, s1, z1, s2, z2, so, zo, act), seed)


@pytest.mark.parametrize("shape1,shape2,out", [((1, 4, 5, 8), (1, 1, 1, 8), (1, 4, 5, 8)),
                                               ((1, 1, 5, 1), (1, 3, 1, 6), (1, 3, 5, 6)),
                                               ((2, 3, 1, 4), (1, 1, 1, 1), (2, 3, 1, 4))])
def test_add_broadcast_helium(shape1, shape2, out):
    check(_add_model(shape1, shape2, out, 0.05, -3, 0.2, 10, 0.1, -128, "RELU"), 7)
