"""Kernel sets: a set's file replaces the reference one of the same name, the reference one serves the ops the
set lacks, the host build and the PlatformIO project compile the same selection, and the set is named by the
board, overridden by --kernels and recorded with the build."""
from __future__ import annotations

import ctypes
import json
import shutil
import subprocess

import numpy as np
import pytest
from formicary.codegen import generate, kernel_sets
from formicary.codegen.kernel_sets import (
    KernelSet,
    register_kernel_set,
    unregister_kernel_set,
)
from formicary.errors import FormicaryError
from tests.codegen.test_models import residual_model

REFERENCE_DIR = kernel_sets.kernels_dir() / "reference"

# A test-only softmax: the reference one under another name, wrapped to count its calls, so that a build shows
# which file it compiled.
MARKED_SOFTMAX = f"""/* Test kernel set: the reference SOFTMAX int8, counting its calls. */
#include "fm_kernels.h"

int fm_test_marked_softmax_calls = 0;

#define fm_softmax_s8 fm_test_reference_softmax_s8
#include "{(REFERENCE_DIR / 'softmax_s8.c').as_posix()}"
#undef fm_softmax_s8

int fm_softmax_s8(const fm_softmax_s8_params_t *p, const int8_t *input, int8_t *output)
{{
    ++fm_test_marked_softmax_calls;
    return fm_test_reference_softmax_s8(p, input, output);
}}
"""


@pytest.fixture()
def marked_set(tmp_path):
    folder = tmp_path / "marked"
    folder.mkdir()
    (folder / "softmax_s8.c").write_text(MARKED_SOFTMAX)
    kset = register_kernel_set(KernelSet("marked", root=folder))
    yield kset
    unregister_kernel_set("marked")


def test_reference_set_and_board_default():
    from formicary.boards import list_boards

    assert kernel_sets.available_kernel_sets()[0] == "reference"
    assert "conv2d_s8.c" in kernel_sets.kernel_set("reference").files()
    by_name = {b.name: b.kernels for b in list_boards()}
    assert by_name["qemu-m4"] == by_name["qemu-m7"] == by_name["nucleo-l4r5zi"] == "dsp"
    assert by_name["qemu-m55"] == "helium" and by_name["esp32-s3"] == "reference"


def test_a_set_the_core_cannot_run_is_refused_before_building(tmp_path):
    from formicary.build import build_model

    model = tmp_path / "m.tflite"
    model.write_bytes(residual_model())
    with pytest.raises(FormicaryError) as err:
        build_model(model, "qemu-m4", tmp_path / "proj", kernels="helium")
    assert "the helium kernel set needs a core with its instructions" in err.value.cause
    assert "--kernels reference or dsp" in err.value.fix
    assert not (tmp_path / "proj" / "model").exists()
    assert kernel_sets.check_core("helium", "qemu-m55", "cortex-m55").name == "helium"


def test_board_toml_names_its_kernel_set(tmp_path):
    from formicary.boards import BOARDS_DIR, load_board

    text = (BOARDS_DIR / "qemu-m4.toml").read_text()
    (tmp_path / "qemu-m4.toml").write_text(text)
    assert load_board("qemu-m4", tmp_path).kernels == "dsp"  # no `kernels`: the core's default
    (tmp_path / "qemu-m4.toml").write_text(text.replace('virtual = true', 'kernels = "fast"\nvirtual = true'))
    assert load_board("qemu-m4", tmp_path).kernels == "fast"
    (tmp_path / "qemu-m4.toml").write_text(text.replace('virtual = true', "kernels = 3\nvirtual = true"))
    with pytest.raises(FormicaryError, match="`kernels` has type int"):
        load_board("qemu-m4", tmp_path)


def test_unknown_kernel_set_is_one_clear_error(tmp_path):
    with pytest.raises(FormicaryError) as err:
        generate(residual_model(), tmp_path / "gen", kernels="cmsis-nn-typo")
    assert err.value.cause == "unknown kernel set 'cmsis-nn-typo'."
    assert "reference" in err.value.fix
    assert not (tmp_path / "gen").exists()  # nothing written
    for bad in ("include", "../kernels", "reference/.."):
        with pytest.raises(FormicaryError, match="unknown kernel set"):
            kernel_sets.kernel_set(bad)


