"""Scratch memory sized by the kernel set: the planner places each op's scratch as a buffer alive during that op
only, never over a live tensor, the arena grows only when the op has no room to spare, and a kernel that uses
every declared byte still computes bit-exact results. The reference set declares none: arenas and calls as
before (NULL scratch)."""
from __future__ import annotations

import ctypes

import numpy as np
import pytest
from formicary.codegen import generate, kernel_sets, lower_model, plan_memory
from formicary.codegen.kernel_sets import (
    KernelSet,
    register_kernel_set,
    unregister_kernel_set,
)
from formicary.errors import FormicaryError
from tests.codegen.test_models import residual_model

REFERENCE_CONV = (kernel_sets.kernels_dir() / "reference" / "conv2d_s8.c").as_posix()
FACTOR = 3  # the test kernel's scratch: 3 x its input's bytes

# A CONV_2D int8 that fills all its scratch with a pattern, copies its input there and convolves the copy: a
# scratch area overlapping the input, the output or any tensor still needed later corrupts the results.
SCRATCH_CONV = f"""/* Test kernel set: the reference CONV_2D int8 run on a copy of its input in scratch memory. */
#include <string.h>

#include "fm_kernels.h"

int fm_test_scratch_calls = 0;

#define fm_conv2d_s8 fm_test_reference_conv2d_s8
#include "{REFERENCE_CONV}"
#undef fm_conv2d_s8

int fm_conv2d_s8(const fm_conv_s8_params_t *p, const int8_t *input, int8_t *output, void *scratch)
{{
    if (scratch == NULL) {{
        return fm_test_reference_conv2d_s8(p, input, output, NULL);
    }}
    const size_t n = (size_t)p->input_dims.n * p->input_dims.h * p->input_dims.w * p->input_dims.c;
    memset(scratch, 0x5a, n * {FACTOR});
    memcpy(scratch, input, n);
    ++fm_test_scratch_calls;
    return fm_test_reference_conv2d_s8(p, (const int8_t *)scratch, output, NULL);
}}
"""


def _conv_scratch(ops: set[int]):
    """Scratch rule of the test set: FACTOR x the input bytes for the CONV_2D ops listed, none for the others."""
    def rule(op, ctx) -> int:
        return FACTOR * ctx.inputs()[0].nbytes if op.index in ops else 0
    return rule


@pytest.fixture()
def scratch_set(tmp_path):
    folder = tmp_path / "scratchy"
    folder.mkdir()
    (folder / "conv2d_s8.c").write_text(SCRATCH_CONV)

    def make(ops: set[int]) -> KernelSet:
        return register_kernel_set(KernelSet("scratchy", root=folder, scratch={"fm_conv2d_s8": _conv_scratch(ops)}))

    yield make
    unregister_kernel_set("scratchy")


# residual_model(): op 0 CONV_2D 3x3 (input 300 B, output 800 B), op 1 DEPTHWISE, op 2 CONV_2D 1x1 (input 800 B),
# op 3 ADD reading op 0's output; 2,400 B at the lower bound (three 800 B maps live at ops 2 and 3).
REFERENCE_ARENA = 2400


def _live_at(result, op: int) -> list[tuple[int, int]]:
    return [(t["offset"], t["offset"] + t["bytes"]) for t in result.tensors if t["first_op"] <= op <= t["last_op"]]


def _check_bit_exact(result, model: bytes, n: int = 5) -> int:
    from formicary.target import host as native
    from formicary.oracle.tflm import run_tflm
    from formicary.tflite import read_model

    nm = native.load(result, read_model(model))
    rng = np.random.default_rng(11)
    xs = [[rng.integers(-128, 128, (1, 10, 10, 3), dtype=np.int64).astype(np.int8)] for _ in range(n)]
    ours = [nm.run(x) for x in xs]
    for a, b in zip(ours, run_tflm(model, xs)):
        assert a[0].tobytes() == np.asarray(b[0]).astype(np.int8).tobytes()
    return ctypes.c_int.in_dll(nm.lib, "fm_test_scratch_calls").value


