"""The MLPerf Tiny KWS model on virtual boards through the lower layers: codegen variants, `formicary build` and
`formicary flash`. All 200 inputs on both required boards run in tests/hil (through the HIL plugin).
FORMICARY_KWS_INPUTS sets how many inputs these tests use (default 25)."""
from __future__ import annotations

import os

import numpy as np
import pytest

pytestmark = [pytest.mark.qemu, pytest.mark.shared]


@pytest.fixture(scope="module")
def kws_reference(kws_model_path, kws_data_dir):
    from formicary.oracle.tflm import run_tflm

    n = int(os.environ.get("FORMICARY_KWS_INPUTS", "25"))
    files = sorted(kws_data_dir.glob("*.bin"))[:n]
    xs = [np.fromfile(f, dtype=np.int8).reshape(1, 49, 10, 1) for f in files]
    ref = [o[0].reshape(-1) for o in run_tflm(kws_model_path.read_bytes(), [[x] for x in xs])]
    labels = [int(f.stem.rsplit("_", 1)[1]) for f in files]
    return xs, ref, labels


def test_kws_with_inputs_overwritten_by_the_model(kws_model_path, kws_reference, tmp_path):
    """Default codegen reuses the input bytes (FM_PRESERVES_INPUTS 0): the firmware restores them from its
    staging copy before every run, so the 3rd of 3 runs still computes on the real input."""
    from formicary.build import build_project, generate_project
    from formicary.codegen import generate
    from formicary.device import connect_qemu

    if not __import__("shutil").which("qemu-system-arm"):
        pytest.skip("qemu-system-arm not installed")
    xs, ref, _ = kws_reference
    gen = generate(kws_model_path, tmp_path / "model")
    assert "#define FM_PRESERVES_INPUTS 0" in (tmp_path / "model" / "fm_model.h").read_text()
    generate_project("qemu-m4", tmp_path / "model", tmp_path / "proj")
    fw = build_project(tmp_path / "proj", "qemu-m4")
    with connect_qemu("qemu-m4", fw.elf, expect_model_hash=gen.model_hash) as conn:
        for x, r in list(zip(xs, ref))[:5]:
            (y,), result = conn.session.infer([x.tobytes()], runs=3)
            assert np.array_equal(np.frombuffer(y, np.int8), r)
            assert len(set(result.values)) == 1


def test_build_and_flash_commands(kws_model_path, kws_reference, tmp_path):
    """`formicary build` then `formicary flash` on a virtual board: QEMU starts detached, waits for the host,
    and the printed URL serves the protocol."""
    import json
    import os
    import signal

    from typer.testing import CliRunner

    from formicary.cli import app
    from formicary.device import connect_serial

    if not __import__("shutil").which("qemu-system-arm"):
        pytest.skip("qemu-system-arm not installed")
    runner = CliRunner()
    proj = tmp_path / "kws-m4"
    built = runner.invoke(app, ["build", str(kws_model_path), "--board", "qemu-m4", "-o", str(proj), "--json"])
    assert built.exit_code == 0, built.output
    info = json.loads(built.stdout[built.stdout.index("{"):])
    assert info["flash_bytes"] < info["flash_capacity_bytes"] and info["units"]["flash_bytes"] == "bytes"
    flashed = runner.invoke(app, ["flash", str(proj), "--board", "qemu-m4", "--json"])
    assert flashed.exit_code == 0, flashed.output
    result = json.loads(flashed.stdout[flashed.stdout.index("{"):])
    try:
        xs, ref, _ = kws_reference
        with connect_serial(result["url"]) as conn:
            (y,), _ = conn.session.infer([xs[0].tobytes()])
            assert np.array_equal(np.frombuffer(y, np.int8), ref[0])
    finally:
        os.killpg(result["qemu_pid"], signal.SIGKILL)
    wrong = runner.invoke(app, ["flash", str(proj), "--board", "qemu-stm32f405", "--json"])
    assert wrong.exit_code != 0 and "built for qemu-m4" in str(wrong.exception or wrong.output)
