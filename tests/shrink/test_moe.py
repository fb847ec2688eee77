"""Mixture of experts (formicary.shrink.moe, moe_export, `formicary moe`): the builder's parts and counts, top-1
routing = arg-max of the gate, the training output and load-balancing loss by hand, the .tflite export (an IF tree
with one int8 subgraph per expert, run by TFLM with the float model's routing, every expert reached), the CLI's
JSON and provenance, and the option errors. Short training on 600 digits."""
from __future__ import annotations

import json

import numpy as np
import pytest
from formicary.errors import FormicaryError

from tests.support.cli import run_cli

TRAIN = 600
EPOCHS = 8




@pytest.fixture(scope="module")
def small_train(digits_splits):
    from formicary.data import Dataset

    s = digits_splits
    return Dataset(s.train.x[:TRAIN], s.train.y[:TRAIN], "digits (first 600)")


@pytest.fixture(scope="module")
def trained(tf, small_train, digits_splits):
    """(model, stage): E = 4 top-1 MoE of builtin:cnn@0.5 experts on a conv(8) stem, seed 0."""
    from formicary.model.keras_io import make_deterministic
    from formicary.shrink.moe import MoEOptions, train_moe

    make_deterministic(0)
    return train_moe(small_train, MoEOptions(epochs=EPOCHS), digits_splits.val)


@pytest.fixture(scope="module")
def exported(trained, digits_splits, small_train):
    """(bytes, ExportInfo) of the export with the route as a second output (to check routing in TFLM)."""
    from formicary.shrink.moe_export import export_tflite

    return export_tflite(trained[0], digits_splits.calib.x, small_train.x, route_output=True)


def _features(model, x):
    import tf_keras as keras
    from formicary.shrink.moe import parts

    p = parts(model)
    feat = keras.Model(model.inputs, p.stem[-1].output)
    return p, np.asarray(feat(x.astype(np.float32), training=False))


def test_builder_parts_and_counts(tf):
    from formicary.model.students import build_builtin
    from formicary.shrink.moe import MoEOptions, build_moe, costs, model_macs, parts

    model = build_moe((8, 8, 1), 10, MoEOptions(experts=3, expert="builtin:cnn@0.25", stem="4"))
    assert model.output_shape == (None, 10)
    p = parts(model)
    assert [e.name for e in p.experts] == ["expert_0", "expert_1", "expert_2"] and p.feature_shape == (8, 8, 4)
    ref = build_builtin("builtin:cnn@0.25", (8, 8, 4), 10)
    c = costs(model)
    assert c["params_per_expert"] == [ref.count_params()] * 3
    assert c["gate_params"] == 8 * 8 * 4 * 3 + 3 and c["stem_params"] == 3 * 3 * 1 * 4 + 4
    assert c["total_params"] == model.count_params()
    assert c["stem_macs"] == 64 * 4 * 9 and c["gate_macs"] == 256 * 3
    assert c["macs_per_inference"] == c["stem_macs"] + c["gate_macs"] + model_macs(ref)
    assert c["macs_all_experts"] == c["stem_macs"] + c["gate_macs"] + 3 * model_macs(ref)
    # the user's architecture: a callable, or a Keras model (cloned with fresh weights per expert)
    import tf_keras as keras

    def mine(shape, classes):
        return keras.Sequential([keras.layers.InputLayer(shape), keras.layers.Flatten(),
                                 keras.layers.Dense(classes, activation="softmax")])

    own = build_moe((8, 8, 1), 10, MoEOptions(experts=2, expert=mine, stem="4"))
    assert costs(own)["params_per_expert"] == [256 * 10 + 10] * 2
    template = mine((8, 8, 4), 10)
    cloned = parts(build_moe((8, 8, 1), 10, MoEOptions(experts=2, expert=template, stem="4"))).experts
    k0, k1 = (e.layers[-1].get_weights()[0] for e in cloned)
    assert k0.shape == (256, 10) and not np.array_equal(k0, k1)
    with pytest.raises(FormicaryError, match="stem gives"):
        build_moe((8, 8, 1), 10, MoEOptions(experts=2, expert=mine((8, 8, 1), 10), stem="4"))
    # no stem: the gate and experts see the input itself
    bare = parts(build_moe((8, 8, 1), 10, MoEOptions(experts=2, stem="none")))
    assert bare.stem == [] and bare.feature_shape == (8, 8, 1)


