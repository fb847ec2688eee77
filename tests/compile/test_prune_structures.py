"""Pruning on the architectures people deploy: a depthwise-separable CNN (BatchNorm, depth multiplier 2, a
SeparableConv2D), a residual CNN (Add, Concatenate), a plain CNN (Flatten → Dense) and an MLP, in every structure.

Each test checks what the structure promises in the model itself (narrower layers, zero blocks, 2:4 groups,
zeros in depthwise kernels), that layers left dense are named with a reason, and that the pruned model converts
to int8 and runs in formicary-rt bit-exact with TFLM (host build)."""
from __future__ import annotations

import numpy as np
import pytest

from tests.support.prunemodels import MODELS, trained

pytestmark = pytest.mark.tf
NAMES = sorted(MODELS)


@pytest.fixture(scope="session")
def zoo(tf):
    """name → (model, train, val), trained once per session."""
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            cache[name] = trained(name)
        return cache[name]

    return get


def _prune(zoo, name: str, structure: str, sparsity: float = 0.5, epochs: int = 2):
    from formicary.shrink import FineTune
    from formicary.shrink.prune import prune

    model, train, _ = zoo(name)
    before = model.get_weights()
    pruned, result = prune(model, FineTune(train, epochs), sparsity, structure)
    after = model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(before, after)), "the caller's model was changed"
    return model, pruned, result


def _int8_bit_exact(model, train) -> bytes:
    from formicary.bench.verify import verify_model
    from formicary.model.convert import convert

    tflite = convert(model, "int8", train.x[:64])
    r = verify_model(tflite, inputs=3, seed=1, measure_tflm_arena=False)
    assert r["bit_exact"], r
    return tflite


@pytest.mark.parametrize("name", NAMES)
def test_channel_pruning_makes_the_model_narrower(zoo, name):
    from formicary.shrink.channel import count_params, keras_macs
    from tests.compile.conftest import kernel_tensors

    model, pruned, r = _prune(zoo, name, "channel")
    d = r.to_dict()
    assert d["structure"] == "channel"
    out_layer = model.layers[-1].name
    assert d["left_dense"] == {out_layer: "the model's output units are never pruned"}
    for layer, (kept, total) in d["channels"].items():
        if layer != out_layer:
            assert kept == total - total // 2, (layer, kept, total)   # half of every hidden producer's channels
            assert int(pruned.get_layer(layer).output_shape[-1]) == kept
    assert pruned.output_shape == model.output_shape
    assert count_params(pruned) < 0.6 * count_params(model)
    assert keras_macs(pruned) < 0.6 * keras_macs(model)
    assert d["macs"] == [keras_macs(model), keras_macs(pruned)] and d["weights_removed"] >= 0.5
    # the int8 flatbuffer is really smaller: fewer weight elements in total
    _, train, _ = zoo(name)
    from formicary.model.convert import convert

    dense_w = sum(w.size for w in kernel_tensors(convert(model, "int8", train.x[:64])).values())
    pruned_w = sum(w.size for w in kernel_tensors(_int8_bit_exact(pruned, train)).values())
    assert pruned_w < 0.6 * dense_w


@pytest.mark.parametrize("name", ["plain_cnn", "resnet"])
def test_channel_pruning_removes_exactly_the_dead_channels(zoo, name, tf):
    """Zero the filters (and biases) of the half of each tied group with the lowest index: those channels carry
    nothing, so they are what the importance ranking removes, and the narrower model (before fine-tuning)
    computes the same outputs as the original."""
    import tf_keras as keras

    from formicary.shrink.channel import build_pruned, plan_channels

    model, _, val = zoo(name)
    model = keras.models.clone_model(model)
    model.set_weights(zoo(name)[0].get_weights())
    for layer in model.layers:
        if type(layer).__name__ in ("Conv2D", "Dense") and layer is not model.layers[-1]:
            k, b = layer.get_weights()
            n = k.shape[-1] // 2
            k[..., :n] = 0.0
            b[:n] = 0.0
            layer.set_weights([k, b])
    plan, walk = plan_channels(model, 0.5)
    for layer, mask in plan.keep.items():
        if layer != model.layers[-1].name:
            assert not mask[:mask.size // 2].any() and mask[mask.size // 2:].all(), (layer, mask)
    narrow = build_pruned(model, plan, walk)
    np.testing.assert_allclose(narrow.predict(val.x, verbose=0), model.predict(val.x, verbose=0), rtol=1e-4,
                               atol=1e-5)


def test_channel_pruning_follows_depthwise_and_separable(zoo):
    model, pruned, r = _prune(zoo, "dscnn", "channel")
    # dw1 has depth multiplier 2: its channels follow pw0's (half of 16 kept → 8 inputs, 16 outputs)
    assert pruned.get_layer("dw0").output_shape[-1] == pruned.get_layer("conv0").output_shape[-1] == 8
    assert pruned.get_layer("dw1").output_shape[-1] == 2 * pruned.get_layer("pw0").output_shape[-1] == 16
    assert pruned.get_layer("sep").output_shape[-1] == 6 and pruned.get_layer("out").output_shape[-1] == 4


def test_channel_pruning_refuses_when_nothing_can_go(tf):
    import tf_keras as keras

    from formicary.data import Dataset
    from formicary.errors import FormicaryError
    from formicary.shrink import FineTune
    from formicary.shrink.prune import prune

    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, name="only")])
    data = Dataset(np.zeros((8, 6), np.float32), np.zeros(8, np.int64), "zeros")
    with pytest.raises(FormicaryError, match="no channel it can remove.*only: the model's output") as exc:
        prune(model, FineTune(data, 1), 0.5, "channel")
    assert exc.value.fix


