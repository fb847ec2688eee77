"""The helium kernels on qemu-m55 (real MVE instructions, incl. the inline-assembly paths the host build replaces by
C): single-op models covering each path, bit for bit vs TFLM through `verify --target qemu-m55 --kernels helium`."""
from __future__ import annotations

import pytest
from formicary.bench.verify import verify_model
from formicary.codegen import quant

from tests.kernels.test_conv_s8 import _conv_model
from tests.kernels.test_helium import _add_model
from tests.support.tfl_builder import Op, T, build

pytestmark = pytest.mark.qemu


def _conv(depthwise: bool, **kw) -> bytes:
    c = {"n": 1, "h": 25, "w": 5, "kh": 1, "kw": 1, "sh": 1, "sw": 1, "dh": 1, "dw": 1, "pad": "SAME", "in_c": 64,
         "out_c": 64, "dm": 1, "groups": 1, "act": "RELU", "per_channel": True, "in_scale": 0.05, "in_zp": -3,
         "out_scale": 0.1, "out_zp": 10, "bias_bits": 16, "has_bias": True, "seed": 3}
    c.update(kw)
    c["oh"] = quant.compute_out_size(c["pad"], c["h"], c["kh"], c["sh"], c["dh"])
    c["ow"] = quant.compute_out_size(c["pad"], c["w"], c["kw"], c["sw"], c["dw"])
    c["f_scale"] = [0.01 * (1 + (i % 5)) for i in range(c["out_c"] if c["per_channel"] else 1)]
    return _conv_model(c, depthwise)


def _maxpool() -> bytes:
    return build([T((1, 9, 7, 19), scale=[0.05], zero_point=[-3]), T((1, 5, 4, 19), scale=[0.05], zero_point=[-3])],
                 [Op("MAX_POOL_2D", [0], [1], "Pool2DOptions",
                     {"Padding": 0, "StrideW": 2, "StrideH": 2, "FilterWidth": 3, "FilterHeight": 3,
                      "FusedActivationFunction": 1})],
                 [0], [1])


MODELS = {
    "conv_1x1_kws": lambda: _conv(False),  # plain GEMM, assembly tile
    "conv_1x1_tail": lambda: _conv(False, in_c=17, out_c=5, h=3, w=3),  # K tail, predicated channels
    "conv_1x1_k_lt_16": lambda: _conv(False, in_c=8, out_c=8, h=3, w=1),  # the C tile
    "conv_band_kws_first": lambda: _conv(False, h=49, w=10, in_c=1, kh=10, kw=4, sh=2, sw=2),
    "conv_im2col": lambda: _conv(False, h=7, w=6, in_c=24, out_c=9, kh=3, kw=3, in_zp=-128),
    "dw_3x3_kws": lambda: _conv(True, kh=3, kw=3),  # assembly pixel loop
    "dw_3x3_tail": lambda: _conv(True, h=6, w=4, in_c=19, out_c=19, kh=3, kw=3, in_zp=-128),
    "dw_strided": lambda: _conv(True, h=9, w=7, in_c=24, out_c=24, kh=3, kw=3, sh=2, sw=2),
    "dw_5x2_valid": lambda: _conv(True, h=9, w=7, in_c=16, out_c=16, kh=5, kw=2, pad="VALID"),
    "dw_dilated": lambda: _conv(True, h=9, w=9, in_c=16, out_c=16, kh=3, kw=3, dh=2, dw=2),
    "add": lambda: _add_model((2, 3, 7, 17), (2, 3, 7, 17), (2, 3, 7, 17), 0.7, 127, 0.002, -128, 0.03, 5, "NONE"),
    "add_broadcast": lambda: _add_model((1, 1, 5, 1), (1, 3, 1, 6), (1, 3, 5, 6), 0.05, -3, 0.2, 10, 0.1, -128,
                                        "RELU6"),
    "max_pool": _maxpool,
}


@pytest.mark.parametrize("name", list(MODELS))
def test_helium_kernels_on_qemu_m55(tmp_path, name):
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(MODELS[name]())
    r = verify_model(path, inputs=3, seed=1, target="qemu-m55", kernels="helium", measure_tflm_arena=False)
    assert r["bit_exact"], r
