"""The dsp set's GEMM kernels (firmware/kernels/dsp/conv2d_s8.c, fully_connected_s8.c) vs TFLM, bit for bit,
in the ASan/UBSan host build, and their ahead-of-time packer (codegen/sets/dsp/gemm.py).

Models are built directly (tests.support.tfl_builder); several independent ops share one model (one input and one
output each) so that one build checks many geometries. The cases aim at the kernels' edges: depths that are not a
multiple of 4, channel counts that are not a multiple of the 2-channel block, odd pixel counts (the last pixel
pair has one pixel), padding at every border, dilation, groups, few input channels with tall filters, zero points
at both ends, fused activations, per-channel scales with an all-zero channel, and the requantization's fast and
slow shift ranges.
"""
from __future__ import annotations

import numpy as np
import pytest
from formicary.bench.verify import verify_model
from formicary.codegen import generate, quant
from formicary.codegen.packing import PackRequest, folded_bias
from formicary.codegen.sets.dsp import gemm

from tests.support.tfl_builder import Op, T, build

ACTS = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}
PADS = {"SAME": 0, "VALID": 1}


def conv(n=1, h=5, w=5, in_c=4, out_c=4, kh=3, kw=3, sh=1, sw=1, dh=1, dw=1, pad="SAME", groups=1, act="NONE",
         in_zp=-3, out_zp=5, in_scale=0.05, out_scale=0.1, f_scale=0.004, per_channel=True, zero_channel=False,
         bias=True, seed=0) -> dict:
    return dict(locals())


