"""The dsp kernel set's DEPTHWISE_CONV_2D, AVERAGE_POOL_2D, MAX_POOL_2D and ADD int8 kernels vs TFLM, bit for bit,
in the ASan/UBSan host build (portable definitions of the DSP intrinsics), over seeded random cases that reach
their special paths: channel counts around the groups of 4 (1, 3, 5, 63, 65), depth multipliers 1/2/3, strides,
dilation, padding at every border, tiny images, 5x5 kernels, per-channel scales with an all-zero channel, zero
points at -128/127, fused RELU/RELU6; pooling windows with padding and window counts at the 16-bit lane limit;
ADD with and without broadcasting and with extreme multipliers."""
from __future__ import annotations

import numpy as np
import pytest
from formicary.bench.verify import verify_model
from formicary.codegen import quant

from tests.support.tfl_builder import Op, T, build

ACTS = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}
PADS = {"SAME": 0, "VALID": 1}


def check(model: bytes, seed: int, n: int = 3) -> None:
    r = verify_model(model, inputs=n, seed=seed, sanitize=True, measure_tflm_arena=False, kernels="dsp")
    assert r["sanitize"] and r["bit_exact"], r


# ---- DEPTHWISE_CONV_2D -----------------------------------------------------------------------------------------

def depthwise_model(seed: int, n=1, h=5, w=5, c=4, dm=1, kh=3, kw=3, sh=1, sw=1, dh=1, dw=1, pad="SAME",
                    act="NONE", in_zp=None, out_zp=None, zero_channel=False, per_channel=True,
                    out_scale=None) -> bytes:
    rng = np.random.default_rng(seed)
    oc = c * dm
    oh = quant.compute_out_size(pad, h, kh, sh, dh)
    ow = quant.compute_out_size(pad, w, kw, sw, dw)
    assert oh > 0 and ow > 0
    wt = rng.integers(-127, 128, (1, kh, kw, oc)).astype(np.int8)
    if zero_channel:
        wt[..., 0] = 0
    in_scale = float(np.float32(10 ** rng.uniform(-3, 0)))
    f_scale = [float(np.float32(10 ** rng.uniform(-4, -1.3))) for _ in range(oc if per_channel else 1)]
    in_zp = int(rng.integers(-128, 128)) if in_zp is None else in_zp
    out_zp = int(rng.integers(-128, 128)) if out_zp is None else out_zp
    if out_scale is None:  # requantization multipliers ~0.003-0.2, as trained models have (packed rows in use)
        out_scale = in_scale * max(f_scale) * 10 ** rng.uniform(0.7, 2.5)
    bias = rng.integers(-2 ** 16, 2 ** 16, oc).astype(np.int32)
    bscale = [in_scale * s for s in (f_scale * oc if len(f_scale) == 1 else f_scale)]
    tensors = [T((n, h, w, c), scale=[in_scale], zero_point=[in_zp]),
               T(wt.shape, scale=f_scale, zero_point=[0] * len(f_scale), axis=3, data=wt),
               T((oc,), "int32", scale=bscale, zero_point=[0] * oc, data=bias),
               T((n, oh, ow, oc), scale=[float(np.float32(out_scale))], zero_point=[out_zp])]
    fields = dict(Padding=PADS[pad], StrideW=sw, StrideH=sh, FusedActivationFunction=ACTS[act],
                  DilationWFactor=dw, DilationHFactor=dh, DepthMultiplier=dm)
    return build(tensors, [Op("DEPTHWISE_CONV_2D", [0, 1, 2], [3], "DepthwiseConv2DOptions", fields)], [0], [3])


