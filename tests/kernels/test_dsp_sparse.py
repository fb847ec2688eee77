"""The dsp set's block-sparse kernels (firmware/kernels/dsp/conv2d_sparse_s8.c, fully_connected_sparse_s8.c) vs
TFLM, bit for bit, in the ASan/UBSan host build: 1x1 and general filters, padding, strides, dilation, depths that
are not a multiple of 4, pixel and batch counts that are not a multiple of the 4-pixel panel, whole rows empty,
per-tensor and per-channel scales. And the rule: the dsp set takes its sparse kernels only from its measured
break-even (KernelSet.sparse_min_zero_blocks), else its dense kernels."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from formicary.bench.verify import verify_model
from formicary.codegen import generate, kernel_sets

from tests.kernels.test_sparse_s8 import _edge, conv_model, fc_model

DSP_ZERO = kernel_sets.kernel_set("dsp").sparse_min_zero_blocks


def source(model: bytes) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        generate(model, Path(tmp) / "g", kernels="dsp")
        return (Path(tmp) / "g" / "fm_model.c").read_text()


def check(model: bytes, seed: int, kernel: str) -> None:
    assert f"{kernel}(" in source(model)
    r = verify_model(model, inputs=3, seed=seed, sanitize=True, measure_tflm_arena=False, kernels="dsp")
    assert r["sanitize"] and r["bit_exact"], r


CONVS = [
    _edge(zero=0.8),                                                      # odd depth 7, dilation, padding, stride
    _edge(kh=1, kw=1, dh=1, sw=1, in_c=64, out_c=8, zero=0.85),           # 1x1, whole blocks, 30 pixels
    _edge(n=2, h=3, w=3, kh=2, kw=2, in_c=5, out_c=3, zero=0.9, pad="VALID", per_channel=False, has_bias=False),
    _edge(h=1, w=3, kh=1, kw=1, dh=1, sw=1, in_c=13, out_c=6, zero=1.0),  # every block zero, 3 pixels
    _edge(h=4, w=5, kh=3, kw=2, in_c=9, out_c=4, zero=0.8, in_zp=127, out_zp=-128, act="RELU6", seed=11),
]


@pytest.mark.parametrize("i", range(len(CONVS)))
def test_dsp_conv2d_sparse_bit_exact(i):
    check(conv_model(CONVS[i]), i, "fm_conv2d_sparse_s8")


@pytest.mark.parametrize("batches,accum,out,zero,per_channel", [
    (1, 64, 12, 0.8, False), (3, 33, 10, 0.8, True), (5, 70, 7, 0.9, False), (4, 24, 5, 1.0, True),
    (2, 17, 9, 0.85, True)])
def test_dsp_fully_connected_sparse_bit_exact(batches, accum, out, zero, per_channel):
    check(fc_model(batches, accum, out, zero, per_channel, "RELU", -7, 4, True, accum), accum,
          "fm_fully_connected_sparse_s8")


def test_dsp_keeps_dense_below_its_break_even():
    """At 50 % zero blocks the dense LDM/SMLAD kernels are faster on qemu-m4 (docs/kernels.md): dense is chosen."""
    assert DSP_ZERO is not None and DSP_ZERO > 0.5
    assert "fm_conv2d_s8(" in source(conv_model(_edge(kh=1, kw=1, dh=1, in_c=64, out_c=8, zero=0.5)))
    assert "fm_fully_connected_s8(" in source(fc_model(1, 64, 12, 0.5, False, "NONE", -7, 4, True, 1))
