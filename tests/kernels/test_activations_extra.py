"""HARD_SWISH, LEAKY_RELU and PRELU vs TFLM: int8 bit for bit on the whole int8 input domain, float32 within the
oracle's tolerance. TensorFlow-free models (tests/support/tfl_builder.py): one model holds several independent ops,
each on its own 256- or 512-element input with its own quantization, so one host build checks many parameter draws on
every int8 value (scales over ten decades, every zero point, alphas negative / zero / above one, the int16
exponents of HARD_SWISH at both ends, PRELU alpha broadcasts). Refusals mirror where TFLM's Prepare fails."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.kernel_params import examples, kernel_param
from tests.support.tfl_builder import Op, T, build

N = 6       # examples per test, split across the kernel sets with a file for the op
OPS = 8     # independent ops (own input, own quantization) per model

zps = st.integers(-128, 127)
log_scales = st.floats(-8.0, 2.0)


def _check(model: bytes, seed: int, kernels: str | None = None, n_random: int = 2) -> dict:
    """Every input: the whole int8 domain (256 values, shuffled per input), random sets, all -128, all 127."""
    from formicary.bench.verify import verify_model
    from formicary.tflite import read_model

    ir = read_model(model)
    rng = np.random.default_rng(seed)

    def fill(t, how):
        if t.dtype == "float32":
            return (rng.standard_normal(t.shape) * 4).astype(np.float32)
        if how == "all":
            assert t.numel % 256 == 0
            return np.tile(np.arange(-128, 128, dtype=np.int8), t.numel // 256)[rng.permutation(t.numel)
                                                                                ].reshape(t.shape)
        if how == "random":
            return rng.integers(-128, 128, size=t.shape).astype(np.int8)
        return np.full(t.shape, how, np.int8)

    kinds = ["all"] * int(all(t.numel % 256 == 0 for t in ir.input_tensors)) + ["random"] * n_random + [-128, 127]
    sets = [[fill(t, k) for t in ir.input_tensors] for k in kinds]
    r = verify_model(model, input_sets=sets, sanitize=True, measure_tflm_arena=False, kernels=kernels)
    assert r["bit_exact"] or r.get("tolerance", {}).get("ok"), (
        f"{r['mismatches']}/{r['inputs']} sets differ, max |diff| {r['max_abs_diff']}")
    return r


def _unary_model(opcode: str, quants: list[tuple[float, int, float, int]], options: str | None = None,
                 fields: list[dict] | None = None) -> bytes:
    """len(quants) independent `opcode` ops, op k: input k (scale, zp) -> output k (scale, zp), of 256 elements
    for even k and 512 for odd k (sets that tabulate the 256 int8 values past 256 elements take both paths)."""
    tensors, ops = [], []
    for k, (si, zi, so, zo) in enumerate(quants):
        shape = (256,) if k % 2 == 0 else (2, 256)
        tensors += [T(shape, scale=[si], zero_point=[zi]), T(shape, scale=[so], zero_point=[zo])]
        ops.append(Op(opcode, [2 * k], [2 * k + 1], options, fields[k] if fields else {}))
    return build(tensors, ops, list(range(0, 2 * len(quants), 2)), list(range(1, 2 * len(quants), 2)))


# ---- HARD_SWISH ---------------------------------------------------------------------------------------------

@st.composite
def hard_swish_quant(draw):
    """Input scale 1e-8..100; output scale such that TFLM accepts it (above input scale / 128) up to 2^20 times
    larger: both int16 exponents over their whole range (reluish: left shifts to right shifts past 16 bits,
    output: 0 down to past -16)."""
    si = float(np.float32(10.0 ** draw(log_scales)))
    so = float(np.float32(si * 2.0 ** draw(st.floats(-6.99, 20.0))))
    return si, draw(zps), so, draw(zps)


@kernel_param("hard_swish_s8.c")
@settings(max_examples=examples(N, "hard_swish_s8.c"), deadline=None)
@given(quants=st.lists(hard_swish_quant(), min_size=OPS, max_size=OPS), seed=st.integers(0, 2 ** 16))
def test_hard_swish_s8_every_input(kernels, quants, seed):
    _check(_unary_model("HARD_SWISH", quants), seed, kernels)


@kernel_param("hard_swish_s8.c")
def test_hard_swish_s8_exponent_extremes_and_converter_like_scales(kernels):
    """The parameter corners the random draw may miss: output exponents 0, -15, -16 and -24 and an output
    multiplier flushed to 0, reluish exponents 17 (saturating left shifts) and -19 / -23 (int16 RoundingDivideByPOT
    with a mask wider than the type), zero points at both ends, and what the converter emits for MobileNetV3
    (output ~ half the input scale, zero point near the bottom)."""
    from formicary.codegen import quant

    corners = [(0.05, 0, 0.05 / 127.9, 0), (0.05, -128, 0.05 / 127.9, 127), (1e-3, 5, 1e6, -128),
               (1e-9, 0, 1e-9, 3), (2e-8, 127, 3e-3, -128), (1000.0, -7, 8.0, 100), (1e-3, 0, 1.024, 0),
               (1e-3, 100, 0.512, -100), (0.04, -5, 0.021, -110), (0.1, 10, 0.0785, -123)]
    exps = [quant.hard_swish_int8_params(si, so) for si, _, so, _ in corners]
    outs, relus = {e["output_exponent"] for e in exps}, {e["reluish_exponent"] for e in exps}
    assert {0, -15, -16, -24} <= outs and {17, -19, -23} <= relus, (outs, relus)
    assert exps[2]["output_multiplier"] == 0  # flushed to zero by QuantizeMultiplier (shift < -31)
    _check(_unary_model("HARD_SWISH", corners), 1, kernels)


def test_hard_swish_output_scale_tflm_refuses_is_refused():
    """Output scale below input scale / 128: TFLM's HardSwishPrepare fails (exponent > 0); formicary refuses at
    codegen with the reason, never a wrong answer."""
    from formicary.codegen import lower_model
    from formicary.errors import FormicaryError
    from formicary.oracle import tflm

    model = _unary_model("HARD_SWISH", [(0.5, 0, 0.5 / 200.0, 0)])
    with pytest.raises(FormicaryError) as err:
        lower_model(model)
    assert "HARD_SWISH" in err.value.cause and "exponent" in err.value.cause
    with pytest.raises(FormicaryError) as tflm_err:
        tflm.run_tflm(model, [[np.zeros(256, np.int8)]])
    assert "output_multiplier_exponent <= 0" in tflm_err.value.cause


# ---- LEAKY_RELU ---------------------------------------------------------------------------------------------

alphas = st.one_of(st.sampled_from([0.0, 0.01, 0.1, 0.2, 0.3, 1.0, -1.0]), st.floats(-3.0, 3.0, width=32))


@kernel_param("leaky_relu_s8.c")
@settings(max_examples=examples(N, "leaky_relu_s8.c"), deadline=None)
@given(draws=st.lists(st.tuples(log_scales, zps, st.floats(-3.0, 3.0), zps, alphas), min_size=OPS, max_size=OPS),
       seed=st.integers(0, 2 ** 16))
def test_leaky_relu_s8_every_input(kernels, draws, seed):
    """Scales 1e-8..100 with output/input ratios 1e-3..1e3 (saturating both ways), alpha negative, zero, small,
    one and above one."""
    quants = [(float(np.float32(10.0 ** e)), zi, float(np.float32(10.0 ** (e + r))), zo) for e, zi, r, zo, _ in draws]
    fields = [{"Alpha": a} for *_, a in draws]
    _check(_unary_model("LEAKY_RELU", quants, "LeakyReluOptions", fields), seed, kernels)


# ---- PRELU --------------------------------------------------------------------------------------------------

@st.composite
def prelu_case(draw):
    """Input and alpha shapes broadcasting to the output (either side may broadcast, alpha of lower rank as the
    converter writes it for shared axes), quantization of all three, alpha constant or a model input."""
    full = draw(st.lists(st.integers(1, 5), min_size=1, max_size=4))
    a = tuple(d if draw(st.integers(0, 4)) else 1 for d in full)
    b = tuple(d if draw(st.integers(0, 2)) else 1 for d in full)[draw(st.integers(0, len(full) - 1)):]
    out = tuple(np.broadcast_shapes(a, b))
    e = draw(log_scales)
    q = (float(np.float32(10.0 ** e)), draw(zps), float(np.float32(10.0 ** draw(st.floats(-4.0, 0.5)))),
         draw(zps), float(np.float32(10.0 ** (e + draw(st.floats(-3.0, 3.0))))), draw(zps))
    return a, b, out, q, draw(st.booleans())


def _prelu_model(cases, seed: int, dtype: str = "int8") -> bytes:
    rng = np.random.default_rng(seed)
    tensors, ops, inputs, outputs = [], [], [], []
    for a, b, out, (si, zi, sa, za, so, zo), alpha_input in cases:
        q = (lambda s, z: {"scale": [s], "zero_point": [z]}) if dtype == "int8" else (lambda s, z: {})
        alpha_data = None if alpha_input else (
            rng.integers(-128, 128, size=b).astype(np.int8) if dtype == "int8"
            else rng.uniform(-1.5, 1.5, size=b).astype(np.float32))
        base = len(tensors)
        tensors += [T(a, dtype, **q(si, zi)), T(b, dtype, data=alpha_data, **q(sa, za)), T(out, dtype, **q(so, zo))]
        ops.append(Op("PRELU", [base, base + 1], [base + 2]))
        inputs += [base] + ([base + 1] if alpha_input else [])
        outputs.append(base + 2)
    return build(tensors, ops, inputs, outputs)


@kernel_param("prelu_s8.c")
@settings(max_examples=examples(N, "prelu_s8.c"), deadline=None)
@given(cases=st.lists(prelu_case(), min_size=OPS, max_size=OPS), seed=st.integers(0, 2 ** 16))
def test_prelu_s8_broadcast(kernels, cases, seed):
    _check(_prelu_model(cases, seed), seed, kernels, n_random=3)


@kernel_param("prelu_s8.c")
def test_prelu_s8_every_input_per_channel_alpha(kernels):
    """The converter's layout for Keras PReLU(shared_axes=[1, 2]): alpha [1, 1, C] against [1, H, W, C], every int8
    input value at every channel, alpha over its whole range."""
    q = (0.02, -3, 0.01, 0, 0.015, -20)
    cases = [((1, 4, 8, 8), (1, 1, 8), (1, 4, 8, 8), q, False), ((1, 2, 16, 8), (2, 16, 8), (1, 2, 16, 8),
                                                                  (0.5, 127, 1e-3, -128, 0.1, 5), False)]
    _check(_prelu_model(cases, 5), 5, kernels)


def test_prelu_per_channel_alpha_quantization_is_refused():
    from formicary.codegen import lower_model
    from formicary.errors import FormicaryError

    tensors = [T((1, 2, 2, 3), scale=[0.1], zero_point=[0]),
               T((3,), scale=[0.1, 0.2, 0.3], zero_point=[0, 0, 0], data=np.ones(3, np.int8)),
               T((1, 2, 2, 3), scale=[0.1], zero_point=[0])]
    with pytest.raises(FormicaryError) as err:
        lower_model(build(tensors, [Op("PRELU", [0, 1], [2])], [0], [2]))
    assert "per channel" in err.value.cause


# ---- float32 ------------------------------------------------------------------------------------------------

def test_float32_hard_swish_leaky_relu_prelu_within_tolerance():
    """All three float kernels in one model (negative, zero-crossing and saturating inputs: N(0, 4))."""
    tensors = [T((3, 64), "float32"), T((3, 64), "float32"), T((3, 64), "float32"), T((3, 64), "float32"),
               T((2, 4, 5), "float32"), T((5,), "float32", data=np.linspace(-1.5, 2.0, 5).astype(np.float32)),
               T((2, 4, 5), "float32"), T((3, 64), "float32")]
    ops = [Op("HARD_SWISH", [0], [1]), Op("LEAKY_RELU", [1], [2], "LeakyReluOptions", {"Alpha": 0.2}),
           Op("LEAKY_RELU", [0], [7], "LeakyReluOptions", {"Alpha": -1.7}), Op("HARD_SWISH", [0], [3]),
           Op("PRELU", [4, 5], [6])]
    r = _check(build(tensors, ops, [0, 4], [2, 3, 6, 7]), 2)
    assert r["tolerance"]["ok"] or r["bit_exact"]
