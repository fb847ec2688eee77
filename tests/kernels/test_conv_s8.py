"""int8 compute kernels vs TFLM, bit for bit, every example in an ASan/UBSan host build: CONV_2D (strides,
dilation, SAME/VALID, 1x1, groups, fused ReLU/ReLU6/ReLU_N1_TO_1), DEPTHWISE_CONV_2D (depth multiplier,
dilation), FULLY_CONNECTED (batches), AVERAGE_POOL_2D and SOFTMAX.

Each op is checked over two families of models, drawn by Hypothesis:
- converted: a tf.function through the TFLite converter, quantization calibrated on drawn value ranges (what
  Keras models become; needs TensorFlow);
- any quantization: flatbuffers built directly (tests.support.tfl_builder) with scales over decades, every zero
  point, per-tensor or per-channel filters and wide biases, which the converter rarely emits; the arena must
  also meet its lower bound. Edge geometries (padding at every border, dilation reaching past the image, grouped
  channels) are explicit examples of these.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from formicary.bench.verify import verify_model
from formicary.codegen import generate, quant
from formicary.target import host as native
from formicary.tflite import read_model
from formicary.tflite.builder import fully_connected_model
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.support.kernel_params import examples, kernel_param
from tests.support.opmodels import assert_bit_exact, input_sets
from tests.support.strategies import (
    ACTIVATIONS,
    apply_activation,
    conv_geometry,
    seeds,
    uniform_sampler,
    value_range,
)
from tests.support.tfl_builder import Op, T, build

N = 20                  # examples per op, converted models (TensorFlow converter per example)
N_ANY_QUANT = 40        # examples per op, directly built models
# Each test runs for every kernel set with its own file for the op (tests/support/kernel_params.py), the
# examples split across those sets.
CONV, DW, FC, AVG, SOFTMAX = "conv2d_s8.c", "depthwise_conv2d_s8.c", "fully_connected_s8.c", \
    "average_pool2d_s8.c", "softmax_s8.c"


def weights(rng, shape, kind):
    """Weights with varied per-channel ranges (per-channel scales differ) and sometimes an all-zero channel."""
    w = rng.standard_normal(shape).astype(np.float32)
    w *= rng.uniform(0.05, 3.0, size=shape[-1]).astype(np.float32)
    if kind == "zero_channel" and shape[-1] > 1:
        w[..., 0] = 0.0
    return w


@pytest.mark.tf
@kernel_param(CONV)
@settings(max_examples=examples(N, CONV))
@given(g=conv_geometry(), cout=st.integers(1, 9), act=st.sampled_from(ACTIVATIONS), r=value_range(),
       bias=st.booleans(), kind=st.sampled_from(["normal", "zero_channel"]), seed=seeds)
def test_conv2d_s8(opmodels, kernels, g, cout, act, r, bias, kind, seed):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    w = weights(rng, [g["kh"], g["kw"], g["shape"][3], cout], kind)
    b = rng.standard_normal(cout).astype(np.float32)

    def fn(x):
        y = tf.nn.conv2d(x, w, strides=[1, g["sh"], g["sw"], 1], padding=g["padding"],
                         dilations=[1, g["dil"], g["dil"], 1])
        return apply_activation(tf, y + b if bias else y, act)

    built = opmodels.convert(fn, [g["shape"]], int8=True, calib=uniform_sampler([g["shape"]], [r]), seed=seed)
    assert_bit_exact(built, input_sets(built, rng), "CONV_2D", kernels=kernels)


@pytest.mark.tf
@kernel_param(DW)
@settings(max_examples=examples(N, DW))
@given(g=conv_geometry(depthwise=True), mult=st.sampled_from([1, 1, 2, 3]), act=st.sampled_from(ACTIVATIONS),
       r=value_range(), kind=st.sampled_from(["normal", "zero_channel"]), seed=seeds)
def test_depthwise_conv2d_s8(opmodels, kernels, g, mult, act, r, kind, seed):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    cin = g["shape"][3]
    w = weights(rng, [g["kh"], g["kw"], cin, mult], kind)
    b = rng.standard_normal(cin * mult).astype(np.float32)
    if g["sh"] != g["sw"]:
        g["sw"] = g["sh"]  # TF's depthwise kernel requires equal strides

    def fn(x):
        y = tf.raw_ops.DepthwiseConv2dNative(input=x, filter=w, strides=[1, g["sh"], g["sw"], 1],
                                             padding=g["padding"], dilations=[1, g["dil"], g["dil"], 1])
        return apply_activation(tf, y + b, act)

    built = opmodels.convert(fn, [g["shape"]], int8=True, calib=uniform_sampler([g["shape"]], [r]), seed=seed)
    assert_bit_exact(built, input_sets(built, rng), "DEPTHWISE_CONV_2D", kernels=kernels)


@pytest.mark.tf
@kernel_param(FC)
@settings(max_examples=examples(N, FC))
@given(batch=st.integers(1, 4), din=st.integers(1, 40), dout=st.integers(1, 20), act=st.sampled_from(ACTIVATIONS),
       r=value_range(), bias=st.booleans(), seed=seeds)
def test_fully_connected_s8(opmodels, kernels, batch, din, dout, act, r, bias, seed):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    w = (rng.standard_normal([din, dout]) * rng.uniform(0.05, 2.0)).astype(np.float32)
    b = rng.standard_normal(dout).astype(np.float32)

    def fn(x):
        y = tf.matmul(x, w)
        return apply_activation(tf, y + b if bias else y, act)

    built = opmodels.convert(fn, [[batch, din]], int8=True, calib=uniform_sampler([[batch, din]], [r]), seed=seed)
    assert_bit_exact(built, input_sets(built, rng), "FULLY_CONNECTED", kernels=kernels)


@pytest.mark.tf
@kernel_param(AVG)
@settings(max_examples=examples(N, AVG))
@given(shape=st.tuples(st.integers(1, 2), st.integers(1, 9), st.integers(1, 9), st.integers(1, 8)).map(list),
       k=st.tuples(st.integers(1, 4), st.integers(1, 4)), s=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       padding=st.sampled_from(["SAME", "VALID"]), act=st.sampled_from(ACTIVATIONS), r=value_range(), seed=seeds)
def test_average_pool2d_s8(opmodels, kernels, shape, k, s, padding, act, r, seed):
    import tensorflow as tf

    if padding == "VALID":
        shape[1], shape[2] = max(shape[1], k[0]), max(shape[2], k[1])
    fn = lambda x: apply_activation(tf, tf.nn.avg_pool2d(x, list(k), list(s), padding), act)
    built = opmodels.convert(fn, [shape], int8=True, calib=uniform_sampler([shape], [r]), seed=seed)
    assert_bit_exact(built, input_sets(built, np.random.default_rng(seed)), "AVERAGE_POOL_2D", kernels=kernels)


@pytest.mark.tf
@kernel_param(SOFTMAX)
@settings(max_examples=examples(N, SOFTMAX))
@given(shape=st.sampled_from([[1, 10], [2, 7], [1, 1], [3, 33], [1, 3, 4, 5]]), r=value_range(),
       beta=st.sampled_from([1.0, 1.0, 0.5, 2.0]), seed=seeds)
def test_softmax_s8(opmodels, kernels, shape, r, beta, seed):
    import tensorflow as tf

    fn = (lambda x: tf.nn.softmax(x)) if beta == 1.0 else (lambda x: tf.nn.softmax(x * beta))
    built = opmodels.convert(fn, [shape], int8=True, calib=uniform_sampler([shape], [r]), seed=seed)
    assert_bit_exact(built, input_sets(built, np.random.default_rng(seed)), "SOFTMAX", kernels=kernels)


# --- any quantization: models built directly -------------------------------------------------------------

ACTS = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}
PADS = {"SAME": 0, "VALID": 1}


def log_uniform(draw, lo: float, hi: float) -> float:
    return float(np.float32(10 ** draw(st.floats(np.log10(lo), np.log10(hi)))))


def check(model: bytes, seed: int, n: int = 3, kernels: str | None = None) -> None:
    """Random int8 inputs through the sanitizer build and TFLM: every byte equal; arena at its lower bound
    (scratch of an optimized set's kernels included in both)."""
    r = verify_model(model, inputs=n, seed=seed, sanitize=True, measure_tflm_arena=False, kernels=kernels)
    assert r["sanitize"] and r["bit_exact"], r
    assert r["arena_bytes"] <= max(1.05 * r["arena_lower_bound_bytes"], r["arena_lower_bound_bytes"] + 3)


@st.composite
def conv_case(draw, depthwise: bool):
    n = draw(st.sampled_from([1, 1, 2]))
    h, w = draw(st.integers(1, 11)), draw(st.integers(1, 11))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pad = draw(st.sampled_from(list(PADS)))
    oh = quant.compute_out_size(pad, h, kh, sh, dh)
    ow = quant.compute_out_size(pad, w, kw, sw, dw)
    if oh <= 0 or ow <= 0:
        pad, dh, dw, kh, kw = "SAME", 1, 1, min(kh, h), min(kw, w)
        oh, ow = quant.compute_out_size(pad, h, kh, sh, dh), quant.compute_out_size(pad, w, kw, sw, dw)
    in_c = draw(st.integers(1, 6))
    if depthwise:
        dm = draw(st.integers(1, 3))
        out_c, groups = in_c * dm, 1
    else:
        groups = draw(st.sampled_from([1, 1, 1, 2])) if in_c % 2 == 0 else 1
        out_c = draw(st.integers(1, 4)) * groups
        dm = 1
    act = draw(st.sampled_from(list(ACTS)))
    per_channel = draw(st.booleans())
    return dict(n=n, h=h, w=w, kh=kh, kw=kw, sh=sh, sw=sw, dh=dh, dw=dw, pad=pad, oh=oh, ow=ow, in_c=in_c,
                out_c=out_c, dm=dm, groups=groups, act=act, per_channel=per_channel,
                in_scale=log_uniform(draw, 1e-3, 1.0), in_zp=draw(st.integers(-128, 127)),
                out_scale=log_uniform(draw, 1e-3, 2.0), out_zp=draw(st.integers(-128, 127)),
                f_scale=[log_uniform(draw, 1e-4, 0.05) for _ in range(out_c if per_channel else 1)],
                bias_bits=draw(st.sampled_from([8, 16, 24])),
                # The TFLM wheel segfaults on DEPTHWISE_CONV_2D without a bias tensor, so the oracle needs one.
                has_bias=True if depthwise else draw(st.booleans()),
                seed=draw(st.integers(0, 2 ** 16)))


def _conv_model(c: dict, depthwise: bool) -> bytes:
    rng = np.random.default_rng(c["seed"])
    if depthwise:
        w = rng.integers(-127, 128, (1, c["kh"], c["kw"], c["out_c"])).astype(np.int8)
        axis = 3
    else:
        w = rng.integers(-127, 128, (c["out_c"], c["kh"], c["kw"], c["in_c"] // c["groups"])).astype(np.int8)
        axis = 0
    nsc = len(c["f_scale"])
    tensors = [T((c["n"], c["h"], c["w"], c["in_c"]), scale=[c["in_scale"]], zero_point=[c["in_zp"]]),
               T(w.shape, scale=c["f_scale"], zero_point=[0] * nsc, axis=axis, data=w)]
    inputs = [0, 1]
    if c["has_bias"]:
        lim = 2 ** c["bias_bits"]
        bias = rng.integers(-lim, lim, c["out_c"]).astype(np.int32)
        bscale = [c["in_scale"] * s for s in (c["f_scale"] * (c["out_c"] if nsc == 1 else 1))]
        tensors.append(T((c["out_c"],), "int32", scale=bscale, zero_point=[0] * c["out_c"], data=bias))
        inputs.append(2)
    else:
        inputs.append(-1)
    tensors.append(T((c["n"], c["oh"], c["ow"], c["out_c"]), scale=[c["out_scale"]], zero_point=[c["out_zp"]]))
    out = len(tensors) - 1
    fields = dict(Padding=PADS[c["pad"]], StrideW=c["sw"], StrideH=c["sh"], FusedActivationFunction=ACTS[c["act"]],
                  DilationWFactor=c["dw"], DilationHFactor=c["dh"])
    if depthwise:
        fields["DepthMultiplier"] = c["dm"]
        op = Op("DEPTHWISE_CONV_2D", inputs, [out], "DepthwiseConv2DOptions", fields)
    else:
        op = Op("CONV_2D", inputs, [out], "Conv2DOptions", fields)
    return build(tensors, [op], [0], [out])


def _edge_conv_case(case: str) -> dict:
    """Padding at every border, dilation reaching past the image, grouped channels with strides."""
    rng = np.random.default_rng(11)
    c = dict(n=2, h=7, w=5, kh=3, kw=4, sh=1, sw=1, dh=3, dw=2, pad="SAME", in_c=4, out_c=4, dm=1, groups=1,
             act="RELU6", per_channel=True, in_scale=0.05, in_zp=-3, out_scale=0.1, out_zp=10,
             bias_bits=16, has_bias=True, seed=3)
    if case == "conv_grouped_strided":
        c.update(groups=2, out_c=6, sh=2, sw=3, dh=1, dw=1, pad="VALID", kh=2, kw=2, act="NONE")
    if case == "depthwise_dm3_same":
        c.update(dm=3, out_c=12, dh=1, dw=2)
    c["f_scale"] = list(rng.uniform(0.001, 0.01, c["out_c"]).astype(np.float32).astype(float))
    c["oh"] = quant.compute_out_size(c["pad"], c["h"], c["kh"], c["sh"], c["dh"])
    c["ow"] = quant.compute_out_size(c["pad"], c["w"], c["kw"], c["sw"], c["dw"])
    return c


@kernel_param(CONV)
@settings(max_examples=examples(N_ANY_QUANT, CONV))
@given(conv_case(depthwise=False))
@example(_edge_conv_case("conv_dilated_same"))
@example(_edge_conv_case("conv_grouped_strided"))
def test_conv2d_s8_any_quant(kernels, c):
    check(_conv_model(c, depthwise=False), c["seed"], kernels=kernels)


@kernel_param(DW)
@settings(max_examples=examples(N_ANY_QUANT, DW))
@given(conv_case(depthwise=True))
@example(_edge_conv_case("depthwise_dm3_same"))
def test_depthwise_conv2d_s8_any_quant(kernels, c):
    check(_conv_model(c, depthwise=True), c["seed"], kernels=kernels)


@kernel_param(FC)
@settings(max_examples=examples(N_ANY_QUANT, FC))
@given(batches=st.integers(1, 3), accum=st.integers(1, 80), out_depth=st.integers(1, 16),
       per_channel=st.booleans(), act=st.sampled_from(list(ACTS)), has_bias=st.booleans(),
       in_zp=st.integers(-128, 127), out_zp=st.integers(-128, 127), seed=st.integers(0, 2 ** 16),
       data=st.data())
def test_fully_connected_s8_any_quant(kernels, batches, accum, out_depth, per_channel, act, has_bias, in_zp,
                                      out_zp, seed, data):
    rng = np.random.default_rng(seed)
    in_scale = log_uniform(data.draw, 1e-3, 1.0)
    out_scale = log_uniform(data.draw, 1e-3, 4.0)
    f_scale = [log_uniform(data.draw, 1e-4, 0.05) for _ in range(out_depth if per_channel else 1)]
    w = rng.integers(-127, 128, (out_depth, accum)).astype(np.int8)
    bias = rng.integers(-2 ** 16, 2 ** 16, out_depth).astype(np.int32) if has_bias else None
    model = fully_connected_model(w, batches=batches, in_scale=in_scale, in_zp=in_zp, f_scale=f_scale,
                                  out_scale=out_scale, out_zp=out_zp, bias=bias, act=act)
    check(model, seed, kernels=kernels)


@kernel_param(AVG)
@settings(max_examples=examples(N_ANY_QUANT, AVG))
@given(n=st.integers(1, 2), h=st.integers(1, 12), w=st.integers(1, 12), c=st.integers(1, 5),
       fh=st.integers(1, 5), fw=st.integers(1, 5), sh=st.integers(1, 3), sw=st.integers(1, 3),
       pad=st.sampled_from(list(PADS)), act=st.sampled_from(list(ACTS)), zp=st.integers(-128, 127),
       seed=st.integers(0, 2 ** 16))
@example(n=1, h=5, w=6, c=3, fh=3, fw=3, sh=2, sw=2, pad="SAME", act="NONE", zp=-7, seed=32)  # SAME, scale 0.1
def test_average_pool2d_s8_any_quant(kernels, n, h, w, c, fh, fw, sh, sw, pad, act, zp, seed):
    fh, fw = min(fh, h), min(fw, w)
    oh, ow = quant.compute_out_size(pad, h, fh, sh), quant.compute_out_size(pad, w, fw, sw)
    scale = float(np.float32(0.02 + (seed % 100) / 400))
    tensors = [T((n, h, w, c), scale=[scale], zero_point=[zp]), T((n, oh, ow, c), scale=[scale], zero_point=[zp])]
    model = build(tensors, [Op("AVERAGE_POOL_2D", [0], [1], "Pool2DOptions",
                               dict(Padding=PADS[pad], StrideW=sw, StrideH=sh, FilterWidth=fw, FilterHeight=fh,
                                    FusedActivationFunction=ACTS[act]))], [0], [1])
    check(model, seed, n=4, kernels=kernels)


@kernel_param(SOFTMAX)
@settings(max_examples=examples(N_ANY_QUANT, SOFTMAX))
@given(rows=st.integers(1, 3), depth=st.integers(1, 64), zp=st.integers(-128, 127),
       beta=st.sampled_from([1.0, 0.5, 2.0, 0.1]), seed=st.integers(0, 2 ** 16),
       in_scale=st.floats(-3.0, np.log10(2.0)).map(lambda e: float(np.float32(10 ** e))))
@example(rows=4, depth=1, zp=1, beta=1.0, seed=2, in_scale=0.3)  # one class per row
def test_softmax_s8_any_quant(kernels, rows, depth, zp, beta, seed, in_scale):
    tensors = [T((rows, depth), scale=[in_scale], zero_point=[zp]),
               T((rows, depth), scale=[1.0 / 256], zero_point=[-128])]
    model = build(tensors, [Op("SOFTMAX", [0], [1], "SoftmaxOptions", dict(Beta=beta))], [0], [1])
    check(model, seed, n=4, kernels=kernels)


@kernel_param(CONV)
def test_conv_saturates_like_tflm(kernels):
    """Huge biases and a tiny output scale push the accumulator far outside int8: both ends must clamp
    identically (and they really do clamp, so the test checks saturation, not just agreement)."""
    rng = np.random.default_rng(5)
    w = rng.integers(-127, 128, (6, 1, 1, 3)).astype(np.int8)  # 1x1 kernel
    bias = np.array([2 ** 24, -(2 ** 24), 2 ** 20, -(2 ** 20), 0, 7], dtype=np.int32)
    tensors = [T((1, 3, 5, 3), scale=[0.5], zero_point=[-128]),
               T(w.shape, scale=[0.05] * 6, zero_point=[0] * 6, data=w),
               T((6,), "int32", scale=[0.025] * 6, zero_point=[0] * 6, data=bias),
               T((1, 3, 5, 6), scale=[0.01], zero_point=[5])]
    model = build(tensors, [Op("CONV_2D", [0, 1, 2], [3], "Conv2DOptions", dict(Padding=1, StrideW=1, StrideH=1))],
                  [0], [3])
    r = verify_model(model, inputs=5, seed=1, measure_tflm_arena=False, kernels=kernels)
    assert r["bit_exact"], r
    with tempfile.TemporaryDirectory() as tmp:
        res = generate(model, Path(tmp) / "g", kernels=kernels)
        out = native.load(res, read_model(model)).run([np.zeros((1, 3, 5, 3), np.int8)])[0]
    assert (out[..., 0] == 127).all() and (out[..., 1] == -128).all()


@kernel_param(SOFTMAX)
def test_softmax_wide_flat_row_has_no_undefined_shift(kernels):
    """>= 512 equal logits push TFLM's final RoundingDivideByPOT past 31 bits; the TFLM wheel aborts there, so
    there is no oracle. formicary-rt must return the exact value (every probability 1/600 rounds to q = -128)
    without UB: checked in the sanitizer build."""
    model = build([T((1, 600), scale=[0.1], zero_point=[0]), T((1, 600), scale=[1.0 / 256], zero_point=[-128])],
                  [Op("SOFTMAX", [0], [1], "SoftmaxOptions", {"Beta": 1.0})], [0], [1])
    with tempfile.TemporaryDirectory() as tmp:
        res = generate(model, Path(tmp) / "g", kernels=kernels)
        exe = native.build_executable(res, sanitize=True)
        x = np.zeros((1, 600), np.int8)
        y = np.full((1, 600), -128, np.int8)
        y[0, 0] = 127  # one clear winner (logit gap 25.5): probability ~1
        out = native.run_executable(exe, read_model(model), [[x], [y]])
    assert (out[0][0] == -128).all()
    assert out[1][0][0, 0] == 127 and (out[1][0][0, 1:] == -128).all()
