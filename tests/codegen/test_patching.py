"""Memory plan `patch` (codegen/patching.py, patch_emit.py): the first stage run patch by patch with halos
recomputed. Random conv/depthwise/pool chains under a forced split and grid must give the liveness plan's outputs
byte for byte (patch build under ASan/UBSan); the search must pick plans below the liveness bound within its
recompute budget; a MobileNetV1-style net is bit-exact with TFLM under the plan each kernel set gets."""
from __future__ import annotations

import numpy as np
import pytest
from formicary.bench.verify import verify_model
from formicary.codegen import generate, patching
from formicary.target import host as native
from formicary.tflite import read_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.netmodels import mobilenet_v1
from tests.support.tfl_builder import Op, T, build

pytestmark = [pytest.mark.xdist_group("patching")]

_PADDING = {"SAME": 0, "VALID": 1}


def _out_size(padding: str, size: int, k: int, stride: int, dil: int = 1) -> int:
    eff = (k - 1) * dil + 1
    return (size + stride - 1) // stride if padding == "SAME" else (size - eff + stride) // stride


@st.composite
def chains(draw):
    """A chain of 2-4 windowed ops (conv, depthwise, max/average pool) on a small image, int8 or (one in four)
    float32; every output at least 1x1. Returns (model bytes, number of ops)."""
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 31 - 1)))
    f32 = draw(st.integers(0, 3)) == 0
    h, w, c = draw(st.integers(5, 18)), draw(st.integers(5, 18)), draw(st.integers(1, 6))
    tensors: list[T] = []
    ops: list[Op] = []

    def add(t: T) -> int:
        tensors.append(t)
        return len(tensors) - 1

    def act(shape) -> int:
        if f32:
            return add(T(shape, "float32"))
        return add(T(shape, scale=[float(rng.uniform(0.01, 0.05))], zero_point=[int(rng.integers(-20, 20))]))

    x = act((1, h, w, c))
    inp = x
    n_ops = draw(st.integers(2, 4))
    for _ in range(n_ops):
        kind = draw(st.sampled_from(["conv", "conv", "dw", "dw", "maxpool", "avgpool"]))
        k = draw(st.sampled_from([1, 2, 3, 3, 5])) if kind == "conv" else draw(st.sampled_from([2, 3, 3, 5]))
        dil = draw(st.sampled_from([1, 1, 1, 2])) if kind in ("conv", "dw") else 1
        stride = 1 if dil > 1 else draw(st.sampled_from([1, 1, 2, 3]))
        padding = draw(st.sampled_from(["SAME", "VALID"]))
        oh, ow = _out_size(padding, h, k, stride, dil), _out_size(padding, w, k, stride, dil)
        if oh < 1 or ow < 1:
            padding, oh, ow = "SAME", -(-h // stride), -(-w // stride)
        fields = {"Padding": _PADDING[padding], "StrideW": stride, "StrideH": stride,
                  "FusedActivationFunction": draw(st.sampled_from([0, 1, 3]))}
        if kind in ("conv", "dw"):
            oc = draw(st.integers(1, 6)) if kind == "conv" else c * draw(st.sampled_from([1, 1, 2]))
            fshape = (oc, k, k, c) if kind == "conv" else (1, k, k, oc)
            axis = 0 if kind == "conv" else 3
            if f32:
                f = add(T(fshape, "float32", data=rng.normal(0, 0.5, fshape).astype(np.float32)))
                b = add(T((oc,), "float32", data=rng.normal(0, 0.5, oc).astype(np.float32)))
            else:
                scales = list(rng.uniform(0.002, 0.02, oc))
                f = add(T(fshape, scale=scales, zero_point=[0] * oc, axis=axis,
                          data=rng.integers(-127, 128, fshape).astype(np.int8)))
                b = add(T((oc,), "int32", data=rng.integers(-500, 500, oc).astype(np.int32)))
            y = act((1, oh, ow, oc))
            fields.update({"DilationWFactor": dil, "DilationHFactor": dil})
            if kind == "conv":
                ops.append(Op("CONV_2D", [x, f, b], [y], "Conv2DOptions", fields))
            else:
                ops.append(Op("DEPTHWISE_CONV_2D", [x, f, b], [y], "DepthwiseConv2DOptions",
                              {**fields, "DepthMultiplier": oc // c}))
            c = oc
        else:
            y = add(T((1, oh, ow, c), tensors[x].dtype, scale=tensors[x].scale, zero_point=tensors[x].zero_point))
            ops.append(Op("MAX_POOL_2D" if kind == "maxpool" else "AVERAGE_POOL_2D", [x], [y], "Pool2DOptions",
                          {**fields, "FilterWidth": k, "FilterHeight": k}))
        x, h, w = y, oh, ow
    return build(tensors, ops, [inp], [x]), n_ops


def _inputs(model_bytes: bytes, n: int, seed: int) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    ir = read_model(model_bytes)
    return [[rng.integers(-128, 128, t.shape).astype(np.int8) if t.dtype == "int8"
             else rng.normal(0, 2, t.shape).astype(np.float32) for t in ir.input_tensors] for _ in range(n)]


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chain=chains(), data=st.data())
def test_random_chains_match_the_liveness_plan_under_any_split_and_grid(chain, data, tmp_path_factory, host_cc):
    model, n_ops = chain
    ir = read_model(model)
    split = data.draw(st.integers(0, n_ops - 1), label="split")
    out = ir.tensors[ir.operators[split].outputs[0]]
    grid = (data.draw(st.integers(1, min(4, out.shape[1])), label="rows"),
            data.draw(st.integers(1, min(4, out.shape[2])), label="cols"))
    kernels = data.draw(st.sampled_from(["reference", "dsp", "helium"]), label="kernels")
    tmp = tmp_path_factory.mktemp("patch")
    live = generate(model, tmp / "live", kernels=kernels, memory_plan="liveness")
    patched = generate(model, tmp / "patch", kernels=kernels, memory_plan="patch", patch_force=(split, grid))
    assert patched.patch["split_layer"] == split and patched.patch["grid"] == list(grid)
    assert patched.patch["extra_macs"] >= 0
    sets = _inputs(model, 3, split)
    # both under ASan/UBSan: one runtime library per kernel set serves both builds
    expected = native.run_executable(native.build_executable(live, sanitize=True), ir, sets)
    got = native.run_executable(native.build_executable(patched, sanitize=True), ir, sets)
    for e, g in zip(expected, got):
        for a, b in zip(e, g):
            np.testing.assert_array_equal(a, b)


def test_geometry_halo_and_padding_only_at_image_borders():
    # conv 3x3 stride 2 SAME on 9 rows: pad 1 at the top only; two patches of the 5 output rows
    w = patching.Window1D(kernel=3, stride=2, dilation=1, pad=1, size_in=9, size_out=5)
    assert w.need(0, 3) == (0, 6, 1)      # rows -1..5: the top border is real padding
    assert w.need(3, 5) == (5, 9, 0)      # rows 5..8 (9 is the bottom padding, outside the window)
    # interior patch of a 5x5 dilated conv: a halo of (k-1)*d/2 rows each side, no padding
    w = patching.Window1D(kernel=5, stride=1, dilation=2, pad=4, size_in=20, size_out=20)
    assert w.need(8, 12) == (4, 16, 0)
    assert w.need(16, 20) == (12, 20, 0)  # bottom border: rows 20..23 are padding, outside the window


def test_search_goes_below_the_liveness_bound_within_the_budget(tmp_path):
    model = mobilenet_v1(48)
    r = generate(model, tmp_path / "m", memory_plan="patch", patch_budget_pct=10.0)
    p = r.patch
    assert p["split_layer"] is not None and p["extra_macs_pct"] <= 10.0
    assert r.arena_bytes < p["liveness_bytes"] and p["peak_bytes"] == r.arena_bytes
    assert set(p) >= {"split_layer", "grid", "peak_bytes", "extra_macs", "extra_macs_pct"}
    # a RAM target between the two: the cheapest plan that fits it, fewer recomputed MACs than the smallest plan
    target = (r.arena_bytes + p["liveness_bytes"]) // 2
    rt = generate(model, tmp_path / "t", memory_plan="patch", patch_target_bytes=target)
    assert rt.patch["peak_bytes"] <= target and rt.patch["extra_macs"] <= p["extra_macs"]
    assert generate(model, tmp_path / "u", memory_plan="patch",
                    patch_target_bytes=p["liveness_bytes"]).patch["split_layer"] is None  # liveness fits
    # a zero budget leaves nothing worth patching (full-width patches always recompute some halo rows)
    r0 = generate(model, tmp_path / "z", memory_plan="patch", patch_budget_pct=0.0)
    assert r0.patch["split_layer"] is None and r0.arena_bytes == p["liveness_bytes"]


@pytest.mark.parametrize("kernels", ["reference"])  # dsp/helium: the random chains above
def test_mobilenet_patch_plan_bit_exact_with_tflm_under_sanitizers(kernels):
    r = verify_model(mobilenet_v1(48), inputs=3, sanitize=True, kernels=kernels, memory_plan="patch",
                     measure_tflm_arena=False)
    assert r["bit_exact"], r
