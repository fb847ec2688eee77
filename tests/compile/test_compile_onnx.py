"""ONNX models in: a PyTorch-exported digits CNN (tests/compile/data, made by examples/pytorch_to_formicary.py
--export-only) compiled to int8 with NCHW calibration data, TFLM-checked, within 1 point of onnxruntime's float
accuracy, bit-exact on qemu-m4; a block-pruned export keeps its zero blocks for the sparse kernels; bad models
(an op without an int8 kernel, dynamic shapes, custom ops, no `onnx` extra) fail with one error naming the cause."""
from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

from formicary.errors import FormicaryError

DATA = Path(__file__).parent / "data"
DENSE = DATA / "digits_cnn_torch.onnx"                # python examples/pytorch_to_formicary.py --export-only …
BLOCKS60 = DATA / "digits_cnn_torch_blocks60.onnx"    # … --prune 0.6

_MISSING = [m for m in ("onnx", "onnxruntime", "onnx2tf", "onnx_graphsurgeon", "sng4onnx") if find_spec(m) is None]
needs_extra = pytest.mark.skipif(bool(_MISSING), reason=f"the `onnx` extra is not installed (missing {_MISSING}): "
                                                        "pip install -e '.[test,power,onnx]'")
pytestmark = pytest.mark.xdist_group("digits")


@pytest.fixture(scope="module")
def nchw_data(tmp_path_factory) -> dict[str, Path]:
    """formicary demo's digits splits in PyTorch's layout (N, 1, 8, 8)."""
    from formicary.model.zoo import digits_splits

    splits = digits_splits(seed=0)
    root = tmp_path_factory.mktemp("onnx-data")
    paths = {}
    for name in ("calib", "val"):
        ds = getattr(splits, name)
        paths[name] = root / f"{name}.npz"
        np.savez(paths[name], x=ds.x.transpose(0, 3, 1, 2), y=ds.y)
    paths["val_nhwc"] = root / "val_nhwc.npz"
    np.savez(paths["val_nhwc"], x=splits.val.x[:20], y=splits.val.y[:20])
    return paths


@pytest.fixture(scope="module")
def dense(tf, nchw_data, tmp_path_factory):
    from formicary.compile import compile_model

    return compile_model(DENSE, tmp_path_factory.mktemp("onnx-dense"), calib=str(nchw_data["calib"]),
                         val=str(nchw_data["val"]))


def _opcodes(path: Path) -> list[str]:
    from formicary.tflite import read_model

    return [op.opcode for op in read_model(path.read_bytes()).operators]


@needs_extra
@pytest.mark.tf
def test_onnx_cnn_int8_tflm_checked_within_a_point_of_onnxruntime(dense):
    report = dense.report
    info = report["compile"]
    assert info["input_kind"] == "onnx" and info["quantize"] == "int8" and info["tflm_check"] == "passed"
    layout = info["onnx"]["layout"]
    assert layout["transform"] == "NCHW -> NHWC" and layout["transpose"] == [0, 2, 3, 1]
    assert layout["onnx_input_shape"] == [1, 1, 8, 8] and layout["tflite_input_shape"] == [1, 8, 8, 1]
    assert "transposed NCHW -> NHWC" in layout["data"]["--calib"] and "transposed" in layout["data"]["--val"]
    assert "the .tflite takes NHWC [1, 8, 8, 1]" in layout["note"] and "transposed (0, 2, 3, 1)" in layout["note"]
    # The converted float model agrees with onnxruntime; the classifier's flatten was folded into its weights.
    check = info["onnx"]["conversion"]["check"]
    assert check["passed"] and check["max_abs_diff"] < 1e-4 * max(check["output_max_abs"], 1.0)
    assert info["onnx"]["conversion"]["flatten_rewrites"] == 1
    ops = _opcodes(dense.model_path)
    assert "TRANSPOSE" not in ops and ops.count("CONV_2D") == 2 and ops.count("FULLY_CONNECTED") == 2
    from formicary.tflite import read_model

    ir = read_model(dense.model_path.read_bytes())
    tin = ir.tensors[ir.inputs[0]]
    assert tuple(tin.shape) == (1, 8, 8, 1) and tin.dtype == "int8"
    acc = report["accuracy"]
    assert acc["samples"] == 400 and "onnxruntime" in acc["method"]["float"]
    assert acc["float"] >= 0.95, acc
    assert abs(acc["float"] - acc["quantized"]) <= 0.01, acc