def test_reference_build_lists_reference_files(tmp_path):
    r = generate(residual_model(), tmp_path / "gen")
    assert r.kernel_set == "reference"
    assert r.kernel_sources == ["runtime/src/fm_runtime.c"] + [
        f"kernels/reference/{f}" for f in ("conv2d_s8.c", "depthwise_conv2d_s8.c", "add_s8.c",
                                           "average_pool2d_s8.c", "fully_connected_s8.c", "softmax_s8.c")]
    manifest = json.loads((tmp_path / "gen" / "fm_kernels.json").read_text())
    assert manifest == {"kernel_set": "reference", "kernels": [s.rsplit("/", 1)[1] for s in r.kernel_sources[1:]]}


def test_set_file_overrides_reference_and_runs_bit_exact(marked_set, tmp_path, host_cc, tflm):
    from formicary.target import host as native
    from formicary.oracle.tflm import run_tflm
    from formicary.tflite import read_model

    model = residual_model()
    r = generate(model, tmp_path / "gen", kernels="marked")
    srcs = r.firmware_sources()
    assert marked_set.folder / "softmax_s8.c" in srcs                      # the set's file
    assert kernel_sets.kernels_dir() / "reference" / "conv2d_s8.c" in srcs  # fallback for what it lacks
    assert not any((kernel_sets.kernels_dir() / "reference" / "softmax_s8.c") == s for s in srcs)
    ir = read_model(model)
    nm = native.load(r, ir)
    rng = np.random.default_rng(3)
    xs = [[rng.integers(-128, 128, (1, 10, 10, 3), dtype=np.int64).astype(np.int8)] for _ in range(6)]
    ours = [nm.run(x) for x in xs]
    assert ctypes.c_int.in_dll(nm.lib, "fm_test_marked_softmax_calls").value == 6
    for a, b in zip(ours, run_tflm(model, xs)):
        assert a[0].tobytes() == np.asarray(b[0]).astype(np.int8).tobytes()


def test_project_compiles_the_same_selection(marked_set, tmp_path):
    from formicary.build import generate_project

    r = generate(residual_model(), tmp_path / "gen", kernels="marked")
    generate_project("qemu-m4", tmp_path / "gen", tmp_path / "proj")
    wrappers = sorted((tmp_path / "proj" / "src" / "fm_kernels").glob("*.c"))
    included = [w.read_text().split('#include "', 1)[1].split('"', 1)[0] for w in wrappers]
    assert sorted(included) == sorted(p.resolve().as_posix() for p in r.firmware_sources()[1:])
    assert not (tmp_path / "proj" / "src" / "fm_kernels.json").exists()


def test_project_of_a_hand_written_model_compiles_no_kernels(tmp_path):
    from pathlib import Path

    from formicary.build import generate_project

    fake = Path(__file__).resolve().parents[1] / "device" / "fixtures" / "fake_model"
    generate_project("qemu-m4", fake, tmp_path / "proj")
    assert not list((tmp_path / "proj" / "src").glob("fm_kernels/*.c"))


def test_firmware_build_uses_the_set_and_records_it(marked_set, tmp_path):
    """`build_model(..., kernels=)` on a virtual board: the set's symbol is in the ELF, the set in
    formicary-build.json and in what bench reads back."""
    if not shutil.which("arm-none-eabi-gcc"):
        pytest.skip("arm-none-eabi-gcc not installed (apt-get install gcc-arm-none-eabi)")
    from formicary.target.firmware import prepare_firmware
    from formicary.boards import load_board
    from formicary.build import build_model

    model = tmp_path / "residual.tflite"
    model.write_bytes(residual_model())
    result = build_model(model, "qemu-m4", tmp_path / "proj", kernels="marked")
    assert result.kernels == "marked"
    assert json.loads((tmp_path / "proj" / "formicary-build.json").read_text())["kernels"] == "marked"
    nm = shutil.which("arm-none-eabi-nm")
    symbols = subprocess.run([nm, str(result.elf)], capture_output=True, text=True, check=True).stdout
    assert "fm_test_marked_softmax_calls" in symbols and "fm_conv2d_s8" in symbols
    board = load_board("qemu-m4")
    assert prepare_firmware(tmp_path / "proj", board).kernels == "marked"
    with pytest.raises(FormicaryError, match="built with the marked kernels, not reference"):
        prepare_firmware(tmp_path / "proj", board, kernels="reference")


def test_bench_build_cache_key_separates_kernel_sets(tmp_path):
    from formicary.target.firmware import default_build_dir
    from formicary.boards import load_board

    model = tmp_path / "m.tflite"
    model.write_bytes(residual_model())
    board = load_board("qemu-m4")
    assert default_build_dir(model, board) == default_build_dir(model, board, kernels="dsp")  # the board's set
    assert default_build_dir(model, board) != default_build_dir(model, board, kernels="reference")
    assert default_build_dir(model, board, kernels="reference") != default_build_dir(model, board, kernels="marked")


