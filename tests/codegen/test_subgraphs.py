"""Multi-subgraph models without TensorFlow (flatbuffers from tests.support.tfl_builder): the reader keeps every
subgraph, a hand-built nested IF (scalar index in, a branch with its own IF, a branch reading a constant) runs
bit-exact with TFLM on hostile indices (negative, out of range) in a sanitized build, and codegen refuses the
call graphs it cannot run (recursion, a subgraph shared by two IFs, a branch index out of range, WHILE) with
one FormicaryError instead of generating code that loops or reads past a table."""
from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import pytest

from formicary.errors import FormicaryError
from tests.support.tfl_builder import Op, Subgraph, T, build

SHRINK = {"BeginMask": 0, "EndMask": 0, "ShrinkAxisMask": 1}


def _if(then: int, other: int, ins: list[int], outs: list[int]) -> Op:
    return Op("IF", ins, outs, "IfOptions", {"ThenSubgraphIndex": then, "ElseSubgraphIndex": other})


def nested_if_model(then_index: int = 1, else_index: int = 2, inner: tuple[int, int] = (3, 4),
                    extra_op: Op | None = None, early_output: bool = False) -> bytes:
    """main: k[1] -> k[0] < 2 ? low(x) : high(k, x); high: k == 3 ? relu6(x) : x + x. Floats whose kernels are
    exact (RELU, RELU6, x + x), so TFLM's bits are the reference. `early_output`: a second model output, x + x,
    computed before the IF (the branches must not reuse its bytes)."""
    f = (1, 4)
    main = [T((1,), "int32", name="k"), T(f, "float32", name="x"),
            T((1,), "int32", data=np.array([0], np.int32)), T((1,), "int32", data=np.array([1], np.int32)),
            T((1,), "int32", data=np.array([1], np.int32)), T((), "int32", name="k0"),
            T((), "int32", data=np.array(2, np.int32)), T((), "bool", name="lt2"), T(f, "float32", name="y")]
    main_ops = [Op("STRIDED_SLICE", [0, 2, 3, 4], [5], "StridedSliceOptions", SHRINK),
                Op("LESS", [5, 6], [7]), _if(then_index, else_index, [7, 5, 1], [8])]
    low = Subgraph([T((), "int32"), T(f, "float32"), T(f, "float32", name="low_relu")],
                   [Op("RELU", [1], [2])], [0, 1], [2], "expert_low")
    high = Subgraph([T((), "int32"), T(f, "float32"), T((), "int32", data=np.array(3, np.int32)),
                     T((), "bool"), T(f, "float32", name="high_out")],
                    [Op("EQUAL", [0, 2], [3]), _if(inner[0], inner[1], [3, 1], [4])], [0, 1], [4], "router_high")
    three = Subgraph([T(f, "float32"), T(f, "float32", name="relu6")], [Op("RELU6", [0], [1])], [0], [1],
                     "expert_3")
    rest_ops = [Op("ADD", [0, 0], [1], "AddOptions", {"FusedActivationFunction": 0})]
    if extra_op is not None:
        rest_ops.append(extra_op)
    rest = Subgraph([T(f, "float32"), T(f, "float32", name="twice")], rest_ops, [0], [1], "expert_rest")
    outputs = [8]
    if early_output:
        main.append(T(f, "float32", name="early"))
        main_ops.insert(0, Op("ADD", [1, 1], [9], "AddOptions", {"FusedActivationFunction": 0}))
        outputs.append(9)
    return build(main, main_ops, [0, 1], outputs, [low, high, three, rest])


def test_reader_keeps_every_subgraph():
    from formicary.tflite import read_model

    ir = read_model(nested_if_model())
    assert ir.subgraph_count == 5 and [s.name for s in ir.subgraphs] == [
        "main", "expert_low", "router_high", "expert_3", "expert_rest"]
    # the model-level fields are subgraph 0's, as every single-subgraph caller expects
    assert ir.operators is ir.subgraphs[0].operators and ir.inputs == [0, 1] and ir.outputs == [8]
    high = ir.subgraphs[2]
    assert [op.opcode for op in high.operators] == ["EQUAL", "IF"]
    assert high.operators[1].options["then_subgraph_index"] == 3
    assert high.tensors[2].data.item() == 3 and high.tensors[3].dtype == "bool"


def test_nested_if_bit_exact_with_tflm_on_hostile_indices(tmp_path):
    from formicary.bench.verify import verify_model
    from formicary.codegen import generate
    from formicary.target import host as native
    from formicary.tflite import read_model

    model = nested_if_model()
    rng = np.random.default_rng(0)
    ks = [0, 1, 2, 3, 4, -1, -2 ** 31, 2 ** 31 - 1, 3]
    sets = [[np.array([k], np.int32), (rng.standard_normal((1, 4)) * 8).astype(np.float32)] for k in ks]
    r = verify_model(model, input_sets=sets, sanitize=True, measure_tflm_arena=False)
    assert r["bit_exact"] and r["inputs"] == len(ks), r

    result = generate(model, tmp_path / "m")
    nm = native.load(result, read_model(model))
    nm.lib.fm_model_route.restype = ctypes.c_uint32
    want = {0: 0b11, 1: 0b11, 2: 0b10101, 3: 0b1101, 4: 0b10101, -1: 0b11, -2 ** 31: 0b11, 2 ** 31 - 1: 0b10101}
    for k, x in ((s[0][0], s) for s in sets):
        out = nm.run(x)[0]
        assert nm.lib.fm_model_route() == want[int(k)], k
        expect = np.maximum(x[1], 0) if k < 2 else (np.clip(x[1], 0, 6) if k == 3 else x[1] + x[1])
        np.testing.assert_array_equal(out.reshape(1, 4), expect)
    # op numbering is global (subgraph order) and profile names carry the subgraph
    assert [s["first_op"] for s in result.subgraphs] == [0, 3, 4, 6, 7]
    source = Path(result.files[1]).read_text()
    assert '"expert_3/relu6"' in source and "FM_HOOK(6, 0);" in source


