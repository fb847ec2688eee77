"""Multi-subgraph (IF) models through formicary-rt: mixtures of experts converted by the TF converter (E = 2 with
conv experts; E = 4 with nested IFs, FC and conv experts) run bit-exact with TFLM in a sanitized host build on
inputs that reach every expert; fm_model_route() names the subgraphs each input ran; the arena is the max over
routes (at the liveness lower bound), well below the sum over subgraphs; the index/compare kernels the gate needs
(ARG_MAX, STRIDED_SLICE, LESS/EQUAL/...) match TFLM on their own. One qemu-m4 run: tests/kernels/
test_control_flow_board.py."""
from __future__ import annotations

import ctypes
import itertools
import tempfile
from pathlib import Path

import numpy as np
import pytest

from tests.support.moemodels import build_moe, covering_inputs
from tests.support.opmodels import assert_bit_exact, describe, input_sets

pytestmark = pytest.mark.tf

MODELS = {"e2_conv": (2, True), "e4_fc": (4, False), "e4_conv": (4, True)}


@pytest.fixture(scope="module")
def moe_models(tf) -> dict[str, bytes]:
    return {name: build_moe(tf, e, conv) for name, (e, conv) in MODELS.items()}


def expected_route(model: bytes, expert: int) -> int:
    """fm_model_route() bits TFLM's gate index implies: evaluate the model's IF conditions (comparisons of the
    index with constants) in Python, starting from the index the gate produced."""
    from formicary.tflite import read_model

    ir = read_model(model)
    ops = {"LESS": np.less, "EQUAL": np.equal, "GREATER": np.greater, "LESS_EQUAL": np.less_equal,
           "GREATER_EQUAL": np.greater_equal, "NOT_EQUAL": np.not_equal}

    def run(sg, env: dict[int, int]) -> int:
        route = 1 << sg.index
        for op in sg.operators:
            if op.opcode in ops:
                a, b = (sg.tensors[t] for t in op.inputs)
                env.setdefault(a.index, expert)  # the main subgraph compares the gate index first
                env[op.outputs[0]] = int(ops[op.opcode](env[a.index], int(np.asarray(b.data).reshape(-1)[0])))
            elif op.opcode == "IF":
                key = "then_subgraph_index" if env[op.inputs[0]] else "else_subgraph_index"
                target = ir.subgraphs[op.options[key]]
                inner = {dst: env[src] for src, dst in zip(op.inputs[1:], target.inputs) if src in env}
                route |= run(target, inner)
        return route

    return run(ir.subgraphs[0], {})


@pytest.mark.parametrize("name", list(MODELS))
def test_moe_bit_exact_on_every_route(moe_models, name):
    from formicary.codegen import generate
    from formicary.target import host as native
    from formicary.tflite import read_model

    experts = MODELS[name][0]
    model = moe_models[name]
    ins, picks = covering_inputs(model, experts, 24)
    assert sorted(set(picks)) == list(range(experts)), picks  # every expert is reached
    r = assert_bit_exact(describe(model), [[x] for x in ins], "IF")
    assert r["inputs"] == len(ins)

    with tempfile.TemporaryDirectory(prefix="fm-if-") as tmp:
        result = generate(model, Path(tmp) / "m")
        nm = native.load(result, read_model(model))
        nm.lib.fm_model_route.restype = ctypes.c_uint32
        routes = []
        for x in ins:
            nm.run([x])
            routes.append(int(nm.lib.fm_model_route()))
    for x_route, pick in zip(routes, picks):
        assert x_route == expected_route(model, pick), (hex(x_route), pick)
    # one distinct route per expert, each the main graph + a path of IF branches
    assert len(set(routes)) == experts and all(r & 1 for r in routes)
    assert {r["route"] for r in result.routes} == set(routes)