@needs_extra
@pytest.mark.tf
@pytest.mark.qemu
def test_onnx_cnn_bit_exact_on_qemu_m4(dense, nchw_data, arm_qemu_tools):
    from formicary.bench.verify import verify_model

    # The .tflite takes NHWC: the device is fed the same digits in that layout.
    r = verify_model(dense.model_path, target="qemu-m4", data=nchw_data["val_nhwc"], kernels="dsp")
    assert r["bit_exact"] and r["mismatches"] == 0 and r["inputs"] == 20, r


@needs_extra
@pytest.mark.tf
def test_block_pruned_torch_export_keeps_its_zero_blocks_for_the_sparse_kernels(tf, nchw_data, tmp_path):
    from formicary.codegen.generate import generate
    from formicary.codegen.ops.sparse import zero_block_fraction
    from formicary.compile import compile_model
    from formicary.tflite import read_model

    result = compile_model(BLOCKS60, tmp_path / "c", calib=str(nchw_data["calib"]), val=str(nchw_data["val"]))
    acc = result.report["accuracy"]
    assert acc["float"] >= 0.95 and abs(acc["float"] - acc["quantized"]) <= 0.01, acc
    ir = read_model(result.model_path.read_bytes())
    fractions = {op.index: zero_block_fraction(np.asarray(ir.tensors[op.inputs[1]].data)) for op in ir.operators
                 if op.opcode in ("CONV_2D", "FULLY_CONNECTED")}
    # conv1 (one input channel) was not pruned; conv2, fc1, fc2 lost 60 % of their 4-channel blocks in PyTorch
    assert sorted(round(f, 2) for f in fractions.values()) == [0.0, 0.6, 0.6, 0.6], fractions
    chosen = {op.index: op.kernel for op in generate(result.model_path, tmp_path / "cg", kernels="reference").ops}
    sparse = [i for i, f in fractions.items() if f > 0.5]
    assert all(chosen[i] in ("fm_conv2d_sparse_s8", "fm_fully_connected_sparse_s8") for i in sparse), chosen


# ------------------------------------------------------------------------------------------ bad models

def _model(tmp_path: Path, nodes, shape, name: str = "bad.onnx", inits=(), out_shape=None) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape or shape)], list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.acme", 1)])
    model.ir_version = 8
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def _error(model: Path, tmp_path: Path, **options) -> FormicaryError:
    from formicary.compile import compile_model

    with pytest.raises(FormicaryError) as info:
        compile_model(model, tmp_path / "out", **options)
    return info.value


@needs_extra
def test_op_without_an_int8_kernel_is_named_before_converting(tmp_path):
    from onnx import helper

    path = _model(tmp_path, [helper.make_node("Relu", ["x"], ["r"], name="act"),
                             helper.make_node("Erf", ["r"], ["y"], name="gelu_erf")], [1, 4])
    err = _error(path, tmp_path, calib="synthetic")
    assert "Erf" in err.cause and "gelu_erf" in err.cause and "int8 TFLite Micro kernel" in err.cause
    assert "docs/models.md" in err.fix and "Conv" in err.fix
    assert err.details["ops"] == ["Erf"]


@needs_extra
def test_custom_op_is_named(tmp_path):
    from onnx import helper

    path = _model(tmp_path, [helper.make_node("FancyNorm", ["x"], ["y"], name="norm0", domain="com.acme")], [1, 4])
    err = _error(path, tmp_path, calib="synthetic")
    assert "com.acme::FancyNorm" in err.cause and "norm0" in err.cause and "standard ONNX ops" in err.fix


@needs_extra
def test_dynamic_input_shape_is_named_with_the_export_fix(tmp_path):
    from onnx import helper

    path = _model(tmp_path, [helper.make_node("Relu", ["x"], ["y"])], ["batch", 1, "height", "width"])
    err = _error(path, tmp_path, calib="synthetic")
    assert "'x'" in err.cause and "axis 2 (height)" in err.cause and "axis 3 (width)" in err.cause
    assert "torch.onnx.export" in err.fix and "make_dynamic_shape_fixed" in err.fix
    # a free batch axis alone is fine: one sample per inference
    from formicary.model.onnx_io import identify_onnx

    ok = identify_onnx(_model(tmp_path, [helper.make_node("Relu", ["x"], ["y"])], ["N", 4], name="batch.onnx"))
    assert ok.input_shape == (1, 4) and "fixed to 1" in ok.notes[0]


