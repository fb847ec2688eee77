"""An op or option codegen cannot compile: one FormicaryError naming every such op and its layer, and nothing
written to the output folder."""
from __future__ import annotations

import struct

import pytest
import tflite
from formicary.codegen import generate
from formicary.errors import FormicaryError
from typer.testing import CliRunner

pytestmark = pytest.mark.shared


def _retarget_opcode(data: bytes, old: str, new: str) -> bytes:
    """Copy of the model with every use of builtin `old` turned into builtin `new` (both opcode fields)."""
    buf = bytearray(data)
    model = tflite.Model.GetRootAs(buf, 0)
    old_v, new_v = getattr(tflite.BuiltinOperator, old), getattr(tflite.BuiltinOperator, new)
    hit = False
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) != old_v:
            continue
        dep, full = code._tab.Offset(4), code._tab.Offset(10)  # deprecated_builtin_code (int8), builtin_code (int32)
        assert dep or full
        if dep:
            struct.pack_into("<b", buf, code._tab.Pos + dep, min(new_v, 127))
        if full:
            struct.pack_into("<i", buf, code._tab.Pos + full, new_v)
        hit = True
    assert hit, f"{old} not in model"
    return bytes(buf)


@pytest.fixture
def broken_kws(kws_model_path) -> bytes:
    data = _retarget_opcode(kws_model_path.read_bytes(), "AVERAGE_POOL_2D", "SVDF")
    return _retarget_opcode(data, "SOFTMAX", "LOG_SOFTMAX")


def test_every_unsupported_op_in_one_error(broken_kws, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(FormicaryError) as info:
        generate(broken_kws, out)
    err = info.value
    assert "layer 9 SVDF" in err.cause and "layer 12 LOG_SOFTMAX" in err.cause
    assert "2 op(s)" in err.cause
    assert [(p["layer"], p["op"]) for p in err.details["unsupported"]] == [(9, "SVDF"), (12, "LOG_SOFTMAX")]
    assert err.fix and "CONV_2D" in err.fix  # says what is supported instead
    # Nothing half-built: no output folder, no temporary folder beside it.
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_unsupported_option_and_op_reported_together(kws_model_path, tmp_path, monkeypatch):
    """A fused TANH on a conv (an option) and an unknown op are both named, with their layers."""
    import importlib

    from formicary.tflite import read_model

    gen = importlib.import_module("formicary.codegen.generate")  # the module, not the re-exported function

    def mutated(source):
        m = read_model(source)
        m.operators[2].options["fused_activation_function"] = "TANH"
        m.operators[9].opcode = "CUSTOM:MyPool"
        return m

    monkeypatch.setattr(gen, "read_model", mutated)
    out = tmp_path / "out"
    with pytest.raises(FormicaryError) as info:
        generate(kws_model_path, out)
    layers = {(p["layer"], p["op"]) for p in info.value.details["unsupported"]}
    assert layers == {(2, "CONV_2D"), (9, "CUSTOM:MyPool")}
    assert "TANH" in info.value.cause
    assert not out.exists()


def test_existing_output_untouched_on_failure(broken_kws, kws_model_path, tmp_path):
    out = tmp_path / "out"
    generate(kws_model_path, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(FormicaryError):
        generate(broken_kws, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_cli_json_error(broken_kws, tmp_path):
    import json
    import sys

    from formicary.cli import main

    model = tmp_path / "broken.tflite"
    model.write_bytes(broken_kws)
    argv = ["formicary", "codegen", str(model), "-o", str(tmp_path / "gen"), "--json"]
    old = sys.argv
    sys.argv = argv
    try:
        with pytest.raises(SystemExit) as exit_info:
            import io
            from contextlib import redirect_stdout

            buf = io.StringIO()
            with redirect_stdout(buf):
                main()
    finally:
        sys.argv = old
    assert exit_info.value.code == 2
    payload = json.loads(buf.getvalue())
    assert {p["layer"] for p in payload["error"]["details"]["unsupported"]} == {9, 12}
    assert not (tmp_path / "gen").exists()


def test_cli_codegen_json(kws_model_path, tmp_path):
    import json

    from formicary.cli import app

    result = CliRunner().invoke(app, ["codegen", str(kws_model_path), "-o", str(tmp_path / "gen"), "--json",
                                      "--memory-plan", "liveness"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout[result.stdout.index("{"):])
    assert payload["arena_bytes"] == 16000 and payload["arena_lower_bound_bytes"] == 16000
    assert (tmp_path / "gen" / "fm_model.c").is_file()
