"""Upsampling kernels vs TFLM: RESIZE_NEAREST_NEIGHBOR and RESIZE_BILINEAR (int8 bit for bit, float32 within
tolerance; align_corners / half_pixel_centers, up- and downscaling, 1-pixel edges) and TRANSPOSE_CONV (int8
per-channel with and without bias, any zero points and scales; float32; SAME/VALID, strides, kernels larger than
the stride and smaller), every example in an ASan/UBSan host build. Models are built directly
(tests.support.tfl_builder, no TensorFlow); the refusals (run-time size, both resize flags) are checked too."""
from __future__ import annotations

import numpy as np
import pytest
from formicary.bench.verify import verify_model
from formicary.codegen import lower_model
from formicary.errors import FormicaryError
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.support.kernel_params import examples, kernel_param
from tests.support.opmodels import assert_close, describe
from tests.support.tfl_builder import Op, T, build

N = 4  # examples (each a list of up to 4 cases in one model) per op, split across its kernel sets
NN, BL, BLF, TC, TCF = ("resize_nearest_neighbor.c", "resize_bilinear_s8.c", "resize_bilinear_f32.c",
                        "transpose_conv_s8.c", "transpose_conv_f32.c")
ACTS = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}
PADS = {"SAME": 0, "VALID": 1}


def check_s8(model: bytes, seed: int, kernels: str | None) -> dict:
    r = verify_model(model, inputs=3, seed=seed, sanitize=True, measure_tflm_arena=False, kernels=kernels)
    assert r["sanitize"] and r["bit_exact"], r
    return r


def check_f32(model: bytes, seed: int, kernels: str | None) -> None:
    from formicary.tflite import read_model

    rng = np.random.default_rng(seed)
    ir = read_model(model)
    sets = [[(rng.standard_normal(t.shape) * 3).astype(np.float32) for t in ir.input_tensors] for _ in range(2)]
    assert_close(describe(model), sets, rtol=1e-5, atol=1e-5, kernels=kernels)


# ---- resizes -----------------------------------------------------------------------------------------------------

def resize_parts(opcode: str, n: int, h: int, w: int, c: int, oh: int, ow: int, align: bool, half: bool,
                 dtype: str = "int8", zp: int = 0, const_size: bool = True) -> tuple[list, list, list, list]:
    """(tensors, ops, inputs, outputs) of one resize, tensor indices local to it (see `merged`)."""
    q = {"scale": [0.05], "zero_point": [zp]} if dtype == "int8" else {}
    size = np.array([oh, ow], np.int32)
    tensors = [T((n, h, w, c), dtype, **q), T((2,), "int32", data=size if const_size else None),
               T((n, oh, ow, c), dtype, **q)]
    options = "ResizeBilinearOptions" if opcode == "RESIZE_BILINEAR" else "ResizeNearestNeighborOptions"
    op = Op(opcode, [0, 1], [2], options, {"AlignCorners": align, "HalfPixelCenters": half})
    return tensors, [op], [0] if const_size else [0, 1], [2]


def merged(parts: list[tuple[list, list, list, list]]) -> bytes:
    """One model running several independent single-op graphs side by side (each its own inputs and outputs):
    one host build and one TFLM run check them all, so an example covers several cases for the price of one."""
    tensors, ops, inputs, outputs = [], [], [], []
    for ts, os_, ins, outs in parts:
        base = len(tensors)
        tensors += ts
        ops += [Op(o.opcode, [i + base if i >= 0 else -1 for i in o.inputs], [i + base for i in o.outputs],
                   o.options, o.fields) for o in os_]
        inputs += [i + base for i in ins]
        outputs += [i + base for i in outs]
    return build(tensors, ops, inputs, outputs)


def resize_model(opcode: str, *args, **kwargs) -> bytes:
    return merged([resize_parts(opcode, *args, **kwargs)])