DEPTHWISE_CASES = [
    dict(c=1), dict(c=3), dict(c=5, act="RELU6"), dict(c=63, h=4, w=3), dict(c=65, h=3, w=4, act="RELU"),
    dict(c=64, h=25, w=5, in_zp=-128, out_zp=127),                        # KWS's shape
    dict(c=8, sh=2, sw=2, h=7, w=6), dict(c=7, sh=2, sw=1, pad="VALID", h=6, w=5),
    dict(c=6, dh=2, dw=3, h=7, w=8), dict(c=4, dh=3, dw=2, h=2, w=2),     # dilation reaching past the image
    dict(c=5, h=1, w=1), dict(c=4, h=2, w=2, kh=5, kw=5), dict(c=9, kh=5, kw=5, h=6, w=7, sh=2, sw=2),
    dict(c=4, kh=1, kw=1), dict(c=6, kh=2, kw=4, h=3, w=5), dict(c=12, kh=3, kw=3, pad="VALID", h=3, w=3),
    dict(c=8, zero_channel=True, in_zp=127, out_zp=-128), dict(c=5, per_channel=False, n=2),
    dict(c=3, dm=2), dict(c=4, dm=3, h=4, w=3, sh=2, sw=2, act="RELU6"), dict(c=1, dm=2, kh=5, kw=5, h=3, w=3),
    dict(c=5, dm=3, dh=2, dw=2, pad="VALID", h=6, w=6, zero_channel=True),
    dict(c=5, h=40, w=40, act="RELU"),                                    # slab split into bands of rows
    dict(c=4, h=30, w=31, sh=2, sw=2, dh=2, dw=1, kh=3, kw=5),
    dict(c=6, dh=2, h=9, w=7, sh=2), dict(c=4, h=2, w=140, act="RELU6"),   # rows wider than one stack block
    dict(c=5, out_scale=1e-5), dict(c=6, out_scale=2e-4, kh=2, kw=2),     # multipliers > 1/4: portable requant
]


