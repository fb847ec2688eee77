"""`formicary inspect` as users run it: no TensorFlow, exit codes, error texts, JSON."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from formicary.boards import load_board

FORMICARY = [str(Path(sys.executable).parent / "formicary")]  # the installed console script


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*FORMICARY, "inspect", *args], capture_output=True, text=True, timeout=120, check=False)


def test_no_tensorflow_imported(kws_model_path):
    code = (f"import sys\nsys.argv = ['formicary', 'inspect', {str(kws_model_path)!r}, '--board', 'nucleo-l4r5zi', "
            "'--json']\n"
            "from formicary.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "bad = sorted(m for m in sys.modules if m == 'tensorflow' or m.startswith(('tensorflow.', 'tf_keras', "
            "'keras')))\nprint('TFMODULES', bad, file=sys.stderr)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert "TFMODULES []" in res.stderr, res.stderr[-2000:]
    assert json.loads(res.stdout)["macs"] == 2_656_768


def test_inspect_with_a_board_says_it_fits(kws_model_path):
    # its speed (a fresh process, no TensorFlow) is measured by benchmarks/inspect_speed.py, not asserted here
    res = run(str(kws_model_path), "--board", "nucleo-l4r5zi")
    assert res.returncode == 0, res.stderr
    assert "nucleo-l4r5zi" in res.stdout and "fits" in res.stdout


def test_human_view_units_and_methods(kws_model_path):
    res = run(str(kws_model_path), "--board", "nucleo-l4r5zi")
    assert res.returncode == 0, res.stderr
    out = " ".join(res.stdout.split())
    assert "MACs 2,656,768 per inference" in out
    assert "(measured: TFLM interpreter, host build, bisection)" in out
    assert "µJ/inference @ 45nm (modelled lower bound, every byte moved once" in out
    assert "µJ/inference @ 45nm (modelled, dsp kernels' loops)" in out and "data movement" in out
    assert "Jouppi et al. ISCA 2021 Table 2 (45 nm: Horowitz ISSCC 2014)" in out
    assert "nucleo-l4r5zi" in out and "fits" in out


def test_json_keys(kws_model_path):
    res = run(str(kws_model_path), "--json", "--board", "qemu-m4")
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    for key in ("model_bytes", "weights_bytes", "params", "macs", "ops", "layers", "sparsity", "quantization",
                "tflm_arena_bytes", "energy_floor_uj", "board_fit", "tflm_compatible"):
        assert key in r
    assert r["board_fit"]["board"] == "qemu-m4" and r["board_fit"]["fits"] is True


@pytest.mark.parametrize("content, needle", [
    (b"", "not a TFLite flatbuffer"),
    (b"just some text, not a model\n", "not a TFLite flatbuffer"),
])
def test_bad_files_exit_2(tmp_path, content, needle):
    p = tmp_path / "bad.tflite"
    p.write_bytes(content)
    res = run(str(p))
    assert res.returncode == 2
    assert res.stderr.startswith("error: ") and needle in res.stderr and "Traceback" not in res.stderr


def test_truncated_and_missing_exit_2(tmp_path, kws_model_path):
    p = tmp_path / "trunc.tflite"
    p.write_bytes(kws_model_path.read_bytes()[:20_000])
    for path in (p, tmp_path / "missing.tflite"):
        res = run(str(path))
        assert res.returncode == 2 and res.stderr.startswith("error: ") and "Traceback" not in res.stderr
    res = run(str(p), "--json")
    assert res.returncode == 2 and "cause" in json.loads(res.stdout)["error"]


def test_unknown_op_reported(unknown_op_model):
    res = run(str(unknown_op_model), "--json")
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    assert r["tflm_compatible"] is False and "LSH_PROJECTION" in r["tflm_error"]["cause"]
    human = run(str(unknown_op_model))
    assert "NOT compatible" in human.stdout and "LSH_PROJECTION" in human.stdout


def test_unknown_board_exit_2(kws_model_path):
    res = run(str(kws_model_path), "--board", "no-such-board")
    assert res.returncode == 2 and res.stderr.startswith("error: ")


def test_require_fit(kws_model_path, monkeypatch, capsys):
    """--require-fit on a board too small: exit 2 with the shortfall. The board is shrunk in-process."""
    import dataclasses

    from formicary import boards
    from formicary.cli import main

    real = load_board("qemu-m4")
    tiny = dataclasses.replace(real, name="tiny-m4",
                               memory=dataclasses.replace(real.memory, ram_bytes=16_384, flash_bytes=1 << 20))
    monkeypatch.setattr(boards, "load_board", lambda name, *a, **k: tiny if name == "tiny-m4" else real)
    for extra, code in (([], 0), (["--require-fit"], 2)):
        monkeypatch.setattr(sys, "argv", ["formicary", "inspect", str(kws_model_path), "--board", "tiny-m4",
                                          "--json", *extra])
        with pytest.raises(SystemExit) as exc:
            main()
            raise SystemExit(0)
        assert exc.value.code == code
        out = json.loads(capsys.readouterr().out)
        if code == 0:
            assert out["board_fit"]["fits"] is False and out["board_fit"]["ram"]["margin_bytes"] < 0
        else:
            assert "does not fit tiny-m4" in out["error"]["cause"] and "B too many" in out["error"]["cause"]


def test_require_fit_needs_board(kws_model_path):
    res = run(str(kws_model_path), "--require-fit")
    assert res.returncode == 2 and "--require-fit needs --board" in res.stderr