@needs_extra
def test_training_options_point_to_pruning_before_export(tmp_path, nchw_data):
    err = _error(DENSE, tmp_path, calib=str(nchw_data["calib"]), prune=0.5, train=str(nchw_data["calib"]))
    assert "--prune" in err.cause and "--train" in err.cause and "ONNX" in err.cause
    assert "before export" in err.fix and "PyTorch" in err.fix


def test_without_the_onnx_extra_the_error_names_the_pip_command(tmp_path, monkeypatch):
    from formicary.model import onnx_io

    real = onnx_io.find_spec
    monkeypatch.setattr(onnx_io, "find_spec", lambda name: None if name == "onnx2tf" else real(name))
    err = _error(DENSE, tmp_path, calib="synthetic")
    assert "onnx2tf" in err.cause and "pip install 'formicary[onnx]'" in err.fix


@needs_extra
def test_cli_json_error_for_a_bad_onnx_model(tmp_path, cli):
    from onnx import helper

    path = _model(tmp_path, [helper.make_node("Erf", ["x"], ["y"], name="e0")], [1, 4])
    proc = cli("compile", str(path), "--calib", "synthetic", "-o", str(tmp_path / "o"), "--json", timeout=120)
    assert proc.returncode != 0
    err = json.loads(proc.stdout)["error"] if proc.stdout.strip() else None
    assert err is not None and "Erf" in err["cause"] and "docs/models.md" in err["fix"], proc.stdout + proc.stderr


