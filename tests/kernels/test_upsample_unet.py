"""A tiny U-Net, the way Keras users write one (tf_keras, converted int8 full-integer by the TF converter):
conv, max-pool and strided-conv downsampling, a bottleneck, then Conv2DTranspose up-convolutions (2x2 VALID and
3x3 SAME, both stride 2), UpSampling2D nearest and bilinear, and concatenation skips. Bit-exact with TFLM on the
host (reference and dsp kernel sets, sanitized) and on qemu-m4 (one board run, with the per-layer profile that
shows the TRANSPOSE_CONV layers and their scratch)."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.tf, pytest.mark.xdist_group("upsample-unet")]

UPSAMPLE_OPS = {"TRANSPOSE_CONV", "RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR", "CONCATENATION"}


def build_unet(tf, hw: int = 16, seed: int = 0) -> bytes:
    import tf_keras as keras
    from tf_keras import layers as L

    keras.utils.set_random_seed(seed)
    inp = keras.Input((hw, hw, 1), batch_size=1)  # a fixed batch: the converter folds output_shape to a constant
    c1 = L.Conv2D(8, 3, padding="same", activation="relu")(inp)
    c2 = L.Conv2D(16, 3, padding="same", activation="relu")(L.MaxPooling2D(2)(c1))
    down = L.Conv2D(16, 3, strides=2, padding="same", activation="relu")(c2)
    bottleneck = L.Conv2D(16, 3, padding="same", activation="relu")(down)
    u1 = L.Conv2DTranspose(16, 2, strides=2, padding="valid")(bottleneck)       # classic U-Net up-conv
    d1 = L.Conv2D(8, 3, padding="same", activation="relu")(L.Concatenate()([u1, c2]))
    up_conv = L.Conv2DTranspose(8, 3, strides=2, padding="same", activation="relu")(d1)
    up_nearest = L.UpSampling2D(2, interpolation="nearest")(d1)
    up_bilinear = L.UpSampling2D(2, interpolation="bilinear")(d1)
    merged = L.Concatenate()([up_conv, up_nearest, up_bilinear, c1])
    out = L.Conv2D(1, 1, activation="sigmoid")(merged)
    model = keras.Model(inp, out)

    rng = np.random.default_rng(seed)
    calib = [rng.uniform(0, 1, (1, hw, hw, 1)).astype(np.float32) for _ in range(16)]
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([x] for x in calib)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


@pytest.fixture(scope="module")
def unet(tf) -> bytes:
    return build_unet(tf)


def test_unet_int8_bit_exact_on_host(unet):
    from formicary.bench.verify import verify_model
    from formicary.tflite import read_model

    ir = read_model(unet)
    codes = [op.opcode for op in ir.operators]
    assert UPSAMPLE_OPS <= set(codes), codes
    assert codes.count("TRANSPOSE_CONV") == 2
    tc = [op for op in ir.operators if op.opcode == "TRANSPOSE_CONV"]
    assert {op.options["padding"] for op in tc} == {"SAME", "VALID"}
    assert all(op.options.get("half_pixel_centers") for op in ir.operators if op.opcode.startswith("RESIZE"))
    for kernels in ("reference", "dsp"):
        r = verify_model(unet, inputs=3, seed=1, sanitize=True, measure_tflm_arena=False, kernels=kernels)
        assert r["sanitize"] and r["bit_exact"], (kernels, r)


@pytest.mark.qemu
@pytest.mark.usefixtures("arm_qemu_tools")
def test_unet_int8_bit_exact_on_qemu_m4(unet, tmp_path):
    from formicary.bench.runner import run_bench
    from formicary.tflite import read_model

    path = tmp_path / "unet.tflite"
    path.write_bytes(unet)
    ir = read_model(unet)
    rng = np.random.default_rng(2)
    data = tmp_path / "inputs.npz"
    np.savez(data, x=rng.integers(-128, 128, (3, *ir.input_tensors[0].shape[1:])).astype(np.int8))
    r = run_bench(path, "qemu-m4", data=data, runs=3, warmup=0, profile=True, store=False,
                  out_dir=tmp_path / "bench")
    assert r["bit_exact"], r.get("mismatches")
    assert r["firmware"]["kernels"] == "dsp"
    layers = {lay["index"]: lay for lay in r["layers"]}
    for op in ir.operators:
        if op.opcode == "TRANSPOSE_CONV":
            lay = layers[op.index]
            # the reference scatter: a few instructions per MAC, and every MAC counted
            assert lay["macs"] > 0 and 1.0 < lay["median"] / lay["macs"] < 60.0, lay