# A test-only packed FULLY_CONNECTED: weights transposed to [depth, out] ahead of time and the input offset folded
# into the bias, as an optimized set's packer would; proves the pack hook end to end, bit-exact with TFLM.
PACKED_FC = """/* Test kernel set: FULLY_CONNECTED over AOT-transposed weights with a folded bias. */
#include "fm_kernels_common.h"

int fm_fully_connected_s8(const fm_fully_connected_s8_params_t *p, const int8_t *input, int8_t *output, void *scratch)
{
    (void)scratch;
    if (p->packed_layout != 77 || p->packed_filter == NULL || p->folded_bias == NULL || p->filter != NULL) {
        return FM_ERR_PARAM;
    }
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *x = input + (size_t)b * p->accum_depth;
        for (int32_t oc = 0; oc < p->output_depth; ++oc) {
            int32_t acc = p->folded_bias[oc];
            for (int32_t d = 0; d < p->accum_depth; ++d) {
                acc += ((int32_t)p->packed_filter[(size_t)d * p->output_depth + oc] + p->filter_offset) * x[d];
            }
            acc = fm_mbqm(acc, p->multiplier[p->per_channel ? oc : 0], p->shift[p->per_channel ? oc : 0]);
            acc += p->output_offset;
            output[(size_t)b * p->output_depth + oc] = (int8_t)fm_clamp_i32(acc, p->act_min, p->act_max);
        }
    }
    return FM_OK;
}
"""


def _pack_transposed(req, ctx):
    from formicary.codegen.packing import folded_bias

    return {"packed_filter": ctx.const_array("wt", "int8_t", req.filter.T.copy()),
            "folded_bias": ctx.const_array("fbias", "int32_t", folded_bias(req)), "packed_layout": 77}


def test_packer_rewrites_weights_ahead_of_time_bit_exact(tmp_path, host_cc, tflm):
    """A set's packer replaces `filter`/`bias` (NULL in the struct, the TFLite-layout constants not emitted), its
    flash is reported per op, a set based on it inherits file and packer, and the result is bit-exact."""
    from formicary.oracle.tflm import run_tflm
    from formicary.target import host as native
    from formicary.tflite import read_model

    folder = tmp_path / "packed"
    folder.mkdir()
    (folder / "fully_connected_s8.c").write_text(PACKED_FC)
    register_kernel_set(KernelSet("packed", root=folder, pack={"fm_fully_connected_s8": _pack_transposed}))
    empty = tmp_path / "derived"
    empty.mkdir()
    (empty / "README").write_text("no kernel files: everything comes from its base set\n")
    register_kernel_set(KernelSet("derived", root=empty, base="packed"))
    try:
        model = residual_model()
        ir = read_model(model)
        rng = np.random.default_rng(5)
        xs = [[rng.integers(-128, 128, (1, 10, 10, 3), dtype=np.int64).astype(np.int8)] for _ in range(4)]
        want = run_tflm(model, xs)
        ref = generate(model, tmp_path / "ref")
        for name in ("packed", "derived"):
            r = generate(model, tmp_path / name / "gen", kernels=name)
            assert folder / "fully_connected_s8.c" in r.firmware_sources()
            fc = next(o for o in r.ops if o.kernel == "fm_fully_connected_s8")
            fc_ref = next(o for o in ref.ops if o.kernel == "fm_fully_connected_s8")
            assert fc.packed_bytes > 0 and fc.replaced_bytes > 0 and fc_ref.packed_bytes == 0
            assert r.const_bytes - ref.const_bytes == fc.packed_bytes - fc.replaced_bytes
            source = (tmp_path / name / "gen" / "fm_model.c").read_text()
            assert ".packed_layout = 77" in source and ".filter = NULL" in source
            nm = native.load(r, ir)
            for x, w in zip(xs, want):
                assert nm.run(x)[0].tobytes() == np.asarray(w[0]).astype(np.int8).tobytes()
    finally:
        unregister_kernel_set("derived")
        unregister_kernel_set("packed")


def test_base_set_cycle_is_one_clear_error(tmp_path):
    for name, base in (("cyc-a", "cyc-b"), ("cyc-b", "cyc-a")):
        (tmp_path / name).mkdir()
        register_kernel_set(KernelSet(name, root=tmp_path / name, base=base))
    try:
        with pytest.raises(FormicaryError, match="form a cycle"):
            kernel_sets.kernel_set("cyc-a").chain()
    finally:
        unregister_kernel_set("cyc-a")
        unregister_kernel_set("cyc-b")
