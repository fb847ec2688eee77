"""LoRA (formicary.shrink.lora): the adapter model starts as the base, trains only the factors (and the
keep_trainable layers), merges back into the base's structure exactly, and its separate adapters convert to the
expected low-rank ops that formicary-rt runs bit-exact with TFLM. The example runs at reduced size."""
from __future__ import annotations

import json

import numpy as np
import pytest
from formicary.errors import FormicaryError

RANK = 2

# ---- fixtures: a tiny Conv2D + Dense model and a learnable task for it ------------------------------------------


@pytest.fixture(scope="module")
def tiny(tf):
    """(model, tune): Conv2D 2->4 3x3 same, Conv2D 4->6 3x3 stride 2 valid, DepthwiseConv2D, Dense 24->8 relu,
    Dense 8->3 softmax ("head"), with a 3-class task the base does not know (sign of three pixel sums)."""
    import tf_keras as keras
    from formicary.data import Dataset
    from formicary.model.keras_io import make_deterministic
    from formicary.shrink import FineTune

    make_deterministic(0)
    inp = keras.Input((6, 6, 2), name="x")
    y = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c1")(inp)
    y = keras.layers.Conv2D(6, 3, strides=2, padding="valid", activation="relu", name="c2")(y)
    y = keras.layers.DepthwiseConv2D(1, name="dw")(y)
    y = keras.layers.Flatten(name="flat")(y)
    y = keras.layers.Dense(8, activation="relu", name="d1")(y)
    out = keras.layers.Dense(3, activation="softmax", name="head")(y)
    model = keras.Model(inp, out, name="tiny")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 6, 6, 2)).astype(np.float32)
    labels = np.argmax(np.stack([x[:, :3, :, 0].sum((1, 2)), x[:, 3:, :, 1].sum((1, 2)),
                                 x[:, :, :2, :].sum((1, 2, 3))], 1), 1)
    return model, FineTune(Dataset(x, labels, "tiny"), epochs=3, batch_size=32, learning_rate=1e-2)


@pytest.fixture(scope="module")
def trained(tiny):
    from formicary.shrink.lora import lora_train

    model, tune = tiny
    before = [w.copy() for w in model.get_weights()]
    return lora_train(model, tune, RANK, alpha=4.0, keep_trainable=("head",)), before


# ---- tests ------------------------------------------------------------------------------------------------------


def test_adapter_model_starts_equal_to_the_base(tiny):
    from formicary.shrink.lora import prepare

    model, tune = tiny
    adapters = prepare(model, RANK)
    for name, (a, b) in adapters.factors.items():
        assert not b.any(), f"{name}: B must start at zero"
        assert np.abs(a).max() > 0.01, f"{name}: A must start random"
    x = tune.train.x[:64]
    np.testing.assert_array_equal(np.asarray(adapters.train_model(x)), np.asarray(model(x)))


def test_trainable_parameters_counted_by_hand(trained):
    adapters, _ = trained
    assert adapters.plan.adapted == ["c1", "c2", "d1"]
    assert adapters.plan.keep == ["head"]
    assert "dw" in adapters.plan.skipped and "Depthwise" in adapters.plan.skipped["dw"]
    r = RANK
    lora = (3 * 3 * 2 * r + r * 4) + (3 * 3 * 4 * r + r * 6) + (24 * r + r * 8)   # A + B per layer
    head = 8 * 3 + 3
    full = (3 * 3 * 2 * 4 + 4) + (3 * 3 * 4 * 6 + 6) + (24 * 8 + 8) + head       # kernels + biases
    assert adapters.trainable_params == lora + head == 44 + 84 + 64 + 27
    assert adapters.full_finetune_params == full == 76 + 222 + 200 + 27
    assert adapters.per_layer["c2"]["matrix"] == [36, 6]


def test_frozen_weights_unchanged_factors_and_head_trained(tiny, trained):
    model, _ = tiny
    adapters, before = trained
    for w, b in zip(model.get_weights(), before):           # the caller's model is not touched
        np.testing.assert_array_equal(w, b)
    sep = adapters.separate()
    for name in ("c1", "c2", "d1", "dw"):                   # frozen base weights, bit for bit
        for got, want in zip(sep.get_layer(name).get_weights(), model.get_layer(name).get_weights()):
            np.testing.assert_array_equal(got, want)
    assert not np.array_equal(sep.get_layer("head").get_weights()[0], model.get_layer("head").get_weights()[0])
    for name, (_, b) in adapters.factors.items():
        assert np.abs(b).max() > 1e-3, f"{name}: B did not train"


