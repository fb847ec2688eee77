"""The in-place memory plan: outputs placed over their dying inputs at offsets proven from the kernels' declared
access patterns (codegen/access.py).

- the offsets the declarations give for KWS's layers, derived by hand;
- the planner's check refuses one byte more than the declared offset;
- the declared offset is tight for the reference depthwise kernel: one byte more changes the outputs;
- random conv/depthwise/pool chains, every kernel set, in an ASan/UBSan host build: the in-place plan's outputs
  are TFLM's byte for byte (so the liveness plan's, which are TFLM's too);
- the issue's arena targets under the default plan (codegen only).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from formicary.bench.verify import verify_model
from formicary.codegen import access, generate, lifetimes, planner
from formicary.codegen.generate import lower_model, read_model_bytes
from formicary.tflite.builder import Op, T, build
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.xdist_group("inplace")


def test_kws_offsets_derived_by_hand(kws_model_path):
    """DS-CNN on 25x5x64: the reference depthwise (channel by channel) may write 6 pixels (a row of 5 + 1) of 64
    channels behind its reads, the 1x1 convolution one pixel behind, the dsp 1x1 (two pixels per panel) two."""
    low = lower_model(read_model_bytes(kws_model_path), "reference")
    m = low.model
    got = {op.index: access.output_offset_limit(low.kernel_set, lo.kernel, m, op)
           for op, lo in zip(m.operators, low.ops)}
    assert got[1] == -(5 + 1) * 64           # depthwise 3x3, SAME: window starts one row and one pixel back
    assert got[2] == -64                      # 1x1: the whole pixel is read for every output channel
    assert got[9] == 0                        # average pool, channel by channel: the output may start on the input
    assert got[10] is None and got[12] is None  # RESHAPE (alias), SOFTMAX: nothing declared
    dsp = lower_model(read_model_bytes(kws_model_path), "dsp")
    op2 = dsp.model.operators[2]
    assert access.output_offset_limit(dsp.kernel_set, dsp.ops[2].kernel, dsp.model, op2) == -128
    # the dsp depthwise works the whole 25-row image a group of 4 channels at a time: never overlapped
    op1 = dsp.model.operators[1]
    assert access.output_offset_limit(dsp.kernel_set, dsp.ops[1].kernel, dsp.model, op1) is None


def test_planner_check_allows_exactly_the_declared_offset():
    a = lifetimes.Buffer(0, [0], 100, 0, 1)
    b = lifetimes.Buffer(1, [1], 100, 1, 2)
    overlaps = {(1, 0): -10}
    a.offset, b.offset = 10, 0
    planner.check([a, b], overlaps)           # output 10 bytes below its input: allowed
    b.offset = 1
    with pytest.raises(AssertionError):
        planner.check([a, b], overlaps)       # 9 bytes below: one byte more than declared
    with pytest.raises(AssertionError):
        planner.check([a, b], {})             # no declaration: no overlap


def test_planner_places_a_chain_at_its_floor():
    """Three 100-byte buffers, each written over the previous one 8 bytes down: 116 bytes, not 200."""
    bufs = [lifetimes.Buffer(0, [0], 100, 0, 1), lifetimes.Buffer(1, [1], 100, 1, 2),
            lifetimes.Buffer(2, [2], 100, 2, 3)]
    overlaps = {(1, 0): -8, (2, 1): -8}
    bound = lifetimes.lower_bound(bufs, 4, overlaps)
    assert bound == 108
    arena = planner.plan(bufs, bound, overlaps)
    planner.check(bufs, overlaps)
    assert arena == 116


# ---- random chains -------------------------------------------------------------------------------------------

@st.composite
def chains(draw):
    """A 2-4 op chain of CONV_2D (1x1 or kxk, stride 1-2), DEPTHWISE_CONV_2D and pooling, int8, random weights."""
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    tensors: list[T] = []
    ops: list[Op] = []

    def add(t: T) -> int:
        tensors.append(t)
        return len(tensors) - 1

    h, w, c = draw(st.integers(3, 9)), draw(st.integers(3, 9)), draw(st.sampled_from([1, 3, 4, 8]))
    x = add(T((1, h, w, c), scale=[0.05], zero_point=[draw(st.integers(-20, 20))]))
    first = x
    for _ in range(draw(st.integers(2, 4))):
        kind = draw(st.sampled_from(["conv", "conv1x1", "dw", "avg", "max"]))
        stride = draw(st.integers(1, 2))
        k = 1 if kind == "conv1x1" else draw(st.integers(1, 3))
        same = draw(st.booleans())
        if not same and (k > h or k > w):
            same = True
        oh, ow = ((h + stride - 1) // stride, (w + stride - 1) // stride) if same else \
            ((h - k) // stride + 1, (w - k) // stride + 1)
        pad = 0 if same else 1
        if kind in ("avg", "max"):
            y = add(T((1, oh, ow, c), scale=tensors[x].scale, zero_point=tensors[x].zero_point))
            ops.append(Op("AVERAGE_POOL_2D" if kind == "avg" else "MAX_POOL_2D", [x], [y], "Pool2DOptions",
                          dict(Padding=pad, StrideW=stride, StrideH=stride, FilterWidth=k, FilterHeight=k)))
        else:
            oc = c if kind == "dw" else draw(st.sampled_from([1, 2, 4, 5, 8, 12]))
            fshape = (1, k, k, c) if kind == "dw" else (oc, k, k, c)
            scales = list(rng.uniform(0.5, 1.5, oc) / (10 * np.sqrt(k * k * (1 if kind == "dw" else c))))
            f = add(T(fshape, scale=scales, zero_point=[0] * oc, axis=3 if kind == "dw" else 0,
                      data=rng.integers(-127, 128, fshape).astype(np.int8)))
            b = add(T((oc,), "int32", data=rng.integers(-500, 500, oc).astype(np.int32)))
            y = add(T((1, oh, ow, oc), scale=[0.05], zero_point=[draw(st.integers(-20, 20))]))
            if kind == "dw":
                ops.append(Op("DEPTHWISE_CONV_2D", [x, f, b], [y], "DepthwiseConv2DOptions",
                              dict(Padding=pad, StrideW=stride, StrideH=stride, DepthMultiplier=1)))
            else:
                ops.append(Op("CONV_2D", [x, f, b], [y], "Conv2DOptions",
                              dict(Padding=pad, StrideW=stride, StrideH=stride)))
            c = oc
        x, h, w = y, oh, ow
    return build(tensors, ops, [first], [x])


def _check_in_place_chain(model: bytes, kernels: str) -> None:
    r = verify_model(model, inputs=2, sanitize=True, kernels=kernels, memory_plan="in-place",
                     measure_tflm_arena=False)
    assert r["memory_plan"] == "in-place"
    assert r["bit_exact"], r
    liveness = next(p for p in r["plans"] if p["plan"] == "liveness")
    assert r["arena_bytes"] <= liveness["arena_bytes"]


# ASan builds of the dsp and helium sets take 10-40 s per example on this machine: those run with `slow`, helium
# (whose ASan build of the portable MVE shim is the slowest) with fewer examples.
@pytest.mark.parametrize("kernels", ["reference", pytest.param("dsp", marks=pytest.mark.slow)])
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(model=chains())
def test_random_chains_in_place_bit_exact(kernels, model, host_cc, tflm):
    _check_in_place_chain(model, kernels)


@pytest.mark.slow
@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(model=chains())
def test_random_chains_in_place_bit_exact_helium(model, host_cc, tflm):
    _check_in_place_chain(model, "helium")


@pytest.mark.parametrize("kernels", ["reference", pytest.param("dsp", marks=pytest.mark.slow)])
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(model=chains())
def test_rows_last_to_first_bit_exact(kernels, model, monkeypatch, host_cc, tflm):
    """Every row-callable op of a random chain run one row per call, last row first (no overlap: the liveness
    placement), is TFLM's byte for byte: the per-row input rows and padding are right at every border."""
    import importlib

    gen_mod = importlib.import_module("formicary.codegen.generate")  # the module: codegen.generate is the function

    real = gen_mod.choose_memory_plan

    def all_reversed(lowered, preserve_inputs=False, memory_plan=None):
        chosen, result, summaries = real(lowered, preserve_inputs, "liveness")
        lowered.overlaps = [{"op": op.index, "rows_reversed": True} for op, low in zip(lowered.model.operators,
                                                                                        lowered.ops)
                            if access.reversed_offset_limit(lowered.kernel_set, low.kernel, lowered.model, op)
                            is not None]
        return chosen, result, summaries

    monkeypatch.setattr(gen_mod, "choose_memory_plan", all_reversed)
    r = verify_model(model, inputs=2, sanitize=True, kernels=kernels, measure_tflm_arena=False)
    assert r["bit_exact"], r