@pytest.mark.parametrize("name", list(MODELS))
def test_arena_is_max_over_routes_not_sum(moe_models, name):
    from formicary.codegen import generate
    from formicary.codegen.generate import lower_model, plan_memory
    from formicary.codegen.planner import ALIGN

    with tempfile.TemporaryDirectory(prefix="fm-if-") as tmp:
        result = generate(moe_models[name], Path(tmp) / "m")
    per_route = [r["peak_bytes"] for r in result.routes]
    summed = sum(s["peak_bytes"] for s in result.subgraphs if s["reachable"])
    assert len(per_route) == MODELS[name][0]
    assert result.arena_lower_bound_bytes == max(per_route)
    # at the lower bound (up to the arena's word granularity), and far below every subgraph's own peak summed
    assert result.arena_bytes == -(-result.arena_lower_bound_bytes // ALIGN) * ALIGN
    assert result.arena_bytes < summed * 0.75, (result.arena_bytes, summed)
    # no two tensors live in the same route share bytes: replay every route's steps over the placement
    lowered = lower_model(moe_models[name])
    buffers, _, arena, _ = plan_memory(lowered)
    from formicary.codegen import subgraphs

    tl = subgraphs.timeline(lowered.program)
    for route in subgraphs.routes(lowered.program):
        for step in tl.route_steps(route):
            live = sorted((b.offset, b.offset + b.size) for b in buffers if b.size and b.live_at(step))
            assert all(a[1] <= b[0] for a, b in itertools.pairwise(live)), (sorted(route), step)
            assert all(end <= arena for _, end in live)


def test_profile_names_the_subgraph_and_numbers_ops_globally(moe_models):
    from formicary.codegen import generate
    from formicary.tflite import read_model

    model = moe_models["e4_conv"]
    ir = read_model(model)
    with tempfile.TemporaryDirectory(prefix="fm-if-") as tmp:
        result = generate(model, Path(tmp) / "m")
        source = (Path(tmp) / "m" / "fm_model.c").read_text()
        header = (Path(tmp) / "m" / "fm_model.h").read_text()
    total = sum(len(sg.operators) for sg in ir.subgraphs)
    assert len(result.ops) == total and f"#define FM_NUM_OPS {total}" in header
    assert "uint32_t fm_model_route(void);" in header
    for sg in ir.subgraphs[1:]:
        first = next(s["first_op"] for s in result.subgraphs if s["index"] == sg.index)
        # the op's profile name starts with its subgraph's name; its hook index is the global one
        assert f'"{sg.name}/' in source
        assert f"FM_HOOK({first}, 0);" in source or f"FM_HOOK({first}, 0)" in source


def test_analysis_counts_macs_per_route(moe_models):
    from formicary.analysis import analyse

    report = analyse(moe_models["e4_conv"], measure_arena=False)
    cf = report["control_flow"]
    em = report["energy_model"]  # the heaviest route's, with every route's total beside it
    assert {r["route"] for r in em["routes"]} == {r["route"] for r in cf["routes"]}
    assert em["total"] == max((r["total"] for r in em["routes"]), key=lambda t: t["45nm"]["total_uj"])
    assert len(em["layers"]) == sum(s["ops"] for s in cf["subgraphs"] if s["index"] in
                                    next(r["subgraphs"] for r in cf["routes"] if r["route"] == em["route"]))
    assert len(cf["subgraphs"]) == 7 and len(cf["routes"]) == 4
    expert_macs = [s["macs"] for s in cf["subgraphs"] if s["macs"] and s["index"]]
    assert len(expert_macs) == 4
    gate = cf["subgraphs"][0]["macs"]
    assert report["macs"] == gate  # the stable key: subgraph 0
    assert cf["macs_per_route"]["max"] == gate + max(expert_macs)
    assert cf["macs_all_subgraphs"] == gate + sum(expert_macs)
    expert_params = [s["params"] for s in cf["subgraphs"] if s["macs"] and s["index"]]
    assert min(expert_params) > 0
    assert cf["params_all_subgraphs"] == cf["subgraphs"][0]["params"] + sum(expert_params)


@pytest.mark.parametrize("int8", [True, False])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_arg_max_and_strided_slice(opmodels, tf, int8, axis):
    """ARG_MAX (int8 / float32, ties included: int8 inputs repeat values) then STRIDED_SLICE of the int32
    indices with begin/end masks, a negative stride and a shrunk axis, then a comparison."""
    shape = [3, 5, 4]

    def fn(x):
        idx = tf.argmax(x, axis=axis, output_type=tf.int32)
        part = idx[::-1, 1:] if idx.shape[1] > 1 else idx[::-1]
        row = idx[1]
        return part, row, tf.less(row, 2)

    built = opmodels.convert(fn, [shape], int8=int8,
                             calib=lambda rng: [rng.standard_normal(shape).astype(np.float32)])
    assert {"ARG_MAX", "STRIDED_SLICE", "LESS"} <= set(built.opcodes), built.opcodes
    assert_bit_exact(built, input_sets(built, np.random.default_rng(axis + 7), n=4))


@pytest.mark.parametrize("kernels", ["reference", "dsp"])
def test_requantize_large_tensor(opmodels, tf, kernels):
    """int8 -> int8 QUANTIZE over more values than int8 has (the dsp kernel's table path; an expert's input when
    its scale differs from the stem's), every int8 input value included, vs TFLM."""
    s1, s2 = [1, 8, 8, 6], [1, 8, 8, 2]

    def fn(x, y):
        return tf.concat([tf.math.tanh(x), tf.nn.relu(y)], axis=3)

    built = opmodels.convert(fn, [s1, s2], int8=True, seed=5,
                             calib=lambda rng: [rng.uniform(-1, 1, s1).astype(np.float32),
                                                rng.uniform(-3, 5, s2).astype(np.float32)])
    from formicary.tflite import read_model

    ir = read_model(built.model)
    sizes = [ir.tensors[op.outputs[0]].numel for op in ir.operators
             if op.opcode == "QUANTIZE" and ir.tensors[op.inputs[0]].dtype == "int8"]
    assert max(sizes) > 256, sizes
    sets = input_sets(built, np.random.default_rng(5), n=3)
    sets.append([np.arange(-128, 256 - 128, dtype=np.int16).astype(np.int8).repeat(2)[:384].reshape(s1),
                 sets[0][1]])
    assert_bit_exact(built, sets, "QUANTIZE", kernels=kernels)