@pytest.mark.parametrize("case", DEPTHWISE_CASES, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_depthwise_dsp(case):
    for seed in (1, 2):
        check(depthwise_model(seed, **case), seed)


def test_depthwise_dsp_packing_flash(tmp_path):
    """Packing costs no flash when the channel count is a multiple of 4 (int8 weights, folded bias in place of the
    bias) and 4 bytes per tap to round 5 channels up to 8."""
    from formicary.codegen import generate

    for c, extra in ((8, 0), (5, 9 * 3)):
        r = generate(depthwise_model(1, c=c), tmp_path / f"c{c}", kernels="dsp")
        op = r.ops[0]
        assert op.packed_bytes - op.replaced_bytes == extra, (op.packed_bytes, op.replaced_bytes)


def test_depthwise_dsp_random():
    rng = np.random.default_rng(2024)
    for i in range(12):
        case = dict(c=int(rng.choice([1, 2, 3, 4, 5, 7, 8, 13])), dm=int(rng.choice([1, 1, 1, 2])),
                    h=int(rng.integers(1, 8)), w=int(rng.integers(1, 8)), kh=int(rng.integers(1, 6)),
                    kw=int(rng.integers(1, 6)), sh=int(rng.integers(1, 3)), sw=int(rng.integers(1, 3)),
                    dh=int(rng.integers(1, 3)), dw=int(rng.integers(1, 3)), act=str(rng.choice(list(ACTS))),
                    pad="SAME", zero_channel=bool(rng.integers(0, 2)))
        check(depthwise_model(100 + i, **case), i)


# ---- AVERAGE_POOL_2D / MAX_POOL_2D -------------------------------------------------------------------------------

def pool_model(opcode: str, n=1, h=5, w=5, c=4, fh=3, fw=3, sh=1, sw=1, pad="SAME", act="NONE", zp=0,
               scale=0.05) -> bytes:
    oh, ow = quant.compute_out_size(pad, h, fh, sh), quant.compute_out_size(pad, w, fw, sw)
    tensors = [T((n, h, w, c), scale=[scale], zero_point=[zp]), T((n, oh, ow, c), scale=[scale], zero_point=[zp])]
    fields = dict(Padding=PADS[pad], StrideW=sw, StrideH=sh, FilterWidth=fw, FilterHeight=fh,
                  FusedActivationFunction=ACTS[act])
    return build(tensors, [Op(opcode, [0], [1], "Pool2DOptions", fields)], [0], [1])


def check_extremes(model: bytes, shape: tuple[int, ...], seed: int) -> None:
    """Random inputs plus all -128 and all 127 (the largest lane sums) through the sanitizer build."""
    rng = np.random.default_rng(seed)
    sets = [[rng.integers(-128, 128, shape).astype(np.int8)] for _ in range(2)]
    sets += [[np.full(shape, v, np.int8)] for v in (-128, 127)]
    r = verify_model(model, input_sets=sets, sanitize=True, measure_tflm_arena=False, kernels="dsp")
    assert r["sanitize"] and r["bit_exact"], r


POOL_CASES = [
    dict(c=1), dict(c=3, act="RELU"), dict(c=5, sh=2, sw=2, h=6, w=7), dict(c=63, h=3, w=3, fh=2, fw=2),
    dict(c=65, h=4, w=3, act="RELU6", zp=-128, scale=0.03), dict(c=64, h=25, w=5, fh=25, fw=5, pad="VALID"),
    dict(c=8, h=1, w=1, fh=1, fw=1), dict(c=4, h=2, w=2, fh=5, fw=5, zp=127), dict(c=6, fh=4, fw=2, sh=3, sw=1),
    dict(c=4, h=15, w=17, fh=15, fw=17, pad="VALID"),        # 255 taps: the most a 16-bit lane holds
    dict(c=7, h=16, w=16, fh=16, fw=16, pad="VALID"),        # 256 taps: flushed row by row
    dict(c=4, h=2, w=300, fh=2, fw=300, pad="VALID"),        # rows wider than 255 taps: scalar
    dict(c=5, h=20, w=20, fh=19, fw=17, sh=3, sw=4, act="RELU_N1_TO_1", scale=0.01),
    dict(c=4, n=2, h=3, w=5, fh=2, fw=3, sh=2, sw=2, pad="SAME"),
]


@pytest.mark.parametrize("opcode", ["AVERAGE_POOL_2D", "MAX_POOL_2D"])
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_pool_dsp(opcode, case):
    shape = (case.get("n", 1), case.get("h", 5), case.get("w", 5), case["c"])
    check_extremes(pool_model(opcode, **case), shape, seed=len(POOL_CASES))


# ---- ADD ------------------------------------------------------------------------------------------------------

def add_model(shape1, shape2, out_shape, s1, z1, s2, z2, so, zo, act="NONE") -> bytes:
    tensors = [T(tuple(shape1), scale=[s1], zero_point=[z1]), T(tuple(shape2), scale=[s2], zero_point=[z2]),
               T(tuple(out_shape), scale=[so], zero_point=[zo])]
    op = Op("ADD", [0, 1], [2], "AddOptions", dict(FusedActivationFunction=ACTS[act]))
    return build(tensors, [op], [0, 1], [2])


ADD_CASES = [
    # (shape1, shape2, scales and zero points (s1, z1, s2, z2, so, zo), activation)
    ((1, 5, 5, 8), (1, 5, 5, 8), (0.05, -3, 0.08, 10, 0.1, 2), "NONE"),
    ((1, 7, 3, 5), (1, 7, 3, 5), (0.02, -128, 0.02, 127, 0.04, -128), "RELU"),
    ((33,), (33,), (0.5, 0, 0.001, -7, 0.5, 3), "RELU6"),                 # input scales 500x apart
    ((1, 1, 1, 1), (1, 1, 1, 1), (1.0, 5, 1.0, -5, 1e-3, 0), "NONE"),     # output multiplier > 1: portable path
    ((2, 3, 4, 3), (2, 3, 4, 3), (1e-3, 100, 2e-3, -100, 1e-3, 0), "RELU_N1_TO_1"),
    ((2, 3), (2, 3), (10.0, 1, 0.01, 2, 20.0, -1), "NONE"),
    ((1, 4, 5, 3), (1, 1, 5, 1), (0.05, 1, 0.07, -2, 0.09, 4), "NONE"),   # broadcast
    ((1, 1, 1, 6), (1, 3, 4, 6), (0.03, 127, 0.03, -128, 0.05, 9), "RELU"),
    ((4, 1), (1, 5), (0.1, 0, 0.2, 0, 0.3, 0), "RELU6"),
    ((1, 2, 1, 7), (1, 1, 3, 1), (0.004, -60, 0.9, 30, 0.9, -20), "NONE"),
]


@pytest.mark.parametrize("case", ADD_CASES, ids=[f"add{i}" for i in range(len(ADD_CASES))])
def test_add_dsp(case):
    shape1, shape2, (s1, z1, s2, z2, so, zo), act = case
    out_shape = np.broadcast_shapes(shape1, shape2)
    model = add_model(shape1, shape2, out_shape, s1, z1, s2, z2, so, zo, act)
    rng = np.random.default_rng(len(shape1))
    sets = [[rng.integers(-128, 128, shape1).astype(np.int8), rng.integers(-128, 128, shape2).astype(np.int8)]
            for _ in range(3)]
    sets += [[np.full(shape1, v, np.int8), np.full(shape2, w, np.int8)] for v, w in ((-128, -128), (127, 127),
                                                                                   (-128, 127))]
    r = verify_model(model, input_sets=sets, sanitize=True, measure_tflm_arena=False, kernels="dsp")
    assert r["sanitize"] and r["bit_exact"], r


def test_add_dsp_random_scales():
    rng = np.random.default_rng(77)
    for i in range(8):
        shape = tuple(int(d) for d in rng.integers(1, 6, int(rng.integers(1, 5))))
        s1, s2, so = (float(np.float32(10 ** rng.uniform(-3.5, 1))) for _ in range(3))
        z1, z2, zo = (int(z) for z in rng.integers(-128, 128, 3))
        model = add_model(shape, shape, shape, s1, z1, s2, z2, so, zo, str(rng.choice(list(ACTS))))
        r = verify_model(model, inputs=3, seed=i, sanitize=True, measure_tflm_arena=False, kernels="dsp")
        assert r["sanitize"] and r["bit_exact"], r


# ---- MEAN ------------------------------------------------------------------------------------------------------

def mean_model(shape, axes, keep, s, z, so, zo) -> bytes:
    out = tuple((1 if d in axes else n) for d, n in enumerate(shape) if keep or d not in axes)
    tensors = [T(tuple(shape), scale=[s], zero_point=[z]), T((len(axes),), "int32", data=np.array(axes, np.int32)),
               T(out or (1,), scale=[so], zero_point=[zo])]
    return build(tensors, [Op("MEAN", [0, 1], [2], "ReducerOptions", {"KeepDims": keep})], [0], [2])


def check_sets(model: bytes, sets) -> None:
    r = verify_model(model, input_sets=sets, sanitize=True, measure_tflm_arena=False, kernels="dsp")
    assert r["sanitize"] and r["bit_exact"], r


@pytest.mark.parametrize("shape,axes,keep", [
    ((1, 5, 5, 64), [1, 2], True),      # the KWS/DS-CNN global pool
    ((1, 3, 4, 7), [1, 2], False),      # odd channels: one group of 4 and 3 single channels
    ((2, 4, 3, 5), [1, 2], True),       # batch walks the outer kept dimension
    ((1, 6, 5, 1), [1, 2], False),      # one channel
    ((1, 4, 6, 6), [2], True),          # one spatial axis, still channels-last
    ((1, 5, 4, 6), [1], False),         # H alone: not contiguous, general walk
    ((1, 3, 4, 6), [3], True),          # channels reduced: general walk
    ((2, 3, 4, 5), [0, 3], False),      # batch and channels: general walk
    ((1, 2, 3, 4), [1, 2, 3], True),
])
def test_dsp_mean_shapes(shape, axes, keep):
    rng = np.random.default_rng(sum(shape) * 7 + len(axes))
    for s, z, so, zo in [(0.05, 3, 0.05, 3), (0.02, -128, 0.03, 127), (0.1, 127, 0.01, -128)]:
        check(mean_model(shape, axes, keep, s, z, so, zo), int(rng.integers(1 << 16)), n=2)


@pytest.mark.parametrize("hw,c", [((16, 16), 8), ((23, 19), 6), ((33, 31), 5)])
@pytest.mark.parametrize("fill", [-128, 127])
def test_dsp_mean_lane_flush(hw, c, fill):
    """More than 256 pixels of -128 or 127: a 16-bit lane sum that is not flushed in time wraps."""
    shape = (1, hw[0], hw[1], c)
    rng = np.random.default_rng(hw[0] * c)
    x = np.full(shape, fill, np.int8)
    y = rng.integers(-128, 128, shape).astype(np.int8)
    for keep in (False, True):
        # output scales that keep the mean of a constant input away from the int8 ends, so a wrapped sum shows
        for z, so, zo in [(0, 0.08, 0), (-128, 0.04, -128), (127, 0.16, 0)]:
            model = mean_model(shape, [1, 2], keep, 0.04, z, so, zo)
            check_sets(model, [[x], [y]])
