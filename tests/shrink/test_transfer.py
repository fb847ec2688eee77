"""Transfer learning (`formicary adapt`, formicary.shrink.transfer): freeze point, frozen weights, label mapping,
the CLI and its provenance through compile and bench's variant label, errors, and a reduced run of
examples/transfer_digits.py."""
from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from formicary.data import Dataset
from formicary.errors import FormicaryError

ROOT = Path(__file__).resolve().parents[2]
CLI_PRELUDE = "import sys\nfrom formicary.cli import main\nsys.argv[0] = 'formicary'\nmain()\n"


# ------------------------------------------------------------------------------------ transfer fixtures

def _example():
    spec = importlib.util.spec_from_file_location("transfer_digits", ROOT / "examples" / "transfer_digits.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def residual_model():
    """A functional model with a depthwise-separable residual block, BatchNormalization, GlobalAveragePooling,
    Dropout and a separate Softmax layer: the second architecture the freeze rules must handle."""
    import tf_keras as keras

    i = keras.Input((8, 8, 1), name="img")
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem")(i)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    y = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    y = keras.layers.Conv2D(8, 1, name="pw")(y)
    y = keras.layers.BatchNormalization(name="pw_bn")(y)
    x = keras.layers.Add(name="add")([x, y])
    x = keras.layers.ReLU(name="block_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(0.2, name="drop")(x)
    x = keras.layers.Dense(10, name="logits")(x)
    return keras.Model(i, keras.layers.Softmax(name="probs")(x), name="resnet_tiny")


@pytest.fixture(scope="module")
def new_digits(digits_splits):
    """Few-shot data of digits 5-9 (12 per class, seeded) and the held-out 5-9 validation digits."""
    s = digits_splits
    rng = np.random.default_rng(0)
    idx = np.concatenate([rng.choice(np.flatnonzero(s.train.y == c), 12, replace=False) for c in range(5, 10)])
    va = s.val.y >= 5
    return Dataset(s.train.x[idx], s.train.y[idx], "few 5-9"), Dataset(s.val.x[va], s.val.y[va], "val 5-9")


@pytest.fixture(scope="module")
def base04(tf, digits_splits, tmp_path_factory) -> Path:
    """The digits CNN pretrained (briefly) on digits 0-4, saved as .keras."""
    path, acc = _example().pretrain(digits_splits, tmp_path_factory.mktemp("base04"), epochs=6)
    assert acc > 0.9, acc
    return path


# ------------------------------------------------------------------------------------------------ tests

def test_auto_freeze_point_and_top_block_on_two_architectures(tf):
    import tf_keras as keras
    from formicary.model.zoo import build_digits_cnn
    from formicary.shrink.transfer import (
        feature_candidates,
        find_head,
        resolve_freeze,
        top_block,
    )

    cnn = build_digits_cnn()
    head = find_head(cnn)
    assert (head.dense, head.feature, head.head_input, head.activation) == ("probs", "flatten", "fc1", "softmax")
    assert resolve_freeze(cnn, "auto", head) == "flatten"
    assert top_block(cnn, "flatten") == ["conv2", "flatten"]
    assert feature_candidates(cnn, head) == ["conv1", "conv2", "flatten", "fc1"]

    res = residual_model()
    head = find_head(res)
    assert (head.dense, head.feature, head.before, head.after) == ("logits", "gap", ["drop"], ["probs"])
    assert head.activation == "softmax"
    # the skip connection makes no point inside the block a cut: the whole residual block is the top block
    assert top_block(res, "gap") == ["dw", "pw", "pw_bn", "add", "block_relu", "gap"]

    # an MLP has no Flatten/GlobalPooling: the last feature layer is the head's input
    i = keras.Input((4,))
    h = keras.layers.Dense(6, activation="relu", name="hidden")(i)
    mlp = keras.Model(i, keras.layers.Dense(3, name="out")(h))
    assert find_head(mlp).feature == "hidden"
    assert find_head(mlp).activation == "linear"


def test_adapt_keeps_frozen_weights_and_trains_the_head(tf, new_digits):
    from formicary.model.keras_io import make_deterministic
    from formicary.shrink.transfer import AdaptOptions, adapt

    few, val = new_digits
    make_deterministic(0)
    base = residual_model()
    before = {lay.name: [w.copy() for w in lay.get_weights()] for lay in base.layers}
    model, stage = adapt(base, few, AdaptOptions(classes=5, epochs=4, fine_tune_epochs=2), val)
    after = {lay.name: lay.get_weights() for lay in model.layers}
    # stem and its BatchNormalization (moving statistics too) never change; the top block's BN stays frozen too
    for name in ("stem", "stem_bn", "pw_bn"):
        for w0, w1 in zip(before[name], after[name], strict=True):
            np.testing.assert_array_equal(w0, w1)
    # the top block (unfrozen for the fine-tuning epochs) and the new head did train
    for name in ("dw", "pw"):
        assert any(not np.array_equal(w0, w1) for w0, w1 in zip(before[name], after[name], strict=True)), name
    assert after["logits"][0].shape == (8, 5)
    assert stage["freeze_until"] == "gap" and stage["top_block"][:2] == ["dw", "pw"]
    assert stage["trainable_params"] == 8 * 5 + 5
    assert stage["fine_tune_trainable_params"] == 45 + 8 * 9 + 8 + 8 * 8 + 8
    assert stage["label_map"] == [5, 6, 7, 8, 9] and stage["examples_per_class"] == [12] * 5
    assert 0.0 <= stage["val_accuracy"] <= 1.0 and stage["val_samples"] == len(val)
    assert all(lay.trainable for lay in model.layers)  # a plain model again for compile


def test_label_mapping_and_label_errors():
    from formicary.shrink.transfer import LabelMap, label_map_for

    labels, new_head = label_map_for(np.array([9, 3, 7, 3, 9, 7]), 3, base_classes=10)
    assert new_head and labels.labels == [3, 7, 9]
    np.testing.assert_array_equal(labels.encode(np.array([9, 3, 7]), "--val"), [2, 0, 1])
    with pytest.raises(FormicaryError, match=r"--val has labels \[5\]"):
        labels.encode(np.array([5, 3]), "--val")
    with pytest.raises(FormicaryError, match="--classes 4 but the --data labels have 3 distinct") as err:
        label_map_for(np.array([9, 3, 7]), 4, base_classes=10)
    assert "--classes 3" in err.value.fix
    with pytest.raises(FormicaryError, match="no --classes was given"):
        label_map_for(np.array([5, 12]), None, base_classes=10)
    same, new_head = label_map_for(np.array([0, 4, 9]), None, base_classes=10)
    assert not new_head and same.labels == list(range(10))
    assert isinstance(same, LabelMap)


def test_adapt_errors(tf, base04, new_digits, tmp_path):
    from formicary.shrink.transfer import AdaptOptions, adapt_files

    few, _ = new_digits
    data = tmp_path / "few.npz"
    np.savez(data, x=few.x, y=few.y)
    out = tmp_path / "a.keras"
    with pytest.raises(FormicaryError, match="'nope' is not a layer") as err:
        adapt_files(base04, data, out, AdaptOptions(classes=5, freeze_until="nope", epochs=1))
    assert "conv2" in err.value.fix and err.value.details["candidates"][-1] == "fc1"
    with pytest.raises(FormicaryError, match="'probs' is part of the classifier head"):
        adapt_files(base04, data, out, AdaptOptions(classes=5, freeze_until="probs", epochs=1))
    one = tmp_path / "one.npz"
    np.savez(one, x=few.x[:7], y=np.array([5, 5, 5, 5, 5, 5, 6]))
    with pytest.raises(FormicaryError, match="too few examples: label"):
        adapt_files(base04, one, out, AdaptOptions(classes=2, epochs=1))
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, x=np.zeros((10, 5, 5), np.float32), y=np.arange(10) % 2)
    with pytest.raises(FormicaryError, match=r"--data data does not match the model input"):
        adapt_files(base04, wrong, out, AdaptOptions(classes=2, epochs=1))
    with pytest.raises(FormicaryError, match="--fine-tune-epochs unfreezes"):
        adapt_files(base04, data, out, AdaptOptions(classes=5, lora_rank=4, fine_tune_epochs=2))
    assert not out.exists()


def test_cli_adapt_then_compile_carries_provenance(tf, base04, new_digits, digits_splits, tmp_path):
    from formicary.analysis import analyse
    from formicary.bench.runner import _variant
    from formicary.compile import compile_model
    from formicary.model.provenance import read_provenance

    few, val = new_digits
    data, val_path = tmp_path / "few.npz", tmp_path / "val.npz"
    np.savez(data, x=few.x[..., 0], y=few.y)  # no channel axis: fitted to the model input like compile does
    np.savez(val_path, x=val.x, y=val.y)
    out = tmp_path / "adapted.keras"
    proc = subprocess.run([sys.executable, "-c", CLI_PRELUDE, "adapt", str(base04), "--data", str(data), "--val",
                           str(val_path), "--classes", "5", "-o", str(out), "--epochs", "20", "--seed", "3",
                           "--json"], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert set(result) == {"model_path", "provenance_path", "transfer", "lora", "stages", "warnings"}
    t = result["transfer"]
    for key in ("base", "base_sha256", "freeze_until", "frozen_params", "trainable_params", "classes",
                "label_map", "examples_per_class", "epochs", "fine_tune_epochs", "seed", "train_seconds",
                "val_accuracy", "label"):
        assert key in t, key
    assert (t["freeze_until"], t["classes"], t["label_map"], t["seed"], t["label"]) == \
        ("flatten", 5, [5, 6, 7, 8, 9], 3, "adapted")
    assert t["val_accuracy"] > 0.8, t  # 12 examples per class on frozen 0-4 features; chance is 0.2
    assert result["lora"] is None and "loading TensorFlow" in proc.stderr
    stages, warning = read_provenance(out)
    assert warning is None and stages == result["stages"] and stages[-1]["stage"] == "transfer"

    # the adapted model goes through compile like any model; bench's variant label says how it was made
    val_idx = tmp_path / "val_idx.npz"
    np.savez(val_idx, x=val.x, y=val.y - 5)
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=digits_splits.calib.x)
    res = compile_model(out, tmp_path / "compiled", calib=str(calib), val=str(val_idx))
    assert res.report["compile"]["provenance"] == stages
    assert res.report["accuracy"]["quantized"] > 0.8
    variant = _variant(analyse(res.model_path, measure_arena=False), res.model_path)
    assert variant["label"] == "int8-adapted" and variant["training"][-1]["label_map"] == [5, 6, 7, 8, 9]

    # The original labels (5-9) work too: compile and verify map them through the recorded label_map.
    from formicary.bench.verify import verify_model

    again = compile_model(out, tmp_path / "compiled-original-labels", calib=str(calib), val=str(val_path))
    assert again.report["accuracy"]["quantized"] == res.report["accuracy"]["quantized"]
    assert any("original labels" in w for w in again.report["compile"]["warnings"])
    checked = verify_model(again.model_path, data=val_path)
    assert checked["bit_exact"] and round(checked["accuracy"]["value"], 4) == res.report["accuracy"]["quantized"]


def test_cli_refuses_a_tflite_base(kws_model_path, tmp_path):
    model = kws_model_path
    data = tmp_path / "d.npz"
    np.savez(data, x=np.zeros((4, 8, 8, 1), np.float32), y=np.array([0, 0, 1, 1]))
    proc = subprocess.run([sys.executable, "-c", CLI_PRELUDE, "adapt", str(model), "--data", str(data), "--classes",
                           "2", "-o", str(tmp_path / "o.keras"), "--json"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    err = json.loads(proc.stdout)["error"]
    assert "no trainable weights" in err["cause"] and "Keras model" in err["fix"]


def test_example_reduced_run_beats_chance(tf, tmp_path):
    example = _example()
    buf = io.StringIO()
    with redirect_stdout(buf):
        example.main(["--seeds", "1", "--per-class", "10", "--pretrain-epochs", "6", "--epochs", "20",
                      "--no-device", "--json", "--out", str(tmp_path)])
    result = json.loads(buf.getvalue())
    assert set(result) >= {"config", "base", "val", "runs", "summary"}
    run = result["runs"][0]
    assert run["examples"] == 50 and set(run) >= {"adapted", "scratch"}
    for kind in ("adapted", "scratch"):
        assert set(run[kind]) >= {"float", "int8_tflm", "device", "train_seconds"}
        assert run[kind]["device"] is None  # --no-device
    assert result["val"]["chance"] == 0.2
    # clearly above chance (0.2) after int8 in TFLM, and int8 within 5 points of float
    assert run["adapted"]["int8_tflm"] > 0.75, run
    assert abs(run["adapted"]["int8_tflm"] - run["adapted"]["float"]) < 0.05
    assert result["summary"]["adapted"]["int8_tflm"]["mean"] == run["adapted"]["int8_tflm"]


def test_adapt_without_new_head_fine_tunes_the_base(tf, base04, digits_splits):
    import tf_keras as keras
    from formicary.model.keras_io import make_deterministic
    from formicary.shrink.transfer import AdaptOptions, adapt

    s = digits_splits
    old = s.train.y < 5
    make_deterministic(0)
    base = keras.models.load_model(base04)
    before = {lay.name: [w.copy() for w in lay.get_weights()] for lay in base.layers}
    model, stage = adapt(base, Dataset(s.train.x[old][:60], s.train.y[old][:60], "new 0-4"),
                         AdaptOptions(epochs=2, learning_rate=1e-3))
    assert not stage["new_head"] and stage["label_map"] == [0, 1, 2, 3, 4] and stage["head"] == "probs"
    assert stage["freeze_until"] == "flatten"
    after = {lay.name: lay.get_weights() for lay in model.layers}
    for name in ("conv1", "conv2"):
        assert all(np.array_equal(a, b) for a, b in zip(before[name], after[name], strict=True)), name
    for name in ("fc1", "probs"):  # the base's own head (not a new one) was fine-tuned
        assert not np.array_equal(before[name][0], after[name][0]), name


def test_lora_path_calls_the_contract(tf, base04, new_digits, tmp_path, monkeypatch):
    """The adapt side of the LoRA contract: the new head is kept fully trainable, alpha/separate are passed on,
    and the LoRA stage lands in the sidecar after the transfer stage (a stand-in lora module records the call)."""
    import types

    from formicary.model.provenance import read_provenance
    from formicary.shrink.transfer import AdaptOptions, adapt_files

    calls = {}

    def lora_finetune(model, tune, rank, *, alpha=None, keep_trainable=(), separate=False):
        calls.update(rank=rank, alpha=alpha, keep=list(keep_trainable), separate=separate, epochs=tune.epochs,
                     outputs=int(model.outputs[0].shape[-1]), labels=sorted(set(tune.train.y.tolist())))
        return model, {"stage": "lora", "rank": rank, "trainable_params": 123, "label": f"lora{rank}"}

    monkeypatch.setitem(sys.modules, "formicary.shrink.lora", types.SimpleNamespace(lora_finetune=lora_finetune))
    few, _ = new_digits
    data = tmp_path / "few.npz"
    np.savez(data, x=few.x, y=few.y)
    out = tmp_path / "lora.keras"
    result = adapt_files(base04, data, out, AdaptOptions(classes=5, epochs=3, lora_rank=4, lora_alpha=8.0))
    assert calls == {"rank": 4, "alpha": 8.0, "keep": ["probs"], "separate": False, "epochs": 3, "outputs": 5,
                     "labels": [0, 1, 2, 3, 4]}
    stages, _ = read_provenance(out)
    assert [s["stage"] for s in stages] == ["transfer", "lora"] and stages[0]["method"] == "lora"
    assert result.to_dict()["lora"]["label"] == "lora4" and stages[0]["trainable_params"] == 123


def test_cli_adapt_with_real_lora_adapters_then_compile(tf, base04, new_digits, digits_splits, tmp_path):
    """The real LoRA stage behind `formicary adapt --lora-rank`: frozen 0-4 features with rank-4 adapters and a
    new head learn 5-9; the separate adapters survive compile as extra ops and label the variant."""
    from formicary.analysis import analyse
    from formicary.bench.runner import _variant
    from formicary.compile import compile_model

    few, val = new_digits
    data, val_path = tmp_path / "few.npz", tmp_path / "val.npz"
    np.savez(data, x=few.x, y=few.y)
    np.savez(val_path, x=val.x, y=val.y)
    out = tmp_path / "lora.keras"
    proc = subprocess.run([sys.executable, "-c", CLI_PRELUDE, "adapt", str(base04), "--data", str(data), "--val",
                           str(val_path), "--classes", "5", "-o", str(out), "--epochs", "15", "--lora-rank", "4",
                           "--lora-separate", "--json"], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    lora = result["lora"]
    assert (lora["rank"], lora["merged"], lora["label"]) == (4, False, "lora4sep")
    assert 0 < lora["trainable_params"] < lora["full_finetune_params"]
    assert result["transfer"]["val_accuracy"] > 0.6, result["transfer"]  # chance is 0.2
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=digits_splits.calib.x)
    res = compile_model(out, tmp_path / "compiled", calib=str(calib))
    report = res.report
    assert [s["stage"] for s in report["compile"]["provenance"]] == ["transfer", "lora"]
    assert report["ops"].get("ADD", 0) >= len(lora["layers"])  # one ADD per adapted layer joins its branch
    variant = _variant(analyse(res.model_path, measure_arena=False), res.model_path)
    assert variant["label"] == "int8-adapted-lora4sep"
