"""The compiler on real small models (sklearn digits CNN, trained once per session) and the KWS .tflite:
every option, checked on the produced flatbuffer itself, not on what the report claims."""
from __future__ import annotations

import json

import numpy as np
import pytest

from formicary.compile import compile_model
from formicary.oracle.tflm import run_tflm
from formicary.tflite import read_model

# the digits CNN trained once (tests/compile/conftest.py): every test that uses it on one xdist worker
pytestmark = [pytest.mark.tf, pytest.mark.xdist_group("digits")]

CONTRACT_KEYS = ["model_bytes", "weights_bytes", "params", "macs", "ops", "layers", "sparsity", "quantization",
                 "tflm_arena_bytes", "energy_floor_uj"]


def _tflm_top1(model_bytes: bytes, val_npz) -> float:
    """Independent accuracy check: quantize by hand, run each sample through TFLM, compare argmax."""
    data = np.load(val_npz)
    ir = read_model(model_bytes)
    tin = ir.tensors[ir.inputs[0]]
    x = data["x"]
    if tin.dtype != "float32":
        info = np.iinfo(tin.dtype)
        x = np.clip(np.round(x / tin.quant.scale[0]) + tin.quant.zero_point[0], info.min, info.max)
    x = x.astype(tin.dtype)
    outs = run_tflm(model_bytes, [x[i:i + 1] for i in range(len(x))])
    pred = np.array([np.argmax(o[0]) for o in outs])
    return float((pred == data["y"]).mean())


def test_demo_prune50_int8_loses_at_most_2_points(digits, kernels_of, compiled):
    """The main job: 50 % of the channels pruned + int8 keeps accuracy within 2 points of the float model, says
    so, and the flatbuffer is really narrower than the dense int8 model (fewer weights, fewer MACs)."""
    report = json.loads(digits.demo.report_path.read_text())
    acc = report["accuracy"]
    assert acc["float"] >= 0.93, acc                           # the trained CNN is a real classifier
    assert acc["float"] - acc["quantized"] <= 0.02, acc
    assert acc["drop_points"] == pytest.approx((acc["float"] - acc["quantized"]) * 100, abs=0.01)
    model = digits.demo.model_path.read_bytes()
    assert _tflm_top1(model, digits.val) == pytest.approx(acc["quantized"], abs=1e-4)
    info = report["compile"]
    assert info["prune"]["structure"] == "channel"
    assert info["prune"]["channels"] == {"conv1": [4, 8], "conv2": [8, 16], "fc1": [16, 32], "probs": [10, 10]}
    dense = compiled(calib=str(digits.calib), val=str(digits.val))
    pruned_w = sum(w.size for w in kernels_of(model).values())
    dense_w = sum(w.size for w in kernels_of(dense.model_path.read_bytes()).values())
    assert pruned_w <= dense_w / 1.4 and report["weights_bytes"] <= dense.report["weights_bytes"] / 1.4
    assert report["macs"] <= dense.report["macs"] / 1.4
    assert acc["quantized"] >= dense.report["accuracy"]["quantized"] - 0.01   # within 1 point of dense int8
    assert info["tflm_check"] == "passed" and info["quantize"] == "int8"
    ir = read_model(model)
    assert ir.tensors[ir.inputs[0]].dtype == "int8" and ir.tensors[ir.outputs[0]].dtype == "int8"
    assert {op.opcode for op in ir.operators} <= {"CONV_2D", "FULLY_CONNECTED", "RESHAPE", "SOFTMAX"}
    print(f"demo: {digits.demo_seconds:.1f} s in-process, accuracy {acc}")


def test_report_has_the_contract_keys(digits):
    report = json.loads(digits.demo.report_path.read_text())
    assert {"accuracy", "compile"} <= set(report)
    missing = [k for k in CONTRACT_KEYS if k not in report]
    assert not missing, missing
    assert report["model_bytes"] == digits.demo.model_path.stat().st_size


