"""formicary.analysis on the MLPerf Tiny KWS model: exact counts, measured arena, energy floor, fit."""
from __future__ import annotations

import json
import math
from importlib import resources

import numpy as np
import pytest
from formicary.analysis import analyse
from formicary.analysis.fit import board_fit
from formicary.errors import FormicaryError
from formicary.oracle.tflm import measure_arena
from formicary.tflite import read_model

CONTRACT = ["model_bytes", "weights_bytes", "params", "macs", "ops", "layers", "sparsity", "quantization",
            "tflm_arena_bytes", "energy_floor_uj", "board_fit", "tflm_compatible", "tflm_error"]


@pytest.fixture(scope="module")
def report(kws_bytes):
    return analyse(kws_bytes, "nucleo-l4r5zi")


def test_kws_macs_exact(report):
    assert report["macs"] == 2_656_768
    # hand check: first conv 25*5*64 outputs × 10*4*1 window, depthwise 25*5*64 × 3*3, fc 64*12
    assert report["layers"][0]["macs"] == 25 * 5 * 64 * 10 * 4 * 1
    assert report["layers"][1]["macs"] == 25 * 5 * 64 * 3 * 3
    assert report["layers"][11]["macs"] == 64 * 12
    assert report["ops"] == {"CONV_2D": 5, "DEPTHWISE_CONV_2D": 4, "AVERAGE_POOL_2D": 1, "RESHAPE": 1,
                             "FULLY_CONNECTED": 1, "SOFTMAX": 1}
    # pool/softmax carry arithmetic but no MACs
    assert report["layers"][9]["macs"] == 0 and report["layers"][9]["adds"] == 64 * (25 * 5 - 1)


def test_sizes_and_params_match_the_flatbuffer(report, kws_bytes):
    ir = read_model(kws_bytes)
    assert report["model_bytes"] == len(kws_bytes)
    assert report["weights_bytes"] == sum(t.nbytes for t in ir.tensors if t.is_constant)
    # conv0 64*10*4+64, 4 dw 9*64+64, 4 pw 64*64+64, fc 12*64+12
    assert report["params"] == 2624 + 4 * 640 + 4 * 4160 + 780


def test_sparsity_counts_zero_weights(report, kws_bytes):
    ir = read_model(kws_bytes)
    w = ir.tensors[ir.operators[2].inputs[1]]
    assert w.quant.zero_point.max() == 0  # symmetric int8 weights: zero is q == 0
    expected = np.count_nonzero(w.data == 0) / w.numel
    assert report["layers"][2]["sparsity"] == pytest.approx(expected)
    assert 0 <= report["sparsity"]["overall"] < 0.05  # the reference model is not pruned


def test_quantization_per_channel_listed_in_full(report):
    conv = report["layers"][0]
    weights = next(t for t in conv["tensors"] if t["role"] == "weights")
    q = weights["quantization"]
    assert q["scheme"] == "per-channel" and q["channels"] == 64 and len(q["scale"]) == 64 and q["axis"] == 0
    assert report["quantization"]["precision"] == "int8"
    assert report["quantization"]["inputs"][0]["dtype"] == "int8"
    assert report["quantization"]["inputs"][0]["zero_point"] == 83


def test_arena_is_the_interpreters(report, kws_bytes):
    assert report["tflm_compatible"] is True and report["tflm_error"] is None
    assert report["tflm_arena_bytes"] == measure_arena(kws_bytes)
    assert 16_000 <= report["tflm_arena_bytes"] <= 40_000