def test_declared_offset_is_tight(monkeypatch, kws_model_path, host_cc, tflm):
    """One byte more than the reference depthwise's declared offset overwrites an input byte before its last
    read: KWS's outputs change. The declaration is what keeps them right, not luck."""
    ok = verify_model(kws_model_path, inputs=3, memory_plan="in-place", measure_tflm_arena=False)
    assert ok["bit_exact"]
    real = access.output_offset_limit

    def one_more(kset, kernel, model, op):
        d = real(kset, kernel, model, op)
        return d + 1 if d is not None and op.opcode == "DEPTHWISE_CONV_2D" else d

    monkeypatch.setattr(access, "output_offset_limit", one_more)
    bad = verify_model(kws_model_path, inputs=3, memory_plan="in-place", measure_tflm_arena=False)
    assert not bad["bit_exact"]


# ---- the targets (codegen only; bit-exactness: test_random_chains_* and tests/codegen/test_kws.py) ------

def test_default_plan_meets_the_arena_targets(kws_model_path, tmp_path):
    from tests.support.mlperf_nets import resnet8, vww

    kws = generate(kws_model_path, tmp_path / "kws")
    assert kws.memory_plan == "in-place" and kws.arena_lower_bound_bytes == 16_000 and kws.arena_bytes <= 10_000
    ic = generate(resnet8(), tmp_path / "ic")
    assert ic.arena_lower_bound_bytes == 49_152 and ic.arena_bytes <= 39_322
    v = generate(vww(), tmp_path / "vww")
    assert v.arena_lower_bound_bytes == 55_296 and v.arena_bytes <= 41_472
    assert v.overlaps[0]["op"] == 0 and v.overlaps[0]["rows_reversed"]  # the stem runs rows last to first
    assert {p["plan"] for p in kws.plans} == {"liveness", "patch", "in-place"}