@st.composite
def resize_case(draw, bilinear: bool):
    align = draw(st.booleans())
    half = False if (bilinear and align) else draw(st.booleans())
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    # mostly upsampling (x2, x3, odd factors), sometimes down
    oh = draw(st.one_of(st.sampled_from([2 * h, 3 * h]), st.integers(1, 16)))
    ow = draw(st.one_of(st.sampled_from([2 * w, 3 * w]), st.integers(1, 16)))
    return {"n": draw(st.sampled_from([1, 1, 2])), "h": h, "w": w, "c": draw(st.integers(1, 5)), "oh": oh, "ow": ow,
            "align": align, "half": half, "zp": draw(st.integers(-128, 127)), "seed": draw(st.integers(0, 2 ** 16))}


EDGE = {"n": 1, "h": 1, "w": 5, "c": 3, "oh": 4, "ow": 9, "align": False, "half": True, "zp": -5, "seed": 1}
RESIZE_EDGES = [EDGE, dict(EDGE, align=True, half=False, h=6, oh=3, ow=2), dict(EDGE, h=3, w=4, oh=8, ow=11),
                dict(EDGE, h=3, w=4, oh=8, ow=11, half=False, align=True), dict(EDGE, h=5, w=1, oh=1, ow=1),
                dict(EDGE, align=True, half=True, h=6, w=3, oh=13, ow=2)]  # nearest only: TFLM takes both flags
cases = st.lists  # an example is a list of cases, checked in one merged model


def _resize(opcode: str, cs: list[dict], dtype: str = "int8") -> bytes:
    keys = ("n", "h", "w", "c", "oh", "ow", "align", "half")
    return merged([resize_parts(opcode, **{k: c[k] for k in keys}, dtype=dtype,
                                **({"zp": c["zp"]} if dtype == "int8" else {})) for c in cs])


@kernel_param(NN)
@settings(max_examples=examples(N, NN), deadline=None)
@given(cases(resize_case(bilinear=False), min_size=1, max_size=4), st.booleans())
@example(RESIZE_EDGES, False)
@example(RESIZE_EDGES, True)
def test_resize_nearest_neighbor(kernels, cs, f32):
    if f32:
        check_f32(_resize("RESIZE_NEAREST_NEIGHBOR", cs, "float32"), cs[0]["seed"], kernels)
    else:
        check_s8(_resize("RESIZE_NEAREST_NEIGHBOR", cs), cs[0]["seed"], kernels)


@kernel_param(BL)
@settings(max_examples=examples(N, BL), deadline=None)
@given(cases(resize_case(bilinear=True), min_size=1, max_size=4))
@example([c for c in RESIZE_EDGES if not (c["align"] and c["half"])])
def test_resize_bilinear_s8(kernels, cs):
    check_s8(_resize("RESIZE_BILINEAR", cs), cs[0]["seed"], kernels)