def test_energy_floor_recomputed_from_the_table(report):
    table = json.loads(resources.files("formicary.analysis").joinpath("energy_table.json").read_text())
    # Independent recomputation: int8 MAC = int8 mult + int32 add; element-wise ops as adds/mults.
    macs = 2_656_768
    adds = sum(layer["adds"] for layer in report["layers"])
    mults = sum(layer["mults"] for layer in report["layers"])
    # pool: 64 outputs × 124 adds + 64 mults; softmax: 12 adds + 24 mults
    assert (adds, mults) == (64 * 124 + 12, 64 + 24)
    acts = 49 * 10 + 8000 * 9 + 64 + 64 + 12 + 12   # every activation tensor, int8
    moved = report["weights_bytes"] + 2 * acts
    working = report["weights_bytes"] + 2 * 8000     # weights + largest op's input+output
    assert 32_768 < working <= 1_048_576              # → the 1 MB SRAM row
    for node, mem_pj in (("45nm", 100), ("7nm", 14)):
        ops = table["ops"]
        compute = (macs + mults) * ops["int8_mult"][node] + (macs + adds) * ops["int32_add"][node]
        memory = math.ceil(moved / 8) * mem_pj
        assert report["energy_floor_uj"][node] == pytest.approx((compute + memory) * 1e-6, rel=1e-6)
    # hand-checked layer: conv0 at 45 nm = 320,000 × (0.2 + 0.1) pJ = 96,000 pJ
    assert report["layers"][0]["energy_compute_pj"]["45nm"] == pytest.approx(96_000.0)
    assert report["energy_floor_uj"]["7nm"] < report["energy_floor_uj"]["45nm"]


def test_table_cites_its_sources():
    table = json.loads(resources.files("formicary.analysis").joinpath("energy_table.json").read_text())
    assert "Horowitz" in table["sources"]["45nm"] and "ISSCC 2014" in table["sources"]["45nm"]
    assert table["ops"]["fp32_mult"] == {"45nm": 3.7, "7nm": 1.31}
    assert table["ops"]["bf16_add"]["45nm"] is None


def test_contract_keys_stable(report):
    for key in CONTRACT:
        assert key in report, key
    assert set(report["energy_floor_uj"]) == {"45nm", "7nm"}
    json.dumps(report)  # plain JSON, no numpy leftovers
    layer_keys = {"index", "op", "tensors", "params", "weights_bytes", "macs", "adds", "mults", "sparsity",
                  "support", "precision", "energy_compute_pj"}
    assert layer_keys <= set(report["layers"][0])


def test_fits_nucleo_l4r5zi(report):
    fit = report["board_fit"]
    assert fit["fits"] is True and fit["reason"] is None
    assert fit["ram"]["needed_bytes"] == report["tflm_arena_bytes"]
    assert fit["ram"]["available_bytes"] == 655_360 and fit["flash"]["needed_bytes"] == report["model_bytes"]
    assert fit["margin_bytes"] == min(fit["flash"]["margin_bytes"], fit["ram"]["margin_bytes"])


def test_fit_logic_too_small():
    fit = board_fit(board_name="tiny", flash_available=32_768, ram_available=16_384, flash_needed=53_936,
                    ram_needed=24_272, ram_method="m")
    assert fit["fits"] is False
    assert fit["flash"]["margin_bytes"] == -21_168 and fit["ram"]["margin_bytes"] == -7_888
    assert "21,168 B too many" in fit["reason"] and "7,888 B too many" in fit["reason"]
    unknown = board_fit(board_name="b", flash_available=10**6, ram_available=10**6, flash_needed=1,
                        ram_needed=None, ram_method="m")
    assert unknown["fits"] is False and "unknown" in unknown["reason"]


def test_unknown_op_reported_not_raised(unknown_op_model):
    r = analyse(unknown_op_model)
    assert r["tflm_compatible"] is False and r["tflm_arena_bytes"] is None
    assert r["unknown_ops"] == ["LSH_PROJECTION"]
    assert "Didn't find op for builtin opcode 'LSH_PROJECTION'" in r["tflm_error"]["cause"]
    assert r["layers"][12]["support"]["tflm"] is False
    assert r["macs"] == 2_656_768


@pytest.mark.parametrize("mutate", [lambda b: b[: len(b) // 3], lambda b: bytes(np.random.default_rng(0)
                                    .integers(0, 256, 4096, dtype=np.uint8)), lambda b: b"hello, not a model\n"])
def test_bad_input_one_error(kws_bytes, mutate):
    with pytest.raises(FormicaryError):
        analyse(mutate(kws_bytes))


def test_unknown_board(kws_bytes):
    with pytest.raises(FormicaryError):
        analyse(kws_bytes, "no-such-board", measure_arena=False)
