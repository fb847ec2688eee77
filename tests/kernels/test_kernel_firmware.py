"""The kernel-check firmware (formicary.bench.kernel_check, `formicary kernels check`): random single-op int8 cases
linked into one image, run on a virtual board with the real instructions, every output compared with TFLM.

Runs each available set that has kernel files of its own on the board whose core it targets (qemu-m4 for the
sets an Armv7E-M core runs, qemu-m55 for helium), and the reference set on qemu-m4 while no optimized set has
files. A test-only set whose CONV_2D is off by one on one output channel proves the check fails on a wrong kernel.
"""
from __future__ import annotations

import pytest
from formicary.bench.kernel_check import run_check, set_runs_on
from formicary.codegen import kernel_sets
from formicary.codegen.kernel_sets import (
    KernelSet,
    register_kernel_set,
    unregister_kernel_set,
)

pytestmark = [pytest.mark.qemu, pytest.mark.usefixtures("arm_qemu_tools")]

CASES = 48          # per board and set: 4 of each op family; well under 60 s each on a loaded machine
SECONDS = 60


def _board_sets() -> list[tuple[str, str]]:
    own = [s for s in kernel_sets.available_kernel_sets()
           if s != kernel_sets.REFERENCE and kernel_sets.kernel_set(s).files()]
    pairs = [("qemu-m4", s) for s in own if s != "helium" and set_runs_on(s, "cortex-m4")]
    if not pairs:
        pairs = [("qemu-m4", kernel_sets.REFERENCE)]
    if "helium" in own:
        pairs.append(("qemu-m55", "helium"))
    return pairs


@pytest.mark.parametrize("board,kernels", _board_sets())
def test_kernel_firmware_matches_tflm_on_the_board(board, kernels, tmp_path):
    r = run_check(board, kernels, cases=CASES, seed=11, timeout=SECONDS, work_dir=tmp_path)
    assert r["cases"] == CASES and set(r["cases_by_op"]) >= {"conv", "conv_1x1", "depthwise", "add", "hard_swish",
                                                               "leaky_relu", "prelu", "transpose_conv"}
    assert r["bit_exact"], [(m["case"], m["opcode"], m["reason"], m["params"]) for m in r["mismatches"]]
    assert r["seconds"] < SECONDS, r["seconds"]


# Test-only set: the reference CONV_2D, then output channel 0 of the first pixel moved by one (a classic
# blocking bug: one channel of a tile off by one).
BROKEN_CONV = """/* Test-only kernel set: the reference CONV_2D int8 with output channel 0 of pixel 0 off by one. */
#include "fm_kernels.h"

#define fm_conv2d_s8 fm_test_reference_conv2d_s8
#include "{ref}"
#undef fm_conv2d_s8

int fm_conv2d_s8(const fm_conv_s8_params_t *p, const int8_t *input, int8_t *output, void *scratch)
{{
    const int rc = fm_test_reference_conv2d_s8(p, input, output, scratch);
    output[0] = (int8_t)(output[0] == 127 ? 126 : output[0] + 1);
    return rc;
}}
"""


def test_kernel_firmware_catches_a_wrong_kernel(tmp_path):
    folder = tmp_path / "broken-conv"
    folder.mkdir()
    ref = kernel_sets.kernels_dir() / "reference" / "conv2d_s8.c"
    (folder / "conv2d_s8.c").write_text(BROKEN_CONV.format(ref=ref.resolve().as_posix()))
    register_kernel_set(KernelSet("broken-conv", root=folder))
    try:
        r = run_check("qemu-m4", "broken-conv", cases=8, seed=5, ops=("conv", "conv_1x1", "add", "max_pool"),
                      timeout=SECONDS, work_dir=tmp_path)
    finally:
        unregister_kernel_set("broken-conv")
    assert str(folder / "conv2d_s8.c") in r["kernel_files"]
    assert not r["bit_exact"]
    bad = {m["case"]: m for m in r["mismatches"]}
    assert sorted(bad) == [0, 1, 4, 5]                     # every CONV_2D case, nothing else
    m = bad[0]
    assert m["opcode"] == "CONV_2D" and m["differing_bytes"] == 1 and m["max_abs_diff"] == 1
    assert m["first_diff_index"] == [0, 0, 0, 0]
    assert {"kh", "kw", "in_c", "out_c", "in_zp", "out_scale"} <= set(m["params"])  # the case, to reproduce it
