"""Keras 3 models (`import keras`, what `pip install tensorflow` brings) through every compile stage.

A residual + depthwise CNN and an MLP are trained once with Keras 3 on sklearn digits, then quantized directly
(no tf_keras involved), pruned 50 % and QAT-trained (both rebuilt in tf_keras for tfmot, outputs checked first).
Every produced .tflite is checked by the compile pipeline in TFLM and compared byte for byte with formicary-rt
(host build; the MLP also on qemu-m4). Accuracy bounds are the tf_keras ones of test_compile_pipeline.py.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from formicary.compile import compile_model
from formicary.errors import FormicaryError
from formicary.tflite import read_model

pytestmark = [pytest.mark.tf, pytest.mark.xdist_group("keras3")]


@dataclass
class K3:
    root: Path
    cnn: Path
    mlp: Path
    train: Path
    calib: Path
    val: Path


def _cnn(keras):
    L = keras.layers
    inp = keras.Input((8, 8, 1), name="image")
    x = L.Conv2D(16, 3, padding="same", activation="relu", name="stem")(inp)
    y = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    y = L.BatchNormalization(name="bn")(y)
    y = L.ReLU(name="dw_relu")(y)
    x = L.Add(name="residual")([x, y])
    x = L.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="down")(x)
    x = L.Flatten(name="flat")(x)
    x = L.Dropout(0.1, name="drop")(x)
    return keras.Model(inp, L.Dense(10, activation="softmax", name="head")(x), name="k3_cnn")


def _mlp(keras):
    L = keras.layers
    return keras.Sequential([keras.Input((8, 8, 1)), L.Flatten(), L.Dense(32, activation="relu"),
                             L.Dense(32, activation="relu"), L.Dense(10)], name="k3_mlp")


@pytest.fixture(scope="module")
def k3(tf, tmp_path_factory) -> K3:
    """Train both models once with Keras 3 (seeded) and save them as .keras files."""
    from formicary.model import keras3
    from formicary.model.zoo import digits_splits

    keras = keras3.import_keras3()
    root = tmp_path_factory.mktemp("keras3")
    splits = digits_splits(0)
    paths = splits.save(root / "data")
    saved = {}
    for name, build, loss in (("cnn", _cnn, "sparse_categorical_crossentropy"),
                              ("mlp", _mlp, keras.losses.SparseCategoricalCrossentropy(from_logits=True))):
        keras.utils.set_random_seed(0)
        model = build(keras)
        # jit_compile=False: XLA compilation costs more than it saves on a model this small
        model.compile(optimizer=keras.optimizers.Adam(5e-3), loss=loss, metrics=["accuracy"], jit_compile=False)
        model.fit(splits.train.x, splits.train.y, epochs=10, batch_size=32, verbose=0)
        saved[name] = root / f"{name}.keras"
        model.save(saved[name])
    return K3(root, saved["cnn"], saved["mlp"], paths["train"], paths["calib"], paths["val"])


@pytest.fixture(scope="module")
def k3_compiled(k3, tmp_path_factory):
    cache: dict = {}

    def run(model: str, **options):
        key = (model, tuple(sorted(options.items())))
        if key not in cache:
            cache[key] = compile_model(getattr(k3, model), tmp_path_factory.mktemp(f"k3_{model}"),
                                       train=str(k3.train), calib=str(k3.calib), val=str(k3.val), **options)
        return cache[key]

    return run


def _zero_fraction(model_bytes: bytes) -> float:
    ir = read_model(model_bytes)
    ws = [np.asarray(ir.tensors[op.inputs[1]].data) for op in ir.operators
          if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    return sum(int((w == 0).sum()) for w in ws) / sum(w.size for w in ws)


def _bit_exact(model_path: Path, val: Path, target: str = "host") -> dict:
    from formicary.bench.verify import verify_model

    r = verify_model(model_path, data=val, inputs=16, measure_tflm_arena=False, target=target)
    assert r["bit_exact"] and r["mismatches"] == 0 and r["inputs"] == 16, r
    return r


STAGES = {"int8": {}, "prune50": {"prune": 0.5, "epochs": 2}, "qat": {"qat": True, "epochs": 1},
          "prune50+qat": {"prune": 0.5, "qat": True, "epochs": 2}}
# The CNN through each stage on its own; the MLP quantized directly and through prune-preserving QAT (both
# tfmot stages in one run, to keep the suite's time: the zeros must survive QAT into the int8 model).
CASES = [("cnn", "int8"), ("cnn", "prune50"), ("cnn", "qat"), ("mlp", "int8"), ("mlp", "prune50+qat")]


@pytest.mark.slow
@pytest.mark.parametrize(("model", "stage"), CASES)
def test_keras3_model_every_stage(k3, k3_compiled, model, stage):
    res = k3_compiled(model, **STAGES[stage])
    info, acc = res.report["compile"], res.report["accuracy"]
    assert info["tflm_check"] == "passed" and info["keras_version"].startswith("3.")
    assert acc["float"] >= 0.93, acc                               # a real classifier, trained by Keras 3
    model_bytes = res.model_path.read_bytes()
    ops = {op.opcode for op in read_model(model_bytes).operators}
    assert not ops & {"SHAPE", "STRIDED_SLICE", "PACK"}, ops       # Flatten folded into one static RESHAPE
    if stage == "int8":
        # quantized straight from Keras 3: no tf_keras rebuild
        assert info["keras3"]["rebuilt_in_tf_keras"] is False, info["keras3"]
        assert acc["quantized"] >= acc["float"] - 0.02, acc
    else:
        check = info["keras3"]["check"]
        assert info["keras3"]["rebuilt_in_tf_keras"] and check["passed"], info["keras3"]
        assert check["max_abs_diff"] <= 1e-4 and check["samples"] == 64, check   # calib samples, not random
        assert acc["quantized"] >= acc["float"] - 0.03, acc
    if "prune50" in stage:
        assert info["prune"]["achieved"] >= 0.5 - 1e-3, info["prune"]
        assert _zero_fraction(model_bytes) >= 0.45
    if stage == "qat":
        assert info["qat"]["scheme"].startswith("QAT"), info["qat"]
    if stage == "prune50+qat":
        assert info["qat"]["scheme"] == "prune-preserving QAT", info["qat"]
    if model == "cnn":
        assert {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "FULLY_CONNECTED"} <= ops, ops
    _bit_exact(res.model_path, k3.val)


@pytest.mark.slow
@pytest.mark.qemu
def test_keras3_mlp_bit_exact_on_qemu_m4(k3, k3_compiled):
    if not shutil.which("qemu-system-arm") or not shutil.which("arm-none-eabi-gcc"):
        pytest.skip("qemu-system-arm / arm-none-eabi-gcc not installed (scripts/bootstrap.sh installs them)")
    res = k3_compiled("mlp", **STAGES["prune50+qat"])
    _bit_exact(res.model_path, k3.val, target="qemu-m4")


def test_rebuild_carries_every_listed_layer_with_the_same_outputs(tf):
    """The layers docs/models.md lists, in one graph (a nested Sequential and a shared layer included):
    the tf_keras rebuild computes the same outputs and owns its own copies of the weights."""
    import tf_keras

    from formicary.model import keras3

    keras = keras3.import_keras3()
    L = keras.layers
    keras.utils.set_random_seed(1)
    inp = keras.Input((12, 12, 2))
    x = L.Rescaling(1 / 4.0, offset=-0.5)(inp)
    x = L.ZeroPadding2D(1)(x)
    x = L.Conv2D(8, 3, activation="relu", kernel_regularizer=keras.regularizers.L2(1e-4))(x)
    a = L.DepthwiseConv2D(3, padding="same", depth_multiplier=1)(x)
    a = L.BatchNormalization()(a)
    a = L.LeakyReLU(negative_slope=0.2)(a)
    b = L.SeparableConv2D(8, 3, padding="same")(x)
    b = L.Activation("relu6")(b)
    shared = L.Conv2D(8, 1, name="shared_1x1")
    x = L.Add()([shared(a), shared(b)])
    x = L.Concatenate()([x, L.ELU()(b)])
    x = L.MaxPooling2D()(x)
    x = L.AveragePooling2D(2)(x)
    x = L.Reshape((3 * 3 * 16,))(x)
    x = L.Reshape((3, 3, 16))(x)
    g = L.GlobalAveragePooling2D()(x)
    f = L.Dropout(0.2)(L.Flatten()(x))
    head = keras.Sequential([keras.Input((144,)), L.Dense(16), L.PReLU()], name="inner")
    x = L.Concatenate()([g, head(f)])
    model = keras.Model(inp, L.Softmax()(L.Dense(5)(x)))
    # non-trivial BatchNormalization statistics, so a swapped weight order would show
    bn = next(layer for layer in model.layers if type(layer).__name__ == "BatchNormalization")
    bn.set_weights([np.random.default_rng(i).uniform(0.5, 1.5, w.shape).astype(np.float32)
                    for i, w in enumerate(bn.get_weights())])
    rebuilt, info = keras3.to_tf_keras(model)
    assert isinstance(rebuilt, tf_keras.Model) and not keras3.is_keras3_model(rebuilt)
    assert info.max_abs_diff <= 1e-5, info
    x = np.random.default_rng(0).uniform(0, 4, (8, 12, 12, 2)).astype(np.float32)
    np.testing.assert_allclose(rebuilt.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    for cls in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense", "BatchNormalization", "LeakyReLU",
                "Activation", "ELU", "PReLU", "Softmax", "MaxPooling2D", "AveragePooling2D",
                "GlobalAveragePooling2D", "Add", "Concatenate", "Reshape", "Flatten", "Dropout", "ZeroPadding2D",
                "Rescaling"):
        assert info.carried.get(cls), (cls, info.carried)
    assert info.carried["Conv2D"] == 2                    # the shared 1x1 conv stays one layer
    assert "inner" not in [layer.name for layer in rebuilt.layers]   # the nested model is inlined
    assert rebuilt.get_layer("shared_1x1").kernel.shape == (1, 1, 8, 8)
    assert float(rebuilt.losses[0]) > 0                   # the L2 regularizer came along
    rebuilt.get_layer("shared_1x1").kernel.assign(np.zeros((1, 1, 8, 8), np.float32))
    assert np.abs(np.asarray(shared.kernel)).sum() > 0    # copies, not shared variables


def test_raw_keras_ops_in_the_graph_are_named(tf):
    from formicary.model import keras3

    keras = keras3.import_keras3()
    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Dense(2, name="fc")(keras.ops.add(inp, 1.0)))
    with pytest.raises(FormicaryError, match=r"keras\.ops Add") as exc:
        keras3.to_tf_keras(model)
    assert "quantization works directly" in exc.value.fix


@pytest.fixture(scope="module")
def custom_model(k3):
    """A Keras 3 model with a registered custom layer (scales its input by a trained vector)."""
    from formicary.model import keras3

    keras = keras3.import_keras3()

    @keras.saving.register_keras_serializable(package="fmtest")
    class ChannelScale(keras.layers.Layer):
        def build(self, shape):
            self.scale = self.add_weight(shape=(shape[-1],), initializer="ones")

        def call(self, x):
            return x * self.scale

    L = keras.layers
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1))
    x = ChannelScale(name="chan_scale")(L.Conv2D(4, 3, activation="relu")(inp))
    model = keras.Model(inp, L.Dense(10)(L.Flatten()(x)))
    path = k3.root / "custom.keras"
    model.save(path)
    return path


def test_custom_layer_quantizes_but_cannot_be_pruned(k3, custom_model, tmp_path):
    res = compile_model(custom_model, tmp_path / "q", calib=str(k3.calib))   # the class is known in-process
    assert res.report["compile"]["tflm_check"] == "passed"
    with pytest.raises(FormicaryError, match=r"layer 'chan_scale' \(ChannelScale\).*no one-to-one tf_keras") as exc:
        compile_model(custom_model, tmp_path / "p", train=str(k3.train), calib=str(k3.calib), prune=0.5)
    assert "drop --prune" in exc.value.fix and "int8 quantization works directly" in exc.value.fix
    assert not (tmp_path / "p" / "model.tflite").exists()


def test_custom_layer_whose_class_is_unknown_is_named_with_the_fix(k3, custom_model, tmp_path, monkeypatch):
    """What the CLI meets: the class is not registered in the process loading the model."""
    from formicary.model import keras3

    keras = keras3.import_keras3()
    monkeypatch.delitem(keras.saving.get_custom_objects(), "fmtest>ChannelScale")
    with pytest.raises(FormicaryError, match=r"cannot load custom\.keras with Keras 3: .*ChannelScale") as exc:
        compile_model(custom_model, tmp_path / "o", calib=str(k3.calib))
    assert "model.export" in exc.value.fix


def test_dynamic_input_shape_is_one_clear_error(k3, tf, tmp_path):
    from formicary.model import keras3

    keras = keras3.import_keras3()
    L = keras.layers
    inp = keras.Input((None, None, 1), name="any_size")
    model = keras.Model(inp, L.Dense(10)(L.GlobalAveragePooling2D()(L.Conv2D(4, 3)(inp))))
    model.save(tmp_path / "dyn.keras")
    with pytest.raises(FormicaryError, match=r"input 'any_size' has a dynamic shape \(None, None, None, 1\)") as exc:
        compile_model(tmp_path / "dyn.keras", tmp_path / "o", calib=str(k3.calib))
    assert "keras.Input((96, 96, 1))" in exc.value.fix


def test_exported_savedmodel_quantizes_and_refuses_shrinking(k3, k3_compiled, tmp_path):
    """Keras 3 `model.export()`: a traced graph, quantized from its signature, same accuracy as the .keras."""
    from formicary.model import keras3

    keras = keras3.import_keras3()
    folder = tmp_path / "cnn_savedmodel"
    keras.models.load_model(k3.cnn).export(str(folder), verbose=False)
    res = compile_model(folder, tmp_path / "o", calib=str(k3.calib), val=str(k3.val))
    info, acc = res.report["compile"], res.report["accuracy"]
    assert info["keras3"]["source"] == "SavedModel without Keras metadata", info["keras3"]
    direct = k3_compiled("cnn").report["accuracy"]
    assert acc["float"] == direct["float"] and abs(acc["quantized"] - direct["quantized"]) <= 0.01, (acc, direct)
    ops = {op.opcode for op in read_model(res.model_path.read_bytes()).operators}
    assert "RESHAPE" in ops and not ops & {"SHAPE", "STRIDED_SLICE", "PACK"}, ops   # traced again at batch 1
    _bit_exact(res.model_path, k3.val)
    with pytest.raises(FormicaryError, match="SavedModel without Keras metadata") as exc:
        compile_model(folder, tmp_path / "p", train=str(k3.train), calib=str(k3.calib), qat=True)
    assert "model.save('model.keras')" in exc.value.fix
