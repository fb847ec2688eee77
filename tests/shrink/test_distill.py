"""Knowledge distillation: the loss against a hand calculation, the built-in students' width scaling, `formicary
compile --distill-from` through the real CLI (JSON, report.json provenance, bench's variant label), the errors, and
the example script at reduced size."""
from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from formicary.errors import FormicaryError

from tests.support.cli import run_cli


def test_kd_loss_equals_hand_computed_value(tf):
    from formicary.shrink.distill import kd_loss

    T, alpha = 2.0, 0.7
    # Sample 1: s/T = [0, 0, ln 3] → softmax [1/5, 1/5, 3/5]; t/T = [0, ln 2, ln 2] → [1/5, 2/5, 2/5];
    #   KL(pt‖ps) = 2/5·ln 2 + 2/5·ln(2/3); CE(y=2, softmax(s) = [1/11, 1/11, 9/11]) = ln(11/9).
    # Sample 2: s = t = [0, 0, 0]: KL = 0; CE(y=0) = ln 3.
    s = np.array([[0.0, 0.0, 2 * math.log(3)], [0.0, 0.0, 0.0]], np.float32)
    t = np.array([[0.0, 2 * math.log(2), 2 * math.log(2)], [0.0, 0.0, 0.0]], np.float32)
    y = np.array([2, 0])
    first = alpha * T * T * (0.4 * math.log(2) + 0.4 * math.log(2 / 3)) + (1 - alpha) * math.log(11 / 9)
    second = (1 - alpha) * math.log(3)
    assert float(kd_loss(y, s, t, T, alpha)) == pytest.approx((first + second) / 2, rel=1e-6)
    # alpha = 0 is plain cross-entropy on the labels; alpha = 1 ignores them.
    assert float(kd_loss(y, s, t, T, 0.0)) == pytest.approx((math.log(11 / 9) + math.log(3)) / 2, rel=1e-6)
    assert float(kd_loss(y[:1], s[:1], t[:1], T, 1.0)) == pytest.approx(
        4 * (0.4 * math.log(2) + 0.4 * math.log(2 / 3)), rel=1e-6)


@pytest.mark.parametrize("spec, macs", [
    ("builtin:cnn@1", 31_552),      # = the digits CNN: 4,608 + 18,432 + 8,192 + 320
    ("builtin:cnn", 31_552),        # width defaults to 1
    ("builtin:cnn@0.25", 2_896),    # 2/4/8 channels: 1,152 + 1,152 + 512 + 80
    ("builtin:cnn@0.01", 746),      # every hidden layer clamps at 1 channel: 576 + 144 + 16 + 10
    ("builtin:dscnn@1", 18_624),    # 4,608 + dw 1,152 + pw 2,048 + dw 2,304 + pw 8,192 + 320
    ("builtin:dscnn@0.5", 6_752),   # 2,304 + 576 + 512 + 1,152 + 2,048 + 160
])
def test_builtin_width_scales_macs(tf, spec, macs):
    from formicary.model.students import build_builtin
    from formicary.shrink.channel import keras_macs

    model = build_builtin(spec, (None, 8, 8, 1), 10)
    assert keras_macs(model) == macs
    assert model.outputs[0].shape[-1] == 10 and model.layers[-1].activation.__name__ == "softmax"


def test_builtin_fits_other_shapes(tf):
    from formicary.model.students import build_builtin
    from formicary.shrink.channel import keras_macs

    # 32×32×3: conv1 stride 2 → 16×16, conv2 → 8×8, average-pooled 2×2 → 4×4 before the classifier.
    small = build_builtin("builtin:cnn@0.5", (32, 32, 3), 4)
    assert tuple(small.inputs[0].shape[1:]) == (32, 32, 3) and small.outputs[0].shape[-1] == 4
    assert keras_macs(small) == 256 * 4 * 27 + 64 * 8 * 36 + 128 * 16 + 16 * 4
    big = build_builtin("builtin:cnn@1", (32, 32, 3), 4)
    assert keras_macs(big) == 256 * 8 * 27 + 64 * 16 * 72 + 256 * 32 + 32 * 4


@pytest.mark.parametrize("spec, says", [("builtin:resnet@1", "unknown built-in architecture 'resnet'"),
                                        ("builtin:cnn@0", "outside"), ("builtin:cnn@-1", "outside"),
                                        ("builtin:cnn@abc", "not a number"), ("builtin:cnn@99", "outside")])
def test_bad_builtin_names_list_what_exists(spec, says):
    from formicary.model.students import parse_builtin

    with pytest.raises(FormicaryError) as err:
        parse_builtin(spec)
    assert says in err.value.cause
    assert "builtin:cnn@WIDTH" in err.value.fix and "builtin:dscnn@WIDTH" in err.value.fix