def test_merge_reproduces_the_adapter_model_on_conv_and_dense(tiny, trained):
    model, tune = tiny
    adapters, _ = trained
    merged = adapters.merged()
    assert [type(la).__name__ for la in merged.layers] == [type(la).__name__ for la in model.layers]
    assert [la.name for la in merged.layers] == [la.name for la in model.layers]
    for name in ("c1", "c2", "d1"):
        w_base = model.get_layer(name).get_weights()[0]
        w_merged = merged.get_layer(name).get_weights()[0]
        a, b = adapters.factors[name]
        np.testing.assert_allclose(w_merged - w_base, 2.0 * (a.reshape(-1, RANK) @ b.reshape(RANK, -1))
                                   .reshape(w_base.shape), atol=1e-6)
        assert np.abs(w_merged - w_base).max() > 1e-3     # the update is real, so the check below means something
    err, tol = adapters.check(merged, tune.train.x)
    assert err < 1e-5 and tol >= 1e-4
    base_diff = float(np.abs(np.asarray(merged(tune.train.x)) - np.asarray(model(tune.train.x))).max())
    assert base_diff > 100 * err


def test_lora_finetune_info_and_refusals(tiny, monkeypatch):
    from formicary.shrink import FineTune, lora

    model, tune = tiny
    short = FineTune(tune.train, epochs=1, batch_size=64, learning_rate=1e-2)
    out, info = lora.lora_finetune(model, short, 3)
    assert info["stage"] == "lora" and info["label"] == "lora3" and info["merged"] is True
    assert info["alpha"] == 3.0 and info["layers"] == ["c1", "c2", "d1", "head"]
    assert info["trainable_params"] < info["full_finetune_params"]
    assert info["merge_max_abs_error"] < 1e-5 and info["train_seconds"] > 0
    json.dumps(info)
    assert [la.name for la in out.layers] == [la.name for la in model.layers]
    with pytest.raises(FormicaryError, match="rank"):
        lora.lora_finetune(model, short, 0)
    with pytest.raises(FormicaryError, match="nope"):
        lora.lora_finetune(model, short, 2, keep_trainable=("nope",))
    import tf_keras as keras

    nested = keras.Sequential([keras.Input((4,)), keras.Sequential([keras.layers.Dense(3)], name="inner"),
                               keras.layers.Dense(2, name="outer")])
    plan = lora.prepare(nested, 2).plan
    assert plan.adapted == ["outer"] and "nested model" in plan.skipped["inner"]
    with pytest.raises(FormicaryError, match="built Sequential or functional"):
        lora.lora_finetune(keras.Sequential([keras.layers.Dense(3)]), short, 2)
    monkeypatch.setattr(lora.LoRAAdapters, "check", lambda self, m, x: (0.5, 1e-4))
    with pytest.raises(FormicaryError, match="differs from the adapter model"):
        lora.lora_finetune(model, short, 2)