def test_outputs_before_the_if_and_preserved_inputs_survive_the_branches(tmp_path):
    """A model output computed before the last op (an IF) and, with preserve_inputs, the inputs stay live through
    every branch: bit-exact with TFLM, and a second fm_invoke() on the same inputs gives the same bytes."""
    from formicary.bench.verify import verify_model
    from formicary.codegen import generate
    from formicary.target import host as native
    from formicary.tflite import read_model

    model = nested_if_model(early_output=True)
    rng = np.random.default_rng(1)
    sets = [[np.array([k], np.int32), (rng.standard_normal((1, 4)) * 8).astype(np.float32)] for k in (0, 3, 7)]
    assert verify_model(model, input_sets=sets, sanitize=True, measure_tflm_arena=False)["bit_exact"]
    result = generate(model, tmp_path / "m", preserve_inputs=True)
    nm = native.load(result, read_model(model))
    for s in sets:
        first = [a.copy() for a in nm.run(s)]
        assert nm.lib.fm_invoke() == 0
        for i, a in enumerate(first):
            again = np.ctypeslib.as_array((ctypes.c_uint8 * a.nbytes).from_address(nm.lib.fm_output_data(i)))
            assert again.tobytes() == a.tobytes(), (int(s[0][0]), i)


def test_arena_shares_branch_memory():
    from formicary.codegen.generate import lower_model, plan_memory

    lowered = lower_model(nested_if_model())
    buffers, owner, arena, bound = plan_memory(lowered)
    names = {lowered.model.tensors[t].name: owner[t] for t in owner}
    by_id = {b.id: b for b in buffers}
    # outputs of two experts that never run together may share bytes; both are live during no common step
    a, b = by_id[names["relu6"]], by_id[names["twice"]]
    assert not a.overlaps_in_time(b)
    # the index k0 passed by the IF is the branches' input: same bytes (an alias), no copy in the C
    for branch in (1, 2):
        assert owner[lowered.program.subgraphs[branch].inputs[0]] == names["k0"]
    # the IF's output is written when a branch exits: it shares no step with the branches' own ops
    y = by_id[names["y"]]
    assert not y.overlaps_in_time(a) and not y.overlaps_in_time(b)
    # Here the bound (32: two 16-byte tensors at once) cannot be met: x, expert_low's output, y, high_out and
    # relu6 conflict in a 5-cycle of 16-byte buffers, which needs three slots (48). The MoE models meet it.
    assert bound == 32 and arena == 48
    total = sum(bf.size for bf in buffers)
    assert arena < total


@pytest.mark.parametrize("case,needle", [
    ({"then_index": 0}, "main subgraph"),
    ({"else_index": 9}, "does not exist"),
    ({"inner": (3, 3)}, "both branches"),
    ({"inner": (1, 4)}, "more than one IF"),            # expert_low run by two IF ops
    ({"inner": (2, 4)}, "more than one IF"),            # router_high runs itself: recursion
    ({"extra_op": Op("WHILE", [0], [1])}, "WHILE"),
])
def test_refuses_call_graphs_it_cannot_run(tmp_path, case, needle):
    from formicary.codegen import generate

    with pytest.raises(FormicaryError) as err:
        generate(nested_if_model(**case), tmp_path / "m")
    assert needle in str(err.value)
    assert not (tmp_path / "m").exists()


def chained_if_model(n: int) -> bytes:
    """n IFs one after the other in subgraph 0 (routes multiply: 2^n): IF j runs relu (k < j + 1) or x + x on the
    previous result."""
    f = (1, 4)
    main = [T((1,), "int32", name="k"), T(f, "float32", name="x")]
    ops, subs = [], []
    prev = 1
    for j in range(n):
        c = len(main)
        main += [T((1,), "int32", data=np.array([j + 1], np.int32)), T((1,), "bool", name=f"c{j}"),
                 T(f, "float32", name=f"y{j}")]
        ops += [Op("LESS", [0, c], [c + 1]), _if(1 + 2 * j, 2 + 2 * j, [c + 1, prev], [c + 2])]
        subs += [Subgraph([T(f, "float32"), T(f, "float32")], [Op("RELU", [0], [1])], [0], [1], f"relu_{j}"),
                 Subgraph([T(f, "float32"), T(f, "float32")],
                          [Op("ADD", [0, 0], [1], "AddOptions", {"FusedActivationFunction": 0})], [0], [1],
                          f"twice_{j}")]
        prev = c + 2
    return build(main, ops, [0, 1], [prev], subs)


def test_chained_ifs_bit_exact_and_many_routes(tmp_path):
    """IFs in sequence: bit-exact with TFLM on every route of three; with 13 IFs (8192 routes, more than codegen
    lists) the model still compiles and plans, `routes` is just not listed."""
    from formicary.bench.verify import verify_model
    from formicary.codegen import generate

    model = chained_if_model(3)
    rng = np.random.default_rng(2)
    sets = [[np.array([k], np.int32), (rng.standard_normal((1, 4)) * 4).astype(np.float32)] for k in (0, 1, 2, 3, 9)]
    assert verify_model(model, input_sets=sets, sanitize=True, measure_tflm_arena=False)["bit_exact"]
    result = generate(model, tmp_path / "three")
    assert len(result.routes) == 8 and result.arena_bytes == max(r["peak_bytes"] for r in result.routes)
    many = generate(chained_if_model(13), tmp_path / "many")
    assert many.routes == [] and many.arena_bytes == many.arena_lower_bound_bytes