def test_example_reduced_size_is_sane(distill_example):
    doc, out = distill_example
    s = doc["summary"]
    assert s["teacher_macs"] == 31_552 and s["student_macs"] == 2_896
    assert s["student_macs"] <= s["teacher_macs"] / 4 and s["student_within_quarter"] is True
    assert doc["task"]["train_samples"] == 300 and doc["task"]["epochs"] == 3 and doc["task"]["temperature"] == 4.0
    assert 0.0 < doc["teacher"]["tflm_int8_accuracy"] <= 1.0
    row = doc["seeds"][0]
    for mode in ("distilled", "labels"):
        assert 0.0 < row[mode]["tflm_int8_accuracy"] <= 1.0 and 0.0 < row[mode]["float_accuracy"] <= 1.0
        assert row[mode]["macs"] == 2_896
    assert row["tflm_gain_points"] == pytest.approx(
        (row["distilled"]["tflm_int8_accuracy"] - row["labels"]["tflm_int8_accuracy"]) * 100, abs=0.01)
    assert set(s["tflm_int8"]) == {"distilled", "labels", "gain_points", "wins"}
    assert (out / "teacher" / "teacher.keras").exists() and (out / "teacher" / "teacher.keras.formicary.json").exists()
    # Same seed, same initial weights and batches: the labels-only run of the example is reproducible.
    assert doc["teacher"]["tflm_int8_accuracy"] > 0.5  # 3 epochs on 300 digits already learns something




def test_compile_distill_through_cli(distill_example, tmp_path, monkeypatch, capsys):
    from formicary.analysis import analyse
    from formicary.bench.runner import _variant
    from formicary.model.provenance import model_digest, read_provenance

    _, ex = distill_example
    teacher = ex / "teacher" / "teacher.keras"
    data = ex / "data"
    start = time.perf_counter()
    code, stdout = run_cli(monkeypatch, capsys, "compile", "builtin:dscnn@0.5", "-o", str(tmp_path / "out"), "--distill-from", str(teacher),
                "--train", str(data / "train300.npz"), "--calib", str(data / "calib.npz"), "--val",
                str(data / "val.npz"), "--epochs", "2", "--temperature", "3", "--distill-alpha", "0.6",
                "--save-keras", str(tmp_path / "student.keras"), "--json")
    assert code == 0, stdout
    doc = json.loads(stdout)
    assert set(doc) >= {"model_path", "report_path", "report"}
    info = doc["report"]["compile"]
    assert info["input"] == "builtin:dscnn@0.5" and info["input_kind"] == "builtin"
    stage = info["provenance"][-1]
    assert stage["stage"] == "distill" and stage["label"] == "distilled"
    assert stage["teacher_sha256"] == model_digest(teacher)
    assert (stage["teacher_macs"], stage["student_macs"]) == (31_552, 6_752)
    assert (stage["temperature"], stage["alpha"], stage["epochs"], stage["seed"]) == (3.0, 0.6, 2, 0)
    assert 0.5 < stage["teacher_float_accuracy"] <= 1.0
    assert info["student"]["arch"] == "dscnn" and info["student"]["width"] == 0.5
    assert 0.0 < doc["report"]["accuracy"]["quantized"] <= 1.0
    on_disk = json.loads((tmp_path / "out" / "report.json").read_text())
    assert on_disk["compile"]["provenance"] == info["provenance"]
    tflite = tmp_path / "out" / "model.tflite"
    assert _variant(analyse(tflite, measure_arena=False), tflite)["label"] == "int8-distilled"
    stages, warning = read_provenance(tmp_path / "student.keras")
    assert warning is None and stages[-1]["stage"] == "distill"
    assert time.perf_counter() - start < 60


def test_human_view_shows_the_distill_stage():
    from formicary.cli.compile_cmd import render_report
    from rich.console import Console

    stage = {"stage": "distill", "teacher": "/x/teacher.keras", "teacher_macs": 31552, "student": "builtin:cnn@0.25",
             "student_macs": 2896, "macs_ratio": 10.9, "temperature": 4.0, "alpha": 0.7, "epochs": 40, "seed": 1,
             "train_samples": 300, "teacher_float_accuracy": 0.945, "label": "distilled"}
    report = {"model_bytes": 4800, "compile": {"provenance": [stage], "quantize": "int8",
                                               "student": {"model": "builtin:cnn@0.25", "macs": 2896,
                                                           "training": {"loss": "distillation"}}}}
    console = Console(record=True, width=200)
    render_report(console, {"report": report, "model_path": "m.tflite", "report_path": "r.json"})
    text = console.export_text()
    assert "distilled: student builtin:cnn@0.25 (2,896 MACs) from teacher teacher.keras (31,552 MACs" in text
    assert "T=4, alpha=0.7, 40 epochs, seed 1" in text and "pipeline: distil → quantize int8" in text


