"""Whole-model checks on the MLPerf Tiny KWS model: bit-exact with TFLM on all 200 inputs (in-process and
under ASan/UBSan), 183/200 correct, arena at the lower bound, generated C warning-free for host and Cortex-M4."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from formicary.bench.verify import verify_model
from formicary.codegen import generate

STRICT = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Wpedantic", "-Werror"]
pytestmark = pytest.mark.shared


def test_kws_bit_exact_all_inputs_and_accuracy(kws_model_path, kws_data_dir, host_cc, tflm):
    r = verify_model(kws_model_path, data=kws_data_dir)
    assert r["inputs"] == 200
    assert r["mismatches"] == 0 and r["bit_exact"] and r["max_abs_diff"] == 0
    assert r["accuracy"]["correct"] == 183 and r["accuracy"]["tflm_correct"] == 183
    assert r["arena_lower_bound_bytes"] == 16000
    assert r["arena_bytes"] <= 1.05 * r["arena_lower_bound_bytes"]
    assert r["arena_bytes"] <= 0.7 * r["tflm_arena_bytes"]


def test_kws_sanitizer_build_bit_exact(kws_model_path, kws_data_dir, host_cc, tflm):
    """Same 200 inputs through a standalone -fsanitize=address,undefined executable (a subprocess, since ASan
    cannot be loaded into the running Python)."""
    r = verify_model(kws_model_path, data=kws_data_dir, sanitize=True, measure_tflm_arena=False)
    assert r["sanitize"] and r["inputs"] == 200
    assert r["bit_exact"], r
    assert r["accuracy"]["correct"] == 183


def test_kws_random_inputs_bit_exact(kws_model_path, host_cc, tflm):
    r = verify_model(kws_model_path, inputs=30, seed=7, measure_tflm_arena=False)
    assert r["bit_exact"], r


def _compile_all(cc: list[str], gen, tmp_path) -> None:
    """The generated model and every file it links with (runtime + the kernels it calls: conv, depthwise,
    fully connected, average pool, softmax)."""
    out_dir = Path(gen.out_dir)
    srcs = [out_dir / "fm_model.c", *gen.firmware_sources()]
    assert len(srcs) == 7
    incs = [f"-I{out_dir}", *(f"-I{d}" for d in gen.include_dirs)]
    for src in srcs:
        for profile in ([], ["-DFM_PROFILE"]):
            proc = subprocess.run([*cc, *STRICT, *profile, *incs, "-c", str(src), "-o", str(tmp_path / "x.o")],
                                  capture_output=True, text=True, check=False)
            assert proc.returncode == 0 and not proc.stderr.strip(), f"{src.name} {profile}: {proc.stderr}"


def test_generated_c_warning_free_host(kws_model_path, host_cc, tmp_path):
    _compile_all([host_cc], generate(kws_model_path, tmp_path / "gen"), tmp_path)


def test_generated_c_warning_free_cortex_m4(kws_model_path, tmp_path):
    if not shutil.which("arm-none-eabi-gcc"):
        pytest.skip("arm-none-eabi-gcc not installed (apt-get install gcc-arm-none-eabi)")
    _compile_all(["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"],
                 generate(kws_model_path, tmp_path / "gen"), tmp_path)


def test_generated_api_and_metadata(kws_model_path, tmp_path):
    import hashlib

    r = generate(kws_model_path, tmp_path / "gen")
    header = (tmp_path / "gen" / "fm_model.h").read_text()
    source = (tmp_path / "gen" / "fm_model.c").read_text()
    digest = hashlib.sha256(kws_model_path.read_bytes()).hexdigest()
    assert f'#define FM_MODEL_HASH "{digest}"' in header and r.model_hash == digest
    for decl in ("void *fm_input_data(int i);", "size_t fm_input_bytes(int i);", "void *fm_output_data(int i);",
                 "size_t fm_output_bytes(int i);", "int fm_invoke(void);", f"#define FM_ARENA_BYTES {r.arena_bytes}u",
                 "#define FM_NUM_INPUTS 1", "#define FM_NUM_OUTPUTS 1", "#define FM_NUM_OPS 13",
                 "extern const fm_op_info_t fm_op_info[FM_NUM_OPS];", "void fm_op_hook(int op_index, int phase);"):
        assert decl in header
    assert r.memory_plan == "in-place" and r.arena_bytes < 10_000  # the default plan (auto) overlaps in place
    # Weights are const (flash); the only RAM is the arena.
    assert "static uint8_t fm_arena[FM_ARENA_BYTES > 0 ? FM_ARENA_BYTES : 1]" in source
    assert "static const int8_t fm_const_t17[" in source
    assert source.count("static uint8_t") == 1
    assert sum(op.macs for op in r.ops) == 2_664_768  # conv/dw/fc/pool MACs from the layer shapes
    assert [op.opcode for op in r.ops][-3:] == ["RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]


def test_profile_hook_called_around_every_op(kws_model_path, host_cc, tmp_path):
    """A -DFM_PROFILE build calls fm_op_hook(i, 0) and fm_op_hook(i, 1) for every op in order."""
    out = tmp_path / "gen"
    gen = generate(kws_model_path, out)
    main = tmp_path / "main.c"
    main.write_text(
        '#include <stdio.h>\n#include "fm_model.h"\n'
        "void fm_op_hook(int op_index, int phase) { printf(\"%d:%d\\n\", op_index, phase); }\n"
        "int main(void) { return fm_invoke(); }\n")
    srcs = [out / "fm_model.c", *gen.firmware_sources(), main]
    exe = tmp_path / "prof"
    subprocess.run([host_cc, *STRICT, "-DFM_PROFILE", f"-I{out}", *(f"-I{d}" for d in gen.include_dirs),
                    *map(str, srcs), "-o", str(exe)], check=True)
    lines = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()
    assert lines == [f"{i}:{p}" for i in range(13) for p in (0, 1)]


def test_codegen_and_verify_never_import_tensorflow(kws_model_path, tmp_path, host_cc, tflm):
    import sys

    code = ("import sys; from formicary.codegen import generate; from formicary.bench.verify import verify_model; "
            f"generate({str(kws_model_path)!r}, {str(tmp_path / 'g')!r}); "
            f"verify_model({str(kws_model_path)!r}, inputs=2, measure_tflm_arena=False); "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_verify_json_keys(kws_model_path, host_cc, tflm):
    import json

    from typer.testing import CliRunner

    from formicary.cli import app

    result = CliRunner().invoke(app, ["verify", str(kws_model_path), "--target", "host", "--inputs", "3",
                                      "--seed", "1", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout[result.stdout.index("{"):])
    for key in ("bit_exact", "inputs", "mismatches", "max_abs_diff", "arena_bytes", "tflm_arena_bytes",
                "arena_lower_bound_bytes", "accuracy"):
        assert key in payload
    assert payload["bit_exact"] is True and payload["inputs"] == 3 and payload["accuracy"] is None
    assert payload["arena_bytes"] <= 0.7 * payload["tflm_arena_bytes"]


def test_preserve_inputs_keeps_input_across_invocations(kws_model_path, kws_data_dir, host_cc, tmp_path, tflm):
    """Default plan reuses the input's bytes (smallest arena); --preserve-inputs keeps them, so repeated
    fm_invoke() on one loaded input gives identical outputs."""
    import ctypes

    import numpy as np

    from formicary.target import host as native
    from formicary.data import fit_to_input, load_dataset
    from formicary.tflite import read_model

    model = read_model(kws_model_path)
    x = fit_to_input(load_dataset(kws_data_dir), (None, 49, 10, 1), "data").x[0][None]
    default = generate(kws_model_path, tmp_path / "a")
    kept = generate(kws_model_path, tmp_path / "b", preserve_inputs=True)
    assert "#define FM_PRESERVES_INPUTS 1" in (tmp_path / "b" / "fm_model.h").read_text()
    assert kept.arena_lower_bound_bytes == default.arena_lower_bound_bytes + 490
    assert kept.arena_bytes <= kept.arena_lower_bound_bytes + 3  # arena size is rounded up to 4 bytes
    nm = native.load(kept, model)
    first = nm.run([x])[0]
    nm.lib.fm_invoke()  # again, without rewriting the input
    again = np.frombuffer(bytes((ctypes.c_uint8 * 12).from_address(nm.lib.fm_output_data(0))),
                          dtype=np.int8)
    assert np.array_equal(first.reshape(-1), again)
    x_after = np.frombuffer(bytes((ctypes.c_uint8 * 490).from_address(nm.lib.fm_input_data(0))),
                            dtype=np.int8)
    assert np.array_equal(x_after, x.reshape(-1))
