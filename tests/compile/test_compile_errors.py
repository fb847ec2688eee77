"""Bad input to `formicary compile`: one clear error (cause + fix) and exit code 2 each.

Most of these fail before TensorFlow is imported, so they run through the real CLI in a subprocess."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from formicary.compile import compile_model
from formicary.errors import FormicaryError

# the digits CNN trained once (tests/compile/conftest.py): every test that uses it on one xdist worker
pytestmark = [pytest.mark.tf, pytest.mark.xdist_group("digits")]


def _truncated(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


@pytest.fixture(scope="module")
def keras3_models(tmp_path_factory, tf) -> dict[str, Path]:
    """The same tiny model saved by Keras 3 as .keras, .h5 and an exported SavedModel."""
    import keras  # Keras 3: TF_USE_LEGACY_KERAS only redirects tf.keras, not `import keras`

    assert keras.__version__.startswith("3")
    d = tmp_path_factory.mktemp("keras3")
    # (a Conv2D in front: TFLM's constructor segfaults while measure_arena probes Flatten → Dense(10) alone)
    model = keras.Sequential([keras.layers.Input((8, 8, 1)), keras.layers.Conv2D(4, 3), keras.layers.Flatten(),
                              keras.layers.Dense(10)])
    model.save(d / "k3.keras")
    model.save(d / "k3.h5")
    model.export(str(d / "k3_savedmodel"), verbose=False)
    return {"keras": d / "k3.keras", "h5": d / "k3.h5", "savedmodel": d / "k3_savedmodel"}


def bad_cases(digits, tmp: Path) -> dict[str, tuple[list[str], str]]:
    notes = tmp / "notes.txt"
    notes.write_text("not a model\n")
    rand = tmp / "random.tflite"
    rand.write_bytes(np.random.default_rng(0).bytes(4096))
    zip_not_model = tmp / "data.keras"
    import zipfile
    with zipfile.ZipFile(zip_not_model, "w") as zf:
        zf.writestr("readme.txt", "hello")
    m, d = str(digits.model), digits
    cases = {
        "missing data": ([m, "--calib", str(tmp / "missing.npz")], "data not found"),
        "prune without train": ([m, "--prune", "0.5", "--calib", str(d.calib)], "no --train data"),
        "int8 without calib": ([m], "needs calibration data"),
        "int16x8 without calib": ([m, "--quantize", "int16x8"], "needs calibration data"),
        "val without labels": ([m, "--calib", str(d.calib), "--val", str(_unlabelled(tmp))], "has no labels"),
        "non-model file": ([str(notes)], "not a model file"),
        "zip that is not a model": ([str(zip_not_model)], "not a Keras model"),
        "random bytes .tflite": ([str(rand)], "not a valid .tflite"),
        "truncated .keras": ([str(_truncated(digits.model, tmp / "cut.keras"))], "truncated or corrupt"),
        "missing model": ([str(tmp / "nope.keras")], "model not found"),
        "unknown quantize": ([m, "--quantize", "int4"], "unknown --quantize"),
        "qat with int16x8": ([m, "--qat", "--quantize", "int16x8"], "--qat trains for 8-bit"),
        "2:4 with other sparsity": ([m, "--prune", "0.3", "--prune-structure", "2:4"], "2:4 pruning zeroes"),
        "bad sparsity": ([m, "--prune", "1.5"], "not a sparsity"),
        "one cluster": ([m, "--cluster", "1"], "at least 2 clusters"),
        "unknown board": ([m, "--calib", str(d.calib), "--board", "no-such-board"], "unknown board"),
    }
    return cases


def _unlabelled(tmp: Path) -> Path:
    p = tmp / "unlabelled.npz"
    np.savez(p, x=np.zeros((3, 8, 8, 1), np.float32))
    return p


def test_cli_errors_exit_2_with_cause_and_fix(digits, tmp_path, cli):
    failures = []
    for name, (args, expected) in bad_cases(digits, tmp_path).items():
        out = tmp_path / "out" / name.replace(" ", "_")
        proc = cli("compile", *args, "-o", str(out))
        if proc.returncode != 2 or expected not in proc.stderr or "fix:" not in proc.stderr:
            failures.append(f"{name}: rc={proc.returncode} stderr={proc.stderr[-600:]!r}")
        elif (out / "model.tflite").exists():
            failures.append(f"{name}: wrote model.tflite despite the error")
    assert not failures, "\n".join(failures)


def test_truncated_tflite(kws_model_path, tmp_path, cli):
    proc = cli("compile", str(_truncated(kws_model_path, tmp_path / "cut.tflite")), "-o", str(tmp_path / "o"))
    assert proc.returncode == 2 and "truncated" in proc.stderr and "fix:" in proc.stderr, proc.stderr


def test_cli_error_as_json(tmp_path, cli):
    (tmp_path / "notes.txt").write_text("hello")
    proc = cli("compile", str(tmp_path / "notes.txt"), "-o", str(tmp_path / "o"), "--json")
    assert proc.returncode == 2
    err = json.loads(proc.stdout)["error"]
    assert "not a model file" in err["cause"] and err["fix"]


def test_keras3_models_compile(keras3_models, tmp_path, cli):
    """Once refused, now accepted (tests/compile/test_keras3.py has the full story): the real CLI on the .keras,
    in-process for the .h5 and the exported SavedModel."""
    proc = cli("compile", str(keras3_models["keras"]), "-o", str(tmp_path / "o"), "--calib", "synthetic", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads(proc.stdout)["report"]["compile"]
    assert info["keras_version"].startswith("3.") and info["keras3"]["rebuilt_in_tf_keras"] is False
    for kind in ("h5", "savedmodel"):
        res = compile_model(keras3_models[kind], tmp_path / kind, calib="synthetic")
        assert res.report["compile"]["tflm_check"] == "passed", kind


def test_wrong_data_shape(digits, tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((10, 7, 7, 1), np.float32), y=np.zeros(10, np.int64))
    with pytest.raises(FormicaryError, match=r"--calib data does not match the model input.*\(8, 8, 1\)") as exc:
        compile_model(digits.model, tmp_path / "o", calib=str(bad))
    assert exc.value.fix
    assert not (tmp_path / "o" / "model.tflite").exists()


def test_labels_outside_the_model_classes(digits, tmp_path):
    bad = tmp_path / "val.npz"
    np.savez(bad, x=np.zeros((4, 8, 8, 1), np.float32), y=np.array([0, 3, 12, 1]))
    with pytest.raises(FormicaryError, match="labels run from 0 to 12 but the model has 10 outputs"):
        compile_model(digits.model, tmp_path / "o", calib=str(digits.calib), val=str(bad))


def test_model_tflm_refuses_is_not_written(digits, tmp_path, monkeypatch, tf):
    """A converter result TFLM cannot run (dynamic-range int8) fails with TFLM's own reason, no output."""
    import formicary.model.convert

    def dynamic_range(model, quantize, calib=None):
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]  # no representative data: hybrid/dynamic-range
        return conv.convert()

    monkeypatch.setattr(formicary.model.convert, "convert", dynamic_range)
    with pytest.raises(FormicaryError, match="TFLite Micro cannot run this model") as exc:
        compile_model(digits.model, tmp_path / "o", calib=str(digits.calib))
    assert "failed to allocate tensors" not in exc.value.cause.split("(")[0]
    assert exc.value.details.get("tflm_stderr")
    assert not (tmp_path / "o" / "model.tflite").exists()