def test_errors_fail_fast(distill_example, tmp_path):
    from formicary.compile import compile_model

    _, ex = distill_example
    data = ex / "data"
    common = {"train": str(data / "train300.npz"), "calib": str(data / "calib.npz"), "epochs": 1}
    tflite = tmp_path / "t.tflite"
    tflite.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))
    cases = [
        ({"distill_from": str(tflite)}, "builtin:cnn@0.25", "is a .tflite flatbuffer", "Keras model"),
        ({"distill_from": str(tmp_path / "missing.keras")}, "builtin:cnn@0.25", "model not found", None),
        ({}, "builtin:mlp@1", "unknown built-in architecture 'mlp'", "builtin:cnn@WIDTH"),
        ({"temperature": 2.0}, "builtin:cnn@0.25", "no --distill-from", None),
        ({"distill_from": str(ex / "teacher" / "teacher.keras"), "distill_alpha": 1.5}, "builtin:cnn@0.25",
         "must be in [0, 1]", None),
        ({"distill_from": str(ex / "teacher" / "teacher.keras"), "train": None}, "builtin:cnn@0.25",
         "no --train", None),
    ]
    for extra, model, cause, fix in cases:
        start = time.perf_counter()
        with pytest.raises(FormicaryError) as err:
            compile_model(model, tmp_path / "o", **{**common, **extra})
        assert cause in err.value.cause, err.value.cause
        assert fix is None or fix in err.value.fix
        assert time.perf_counter() - start < 1.0  # before TensorFlow work or training


def test_teacher_class_and_shape_mismatch(distill_example, tf, tmp_path):
    import tf_keras as keras
    from formicary.compile import compile_model

    _, ex = distill_example
    data = ex / "data"
    five = keras.Sequential([keras.layers.InputLayer(input_shape=(8, 8, 1)), keras.layers.Flatten(),
                             keras.layers.Dense(5, activation="softmax")])
    five.save(tmp_path / "five.keras")
    other = keras.Sequential([keras.layers.InputLayer(input_shape=(4, 4, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10)])
    other.save(tmp_path / "small_input.keras")
    student = ex / "teacher" / "teacher.keras"  # a 10-class Keras student
    common = {"train": str(data / "train300.npz"), "calib": str(data / "calib.npz"), "epochs": 1}
    with pytest.raises(FormicaryError) as err:
        compile_model(student, tmp_path / "o1", distill_from=str(tmp_path / "five.keras"), **common)
    assert "has 5 classes but student teacher.keras has 10" in err.value.cause
    with pytest.raises(FormicaryError) as err:
        compile_model(student, tmp_path / "o2", distill_from=str(tmp_path / "small_input.keras"), **common)
    assert "takes inputs (4, 4, 1)" in err.value.cause and "(8, 8, 1)" in err.value.cause


def test_cli_error_is_one_formicary_error(tmp_path, monkeypatch, capsys):
    code, stdout = run_cli(monkeypatch, capsys, "compile", "builtin:cnn@0", "-o", str(tmp_path / "o"), "--json")
    assert code == 2
    err = json.loads(stdout)["error"]
    assert "outside (0, 16]" in err["cause"] and "builtin:dscnn@WIDTH" in err["fix"]


def test_logits_are_read_before_the_softmax(tf):
    """Three ways to end a classifier give the same logits: a Dense with softmax (rebuilt without it), a separate
    Softmax layer (its input), a linear Dense (as is); a sigmoid output is refused."""
    import tf_keras as keras
    from formicary.shrink.distill import logits_view, teacher_logits

    keras.utils.set_random_seed(3)
    inp = keras.Input((4,))
    hidden = keras.layers.Dense(6, activation="relu")(inp)
    dense = keras.layers.Dense(3, activation="softmax", name="probs")
    with_softmax = keras.Model(inp, dense(hidden))
    linear_head = keras.layers.Dense(3, name="logits")
    linear = keras.Model(inp, linear_head(hidden))
    linear_head.set_weights(dense.get_weights())
    separate = keras.Model(inp, keras.layers.Softmax()(linear_head(hidden)))
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    want = linear.predict(x, verbose=0)
    for model in (with_softmax, separate, linear):
        got, _ = teacher_logits(model, x)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    # Training through the view copies the head back: the student keeps its softmax output, with trained weights.
    view, copy_back, _ = logits_view(with_softmax, "student")
    view.layers[-1].set_weights([w + 1.0 for w in dense.get_weights()])
    copy_back()
    assert with_softmax.layers[-1].activation.__name__ == "softmax"
    np.testing.assert_allclose(dense.get_weights()[1], view.layers[-1].get_weights()[1])
    sigmoid = keras.Model(inp, keras.layers.Dense(3, activation="sigmoid")(hidden))
    with pytest.raises(FormicaryError, match="not a softmax or a linear output"):
        logits_view(sigmoid, "teacher")
