"""Layout ops vs TFLM, byte for byte, through the sanitized host build: TRANSPOSE, DEPTH_TO_SPACE, SPACE_TO_DEPTH,
SPLIT, SPLIT_V, UNPACK, PACK and GATHER (codegen/ops/layout.py). Single-op models come from the TensorFlow-free
builder (tests/support/tfl_builder.py) with shapes, axes (negative ones included), block sizes and element types
drawn by Hypothesis; GATHER's run-time positions out of range end fm_invoke() with FM_ERR_RANGE where TFLM fails,
and the sanitizer sees no read outside the input. The whole-model check (a ShuffleNet unit converted by the TF
converter, host and qemu-m4) is in test_layout_model.py."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.kernel_params import examples, kernel_param
from tests.support.tfl_builder import Op, T, build

N = 6  # examples per test (tests/support/kernel_params.py splits them across sets with their own file)

dims = st.lists(st.integers(1, 4), min_size=1, max_size=5)


def tensor(shape, dtype: str, data=None) -> T:
    """An activation (or constant) tensor; int8 ones carry a per-tensor quantization like converter output."""
    if dtype == "int8":
        return T(tuple(shape), dtype, scale=[0.05], zero_point=[-3], data=data)
    return T(tuple(shape), dtype, data=data)


def random_input(rng: np.random.Generator, shape, dtype: str) -> np.ndarray:
    if dtype == "float32":
        return (rng.standard_normal(shape) * 4).astype(np.float32)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)


def check(model: bytes, seed: int, kernels: str, n: int = 2, positions=None) -> dict:
    """Random inputs of every type (int32 inputs: GATHER positions, drawn by `positions(rng, shape)`)."""
    from formicary.bench.verify import verify_model
    from formicary.tflite import read_model

    rng = np.random.default_rng(seed)
    ins = read_model(model).input_tensors
    sets = [[positions(rng, t.shape) if t.dtype == "int32" and positions else random_input(rng, t.shape, t.dtype)
             for t in ins] for _ in range(n)]
    r = verify_model(model, input_sets=sets, sanitize=True, measure_tflm_arena=False, kernels=kernels)
    assert r["bit_exact"], f"{r['mismatches']}/{r['inputs']} sets differ, max |diff| {r['max_abs_diff']}"
    return r


@kernel_param("transpose.c")
@settings(max_examples=examples(N, "transpose.c"))
@given(shape=dims, data=st.data(), dtype=st.sampled_from(["int8", "float32", "int16"]), seed=st.integers(0, 99))
def test_transpose(kernels, shape, data, dtype, seed):
    perm = data.draw(st.permutations(range(len(shape))))
    out = [shape[p] for p in perm]
    model = build([tensor(shape, dtype), T((len(shape),), "int32", data=np.array(perm, np.int32)),
                   tensor(out, dtype)], [Op("TRANSPOSE", [0, 1], [2], "TransposeOptions", {})], [0], [2])
    check(model, seed, kernels)


@kernel_param("transpose.c")
@settings(max_examples=examples(N, "transpose.c"))
@given(to_space=st.booleans(), bs=st.integers(1, 3), nhwc=st.tuples(st.integers(1, 2), st.integers(1, 3),
       st.integers(1, 3), st.integers(1, 3)), dtype=st.sampled_from(["int8", "float32"]), seed=st.integers(0, 99))
def test_depth_to_space_and_space_to_depth(kernels, to_space, bs, nhwc, dtype, seed):
    n, h, w, c = nhwc
    if to_space:   # DEPTH_TO_SPACE: [n, h, w, bs*bs*c] -> [n, h*bs, w*bs, c]
        shapes, op = ([n, h, w, bs * bs * c], [n, h * bs, w * bs, c]), "DEPTH_TO_SPACE"
    else:          # SPACE_TO_DEPTH: [n, h*bs, w*bs, c] -> [n, h, w, bs*bs*c]
        shapes, op = ([n, h * bs, w * bs, c], [n, h, w, bs * bs * c]), "SPACE_TO_DEPTH"
    opts = "DepthToSpaceOptions" if to_space else "SpaceToDepthOptions"
    model = build([tensor(shapes[0], dtype), tensor(shapes[1], dtype)], [Op(op, [0], [1], opts, {"BlockSize": bs})],
                  [0], [1])
    check(model, seed, kernels)


@kernel_param("split.c")
@settings(max_examples=examples(N, "split.c"))
@given(kind=st.sampled_from(["SPLIT", "SPLIT_V", "UNPACK"]), shape=dims, data=st.data(),
       dtype=st.sampled_from(["int8", "float32", "int32", "int16"]), seed=st.integers(0, 99))
def test_split_split_v_unpack(kernels, kind, shape, data, dtype, seed):
    """Several outputs, all model outputs; axis drawn in [-rank, rank)."""
    rank = len(shape)
    axis = data.draw(st.integers(-rank, rank - 1))
    a = axis % rank
    if kind == "SPLIT":
        parts = data.draw(st.integers(1, 3))
        shape[a] *= parts
        sizes = [shape[a] // parts] * parts
    elif kind == "SPLIT_V":
        sizes = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=4))
        shape[a] = sum(sizes)
    else:
        sizes = [1] * shape[a]
    outs = [shape[:a] + [s] + shape[a + 1:] if kind != "UNPACK" else shape[:a] + shape[a + 1:] for s in sizes]
    tensors = [tensor(shape, dtype)] + [tensor(o, dtype) for o in outs]
    out_ids = list(range(1, len(outs) + 1))
    axis_t = T((), "int32", data=np.array(axis, np.int32))
    if kind == "SPLIT":
        tensors.append(axis_t)
        op = Op("SPLIT", [len(tensors) - 1, 0], out_ids, "SplitOptions", {"NumSplits": len(outs)})
    elif kind == "SPLIT_V":
        tensors += [T((len(sizes),), "int32", data=np.array(sizes, np.int32)), axis_t]
        op = Op("SPLIT_V", [0, len(tensors) - 2, len(tensors) - 1], out_ids, "SplitVOptions",
                {"NumSplits": len(outs)})
    else:
        op = Op("UNPACK", [0], out_ids, "UnpackOptions", {"Num": len(outs), "Axis": axis})
    check(build(tensors, [op], [0], out_ids), seed, kernels)


@kernel_param("pack.c")
@settings(max_examples=examples(N, "pack.c"))
@given(shape=dims, count=st.integers(1, 4), data=st.data(), dtype=st.sampled_from(["int8", "float32", "int32"]),
       seed=st.integers(0, 99))
def test_pack(kernels, shape, count, data, dtype, seed):
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    a = axis % (len(shape) + 1)
    out = shape[:a] + [count] + shape[a:]
    tensors = [tensor(shape, dtype) for _ in range(count)] + [tensor(out, dtype)]
    model = build(tensors, [Op("PACK", list(range(count)), [count], "PackOptions",
                               {"ValuesCount": count, "Axis": axis})], list(range(count)), [count])
    check(model, seed, kernels)


def gather_model(shape, pshape, axis: int, batch_dims: int, dtype: str, positions=None, table=None) -> bytes:
    """GATHER of input `shape` (axis, batch_dims) with int32 positions of `pshape`: a model input, or constant;
    the input itself constant when `table` is given (an embedding lookup: table in flash, positions at run time)."""
    a = axis % len(shape)
    b = batch_dims % len(pshape) if batch_dims < 0 else batch_dims
    out = shape[:a] + list(pshape[b:]) + shape[a + 1:]
    pos = T(tuple(pshape), "int32", data=None if positions is None else np.asarray(positions, np.int32))
    inputs = ([0] if positions is not None else [0, 1]) if table is None else [1]
    return build([tensor(shape, dtype, data=table), pos, tensor(out, dtype)],
                 [Op("GATHER", [0, 1], [2], "GatherOptions", {"Axis": axis, "BatchDims": batch_dims})], inputs, [2])


@kernel_param("gather.c")
@settings(max_examples=examples(N, "gather.c"))
@given(shape=dims, data=st.data(), const=st.sampled_from(["positions", "table", "neither"]),
       dtype=st.sampled_from(["int8", "float32"]), seed=st.integers(0, 99))
def test_gather(kernels, shape, data, const, dtype, seed):
    """Constant positions (a fixed reordering), or run-time positions into a constant table (an embedding lookup)
    or into an activation; any axis, batch_dims."""
    rank = len(shape)
    axis = data.draw(st.integers(-rank, rank - 1))
    a = axis % rank
    batch_dims = data.draw(st.integers(0, a))
    pshape = shape[:batch_dims] + data.draw(st.lists(st.integers(1, 3), max_size=2))
    if not pshape and const != "positions":
        pshape = [1]  # the TFLM Python interpreter cannot set a 0-D input
    rng = np.random.default_rng(seed)

    def draw(r: np.random.Generator, s) -> np.ndarray:
        return r.integers(0, shape[a], size=s).astype(np.int32)

    positions = draw(rng, pshape) if const == "positions" else None
    table = random_input(rng, shape, dtype) if const == "table" else None
    check(gather_model(shape, pshape, axis, batch_dims, dtype, positions, table), seed, kernels, positions=draw)


def test_gather_run_time_positions_out_of_range_fail_like_tflm(tmp_path):
    """A position < 0 or >= the axis size: TFLM's invoke fails, fm_invoke() returns FM_ERR_RANGE (2) and the
    sanitized build reads nothing outside the input; in-range positions in the same build still run."""
    from formicary.codegen import generate
    from formicary.errors import FormicaryError
    from formicary.oracle import tflm as reference
    from formicary.target import host as native
    from formicary.tflite import read_model

    model = gather_model([6, 5], [3], 0, 0, "int8")
    ir = read_model(model)
    table = np.arange(30, dtype=np.int8).reshape(6, 5)
    result = generate(model, tmp_path / "gen")
    exe = native.build_executable(result, sanitize=True)
    loaded = native.load(result, ir)
    ok = [[table, np.array([5, 0, 2], np.int32)]]
    assert np.array_equal(native.run_executable(exe, ir, ok)[0][0], table[[5, 0, 2]])
    for bad in ([0, 6, 1], [-1, 0, 0], [2, 2, 2 ** 31 - 1]):
        sets = [[table, np.array(bad, np.int32)]]
        with pytest.raises(FormicaryError) as ours:
            native.run_executable(exe, ir, sets)
        assert "fm_invoke failed with 2" in str(ours.value) and "Sanitizer" not in str(ours.value)
        with pytest.raises(FormicaryError, match="GATHER position"):
            loaded.run(sets[0])
        with pytest.raises(FormicaryError, match="TFLite Micro failed"):
            reference.run_tflm(model, sets)


@pytest.mark.parametrize("case", ["gather_const_out_of_range", "transpose_perm_not_constant", "transpose_rank_6",
                                  "split_axis_not_constant", "depth_to_space_channels", "gather_int8_positions"])
def test_refused_at_codegen(case, tmp_path):
    """What TFLM refuses (or would fail on at every invoke) is one FormicaryError naming the layer, not C."""
    from formicary.codegen import generate
    from formicary.errors import FormicaryError

    if case == "gather_const_out_of_range":
        model = gather_model([4, 3], [2], 0, 0, "int8", positions=[1, 4])
    elif case == "transpose_perm_not_constant":
        model = build([tensor([2, 3], "int8"), T((2,), "int32"), tensor([3, 2], "int8")],
                      [Op("TRANSPOSE", [0, 1], [2], "TransposeOptions", {})], [0, 1], [2])
    elif case == "transpose_rank_6":
        model = build([tensor([1, 2, 1, 2, 1, 2], "int8"), T((6,), "int32", data=np.arange(6)[::-1].astype(np.int32)),
                       tensor([2, 1, 2, 1, 2, 1], "int8")], [Op("TRANSPOSE", [0, 1], [2], "TransposeOptions", {})],
                      [0], [2])
    elif case == "split_axis_not_constant":
        model = build([T((), "int32"), tensor([2, 4], "int8"), tensor([2, 2], "int8"), tensor([2, 2], "int8")],
                      [Op("SPLIT", [0, 1], [2, 3], "SplitOptions", {"NumSplits": 2})], [0, 1], [2, 3])
    elif case == "depth_to_space_channels":
        model = build([tensor([1, 2, 2, 6], "int8"), tensor([1, 4, 4, 1], "int8")],
                      [Op("DEPTH_TO_SPACE", [0], [1], "DepthToSpaceOptions", {"BlockSize": 2})], [0], [1])
    else:
        model = build([tensor([4, 3], "int8"), tensor([2], "int8"), tensor([2, 3], "int8")],
                      [Op("GATHER", [0, 1], [2], "GatherOptions", {"Axis": 0})], [0, 1], [2])
    with pytest.raises(FormicaryError) as err:
        generate(model, tmp_path / "gen")
    (problem,) = err.value.details["unsupported"]
    assert problem["layer"] == 0 and problem["fix"], problem