def test_separate_adapters_export_low_rank_ops_bit_exact_on_host(tiny, trained, tmp_path):
    from formicary.bench.verify import verify_model
    from formicary.model.convert import convert
    from formicary.tflite import read_model

    model, tune = tiny
    adapters, _ = trained
    sep = adapters.separate()
    err, tol = adapters.check(sep, tune.train.x)
    assert err <= tol
    calib = tune.train.x[:64]
    sep_tfl = convert(sep, "int8", calib)
    ir = read_model(sep_tfl)
    ops = [op.opcode for op in ir.operators]
    merged_ops = [op.opcode for op in read_model(convert(adapters.merged(), "int8", calib)).operators]
    assert merged_ops == [op.opcode for op in read_model(convert(model, "int8", calib)).operators]
    # per adapted layer: the base op, A, B (CONV_2D or FULLY_CONNECTED) and an ADD (the ReLU fused into it)
    assert ops == ["CONV_2D"] * 3 + ["ADD"] + ["CONV_2D"] * 3 + ["ADD", "DEPTHWISE_CONV_2D", "RESHAPE"] \
        + ["FULLY_CONNECTED"] * 3 + ["ADD", "FULLY_CONNECTED", "SOFTMAX"]
    fc_b = next(op for op in ir.operators if "d1_lora_b" in ir.tensors[op.outputs[0]].name)
    assert len(fc_b.inputs) < 3 or fc_b.inputs[2] < 0            # the adapter FULLY_CONNECTED has no bias
    adds = [op for op in ir.operators if op.opcode == "ADD"]
    assert [op.options.get("fused_activation_function") for op in adds] == ["RELU"] * 3
    import tf_keras as keras

    path = tmp_path / "sep.keras"            # plain layers: the rest of the pipeline loads it without custom objects
    sep.save(path)
    np.testing.assert_array_equal(np.asarray(keras.models.load_model(path)(calib)), np.asarray(sep(calib)))
    result = verify_model(sep_tfl, inputs=8, sanitize=True, measure_tflm_arena=False)
    assert result["bit_exact"], result


def test_example_at_reduced_size(capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "lora_digits.py"
    spec = importlib.util.spec_from_file_location("lora_digits", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    assert example.main(["--board", "none", "--ranks", "4", "--base-epochs", "4", "--epochs", "4",
                         "--train-limit", "400", "--val-limit", "150", "--verify-inputs", "0", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    row = doc["seeds"][0]
    lora4 = row["lora"]["4"]
    assert lora4["trainable_params"] == 1740 and row["full"]["trainable_params"] == 9802
    assert lora4["same_ops_as_base"] and lora4["merge_max_abs_error"] <= lora4["merge_tolerance"]
    assert lora4["separate"]["host_bit_exact"] is None   # skipped here: the test above checks it
    assert lora4["separate"]["ops"].count("ADD") == 4
    # the rotated task is new to the base; LoRA learns it (measured: base 0.11, LoRA 4 about 0.3 at this size)
    assert row["base"]["float"] < 0.25 and row["base"]["float_upright"] > 0.6
    assert lora4["float"] > row["base"]["float"] + 0.08
    assert abs(lora4["separate"]["int8_tflm"] - lora4["int8_tflm"]) <= 0.1


def test_residual_graph_with_batchnorm_merges_exactly(tf):
    """A functional graph with a skip connection, BatchNormalization and two inputs to an Add: the rebuilt
    adapter model equals the base while B = 0, and with B set the merged model reproduces it."""
    import tf_keras as keras
    from formicary.shrink.lora import prepare

    inp = keras.Input((5, 5, 3), name="x")
    a = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="ca")(inp)
    a = keras.layers.BatchNormalization(name="bn")(a)
    y = keras.layers.Add(name="skip")([inp, a])
    y = keras.layers.GlobalAveragePooling2D(name="gap")(y)
    out = keras.layers.Dense(4, name="logits")(y)
    model = keras.Model(inp, out)
    model.get_layer("bn").set_weights([np.full(3, 1.5, np.float32), np.full(3, 0.1, np.float32),
                                       np.full(3, 0.2, np.float32), np.full(3, 2.0, np.float32)])
    x = np.random.default_rng(1).normal(size=(16, 5, 5, 3)).astype(np.float32)
    adapters = prepare(model, 2, alpha=1.0)
    assert adapters.plan.adapted == ["ca", "logits"] and "bn" in adapters.plan.skipped
    np.testing.assert_array_equal(np.asarray(adapters.train_model(x)), np.asarray(model(x)))
    rng = np.random.default_rng(2)
    for name in adapters.plan.adapted:
        layer = adapters.train_model.get_layer(f"{name}_lora_b")
        layer.set_weights([rng.normal(size=layer.get_weights()[0].shape).astype(np.float32)])
    merged = adapters.merged()
    err, _ = adapters.check(merged, x)
    assert err < 1e-5
    assert float(np.abs(np.asarray(merged(x)) - np.asarray(model(x))).max()) > 0.1
    sep_err, _ = adapters.check(adapters.separate(), x)
    assert sep_err < 1e-5