@pytest.mark.parametrize("name", NAMES)
def test_block_pruning(zoo, name):
    from formicary.shrink.prune import block_norms

    _, pruned, r = _prune(zoo, name, "block")
    d = r.to_dict()
    assert d["per_layer"], d
    for layer, frac in d["per_layer"].items():
        norms = block_norms(pruned.get_layer(layer).kernel.numpy())
        assert (norms == 0).mean() >= 0.5 - 1.0 / norms.size, layer
    for layer, why in d["left_dense"].items():
        assert type(pruned.get_layer(layer)).__name__ in ("DepthwiseConv2D", "SeparableConv2D") and why


def test_block_pruned_model_runs_on_the_sparse_kernels(zoo):
    import tempfile
    from pathlib import Path

    from formicary.codegen import generate

    _, pruned, _ = _prune(zoo, "plain_cnn", "block")
    tflite = _int8_bit_exact(pruned, zoo("plain_cnn")[1])
    with tempfile.TemporaryDirectory() as tmp:
        source = (Path(tmp) / "g" / "fm_model.c").read_text() if generate(tflite, Path(tmp) / "g") else ""
    assert "fm_conv2d_sparse_s8(" in source and "fm_fully_connected_sparse_s8(" in source


@pytest.mark.parametrize("name", NAMES)
def test_2_4_prunes_what_it_can_and_says_why_not(zoo, name):
    from formicary.shrink import kernels
    from formicary.shrink.prune import groups_of_four_ok

    _, pruned, r = _prune(zoo, name, "2:4")
    d = r.to_dict()
    ks = kernels(pruned)
    for layer in d["per_layer"]:
        assert groups_of_four_ok(ks[layer]), layer   # Keras layout [..., in, out]: groups along `in`
        assert d["per_layer"][layer] >= 0.5 - 1e-9
    for layer in d["left_dense"]:
        cls = type(pruned.get_layer(layer)).__name__
        assert cls in ("DepthwiseConv2D", "SeparableConv2D") or ks[layer].shape[-2] < 4, layer
    if name == "dscnn":
        assert "depthwise" in d["left_dense"]["dw0"] and "depthwise" in d["left_dense"]["dw1"]
        assert d["achieved"] >= 0.5 - 1e-9


@pytest.mark.parametrize("name", NAMES)
def test_unstructured_prunes_depthwise_kernels_too(zoo, name):
    from formicary.shrink import kernels

    _, pruned, r = _prune(zoo, name, "unstructured")
    d = r.to_dict()
    assert not d["left_dense"]
    for layer, k in kernels(pruned).items():
        assert (k == 0).mean() >= 0.5 - 1.0 / k.size, layer
    if name == "dscnn":
        assert d["per_layer"]["dw0"] >= 0.5 and d["per_layer"]["dw1"] >= 0.5
        assert type(pruned.get_layer("dw0")).__name__ == "DepthwiseConv2D"   # the plain layer again
        _int8_bit_exact(pruned, zoo(name)[1])


def test_unfinished_schedule_blames_the_epochs_and_only_then(zoo, monkeypatch):
    """The schedule's end step is pushed past the training: the error names the epochs (the real cause)."""
    from formicary.errors import FormicaryError
    from formicary.shrink import prune as prune_mod

    monkeypatch.setattr(prune_mod, "schedule_for", lambda tune: (tune.total_steps * 4, 1))
    with pytest.raises(FormicaryError, match="schedule stopped") as exc:
        _prune(zoo, "mlp", "unstructured")
    assert "--epochs" in exc.value.fix