@kernel_param(BLF)
@settings(max_examples=examples(N // 2, BLF), deadline=None)
@given(cases(resize_case(bilinear=True), min_size=1, max_size=4))
@example([c for c in RESIZE_EDGES if not (c["align"] and c["half"])])
def test_resize_bilinear_f32(kernels, cs):
    check_f32(_resize("RESIZE_BILINEAR", cs, "float32"), cs[0]["seed"], kernels)


def _refusal(model: bytes) -> str:
    with pytest.raises(FormicaryError) as err:
        lower_model(model)
    return err.value.cause


def test_resize_refusals():
    assert "size computed at run time" in _refusal(
        resize_model("RESIZE_BILINEAR", 1, 2, 2, 1, 4, 4, False, True, const_size=False))
    assert "both align_corners and half_pixel_centers" in _refusal(
        resize_model("RESIZE_BILINEAR", 1, 2, 2, 1, 4, 4, True, True))


# ---- TRANSPOSE_CONV ----------------------------------------------------------------------------------------------

def transpose_conv_parts(c: dict, dtype: str = "int8") -> tuple[list, list, list, list]:
    rng = np.random.default_rng(c["seed"])
    n, h, w, ic, oc, kh, kw = c["n"], c["h"], c["w"], c["in_c"], c["out_c"], c["kh"], c["kw"]
    oh, ow = c["oh"], c["ow"]
    if dtype == "int8":
        f_scale = c["f_scale"] if c["per_channel"] else c["f_scale"][:1]
        filt = T((oc, kh, kw, ic), scale=f_scale, zero_point=[0] * len(f_scale), axis=0,
                 data=rng.integers(-127, 128, (oc, kh, kw, ic)).astype(np.int8))
        inp = T((n, h, w, ic), scale=[c["in_scale"]], zero_point=[c["in_zp"]])
        out = T((n, oh, ow, oc), scale=[c["out_scale"]], zero_point=[c["out_zp"]])
        lim = 2 ** c["bias_bits"]
        bias = T((oc,), "int32", scale=[c["in_scale"] * s for s in (f_scale * oc)[:oc]], zero_point=[0] * oc,
                 data=rng.integers(-lim, lim, oc).astype(np.int32))
    else:
        filt = T((oc, kh, kw, ic), "float32", data=rng.standard_normal((oc, kh, kw, ic)).astype(np.float32))
        inp, out = T((n, h, w, ic), "float32"), T((n, oh, ow, oc), "float32")
        bias = T((oc,), "float32", data=rng.standard_normal(oc).astype(np.float32))
    tensors = [T((4,), "int32", data=np.array([n, oh, ow, oc], np.int32)), filt, inp, out]
    inputs = [0, 1, 2]
    if c["has_bias"]:
        tensors.append(bias)
        inputs.append(4)
    op = Op("TRANSPOSE_CONV", inputs, [3], "TransposeConvOptions",
            {"Padding": PADS[c["pad"]], "StrideW": c["sw"], "StrideH": c["sh"],
             "FusedActivationFunction": ACTS[c["act"]]})
    return tensors, [op], [2], [3]


def transpose_conv_model(cs: list[dict], dtype: str = "int8") -> bytes:
    return merged([transpose_conv_parts(c, dtype) for c in cs])


def _log_uniform(draw, lo: float, hi: float) -> float:
    return float(np.float32(10 ** draw(st.floats(np.log10(lo), np.log10(hi)))))


@st.composite
def transpose_case(draw):
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    pad = draw(st.sampled_from(list(PADS)))
    # the output size Keras gives (SAME: h*s; VALID: (h-1)*s + k), sometimes one more (output_padding)
    oh = (h * sh if pad == "SAME" else (h - 1) * sh + kh) + draw(st.sampled_from([0, 0, 1]))
    ow = (w * sw if pad == "SAME" else (w - 1) * sw + kw) + draw(st.sampled_from([0, 0, 1]))
    out_c = draw(st.integers(1, 6))
    return {"n": draw(st.sampled_from([1, 1, 2])), "h": h, "w": w, "in_c": draw(st.integers(1, 5)), "out_c": out_c,
            "kh": kh, "kw": kw, "sh": sh, "sw": sw, "pad": pad, "oh": oh, "ow": ow,
            "act": draw(st.sampled_from(list(ACTS))), "per_channel": draw(st.booleans()),
            "has_bias": draw(st.booleans()), "in_scale": _log_uniform(draw, 1e-3, 1.0),
            "out_scale": _log_uniform(draw, 1e-3, 4.0),
            "f_scale": [_log_uniform(draw, 1e-4, 0.05) for _ in range(out_c)],
            "in_zp": draw(st.integers(-128, 127)), "out_zp": draw(st.integers(-128, 127)),
            "bias_bits": draw(st.integers(4, 20)), "seed": draw(st.integers(0, 2 ** 16))}


TC_EDGE = {"n": 1, "h": 3, "w": 2, "in_c": 2, "out_c": 3, "kh": 4, "kw": 3, "sh": 2, "sw": 3, "pad": "SAME", "oh": 6,
           "ow": 6, "act": "RELU6", "per_channel": True, "has_bias": True, "in_scale": 0.02, "out_scale": 0.01,
           "f_scale": [0.003, 0.01, 0.02], "in_zp": 7, "out_zp": -20, "bias_bits": 12, "seed": 5}


TC_EDGES = [TC_EDGE, dict(TC_EDGE, pad="VALID", oh=8, ow=7, kh=4, kw=4, sh=2, sw=2, has_bias=False, act="NONE"),
            dict(TC_EDGE, kh=1, kw=1, sh=3, sw=3, oh=9, ow=6, act="RELU", per_channel=False),
            dict(TC_EDGE, h=1, w=1, kh=5, kw=5, sh=1, sw=1, oh=1, ow=1, act="RELU_N1_TO_1"),
            # the dsp kernel's paths: two words of input channels and a tail, output channel pairs and a single one
            dict(TC_EDGE, in_c=11, out_c=5, f_scale=[0.002, 0.004, 0.001, 0.003, 0.002], in_zp=-128, out_zp=127),
            dict(TC_EDGE, in_c=69, h=2, w=2, oh=4, ow=6, in_zp=127)]  # many channels: long dot products per tap


@kernel_param(TC)
@settings(max_examples=examples(N, TC), deadline=None)
@given(cases(transpose_case(), min_size=1, max_size=4))
@example(TC_EDGES)
def test_transpose_conv_s8(kernels, cs):
    r = check_s8(transpose_conv_model(cs), cs[0]["seed"], kernels)
    # TFLM's int32 accumulators: one word per output element, placed in the arena for the op only
    assert r["arena_bytes"] >= max(4 * c["n"] * c["oh"] * c["ow"] * c["out_c"] for c in cs)


@kernel_param(TCF)
@settings(max_examples=examples(N // 2, TCF), deadline=None)
@given(cases(transpose_case(), min_size=1, max_size=4))
@example(TC_EDGES)
def test_transpose_conv_f32(kernels, cs):
    check_f32(transpose_conv_model(cs, "float32"), cs[0]["seed"], kernels)


def test_transpose_conv_scratch_and_refusal(tmp_path):
    from formicary.codegen import generate

    r = generate(transpose_conv_model([TC_EDGE]), tmp_path / "gen")
    assert r.scratch == [{"op": 0, "bytes": 4 * 6 * 6 * 3, "offset": r.scratch[0]["offset"]}]
    assert "fm_transpose_conv_s8(&fm_op0_params, fm_t2, fm_t3, fm_scratch_op0)" in \
        (tmp_path / "gen" / "fm_model.c").read_text()
    # the same model with the output_shape as a graph input: refused (TFLM has no dynamic shapes)
    tensors = [T((4,), "int32"), T((3, 4, 3, 2), scale=[0.01], zero_point=[0],
                                   data=np.ones((3, 4, 3, 2), np.int8)),
               T((1, 3, 2, 2), scale=[0.02], zero_point=[0]), T((1, 6, 6, 3), scale=[0.01], zero_point=[0])]
    op = Op("TRANSPOSE_CONV", [0, 1, 2], [3], "TransposeConvOptions", {"Padding": 0, "StrideW": 3, "StrideH": 2})
    assert "output_shape computed at run time" in _refusal(build(tensors, [op], [0, 2], [3]))


def test_onnx_resize_and_conv_transpose_are_accepted_before_conversion(tmp_path):
    """ONNX Resize and ConvTranspose reach these kernels (onnx2tf 1.28: nearest -> RESIZE_NEAREST_NEIGHBOR, linear +
    half_pixel -> RESIZE_BILINEAR with half_pixel_centers, ConvTranspose with kernel_shape -> TRANSPOSE_CONV; each
    compiled, TFLM-checked and bit-exact by hand), so the ONNX front end lets them through."""
    onnx = pytest.importorskip("onnx")
    from formicary.model.onnx_io import identify_onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "sc"),
             numpy_helper.from_array(np.array([], np.float32), "roi"),
             numpy_helper.from_array(np.ones((2, 2, 2, 2), np.float32), "w")]
    nodes = [helper.make_node("Resize", ["x", "roi", "sc"], ["r"], mode="linear",
                              coordinate_transformation_mode="half_pixel"),
             helper.make_node("ConvTranspose", ["r", "w"], ["y"], strides=[2, 2], kernel_shape=[2, 2])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 16, 16])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, str(tmp_path / "up.onnx"))
    assert identify_onnx(tmp_path / "up.onnx").ops == {"Resize": 1, "ConvTranspose": 1}