def test_cli_memory_plan_json(kws_model_path, tmp_path):
    from formicary.cli import app
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["codegen", str(kws_model_path), "-o", str(tmp_path / "gen"), "--json",
                                      "--memory-plan", "in-place"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout[result.stdout.index("{"):])
    assert payload["memory_plan"] == "in-place" and payload["arena_bytes"] < 10_000
    assert [o["op"] for o in payload["overlaps"]] == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    bad = CliRunner().invoke(app, ["codegen", str(kws_model_path), "-o", str(tmp_path / "g2"),
                                   "--memory-plan", "nope"])
    assert bad.exit_code != 0 and "liveness, in-place, patch, auto" in str(getattr(bad.exception, "fix", ""))


def test_report_plots_peak_memory_vs_instructions_per_plan():
    from formicary.report.plots import memory_plans

    def run(i, plan, arena):
        return {"id": i, "model": {"name": "kws", "variant": {"label": "int8"}}, "board": "qemu-m4",
                "status": "complete", "latency": {"median": 41_291_380, "unit": "instructions",
                                                  "method": "QEMU -icount"},
                "extra": {"memory": {"plan": plan, "plans": [
                    {"plan": "liveness", "arena_bytes": 16_492, "extra_instructions_pct": 0.0},
                    {"plan": "in-place", "arena_bytes": arena, "extra_instructions_pct": 0.0}]}}}

    plots = memory_plans([run(1, "liveness", 9_000), run(2, "in-place", 9_000), {"id": 3, "latency": {}}])
    assert len(plots) == 1 and plots[0].png.startswith(b"\x89PNG") and "instructions" in plots[0].title


def test_a_model_output_read_by_the_last_op_is_never_overwritten(tmp_path, host_cc, tflm):
    """Outputs [A, B] with B = pool(A) at the last op: A's buffer dies there, but it is a model output."""
    rng = np.random.default_rng(3)
    ts = [T((1, 6, 6, 4), scale=[0.05], zero_point=[0]),
          T((4, 1, 1, 4), scale=[0.01] * 4, zero_point=[0] * 4, axis=0,
            data=rng.integers(-127, 128, (4, 1, 1, 4)).astype(np.int8)),
          T((4,), "int32", data=rng.integers(-100, 100, 4).astype(np.int32)),
          T((1, 6, 6, 4), scale=[0.05], zero_point=[1]),
          T((1, 6, 6, 4), scale=[0.05], zero_point=[1])]
    ops = [Op("CONV_2D", [0, 1, 2], [3], "Conv2DOptions", dict(Padding=0, StrideW=1, StrideH=1)),
           Op("MAX_POOL_2D", [3], [4], "Pool2DOptions",
              dict(Padding=0, StrideW=1, StrideH=1, FilterWidth=3, FilterHeight=3))]
    model = build(ts, ops, [0], [3, 4])
    r = generate(model, tmp_path / "gen", memory_plan="in-place")
    assert 1 not in [o["op"] for o in r.overlaps] and r.arena_bytes == 2 * 144  # A and B side by side
    assert verify_model(model, inputs=2, memory_plan="in-place", measure_tflm_arena=False)["bit_exact"]


def test_a_preserved_input_read_by_the_last_op_is_never_overwritten(tmp_path):
    """A one-op model built with preserve_inputs (what firmware builds do, so N runs reuse one loaded input): the
    input's buffer ends at the last op, yet the next fm_invoke() reads it again, so nothing may be written over it.
    Without preserve_inputs the same op may overlap it."""
    ts = [T((1, 9, 7, 19), scale=[0.05], zero_point=[-3]), T((1, 5, 4, 19), scale=[0.05], zero_point=[-3])]
    ops = [Op("MAX_POOL_2D", [0], [1], "Pool2DOptions",
              dict(Padding=0, StrideW=2, StrideH=2, FilterWidth=3, FilterHeight=3))]
    model = build(ts, ops, [0], [1])
    kept = generate(model, tmp_path / "kept", memory_plan="in-place", preserve_inputs=True)
    assert kept.overlaps == [] and kept.arena_bytes >= 9 * 7 * 19 + 5 * 4 * 19
    free = generate(model, tmp_path / "free", memory_plan="in-place")
    assert [o["op"] for o in free.overlaps] == [0] and free.arena_bytes < kept.arena_bytes