@needs_extra
@pytest.mark.parametrize("flatten,classifier", [("Flatten", "Gemm"), ("Reshape", "Gemm"), ("Flatten", "MatMul")])
def test_flatten_before_the_classifier_is_moved_into_its_weights(tmp_path, flatten, classifier):
    """The rewrite that keeps TRANSPOSE out of the .tflite leaves the ONNX model's outputs unchanged."""
    import onnx
    from onnx import helper, numpy_helper

    from formicary.model.onnx_io import _flatten_to_channels_last, onnxruntime_outputs

    rng = np.random.default_rng(0)
    w_conv = numpy_helper.from_array(rng.normal(size=(6, 2, 3, 3)).astype(np.float32), "wc")
    w_fc = rng.normal(size=(5, 6 * 4 * 3)).astype(np.float32)
    inits = [w_conv, numpy_helper.from_array(w_fc if classifier == "Gemm" else w_fc.T.copy(), "wf"),
             numpy_helper.from_array(np.array([1, -1], dtype=np.int64), "shape")]
    flat = (helper.make_node("Flatten", ["c"], ["f"], axis=1) if flatten == "Flatten" else
            helper.make_node("Reshape", ["c", "shape"], ["f"]))
    fc = (helper.make_node("Gemm", ["f", "wf"], ["y"], transB=1) if classifier == "Gemm" else
          helper.make_node("MatMul", ["f", "wf"], ["y"]))
    original = _model(tmp_path, [helper.make_node("Conv", ["x", "wc"], ["c"], pads=[1, 1, 1, 1]), flat, fc],
                      [1, 2, 4, 3], inits=inits, out_shape=[1, 5])
    model = onnx.load(str(original))
    assert _flatten_to_channels_last(model) == 1
    assert [n.op_type for n in model.graph.node][:3] == ["Conv", "Transpose", flatten]
    rewritten = tmp_path / "rewritten.onnx"
    onnx.save(model, str(rewritten))
    x = rng.normal(size=(3, 2, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(onnxruntime_outputs(rewritten, x), onnxruntime_outputs(original, x), rtol=1e-5,
                               atol=1e-5)


def _mixed_ops_rgb_model(path: Path) -> None:
    """A 3-channel (RGB) input and the ops of small vision nets: conv + BatchNorm + Clip(0, 6), depthwise conv,
    HardSwish, squeeze-excite (GlobalAveragePool, Sigmoid, Mul), residual Add, both poolings, Concat, LeakyRelu,
    Flatten, Gemm, Softmax."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = []

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    n = helper.make_node
    nodes = [
        n("Conv", ["x", const("w1", rng.normal(0, .3, (8, 3, 3, 3))), const("b1", np.zeros(8))], ["a"],
          pads=[1, 1, 1, 1]),
        n("BatchNormalization", ["a", const("g", np.ones(8)), const("be", np.full(8, .1)), const("m", np.zeros(8)),
                                 const("v", np.ones(8))], ["bn"]),
        n("Clip", ["bn", const("lo", 0.0), const("hi", 6.0)], ["r6"]),
        n("Conv", ["r6", const("wd", rng.normal(0, .3, (8, 1, 3, 3)))], ["dw"], pads=[1, 1, 1, 1], group=8),
        n("HardSwish", ["dw"], ["hs"]), n("GlobalAveragePool", ["hs"], ["gp"]), n("Sigmoid", ["gp"], ["sg"]),
        n("Mul", ["hs", "sg"], ["se"]), n("Add", ["se", "r6"], ["res"]),
        n("MaxPool", ["res"], ["mp"], kernel_shape=[2, 2], strides=[2, 2]),
        n("AveragePool", ["res"], ["ap"], kernel_shape=[2, 2], strides=[2, 2]),
        n("Concat", ["mp", "ap"], ["cat"], axis=1), n("LeakyRelu", ["cat"], ["lr"], alpha=0.1),
        n("Flatten", ["lr"], ["f"]),
        n("Gemm", ["f", const("wf", rng.normal(0, .1, (10, 256))), const("bf", np.zeros(10))], ["logits"], transB=1),
        n("Softmax", ["logits"], ["y"], axis=1)]
    graph = helper.make_graph(nodes, "rgb", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


@needs_extra
@pytest.mark.tf
def test_rgb_model_with_mixed_ops_converts_offline_and_checked(tf, tmp_path):
    """onnx2tf fetches sample photos from the network for 3-channel inputs; formicary must not need them."""
    from formicary.compile import compile_model

    _mixed_ops_rgb_model(tmp_path / "rgb.onnx")
    np.savez(tmp_path / "calib.npz", x=np.random.default_rng(1).random((16, 3, 8, 8), dtype=np.float32))
    result = compile_model(tmp_path / "rgb.onnx", tmp_path / "out", calib=str(tmp_path / "calib.npz"))
    info = result.report["compile"]
    assert info["tflm_check"] == "passed" and info["onnx"]["conversion"]["check"]["passed"]
    assert info["onnx"]["layout"]["tflite_input_shape"] == [1, 8, 8, 3]
    ops = _opcodes(result.model_path)
    assert {"DEPTHWISE_CONV_2D", "HARD_SWISH", "MEAN", "LOGISTIC", "CONCATENATION", "SOFTMAX"} <= set(ops), ops
    assert "TRANSPOSE" not in ops and "BATCH_NORMALIZATION" not in ops


@needs_extra
@pytest.mark.tf
def test_mlp_with_a_free_batch_axis(tf, tmp_path):
    """A rank-2 input keeps its layout; the free batch axis is fixed to 1. (The TFLM arena measurement of this
    model segfaulted before its probes ran in child processes: formicary.oracle.tflm._runs_with_arena_isolated.)"""
    from onnx import helper, numpy_helper

    from formicary.compile import compile_model

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, .2, shape).astype(np.float32), name)
             for name, shape in (("w1", (32, 64)), ("b1", (32,)), ("w2", (10, 32)), ("b2", (10,)))]
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["a"], transB=1), helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], transB=1)]
    path = _model(tmp_path, nodes, ["batch", 64], name="mlp.onnx", inits=inits, out_shape=["batch", 10])
    np.savez(tmp_path / "calib.npz", x=rng.random((32, 64), dtype=np.float32), y=rng.integers(0, 10, 32))
    result = compile_model(path, tmp_path / "out", calib=str(tmp_path / "calib.npz"), val=str(tmp_path / "calib.npz"))
    info = result.report["compile"]
    assert info["onnx"]["layout"]["transform"] == "unchanged" and info["onnx"]["layout"]["note"] is None
    assert any("fixed to 1" in w for w in info["warnings"])
    assert _opcodes(result.model_path) == ["FULLY_CONNECTED", "FULLY_CONNECTED"]
    assert result.report["tflm_arena_bytes"] > 0
    acc = result.report["accuracy"]  # random weights: only the agreement of float and int8 means anything
    assert abs(acc["float"] - acc["quantized"]) <= 0.07, acc


def test_data_layouts_read_for_the_tflite():
    from formicary.model.onnx_io import Layout, _layout, to_model_layout

    layout = _layout((1, 3, 8, 6), (1, 8, 6, 3))
    assert layout.perm == (0, 2, 3, 1) and layout.name == "NCHW -> NHWC"
    nchw = np.arange(2 * 3 * 8 * 6, dtype=np.float32).reshape(2, 3, 8, 6)
    x, how = to_model_layout(nchw, layout, "--calib")
    assert x.shape == (2, 8, 6, 3) and np.array_equal(x[1, 4, 5], nchw[1, :, 4, 5]) and "transposed" in how
    same, how = to_model_layout(x, layout, "--calib")  # already NHWC: kept
    assert same is x and "used as is" in how
    one_channel = _layout((1, 1, 8, 8), (1, 8, 8, 1))
    x, how = to_model_layout(np.zeros((4, 8, 8), np.float32), one_channel, "--val")
    assert x.shape == (4, 8, 8, 1) and "without the channel axis" in how
    assert _layout((1, 64), (1, 64)) == Layout((1, 64), (1, 64), None)
    with pytest.raises(FormicaryError) as err:
        to_model_layout(np.zeros((4, 5, 5), np.float32), layout, "--val")
    assert "--val" in err.value.cause and "[3, 8, 6] (ONNX layout)" in err.value.cause


def test_feature_map_outputs_are_compared_channels_last():
    """onnx2tf gives feature-map outputs channel-last: the conversion check must compare like with like."""
    from formicary.model.onnx_io import align_output_layout

    rng = np.random.default_rng(0)
    nchw = rng.normal(size=(3, 4, 6, 5)).astype(np.float32)
    nhwc = nchw.transpose(0, 2, 3, 1)
    ref, name = align_output_layout(nchw, nhwc + 1e-6)
    assert name == "NCHW -> NHWC" and np.array_equal(ref, nhwc)
    cube = rng.normal(size=(2, 4, 4, 4)).astype(np.float32)  # both layouts fit: the closer one wins
    assert align_output_layout(cube, cube.transpose(0, 2, 3, 1))[1] == "NCHW -> NHWC"
    assert align_output_layout(cube, cube.copy())[1] == "unchanged"
    logits = rng.normal(size=(5, 10)).astype(np.float32)
    assert align_output_layout(logits, logits)[1] == "unchanged"
    with pytest.raises(FormicaryError, match="output shape"):
        align_output_layout(logits, np.zeros((5, 12), np.float32))


@needs_extra
@pytest.mark.tf
def test_upsampling_model_with_a_feature_map_output_is_checked_and_bit_exact(tf, tmp_path):
    """A decoder (Conv -> Relu -> ConvTranspose stride 2 -> Resize nearest): a 4-D NCHW output, which onnx2tf
    turns NHWC; the conversion check passes in that layout and formicary-rt runs it bit-exact with TFLM."""
    from onnx import helper, numpy_helper

    from formicary.bench.verify import verify_model
    from formicary.compile import compile_model

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, .3, shape).astype(np.float32), name)
             for name, shape in (("w1", (6, 2, 3, 3)), ("b1", (6,)), ("wt", (6, 4, 2, 2)), ("bt", (4,)))]
    inits.append(numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"))
    n = helper.make_node
    nodes = [n("Conv", ["x", "w1", "b1"], ["a"], pads=[1, 1, 1, 1]), n("Relu", ["a"], ["r"]),
             n("ConvTranspose", ["r", "wt", "bt"], ["u"], kernel_shape=[2, 2], strides=[2, 2]),
             n("Resize", ["u", "", "scales"], ["y"], mode="nearest")]
    path = _model(tmp_path, nodes, [1, 2, 6, 6], name="decoder.onnx", inits=inits, out_shape=[1, 4, 24, 24])
    np.savez(tmp_path / "calib.npz", x=rng.random((16, 2, 6, 6), dtype=np.float32))
    result = compile_model(path, tmp_path / "out", calib=str(tmp_path / "calib.npz"))
    check = result.report["compile"]["onnx"]["conversion"]["check"]
    assert check["passed"] and check["output_layout"] == "NCHW -> NHWC", check
    assert {"TRANSPOSE_CONV", "RESIZE_NEAREST_NEIGHBOR"} <= set(_opcodes(result.model_path))
    report = verify_model(result.model_path, inputs=3, sanitize=True, measure_tflm_arena=False)
    assert report["bit_exact"] and report["inputs"] == 3, report
