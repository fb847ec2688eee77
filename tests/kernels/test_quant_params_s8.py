"""int8 kernels vs TFLM with quantization parameters drawn directly (TensorFlow-free flatbuffers from
tests/support/tfl_builder.py): arbitrary scales over five decades and every zero point, including parameter
combinations the converter rarely emits (very different input scales in ADD, outputs far narrower than the
inputs so results saturate, CONCATENATION inputs quantized differently from the output)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.kernel_params import examples, kernel_param
from tests.support.tfl_builder import Op, T, build

N = 25  # examples per test, split across the kernel sets with a file for its ops (tests/support/kernel_params.py)

ACTS = {"NONE": 0, "RELU": 1, "RELU6": 3}
scales = st.floats(-4.0, 1.0).map(lambda e: float(np.float32(10.0 ** e)))
zps = st.integers(-128, 127)
shapes = st.lists(st.integers(1, 7), min_size=1, max_size=4).map(tuple)


def check(model: bytes, seed: int, n: int = 3, exhaustive: bool = False, kernels: str | None = None) -> None:
    """Random int8 inputs, all -128 and all 127; with `exhaustive` (single 256-element int8 input) also every
    int8 value once, so an element-wise op is checked on its whole input domain."""
    from formicary.tflite import read_model
    from formicary.bench.verify import verify_model

    rng = np.random.default_rng(seed)
    ir = read_model(model)
    sets = []
    for _ in range(n):
        row = []
        for t in ir.input_tensors:
            if t.dtype == "int8":
                row.append(rng.integers(-128, 128, size=t.shape).astype(np.int8))
            else:
                row.append((rng.standard_normal(t.shape) * 10).astype(np.float32))
        sets.append(row)
    # Extremes: every input at -128 / 127 (saturation) in two extra sets.
    for v in (-128, 127):
        sets.append([np.full(t.shape, v, np.int8) if t.dtype == "int8" else np.full(t.shape, v * 1.0, np.float32)
                     for t in ir.input_tensors])
    if exhaustive:
        t = ir.input_tensors[0]
        assert len(ir.input_tensors) == 1 and t.numel == 256 and t.dtype == "int8"
        sets.append([np.arange(-128, 128, dtype=np.int8).reshape(t.shape)])
    r = verify_model(model, input_sets=sets, sanitize=True, measure_tflm_arena=False, kernels=kernels)
    assert r["bit_exact"], f"{r['mismatches']}/{r['inputs']} sets differ, max |diff| {r['max_abs_diff']}"


@st.composite
def bshapes(draw):
    """Two broadcast-compatible shapes (b possibly of lower rank) and their broadcast."""
    full = draw(st.lists(st.integers(1, 5), min_size=1, max_size=4))
    a = tuple(d if draw(st.integers(0, 3)) else 1 for d in full)
    b = tuple(d if draw(st.integers(0, 3)) else 1 for d in full)[draw(st.integers(0, len(full) - 1)):]
    if draw(st.booleans()):
        a, b = b, a
    return a, b, tuple(np.broadcast_shapes(a, b))


@kernel_param(("add_s8.c", "mul_s8.c"))
@settings(max_examples=examples(N, ("add_s8.c", "mul_s8.c")))
@given(sh=bshapes(), s1=scales, s2=scales, so=scales, z1=zps, z2=zps, zo=zps, act=st.sampled_from(sorted(ACTS)),
       op=st.sampled_from(["ADD", "MUL"]), seed=st.integers(0, 2 ** 16))
def test_add_mul_any_quant(kernels, sh, s1, s2, so, z1, z2, zo, act, op, seed):
    a, b, out = sh
    if op == "ADD" and max(s1, s2) / so > 2 ** 20:
        so = max(s1, s2) / 2 ** 19  # TFLM's ADD needs twice_max / (2^20 * out) < 1 (multiplier below one)
    tensors = [T(a, scale=[s1], zero_point=[z1]), T(b, scale=[s2], zero_point=[z2]), T(out, scale=[so], zero_point=[zo])]
    opts = "AddOptions" if op == "ADD" else "MulOptions"
    model = build(tensors, [Op(op, [0, 1], [2], opts, {"FusedActivationFunction": ACTS[act]})], [0, 1], [2])
    check(model, seed, kernels=kernels)


@kernel_param(("logistic_s8.c", "tanh_s8.c"))
@settings(max_examples=examples(N, ("logistic_s8.c", "tanh_s8.c")))
@given(shape=st.sampled_from([(256,), (4, 64), (1, 4, 8, 8)]), s=scales, z=zps, op=st.sampled_from(["LOGISTIC", "TANH"]),
       seed=st.integers(0, 2 ** 16))
def test_logistic_tanh_any_input_quant(kernels, shape, s, z, op, seed):
    out_q = ([1.0 / 256], [-128]) if op == "LOGISTIC" else ([1.0 / 128], [0])
    tensors = [T(shape, scale=[s], zero_point=[z]), T(shape, scale=out_q[0], zero_point=out_q[1])]
    check(build(tensors, [Op(op, [0], [1])], [0], [1]), seed, exhaustive=True, kernels=kernels)


@kernel_param(("relu_s8.c", "relu6_s8.c", "quantize_s8.c"))
@settings(max_examples=examples(N, ("relu_s8.c", "relu6_s8.c", "quantize_s8.c")))
@given(shape=st.sampled_from([(256,), (2, 128), (1, 8, 8, 4)]), s=scales, so=scales, z=zps, zo=zps, op=st.sampled_from(["RELU", "RELU6", "QUANTIZE"]),
       seed=st.integers(0, 2 ** 16))
def test_relu_requantize_any_quant(kernels, shape, s, so, z, zo, op, seed):
    if op == "RELU6":
        so, zo = s, z  # TFLM's RELU6 assumes the output shares the input's quantization
    tensors = [T(shape, scale=[s], zero_point=[z]), T(shape, scale=[so], zero_point=[zo])]
    check(build(tensors, [Op(op, [0], [1])], [0], [1]), seed, exhaustive=True, kernels=kernels)


@kernel_param(("quantize_s8.c", "dequantize_s8.c"))
@settings(max_examples=examples(N, ("quantize_s8.c", "dequantize_s8.c")))
@given(shape=shapes, s=scales, z=zps, seed=st.integers(0, 2 ** 16))
def test_quantize_dequantize_any_quant(kernels, shape, s, z, seed):
    tensors = [T(shape, "float32"), T(shape, scale=[s], zero_point=[z]), T(shape, "float32")]
    model = build(tensors, [Op("QUANTIZE", [0], [1]), Op("DEQUANTIZE", [1], [2])], [0], [2])
    check(model, seed, kernels=kernels)


@kernel_param("mean_s8.c")
@settings(max_examples=examples(N, "mean_s8.c"))
@given(shape=st.tuples(st.integers(1, 2), st.integers(1, 8), st.integers(1, 8), st.integers(1, 6)),
       axes=st.sampled_from([(1, 2), (1, 2), (2, 1), (1,), (3,), (0, 3), (1, 2, 3)]), keep=st.booleans(),
       s=scales, so=scales, z=zps, zo=zps, same=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_mean_any_quant(kernels, shape, axes, keep, s, so, z, zo, same, seed):
    if same:
        so, zo = s, z  # GlobalAveragePooling usually keeps the input's quantization
    out = tuple((1 if d in axes else n) for d, n in enumerate(shape) if keep or d not in axes)
    tensors = [T(shape, scale=[s], zero_point=[z]), T((len(axes),), "int32", data=np.array(axes, np.int32)),
               T(out or (1,), scale=[so], zero_point=[zo])]
    model = build(tensors, [Op("MEAN", [0, 1], [2], "ReducerOptions", {"KeepDims": keep})], [0], [2])
    check(model, seed, kernels=kernels)


def _concat_model(base, axis, n, draw, quant_for):
    ins = []
    for i in range(n):
        shp = list(base)
        shp[axis] = draw(st.integers(1, 4))
        s, z = quant_for(i)
        ins.append(T(tuple(shp), scale=[s], zero_point=[z]))
    out = list(base)
    out[axis] = sum(t.shape[axis] for t in ins)
    s, z = quant_for(n)
    tensors = ins + [T(tuple(out), scale=[s], zero_point=[z])]
    return build(tensors, [Op("CONCATENATION", list(range(n)), [n], "ConcatenationOptions",
                              {"Axis": axis, "FusedActivationFunction": 0})], list(range(n)), [n])


@kernel_param("concatenation_s8.c")
@settings(max_examples=examples(N, "concatenation_s8.c"))
@given(base=st.tuples(st.integers(1, 3), st.integers(1, 5), st.integers(1, 5), st.integers(1, 5)),
       axis=st.integers(-4, 3), n=st.integers(2, 5), s=scales, z=zps, data=st.data(), seed=st.integers(0, 2 ** 16))
def test_concatenation_any_quant(kernels, base, axis, n, s, z, data, seed):
    check(_concat_model(base, axis, n, data.draw, lambda i: (s, z)), seed, kernels=kernels)


@settings(max_examples=5)
@given(base=st.tuples(st.integers(1, 2), st.integers(1, 4), st.integers(1, 4), st.integers(1, 4)),
       axis=st.integers(0, 3), s=scales, z=zps, data=st.data())
def test_concatenation_differing_quant_refused_like_tflm(base, axis, s, z, data):
    """The pinned TFLM refuses int8 CONCATENATION whose inputs are quantized differently from the output
    (concatenation.cc checks zero point and scale in Prepare); codegen refuses it too, naming the op, instead
    of silently copying or inventing a requantization TFLM does not do."""
    from formicary.codegen import lower_model
    from formicary.errors import FormicaryError
    from formicary.oracle.tflm import check_tflm

    other = (float(np.float32(s * 1.5)), z) if data.draw(st.booleans()) else (s, (z + 1) if z < 127 else z - 1)
    model = _concat_model(base, axis, 2, data.draw, lambda i: other if i == 1 else (s, z))
    with pytest.raises(FormicaryError, match="CONCATENATION"):
        check_tflm(model)
    with pytest.raises(FormicaryError, match="CONCATENATION"):
        lower_model(model)


@kernel_param("pad_s8.c")
@settings(max_examples=examples(N, "pad_s8.c"))
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple),
       pads=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=4, max_size=4),
       s=scales, z=zps, seed=st.integers(0, 2 ** 16))
def test_pad_any_quant(kernels, shape, pads, s, z, seed):
    pads = np.array(pads[:len(shape)], np.int32)
    out = tuple(int(d + p[0] + p[1]) for d, p in zip(shape, pads))
    tensors = [T(shape, scale=[s], zero_point=[z]), T(pads.shape, "int32", data=pads), T(out, scale=[s], zero_point=[z])]
    check(build(tensors, [Op("PAD", [0, 1], [2], "PadOptions", {})], [0], [2]), seed, kernels=kernels)