def test_reference_set_declares_no_scratch(tmp_path):
    r = generate(residual_model(), tmp_path / "gen", memory_plan="liveness")
    assert r.scratch == [] and r.arena_bytes == REFERENCE_ARENA
    source = (tmp_path / "gen" / "fm_model.c").read_text()
    assert "fm_scratch_op" not in source
    assert "fm_conv2d_s8(&fm_op0_params, fm_t0, fm_t3, NULL)" in source


def test_scratch_in_spare_room_keeps_the_arena(scratch_set, tmp_path, host_cc, tflm):
    """Op 0 has 1,300 B to spare (its 300 + 800 B live of 2,400): 900 B of scratch fit without growing the arena."""
    scratch_set({0})
    model = residual_model()
    r = generate(model, tmp_path / "gen", kernels="scratchy", memory_plan="liveness")
    assert r.scratch == [{"op": 0, "bytes": 900, "offset": r.scratch[0]["offset"]}]
    assert r.arena_bytes == r.arena_lower_bound_bytes == REFERENCE_ARENA
    start = r.scratch[0]["offset"]
    assert start % 4 == 0 and start + 900 <= r.arena_bytes
    for lo, hi in _live_at(r, 0):
        assert hi <= start or start + 900 <= lo, "scratch overlaps a tensor live at op 0"
    source = (tmp_path / "gen" / "fm_model.c").read_text()
    assert f"#define fm_scratch_op0 ((void *)(fm_arena + {start}u))" in source
    assert "fm_conv2d_s8(&fm_op0_params, fm_t0, fm_t3, fm_scratch_op0)" in source
    assert "fm_conv2d_s8(&fm_op2_params, fm_t6, fm_t9, NULL)" in source  # op 2: no scratch declared
    assert _check_bit_exact(r, model) == 5


def test_scratch_grows_the_arena_only_where_there_is_no_room(scratch_set, tmp_path, host_cc, tflm):
    """Op 2 already has 2,400 B live: its 2,400 B of scratch raise the arena to exactly the new lower bound."""
    scratch_set({0, 2})
    model = residual_model()
    r = generate(model, tmp_path / "gen", kernels="scratchy", memory_plan="liveness")
    assert [(s["op"], s["bytes"]) for s in r.scratch] == [(0, 900), (2, 2400)]
    assert r.arena_bytes == r.arena_lower_bound_bytes == REFERENCE_ARENA + 2400
    for s in r.scratch:
        for lo, hi in _live_at(r, s["op"]):
            assert hi <= s["offset"] or s["offset"] + s["bytes"] <= lo
    assert _check_bit_exact(r, model) == 10  # both convolutions, five inputs


def test_scratch_buffers_live_only_during_their_op(scratch_set):
    scratch_set({0, 2})
    lowered = lower_model(residual_model(), "scratchy")
    buffers, _, _, _ = plan_memory(lowered)
    scratch = [b for b in buffers if not b.tensors]
    assert [(b.first, b.last, b.size, b.align) for b in scratch] == [(0, 0, 900, 4), (2, 2, 2400, 4)]
    assert [low.scratch_bytes for low in lowered.ops] == [900, 0, 2400, 0, 0, 0, 0, 0]


def test_scratch_for_a_kernel_without_a_scratch_pointer_is_refused(tmp_path):
    folder = tmp_path / "wrong"
    folder.mkdir()
    # the set's own softmax file: scratch declarations are read from the set owning the compiled file
    (folder / "softmax_s8.c").write_text((kernel_sets.kernels_dir() / "reference" / "softmax_s8.c").read_text())
    register_kernel_set(KernelSet("wrong", root=folder, scratch={"fm_softmax_s8": lambda op, ctx: 64}))
    try:
        with pytest.raises(FormicaryError) as err:
            generate(residual_model(), tmp_path / "gen", kernels="wrong")
    finally:
        unregister_kernel_set("wrong")
    assert "declares 64 scratch bytes for fm_softmax_s8" in err.value.cause
    assert "void *scratch" in err.value.fix