def _conv_tensors(c: dict, base: int) -> tuple[list[T], Op]:
    rng = np.random.default_rng(c["seed"])
    w = rng.integers(-127, 128, (c["out_c"], c["kh"], c["kw"], c["in_c"] // c["groups"])).astype(np.int8)
    if c["zero_channel"]:
        w[0] = 0
    nsc = c["out_c"] if c["per_channel"] else 1
    f_scale = list((c["f_scale"] * rng.uniform(0.5, 2.0, nsc)).astype(np.float32).astype(float))
    oh = quant.compute_out_size(c["pad"], c["h"], c["kh"], c["sh"], c["dh"])
    ow = quant.compute_out_size(c["pad"], c["w"], c["kw"], c["sw"], c["dw"])
    tensors = [T((c["n"], c["h"], c["w"], c["in_c"]), scale=[c["in_scale"]], zero_point=[c["in_zp"]]),
               T(w.shape, scale=f_scale, zero_point=[0] * nsc, axis=0, data=w)]
    inputs = [base, base + 1]
    if c["bias"]:
        b = rng.integers(-2 ** 16, 2 ** 16, c["out_c"]).astype(np.int32)
        bscale = [c["in_scale"] * s for s in (f_scale * c["out_c"] if nsc == 1 else f_scale)]
        tensors.append(T((c["out_c"],), "int32", scale=bscale, zero_point=[0] * c["out_c"], data=b))
        inputs.append(base + 2)
    else:
        inputs.append(-1)
    tensors.append(T((c["n"], oh, ow, c["out_c"]), scale=[c["out_scale"]], zero_point=[c["out_zp"]]))
    fields = {"Padding": PADS[c["pad"]], "StrideW": c["sw"], "StrideH": c["sh"],
              "FusedActivationFunction": ACTS[c["act"]], "DilationWFactor": c["dw"], "DilationHFactor": c["dh"]}
    return tensors, Op("CONV_2D", inputs, [base + len(tensors) - 1], "Conv2DOptions", fields)


def fc(batches=1, depth=64, out=12, per_channel=False, filter_zp=0, in_zp=-128, out_zp=3, act="NONE", bias=True,
       in_scale=0.05, out_scale=0.2, f_scale=0.01, seed=0) -> dict:
    return dict(locals())


def _fc_tensors(c: dict, base: int) -> tuple[list[T], Op]:
    rng = np.random.default_rng(c["seed"])
    w = rng.integers(-128, 128, (c["out"], c["depth"])).astype(np.int8)
    nsc = c["out"] if c["per_channel"] else 1
    f_scale = list((c["f_scale"] * rng.uniform(0.5, 2.0, nsc)).astype(np.float32).astype(float))
    tensors = [T((c["batches"], c["depth"]), scale=[c["in_scale"]], zero_point=[c["in_zp"]]),
               T(w.shape, scale=f_scale, zero_point=[c["filter_zp"]] * nsc, data=w)]
    inputs = [base, base + 1]
    if c["bias"]:
        b = rng.integers(-2 ** 16, 2 ** 16, c["out"]).astype(np.int32)
        tensors.append(T((c["out"],), "int32", scale=[c["in_scale"] * f_scale[0]], zero_point=[0], data=b))
        inputs.append(base + 2)
    else:
        inputs.append(-1)
    tensors.append(T((c["batches"], c["out"]), scale=[c["out_scale"]], zero_point=[c["out_zp"]]))
    op = Op("FULLY_CONNECTED", inputs, [base + len(tensors) - 1], "FullyConnectedOptions",
            {"FusedActivationFunction": ACTS[c["act"]]})
    return tensors, op


def model(cases: list[dict]) -> bytes:
    """One model holding every case as an independent op (its own input and output)."""
    tensors: list[T] = []
    ops, ins, outs = [], [], []
    for c in cases:
        ts, op = (_fc_tensors if "depth" in c else _conv_tensors)(c, len(tensors))
        ins.append(len(tensors))
        tensors += ts
        ops.append(op)
        outs.append(op.outputs[0])
    return build(tensors, ops, ins, outs)


def check(cases: list[dict], seed: int = 0, n: int = 3) -> None:
    r = verify_model(model(cases), inputs=n, seed=seed, sanitize=True, measure_tflm_arena=False, kernels="dsp")
    assert r["sanitize"] and r["bit_exact"], r


POINTWISE = [conv(kh=1, kw=1, pad="VALID", h=h, w=w, in_c=d, out_c=oc, seed=d * 100 + oc, act=act)
             for (h, w, d, oc, act) in [(3, 3, 1, 3, "NONE"), (2, 3, 3, 1, "RELU"), (1, 5, 5, 7, "RELU6"),
                                        (5, 5, 63, 8, "NONE"), (5, 5, 64, 64, "RELU"), (3, 3, 65, 3, "NONE")]]
POINTWISE.append(conv(kh=1, kw=1, pad="SAME", n=2, h=3, w=3, in_c=6, out_c=5, in_zp=127, out_zp=-128))
# strided / padded 1x1: not the pointwise path, through im2col
POINTWISE.append(conv(kh=1, kw=1, sh=2, sw=2, h=5, w=6, in_c=8, out_c=4, pad="VALID"))


GENERAL = [
    conv(h=7, w=5, kh=3, kw=4, pad="SAME", in_c=4, out_c=3, act="RELU6"),                 # padding at every border
    conv(h=6, w=7, kh=3, kw=3, sh=2, sw=3, pad="SAME", in_c=5, out_c=7, act="RELU"),       # strides, odd depth 45
    conv(h=7, w=6, kh=2, kw=3, sh=2, sw=1, pad="VALID", in_c=3, out_c=1),                  # VALID, odd pixels
    conv(h=9, w=7, kh=3, kw=2, dh=3, dw=2, pad="SAME", in_c=2, out_c=5, in_zp=-128),       # dilation past the image
    conv(h=6, w=6, kh=3, kw=3, dh=2, dw=2, pad="VALID", in_c=3, out_c=4, in_zp=127),       # dilation, VALID
    conv(n=2, h=5, w=5, kh=2, kw=2, sh=2, sw=2, pad="VALID", in_c=6, out_c=6, groups=2),    # groups, batch 2
    conv(h=6, w=5, kh=3, kw=3, pad="SAME", in_c=6, out_c=9, groups=3, act="RELU"),         # 3 groups of 3 channels
    conv(h=5, w=5, kh=3, kw=3, pad="SAME", in_c=4, out_c=4, groups=4, dh=2),               # one channel a group
    conv(h=4, w=4, kh=4, kw=4, pad="VALID", in_c=2, out_c=3),                              # a single output pixel
    conv(h=3, w=3, kh=5, kw=5, pad="SAME", in_c=1, out_c=2),                               # filter wider than input
]

FEW_CHANNELS = [
    conv(h=49, w=10, kh=10, kw=4, sh=2, sw=2, pad="SAME", in_c=1, out_c=64, act="RELU", in_zp=-128),  # KWS layer 1
    conv(h=13, w=9, kh=10, kw=4, sh=2, sw=2, pad="SAME", in_c=2, out_c=7, in_zp=127, act="RELU6"),
    conv(h=11, w=8, kh=10, kw=4, sh=1, sw=2, pad="VALID", in_c=3, out_c=5, out_zp=-128),
    conv(h=12, w=7, kh=10, kw=4, sh=2, sw=1, pad="SAME", in_c=1, out_c=3, dh=1, dw=2),
]

QUANT = [
    conv(kh=1, kw=1, in_c=8, out_c=5, zero_channel=True, per_channel=True),               # all-zero channel
    conv(kh=3, kw=3, in_c=3, out_c=4, per_channel=False, bias=False),                     # per-tensor, no bias
    # big output scale -> shifts below -23 (slow requantization path); tiny one -> left shifts
    conv(kh=2, kw=2, in_c=4, out_c=3, out_scale=1000.0, f_scale=0.0005, in_zp=-128),
    conv(kh=2, kw=2, in_c=4, out_c=3, out_scale=0.0007, in_zp=-128, seed=3),             # shifts -1 / 0
    conv(kh=2, kw=2, in_c=4, out_c=3, out_scale=0.0005, f_scale=0.05, in_zp=127, out_zp=-100),
    conv(kh=1, kw=1, in_c=4, out_c=6, out_scale=0.01, in_scale=0.5, f_scale=0.05, act="RELU_N1_TO_1"),
]

FCS = [
    fc(),                                                               # KWS's last layer shape
    fc(batches=3, depth=5, out=7, per_channel=True, act="RELU"),
    fc(batches=2, depth=1, out=1, filter_zp=-7),                         # per-tensor with a filter zero point
    fc(batches=1, depth=67, out=13, filter_zp=100, in_zp=127, act="RELU6"),
    fc(batches=4, depth=3, out=5, bias=False, filter_zp=-128, in_zp=-1),
    fc(batches=1, depth=64, out=4, per_channel=True, out_scale=50.0),      # slow requantization path
]


@pytest.mark.parametrize("group", ["pointwise", "general", "few_channels", "quant", "fully_connected"])
def test_dsp_gemm_bit_exact(group):
    cases = {"pointwise": POINTWISE, "general": GENERAL, "few_channels": FEW_CHANNELS, "quant": QUANT,
             "fully_connected": FCS}[group]
    check(cases, seed=len(cases))


def test_dsp_gemm_random_geometries():
    """Random shapes, zero points and scales, a few models of several ops each."""
    rng = np.random.default_rng(2024)
    for m in range(3):
        cases = []
        for i in range(6):
            in_c = int(rng.integers(1, 9))
            groups = int(rng.choice([1, 1, 2])) if in_c % 2 == 0 else 1
            pad = str(rng.choice(["SAME", "VALID"]))
            h, w = int(rng.integers(1, 10)), int(rng.integers(1, 10))
            kh, kw = int(rng.integers(1, min(h, 5) + 1)), int(rng.integers(1, min(w, 5) + 1))
            cases.append(conv(n=int(rng.integers(1, 3)), h=h, w=w, in_c=in_c, out_c=groups * int(rng.integers(1, 6)),
                              kh=kh, kw=kw, sh=int(rng.integers(1, 3)), sw=int(rng.integers(1, 3)), pad=pad,
                              groups=groups, act=str(rng.choice(list(ACTS))), in_zp=int(rng.integers(-128, 128)),
                              out_zp=int(rng.integers(-128, 128)), out_scale=float(10 ** rng.uniform(-2, 0.5)),
                              per_channel=bool(rng.integers(0, 2)), bias=bool(rng.integers(0, 2)),
                              seed=int(rng.integers(0, 2 ** 16))))
        cases.append(fc(batches=int(rng.integers(1, 4)), depth=int(rng.integers(1, 40)), out=int(rng.integers(1, 10)),
                        per_channel=bool(rng.integers(0, 2)), in_zp=int(rng.integers(-128, 128)),
                        seed=int(rng.integers(0, 2 ** 16))))
        check(cases, seed=m)


def test_packer_layout_and_folded_bias_by_hand():
    """A 3-channel 1x3x2 filter (depth 6 -> 8) packed by hand: channel pairs, depth blocks in SXTB16 order
    (k0,k2),(k1,k3) as int16 pairs in int32 words, zero padding; folded bias = bias + input_offset * sum(w)."""
    w = np.arange(1, 19, dtype=np.int8).reshape(3, 1, 3, 2) * np.int8(-1) ** np.arange(18).reshape(3, 1, 3, 2)
    bias = np.array([10, -20, 30], dtype=np.int32)
    req = PackRequest("fm_conv2d_s8", w, bias, input_offset=5, input_shape=(1, 4, 4, 2), output_shape=(1, 4, 2, 3))
    packed = gemm.conv_layout(req).reshape(2, 2, 2, 4)  # [pair][depth block][channel][4]
    flat = w.reshape(3, 6).astype(np.int16)
    want = np.zeros((4, 8), np.int16)
    want[:3, :6] = flat
    for pair in range(2):
        for blk in range(2):
            for ch in range(2):
                k = want[2 * pair + ch, 4 * blk:4 * blk + 4]
                assert list(packed[pair, blk, ch]) == [k[0], k[2], k[1], k[3]]
    assert not packed[1, :, 1].any() and not packed[:, 1, :, 1::2].any()  # the padded channel, depth 6 and 7
    words = gemm.words(np.array([-1, 2, 3, -4], np.int16))
    assert list(words) == [(2 << 16) | 0xFFFF, (((-4 & 0xFFFF) << 16) | 3) - 2 ** 32]
    assert list(folded_bias(req)) == [int(bias[c]) + 5 * int(flat[c].sum()) for c in range(3)]
    # fully connected: w + filter_offset, rows in blocks of 4, zero padding stays 0 (not the offset)
    fw = np.array([[1, -2, 3], [4, 5, -6]], np.int8)
    freq = PackRequest("fm_fully_connected_s8", fw, None, input_offset=-3, filter_offset=7)
    fp = gemm.fc_layout(freq).reshape(1, 1, 4, 4)
    assert list(fp[0, 0, 0]) == [8, 10, 5, 0] and list(fp[0, 0, 1]) == [11, 1, 12, 0]
    assert not fp[0, 0, 2:].any()
    assert list(folded_bias(freq)) == [-3 * (8 + 5 + 10), -3 * (11 + 12 + 1)]


def test_dsp_conv_scratch_and_packed_struct(tmp_path):
    """The generated C hands the dsp kernels packed weights (filter NULL) and the declared scratch."""
    cases = [conv(h=49, w=10, kh=10, kw=4, sh=2, sw=2, in_c=1, out_c=64), fc()]
    res = generate(model(cases), tmp_path / "g", kernels="dsp")
    src = (tmp_path / "g" / "fm_model.c").read_text()
    assert ".filter = NULL" in src and f".packed_layout = {gemm.LAYOUT_CONV_GEMM}" in src
    assert f".packed_layout = {gemm.LAYOUT_FC_GEMV}" in src  # batch 1, but 768 B: widened anyway (WIDE_ANYWAY_BYTES)
    assert ".multiplier = NULL" in src  # the conv's requantization table replaces the TFLite arrays
    scratch = {s["op"]: s["bytes"] for s in res.scratch}
    assert scratch[0] == 5 * 40 + 8 * 64
    conv_op = next(o for o in res.ops if o.kernel == "fm_conv2d_s8")
    assert conv_op.packed_bytes == 2 * 64 * 40 + 4 * 64 + 12 * 64  # int16 weights, folded bias, requant table
    fc_op = next(o for o in res.ops if o.kernel == "fm_fully_connected_s8")
    assert fc_op.packed_bytes == 2 * 12 * 64 + 4 * 12  # int16 weights, folded bias


def test_compact_layout_bit_exact(monkeypatch):
    """The compact int8 layouts (forced for every layer) against TFLM: conv paths, odd channels, FC with tails."""
    monkeypatch.setattr(gemm, "wide_weights", lambda req: req.filter_offset != 0)
    check(POINTWISE[3:6] + FEW_CHANNELS[:2] + GENERAL[:2] + GENERAL[5:7] + [FCS[0], FCS[1], FCS[3]], seed=5)


def test_layout_rule():
    """int16 where weights are reused (>= WIDE_MIN_REUSE output pixels x batches) and small, or the layer is tiny
    (<= WIDE_ANYWAY_BYTES); int8 otherwise."""
    def req(kernel, filt, out_shape, filter_offset=0):
        return PackRequest(kernel, filt, None, input_offset=0, filter_offset=filter_offset,
                           input_shape=(1, 1, 1, int(filt.shape[-1])), output_shape=out_shape)
    w = np.ones((64, 1, 1, 64), np.int8)
    assert gemm.wide_weights(req("fm_conv2d_s8", w, (1, 25, 5, 64)))             # KWS 1x1: 125 pixels
    assert not gemm.wide_weights(req("fm_conv2d_s8", w, (1, 1, 1, 64)))          # a single output pixel, 4 KB
    big = np.ones((256, 1, 1, 256), np.int8)                                     # 64 KB of int8 weights
    assert not gemm.wide_weights(req("fm_conv2d_s8", big, (1, 8, 8, 256)))
    f = np.ones((32, 64), np.int8)                                               # 2 KB
    assert not gemm.wide_weights(req("fm_fully_connected_s8", f, (1, 1, 1, 32)))  # batch 1
    assert gemm.wide_weights(req("fm_fully_connected_s8", f, (1, 1, 8, 32)))
    kws_fc = np.ones((12, 64), np.int8)                                          # 768 B: widened anyway
    assert gemm.wide_weights(req("fm_fully_connected_s8", kws_fc, (1, 1, 1, 12)))
    assert gemm.wide_weights(req("fm_fully_connected_s8", f, (1, 1, 1, 12), filter_offset=3))  # needs int16
    # the compact block is the TFLite order: SXTB16 / SXTB16-ROR8 of its word give (k0,k2), (k1,k3)
    packed = gemm.conv_layout(req("fm_conv2d_s8", np.arange(1, 13, dtype=np.int8).reshape(2, 1, 1, 6),
                                  (1, 1, 1, 2)), wide=False).reshape(2, 2, 4)
    assert packed[0].tolist() == [[1, 2, 3, 4], [7, 8, 9, 10]] and packed[1].tolist() == [[5, 6, 0, 0], [11, 12, 0, 0]]