def test_demo_cli_is_byte_identical_across_processes(digits, cli, tmp_path):
    """`formicary demo --json` in a fresh process (training included) gives the very same model.tflite."""
    proc = cli("demo", "-o", str(tmp_path / "demo"), "--compile-only", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["report"]["accuracy"] == json.loads(digits.demo.report_path.read_text())["accuracy"]
    assert (tmp_path / "demo" / "compiled" / "model.tflite").read_bytes() == digits.demo.model_path.read_bytes()


def test_same_seed_same_bytes_other_seed_other_bytes(digits, tmp_path):
    opts = dict(train=str(digits.train), calib=str(digits.calib), prune=0.5, epochs=1)
    a = compile_model(digits.model, tmp_path / "a", seed=7, **opts).model_path.read_bytes()
    b = compile_model(digits.model, tmp_path / "b", seed=7, **opts).model_path.read_bytes()
    c = compile_model(digits.model, tmp_path / "c", seed=8, **opts).model_path.read_bytes()
    assert a == b
    assert a != c  # the seed really drives the fine-tuning


def test_prune_2_4(digits, compiled, kernels_of):
    res = compiled(train=str(digits.train), calib=str(digits.calib), val=str(digits.val),
                   prune_structure="2:4", epochs=2)
    info = res.report["compile"]["prune"]
    assert info["structure"] == "2:4" and info["skipped_layers"] == ["conv1"]  # 1 input channel: no group of 4
    checked = 0
    for name, w in kernels_of(res.model_path.read_bytes()).items():
        rows = w.reshape(w.shape[0], -1) if w.ndim == 2 else w.reshape(-1, w.shape[-1])  # TFLite: [out, …, in]
        if rows.shape[1] < 4:
            continue
        groups = np.pad(rows, ((0, 0), (0, (-rows.shape[1]) % 4))).reshape(rows.shape[0], -1, 4)
        assert ((groups != 0).sum(axis=2) <= 2).all(), name
        checked += 1
    assert checked == 3
    assert res.report["accuracy"]["quantized"] >= res.report["accuracy"]["float"] - 0.03


def test_cluster(digits, compiled, kernels_of):
    res = compiled(train=str(digits.train), calib=str(digits.calib), val=str(digits.val), cluster=8, epochs=1)
    assert res.report["compile"]["cluster"]["clusters"] == 8
    for name, w in kernels_of(res.model_path.read_bytes()).items():
        per_channel = [np.unique(w[i]).size for i in range(w.shape[0])]
        assert max(per_channel) <= 8, (name, per_channel)
    assert res.report["accuracy"]["quantized"] >= 0.9


def test_qat(digits, compiled):
    res = compiled(train=str(digits.train), calib=str(digits.calib), val=str(digits.val), qat=True, epochs=1)
    assert res.report["compile"]["qat"]["scheme"].startswith("QAT")
    assert res.report["accuracy"]["quantized"] >= res.report["accuracy"]["float"] - 0.03


def test_prune_cluster_qat_compose(digits, compiled, kernels_of):
    """Prune-, cluster- and sparsity-preserving QAT: zeros and ≤ K levels survive into the int8 model."""
    res = compiled(train=str(digits.train), calib=str(digits.calib), val=str(digits.val), prune=0.5, cluster=8,
                   qat=True, epochs=1)
    assert "preserving" in res.report["compile"]["qat"]["scheme"]
    ws = kernels_of(res.model_path.read_bytes())
    zeros = sum(int((w == 0).sum()) for w in ws.values()) / sum(w.size for w in ws.values())
    assert zeros >= 0.45, zeros
    for name, w in ws.items():
        assert max(np.unique(w[i]).size for i in range(w.shape[0])) <= 9, name  # 8 centroids + the zeros
    assert res.report["accuracy"]["quantized"] >= 0.9


def test_int16x8_from_savedmodel(digits, digits_savedmodel, compiled, kernels_of):
    res = compiled(digits_savedmodel, calib=str(digits.calib), val=str(digits.val), quantize="int16x8")
    ir = read_model(res.model_path.read_bytes())
    assert ir.tensors[ir.inputs[0]].dtype == "int16"
    assert all(w.dtype == np.int8 for w in kernels_of(res.model_path.read_bytes()).values())
    acc = res.report["accuracy"]
    assert abs(acc["float"] - acc["quantized"]) <= 0.01
    assert res.report["compile"]["input_kind"] == "savedmodel"


def test_float32_from_h5_with_board(digits, digits_h5, compiled):
    res = compiled(digits_h5, val=str(digits.val), quantize="float32", board="qemu-m4")
    ir = read_model(res.model_path.read_bytes())
    assert ir.tensors[ir.inputs[0]].dtype == "float32"
    acc = res.report["accuracy"]
    assert acc["quantized"] == pytest.approx(acc["float"], abs=0.0051)  # same float math, TF vs TFLM
    assert "board_fit" in res.report and res.report["compile"]["board"] == "qemu-m4"
    assert res.report["compile"]["input_kind"] == "h5"


def test_calib_synthetic_warns_loudly(digits, compiled, capfd):
    capfd.readouterr()
    res = compiled(calib="synthetic", val=str(digits.val))
    assert "warning:" in capfd.readouterr().err
    assert any("SYNTHETIC" in w for w in res.warnings)
    assert res.report["compile"]["calibration"] == "synthetic random inputs"
    assert _tflm_top1(res.model_path.read_bytes(), digits.val) == pytest.approx(
        res.report["accuracy"]["quantized"], abs=1e-4)


def _bin_folder(root, x: np.ndarray, y: np.ndarray):
    """An MLPerf-Tiny-style folder: one raw int8 .bin per sample and y_labels.csv (`file,n_classes,label`)."""
    root.mkdir(parents=True)
    rows = []
    for i, (sample, label) in enumerate(zip(x, y, strict=True)):
        name = f"s{i:05d}_{label}.bin"
        (root / name).write_bytes(sample.astype(np.int8).tobytes())
        rows.append(f"{name},10,{label}\n")
    (root / "y_labels.csv").write_text("".join(rows))
    return root


def test_mlperf_bin_folders_feed_a_keras_model(digits, tmp_path, tf):
    """.bin folders of raw int8 pixels (0..16) for --train/--calib/--val on a model that rescales them."""
    import tf_keras

    trained = tf_keras.models.load_model(digits.model)
    model = tf_keras.Sequential([tf_keras.layers.Rescaling(1 / 16.0, input_shape=(8, 8, 1))] + trained.layers)
    model.save(tmp_path / "raw_digits.keras")
    folders = {}
    for role, path in (("train", digits.train), ("calib", digits.calib), ("val", digits.val)):
        d = np.load(path)
        folders[role] = str(_bin_folder(tmp_path / role, np.round(d["x"] * 16), d["y"]))
    res = compile_model(tmp_path / "raw_digits.keras", tmp_path / "out", prune=0.5, epochs=1, **folders)
    acc = res.report["accuracy"]
    assert acc["float"] >= 0.93 and acc["float"] - acc["quantized"] <= 0.03, acc
    assert res.report["compile"]["val"]["samples"] == 400
    assert res.report["compile"]["prune"]["achieved"] >= 0.5