def test_combine_layer_by_hand(tf):
    """Training output Σ_topk g·p + (1 − Σ_topk g)/C, inference output renormalised, balance loss E·Σ f·P."""
    from formicary.shrink.moe import combine_layer_class

    logits = np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.5], [3.0, 1.0, 0.0], [0.0, 0.2, 0.4]], np.float32)
    rng = np.random.default_rng(0)
    outs = [rng.dirichlet(np.ones(4), size=4).astype(np.float32) for _ in range(3)]
    g = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    for k in (1, 2):
        layer = combine_layer_class()(top_k=k, balance_weight=0.3, gate_noise=0.0)
        top = np.argsort(-logits, axis=1)[:, :k]
        mask = np.zeros_like(g)
        np.put_along_axis(mask, top, 1.0, axis=1)
        w = g * mask
        mixed = sum(w[:, i:i + 1] * outs[i] for i in range(3))
        train = np.asarray(layer([logits] + outs, training=True))
        np.testing.assert_allclose(train, mixed + (1 - w.sum(1, keepdims=True)) / 4, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(train.sum(1), 1.0, atol=1e-5)
        infer = np.asarray(layer([logits] + outs, training=False))
        np.testing.assert_allclose(infer, mixed / w.sum(1, keepdims=True), rtol=1e-5, atol=1e-6)
        assert (train.argmax(1) == infer.argmax(1)).all()
        f, P = mask.mean(0) / k, g.mean(0)
        np.testing.assert_allclose(float(layer.losses[-1]), 0.3 * 3 * (f * P).sum(), rtol=1e-5)
    # k = 1, hand numbers: routes 0, 1, 0, 2 → f = [1/2, 1/4, 1/4]
    assert np.allclose(np.argmax(logits, 1), [0, 1, 0, 2])


def test_training_uses_experts_and_top1_is_gate_argmax(trained, digits_splits):
    from formicary.shrink.moe import routes

    model, stage = trained
    assert stage["stage"] == "moe" and stage["label"] == "moe4" and stage["top_k"] == 1
    assert stage["val_accuracy"] > 0.85, stage
    assert min(stage["usage"]["train"]) >= TRAIN // 20, stage["usage"]   # load balancing: no dead expert
    assert sum(stage["usage"]["val"]) == len(digits_splits.val)
    x = digits_splits.val.x[:64]
    p, f = _features(model, x)
    r = routes(model, x, 1)[:, 0]
    expected = np.stack([np.asarray(p.experts[i](f[j:j + 1], training=False))[0] for j, i in enumerate(r)])
    np.testing.assert_allclose(np.asarray(model(x, training=False)), expected, atol=1e-5)


def test_export_is_an_if_tree_with_int8_expert_subgraphs(exported):
    from formicary.oracle.tflm import check_tflm

    data, info = exported
    check_tflm(data)
    sgs = {sg["name"]: sg for sg in info.subgraphs}
    assert set(sgs) == {"main", "route_0_2", "route_2_4", "expert_0", "expert_1", "expert_2", "expert_3"}
    main_ops = [o["op"] for o in sgs["main"]["ops"]]
    assert "ARG_MAX" in main_ops and main_ops.count("IF") == 1 and "DEQUANTIZE" not in main_ops
    ifs = [o for sg in info.subgraphs for o in sg["ops"] if o["op"] == "IF"]
    assert len(ifs) == 3
    for o in ifs:  # int8 crosses every IF boundary (cond is BOOL, the route INT32)
        assert o["in"][0] == "BOOL" and set(o["in"][1:]) <= {"INT8", "INT32"} and o["out"] == ["INT8"]
    for i in range(4):
        ops = sgs[f"expert_{i}"]["ops"]
        assert [o["op"] for o in ops if o["op"] not in ("QUANTIZE",)][-1] == "SOFTMAX"
        assert all(t in ("INT8", "INT32") for o in ops for t in o["in"] + o["out"]), ops
        assert sum(o["op"] == "CONV_2D" for o in ops) == 2 and sum(o["op"] == "FULLY_CONNECTED" for o in ops) == 2
    assert min(info.calibration_per_expert) > 0
    # each expert's first conv reads the stem's int8 output directly: no requantization at the boundary
    assert info.boundary_requantize == 0
    assert not any(o["op"] in ("QUANTIZE", "DEQUANTIZE") for sg in info.subgraphs for o in sg["ops"])


def test_dropping_the_route_output_keeps_the_outputs(exported, digits_splits):
    from formicary.shrink.moe import _tflm_eval
    from formicary.shrink.moe_export import describe, drop_route_output

    data, _ = exported
    plain = drop_route_output(data)
    assert describe(plain)[0]["outputs"] == ["INT8"]
    x, y = digits_splits.val.x[:50], digits_splits.val.y[:50]
    a, b = _tflm_eval(data, x, y, 4), _tflm_eval(plain, x, y, 4)
    assert b["routes"] is None and np.array_equal(a["outputs"], b["outputs"])


def test_tflm_routes_like_the_float_model_and_reaches_every_expert(trained, exported, digits_splits):
    from formicary.shrink.moe import _tflm_eval, routes

    model, stage = trained
    data, _ = exported
    val = digits_splits.val
    ev = _tflm_eval(data, val.x, val.y, 4)
    float_routes = routes(model, val.x, 1)[:, 0]
    assert (ev["routes"] == float_routes).mean() >= 0.95
    assert min(ev["usage"]) >= 10, ev["usage"]          # every expert's branch is taken
    assert abs(ev["accuracy"] - stage["val_accuracy"]) <= 0.03
    # The int8 output is the routed expert's output: compare with that expert in float.
    p, f = _features(model, val.x)
    same = ev["routes"] == float_routes
    ref = np.stack([np.asarray(p.experts[i](f[j:j + 1], training=False))[0] for j, i in enumerate(float_routes)])
    close = np.abs(ev["outputs"] - ref).max(axis=1) < 0.1
    assert close[same].mean() >= 0.9


def test_cli_json_report_and_provenance(tf, digits_splits, tmp_path, monkeypatch, capsys):
    from formicary.model.provenance import read_provenance

    s = digits_splits
    data = tmp_path / "data"
    data.mkdir()
    np.savez(data / "train.npz", x=s.train.x[:TRAIN], y=s.train.y[:TRAIN])
    np.savez(data / "val.npz", x=s.val.x, y=s.val.y)
    np.savez(data / "calib.npz", x=s.calib.x, y=s.calib.y)
    out = tmp_path / "moe"
    code, stdout = run_cli(monkeypatch, capsys, "moe", "--data", str(data / "train.npz"), "--val", str(data / "val.npz"),
                        "--calib", str(data / "calib.npz"), "--experts", "4", "--expert", "builtin:cnn@0.5",
                        "--epochs", str(EPOCHS), "-o", str(out), "--json")
    assert code == 0, stdout
    doc = json.loads(stdout)
    assert set(doc) >= {"out_dir", "keras_path", "provenance_path", "model_path", "report_path", "moe", "costs",
                        "export", "accuracy", "usage", "route_agreement", "model_bytes", "tflm_arena_bytes",
                        "warnings"}
    assert doc["accuracy"]["int8_tflm"] > 0.85 and doc["route_agreement"] >= 0.95
    assert len(doc["usage"]["val_tflm"]) == 4 and sum(doc["usage"]["val_tflm"]) == len(s.val.x)
    assert doc["model_bytes"] == (out / "model.tflite").stat().st_size and doc["tflm_arena_bytes"] > 0
    # formicary's analysis of the .tflite (per route) agrees with the Keras-side counts
    a = doc["analysis"]
    assert a["macs_per_route"] == {"min": doc["costs"]["macs_per_inference"], "max": doc["costs"]["macs_per_inference"]}
    assert a["macs_all_subgraphs"] == doc["costs"]["macs_all_experts"]
    assert a["params_all_subgraphs"] == doc["costs"]["total_params"] and len(a["routes"]) == 4
    stage = doc["moe"]
    for key in ("experts", "top_k", "expert_arch", "balance_weight", "usage", "params_per_expert", "gate_params",
                "label"):
        assert key in stage
    assert stage["label"] == "moe4" and stage["expert_arch"] == "builtin:cnn@0.5"
    from formicary.shrink.moe import load_moe, routes

    loaded = load_moe(out / "moe.keras")
    assert routes(loaded, s.val.x).shape == (len(s.val.x), 1) and loaded.get_layer("moe").top_k == 1
    stages, warning = read_provenance(out / "moe.keras")
    assert warning is None and stages[0]["stage"] == "moe"
    report = json.loads((out / "report.json").read_text())
    assert report["compile"]["provenance"][0]["label"] == "moe4"
    from formicary.model.provenance import variant_suffix

    assert variant_suffix(report["compile"]["provenance"]) == "-moe4"


@pytest.mark.parametrize("opts, words", [
    ({"experts": 1}, "--experts 1"),
    ({"experts": 4, "top_k": 5}, "--top-k 5"),
    ({"top_k": 0}, "--top-k 0"),
    ({"expert": "builtin:nope@1"}, "unknown built-in"),
    ({"expert": "no/such/model.keras"}, "neither a built-in"),
    ({"stem": "8,x"}, "--stem"),
    ({"balance_weight": -1.0}, "--balance-weight"),
])
def test_option_errors(opts, words):
    from formicary.shrink.moe import MoEOptions, validate_options

    with pytest.raises(FormicaryError) as err:
        validate_options(MoEOptions(**opts))
    assert words in err.value.cause and err.value.fix


def test_cli_error_is_one_json_error(tmp_path, monkeypatch, capsys):
    code, stdout = run_cli(monkeypatch, capsys, "moe", "--data", str(tmp_path / "x.npz"), "-o", str(tmp_path / "o"),
                        "--experts", "4", "--top-k", "9", "--json")
    assert code == 2
    err = json.loads(stdout)["error"]
    assert "--top-k 9" in err["cause"] and err["fix"]


def test_top2_export_is_refused(trained):
    from formicary.shrink.moe import combine_layer_class
    from formicary.shrink.moe_export import serving_module

    model = trained[0]
    layer = model.get_layer("moe")
    assert isinstance(layer, combine_layer_class())
    layer.top_k = 2
    try:
        with pytest.raises(FormicaryError, match="top-1"):
            serving_module(model)
    finally:
        layer.top_k = 1


def test_prune_experts_reaches_the_sparsity_and_keeps_accuracy(trained, small_train, digits_splits):
    """Per-expert magnitude pruning (on a copy): every expert's kernels at 50 % zeros, stem and gate dense, the
    model still classifies (the routing is unchanged: the gate is not touched)."""
    import tf_keras as keras
    from formicary.shrink import sparsity_of
    from formicary.shrink.moe import parts, prune_experts, routes

    model = trained[0]
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    results = prune_experts(copy, small_train, 0.5, epochs=2)
    assert [r["expert"] for r in results] == [0, 1, 2, 3] and sum(r["examples"] for r in results) == TRAIN
    for e in parts(copy).experts:
        assert sparsity_of(e.layers[-1])["overall"] >= 0.45
    p = parts(copy)
    assert all((lay.get_weights()[0] != 0).all() for lay in p.stem + p.gate[1:])
    x, y = digits_splits.val.x, digits_splits.val.y
    assert (routes(copy, x) == routes(model, x)).all()
    acc = float((np.asarray(copy(x, training=False)).argmax(1) == y).mean())
    assert acc >= trained[1]["val_accuracy"] - 0.05


def test_cluster_experts_limits_distinct_weights_and_keeps_routing(trained, small_train, digits_splits):
    """Per-expert clustering (on a copy): every expert kernel holds at most K distinct values, the stem and gate
    are untouched (so the routing is unchanged), and the model still classifies."""
    import tf_keras as keras
    from formicary.shrink import kernels
    from formicary.shrink.moe import cluster_experts, parts, routes

    model = trained[0]
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    results = cluster_experts(copy, small_train, 8, epochs=1)
    assert [r["expert"] for r in results] == [0, 1, 2, 3]
    for e in parts(copy).experts:
        distinct = [np.unique(k).size for k in kernels(e.layers[-1]).values()]
        assert distinct and max(distinct) <= 8, distinct
    before, after = parts(model), parts(copy)
    for a, b in zip(before.stem + before.gate[1:], after.stem + after.gate[1:]):
        assert all((wa == wb).all() for wa, wb in zip(a.get_weights(), b.get_weights()))
    x, y = digits_splits.val.x, digits_splits.val.y
    assert (routes(copy, x) == routes(model, x)).all()
    acc = float((np.asarray(copy(x, training=False)).argmax(1) == y).mean())
    assert acc >= trained[1]["val_accuracy"] - 0.1


@pytest.mark.qemu
@pytest.mark.usefixtures("arm_qemu_tools")
def test_trained_export_runs_on_qemu_m4_bit_exact_with_the_tflm_routes(trained, exported, digits_splits, tmp_path):
    """The deployed model.tflite of a trained mixture on the device: bit-exact with TFLM, and the device's route
    histogram (bench `routes`) is TFLM's expert usage on the same inputs, every expert reached."""
    from formicary.bench.runner import run_bench
    from formicary.shrink.moe import _tflm_eval
    from formicary.shrink.moe_export import drop_route_output

    data, _ = exported
    x, y = digits_splits.val.x[:80], digits_splits.val.y[:80]
    ev = _tflm_eval(data, x, y, 4)
    path = tmp_path / "model.tflite"
    path.write_bytes(drop_route_output(data))
    np.savez(tmp_path / "val.npz", x=x, y=y)
    r = run_bench(path, "qemu-m4", data=tmp_path / "val.npz", warmup=0, store=False, out_dir=tmp_path / "bench")
    assert r["bit_exact"] and r["mismatches"] == 0 and r["accuracy"] == ev["accuracy"]
    on_device = {name: rt["count"] for rt in r["routes"] for name in rt["names"] if name.startswith("expert_")}
    assert on_device == {f"expert_{i}": n for i, n in enumerate(ev["usage"]) if n}, (on_device, ev["usage"])
    assert len(on_device) == 4
