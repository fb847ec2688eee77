"""Block-sparse int8 kernels (fm_conv2d_sparse_s8, fm_fully_connected_sparse_s8) vs TFLM, bit for bit, in the
ASan/UBSan host build: randomized geometries (1x1 and general filters, strides, dilation, SAME/VALID), depths that
are not a multiple of the block (partial last blocks), per-tensor and per-channel scales, and block patterns from
no zero block to all blocks zero (whole rows empty). Each case also checks which kernel codegen chose and that
the dense filter is not in flash."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from formicary.bench.verify import verify_model
from formicary.codegen import generate, quant
from formicary.codegen.ops import sparse
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.support.tfl_builder import Op, T, build

N = 40
ACTS = {"NONE": 0, "RELU": 1, "RELU6": 3}
PADS = {"SAME": 0, "VALID": 1}


def block_sparse(rng: np.random.Generator, shape: tuple[int, ...], zero_fraction: float) -> np.ndarray:
    """int8 weights [out, ..., in] where `zero_fraction` of the 1x4 input-channel blocks are all zero."""
    w = rng.integers(-127, 128, shape).astype(np.int8)
    w[w == 0] = 1  # zeros only where blocks are cleared, so the zero-block count is exact
    blocks = sparse.blocks_of(w)
    n = blocks.shape[0] * blocks.shape[1]
    cleared = rng.permutation(n)[:int(round(zero_fraction * n))]
    mask = np.ones(n, dtype=bool)
    mask[cleared] = False
    keep = np.repeat(mask.reshape(blocks.shape[:2]), 4, axis=1)
    keep = keep.reshape(shape[0], -1, blocks.shape[1] // max(1, int(np.prod(shape[1:-1]))) * 4)[..., :shape[-1]]
    return (w * keep.reshape(shape)).astype(np.int8)


def kernels_and_consts(model: bytes) -> tuple[list[str], str]:
    with tempfile.TemporaryDirectory() as tmp:
        res = generate(model, Path(tmp) / "g")
        return [o.kernel for o in res.ops] if hasattr(res, "ops") else [], (Path(tmp) / "g" / "fm_model.c").read_text()


def check(model: bytes, seed: int, expect: str) -> None:
    """Bit-exact vs TFLM; the sparse kernel `expect` is chosen exactly when the filter has enough zero blocks
    (small filters may round the drawn fraction down), and then the dense filter is not in flash."""
    from formicary.tflite import read_model

    r = verify_model(model, inputs=3, seed=seed, sanitize=True, measure_tflm_arena=False)
    assert r["sanitize"] and r["bit_exact"], r
    ir = read_model(model)
    filt = ir.tensors[ir.operators[0].inputs[1]]
    _, source = kernels_and_consts(model)
    if sparse.pays(filt):
        assert f"{expect}(" in source, expect
        assert f"fm_const_t{filt.index}[" not in source  # only the compressed blocks are stored
    else:
        assert f"{expect.replace('_sparse', '')}(" in source


@st.composite
def conv_case(draw):
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    one = draw(st.booleans())
    kh, kw = (1, 1) if one else (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = (1, 1) if one else (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pad = draw(st.sampled_from(list(PADS)))
    oh, ow = quant.compute_out_size(pad, h, kh, sh, dh), quant.compute_out_size(pad, w, kw, sw, dw)
    if oh <= 0 or ow <= 0:
        pad, dh, dw, kh, kw = "SAME", 1, 1, min(kh, h), min(kw, w)
        oh, ow = quant.compute_out_size(pad, h, kh, sh, dh), quant.compute_out_size(pad, w, kw, sw, dw)
    return dict(n=draw(st.sampled_from([1, 1, 2])), h=h, w=w, kh=kh, kw=kw, sh=sh, sw=sw, dh=dh, dw=dw, pad=pad,
                oh=oh, ow=ow, in_c=draw(st.integers(1, 13)), out_c=draw(st.integers(1, 6)),
                zero=draw(st.sampled_from([0.4, 0.5, 0.75, 0.9, 1.0])), per_channel=draw(st.booleans()),
                act=draw(st.sampled_from(list(ACTS))), in_zp=draw(st.integers(-128, 127)),
                out_zp=draw(st.integers(-128, 127)), has_bias=draw(st.booleans()), seed=draw(st.integers(0, 2 ** 16)))


def conv_model(c: dict) -> bytes:
    rng = np.random.default_rng(c["seed"])
    w = block_sparse(rng, (c["out_c"], c["kh"], c["kw"], c["in_c"]), c["zero"])
    scales = [float(np.float32(s)) for s in rng.uniform(0.002, 0.02, c["out_c"] if c["per_channel"] else 1)]
    tensors = [T((c["n"], c["h"], c["w"], c["in_c"]), scale=[0.05], zero_point=[c["in_zp"]]),
               T(w.shape, scale=scales, zero_point=[0] * len(scales), axis=0, data=w)]
    inputs = [0, 1]
    if c["has_bias"]:
        b = rng.integers(-2 ** 14, 2 ** 14, c["out_c"]).astype(np.int32)
        tensors.append(T((c["out_c"],), "int32", scale=[0.05 * s for s in scales * (c["out_c"] // len(scales))],
                         zero_point=[0] * c["out_c"], data=b))
        inputs.append(2)
    else:
        inputs.append(-1)
    tensors.append(T((c["n"], c["oh"], c["ow"], c["out_c"]), scale=[0.08], zero_point=[c["out_zp"]]))
    out = len(tensors) - 1
    op = Op("CONV_2D", inputs, [out], "Conv2DOptions",
            dict(Padding=PADS[c["pad"]], StrideW=c["sw"], StrideH=c["sh"], FusedActivationFunction=ACTS[c["act"]],
                 DilationWFactor=c["dw"], DilationHFactor=c["dh"]))
    return build(tensors, [op], [0], [out])


EDGE = dict(n=1, h=5, w=6, kh=3, kw=3, sh=1, sw=2, dh=2, dw=1, pad="SAME", in_c=7, out_c=5, zero=0.5,
            per_channel=True, act="RELU", in_zp=-5, out_zp=3, has_bias=True, seed=7)


def _edge(**kw) -> dict:
    c = {**EDGE, **kw}
    c["oh"] = quant.compute_out_size(c["pad"], c["h"], c["kh"], c["sh"], c["dh"])
    c["ow"] = quant.compute_out_size(c["pad"], c["w"], c["kw"], c["sw"], c["dw"])
    return c


@settings(max_examples=N, deadline=None)
@given(conv_case())
@example(_edge())                                       # odd depth, dilation, padding at every border
@example(_edge(kh=1, kw=1, dh=1, in_c=64, out_c=8))     # the 1x1 path, whole blocks
@example(_edge(zero=1.0))                               # every block zero: bias and requantization only
def test_conv2d_sparse_s8(c):
    check(conv_model(c), c["seed"], "fm_conv2d_sparse_s8")


@settings(max_examples=N, deadline=None)
@given(batches=st.integers(1, 3), accum=st.integers(1, 70), out_depth=st.integers(1, 12),
       zero=st.sampled_from([0.4, 0.5, 0.75, 1.0]), per_channel=st.booleans(), act=st.sampled_from(list(ACTS)),
       in_zp=st.integers(-128, 127), out_zp=st.integers(-128, 127), has_bias=st.booleans(),
       seed=st.integers(0, 2 ** 16))
@example(batches=1, accum=33, out_depth=10, zero=0.5, per_channel=False, act="NONE", in_zp=-128, out_zp=0,
         has_bias=True, seed=1)
def test_fully_connected_sparse_s8(batches, accum, out_depth, zero, per_channel, act, in_zp, out_zp, has_bias, seed):
    check(fc_model(batches, accum, out_depth, zero, per_channel, act, in_zp, out_zp, has_bias, seed), seed,
          "fm_fully_connected_sparse_s8")


def fc_model(batches, accum, out_depth, zero, per_channel, act, in_zp, out_zp, has_bias, seed) -> bytes:
    rng = np.random.default_rng(seed)
    w = block_sparse(rng, (out_depth, accum), zero)
    scales = [float(np.float32(s)) for s in rng.uniform(0.002, 0.02, out_depth if per_channel else 1)]
    tensors = [T((batches, accum), scale=[0.04], zero_point=[in_zp]),
               T(w.shape, scale=scales, zero_point=[0] * len(scales), data=w)]
    inputs = [0, 1]
    if has_bias:
        b = rng.integers(-2 ** 14, 2 ** 14, out_depth).astype(np.int32)
        tensors.append(T((out_depth,), "int32", scale=[0.04 * scales[0]], zero_point=[0], data=b))
        inputs.append(2)
    else:
        inputs.append(-1)
    tensors.append(T((batches, out_depth), scale=[0.1], zero_point=[out_zp]))
    out = len(tensors) - 1
    return build(tensors, [Op("FULLY_CONNECTED", inputs, [out], "FullyConnectedOptions",
                              dict(FusedActivationFunction=ACTS[act]))], [0], [out])


def test_no_zero_block_in_the_sparse_kernel(monkeypatch):
    """A filter with no zero block stays dense by default; forced through the sparse kernels it is still exact."""
    conv = conv_model(_edge(zero=0.0, in_c=8))
    fc = fc_model(2, 21, 7, 0.0, True, "RELU", 4, -2, True, 3)
    assert "fm_conv2d_s8(" in kernels_and_consts(conv)[1]
    assert "fm_fully_connected_s8(" in kernels_and_consts(fc)[1]
    monkeypatch.setattr(sparse, "pays", lambda filt, *args: True)
    check(conv, 1, "fm_conv2d_sparse_s8")
    check(fc, 2, "fm_fully_connected_sparse_s8")


def test_sparse_flash_is_the_compressed_form():
    """The dense filter is not emitted; the constant bytes shrink with the zero blocks."""
    dense = conv_model(_edge(kh=1, kw=1, dh=1, in_c=64, out_c=32, zero=0.0))
    half = conv_model(_edge(kh=1, kw=1, dh=1, in_c=64, out_c=32, zero=0.5))
    with tempfile.TemporaryDirectory() as tmp:
        a = generate(dense, Path(tmp) / "a").const_bytes
        b = generate(half, Path(tmp) / "b").const_bytes
    weights = 64 * 32
    # dense: 2048 weight bytes; 50 % blocks: 1024 values + 2 * 256 index + 4 * 33 row starts
    assert a - b == weights - (weights // 2 + 2 * (weights // 8) + 4 * 33)
    assert b < a - weights // 6  # 50 % zero blocks save ~19 % of the weight bytes (the index costs the rest)


def test_compress_round_trip():
    rng = np.random.default_rng(0)
    for shape in [(5, 3, 3, 7), (4, 1, 1, 16), (6, 33)]:
        w = block_sparse(rng, shape, 0.5)
        values, cols, row_ptr, per_row = sparse.compress(w)
        back = np.zeros((shape[0], per_row, 4), np.int8)
        for r in range(shape[0]):
            for k in range(row_ptr[r], row_ptr[r + 1]):
                back[r, cols[k]] = values[4 * k:4 * k + 4]
        assert (back == sparse.blocks_of(w)).all()
        assert sparse.zero_block_fraction(w) == pytest.approx(0.5, abs=0.5 / (per_row * shape[0]) + 1e-9)
