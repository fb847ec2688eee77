"""Lifetimes and arena placement: never overlap live buffers, reach the lower bound on chains, honour aliases
and in-place sharing only when safe."""
from __future__ import annotations

import numpy as np
from formicary.codegen import lifetimes, planner
from formicary.codegen.lifetimes import Buffer
from formicary.tflite import read_model
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.tfl_builder import Op, T, build


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 6), st.integers(1, 5000)), min_size=1, max_size=25))
def test_plan_never_overlaps_and_respects_lower_bound(spans):
    buffers = [Buffer(id=i, tensors=[i], size=size, first=start, last=start + length)
               for i, (start, length, size) in enumerate(spans)]
    bound = lifetimes.lower_bound(buffers, 30)
    arena = planner.plan(buffers, bound)
    planner.check(buffers)
    assert arena >= bound
    assert all(b.offset + b.size <= arena for b in buffers)


@given(st.lists(st.integers(1, 10000), min_size=2, max_size=30))
def test_chain_reaches_lower_bound(sizes):
    # op i reads tensor i and writes tensor i+1: a plain sequential network
    buffers = [Buffer(id=i, tensors=[i], size=s, first=max(i - 1, 0), last=i) for i, s in enumerate(sizes)]
    arena = planner.plan(buffers, lifetimes.lower_bound(buffers, len(sizes)))
    planner.check(buffers)
    assert arena <= planner._align(lifetimes.lower_bound(buffers, len(sizes)))


def _elementwise_chain_model() -> bytes:
    """x -> RELU -> a -> RELU -> b (+ x kept alive to the end through a second output)."""
    tensors = [T((1, 100)), T((1, 100)), T((1, 100)), T((1, 100))]
    ops = [Op("RELU", [0], [1]), Op("RELU", [1], [2]), Op("ADD", [2, 0], [3], "AddOptions", {})]
    return build(tensors, ops, [0], [3])


def test_inplace_only_when_input_dies_and_not_model_io():
    m = read_model(_elementwise_chain_model())
    # op1 may write t2 over t1 (t1 dies at op1); op0 must not overwrite the model input t0; op2's output is
    # a model output.
    buffers, owner = lifetimes.build_buffers(m, {}, {1: (0, 0), 2: (1, 1), 3: (2, 2)})
    assert owner[0] != owner[1]
    assert owner[1] == owner[2]
    assert owner[3] != owner[2]
    arena = planner.plan(buffers, lifetimes.lower_bound(buffers, 3))
    planner.check(buffers)
    assert arena == lifetimes.lower_bound(buffers, 3) == 300


def test_inplace_refused_when_input_read_later():
    m = read_model(_elementwise_chain_model())
    # t0 is read again by op2, so op0 may not overwrite it even if asked.
    _, owner = lifetimes.build_buffers(m, {}, {1: (0, 0)})
    assert owner[0] != owner[1]


def test_alias_shares_buffer_and_extends_lifetime():
    tensors = [T((1, 4, 4, 2)), T((1, 32)), T((2,), "int32", data=np.array([1, 32], dtype=np.int32)), T((1, 32))]
    ops = [Op("RELU", [0], [1]), Op("RESHAPE", [1, 2], [3])]
    m = read_model(build([tensors[0], tensors[3], tensors[2], tensors[1]],
                         [Op("RESHAPE", [0, 2], [3]), Op("RELU", [3], [1])], [0], [1]))
    buffers, owner = lifetimes.build_buffers(m, {3: 0}, {})
    assert owner[3] == owner[0]
    b = buffers[owner[0]]
    assert (b.first, b.last) == (0, 1)
    del ops
