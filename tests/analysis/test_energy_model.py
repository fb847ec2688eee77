"""The per-layer energy model (formicary.analysis.energy_model): a hand calculation, and the effects it exists to
show (int8 and pruning read fewer, cheaper weight bytes). Models are built with the flatbuffer builder: no
TensorFlow."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from formicary.analysis import analyse
from formicary.analysis.energy_model import layer_counts, model_energy
from formicary.tflite import read_model

from tests.support.energy_models import conv_fc_model

FORMICARY = str(Path(sys.executable).parent / "formicary")


def energy(model: bytes, kernels: str, arena: int = 200) -> dict:
    return model_energy(read_model(model), kernels=kernels, arena_bytes=arena, arena_method="test")


def test_hand_calculation_int8_reference():
    em = energy(conv_fc_model(), "reference")
    assert em["method"] == "modelled" and "Jouppi" in em["source"]["7nm"] and "Horowitz" in em["source"]["45nm"]
    assert em["weights_level"] == "flash (priced as 1 MB SRAM)" and em["activations_level"] == "8 KB SRAM"
    conv, fc = em["layers"]
    # Prices (pJ): int8 mult 0.2 / 0.07, int32 add 0.1 / 0.03, int32 mult 3.1 / 1.48; per 64-bit access (8 bytes):
    # flash = 1 MB SRAM 100 / 14, arena of 200 B = 8 KB SRAM 10 / 7.5.
    #
    # CONV_2D: P = 4x4 = 16 output pixels, OC = 4, K = 3*3*2 = 18, M = 16*4*18 = 1152 MACs.
    #   int8 mults 1152; int32 adds 1152 (accumulate) + 1152 (input offset) + 64 (bias) + 2*64 (requantization)
    #   = 2496; int32 mults 64 (requantization). Weights: each read once per output pixel = 1152 B, plus bias 4 B
    #   + multiplier/shift 8 B per output = 64*12 = 768 B. Activations: 1152 B read, 64 B written.
    assert conv["counts"] == {"macs": 1152, "ops": {"int32_add": 2496, "int32_mult": 64, "int8_mult": 1152},
                              "weight_read_bytes": 1152, "param_read_bytes": 768, "act_read_bytes": 1152,
                              "act_write_bytes": 64}
    c45 = 1152 * 0.2 + 2496 * 0.1 + 64 * 3.1                   # 678.4 pJ
    w45 = (1152 + 768) / 8 * 100                                # 24,000 pJ
    a45 = (1152 + 64) / 8 * 10                                  # 1,520 pJ
    c7 = 1152 * 0.07 + 2496 * 0.03 + 64 * 1.48                  # 250.24 pJ
    w7, a7 = (1152 + 768) / 8 * 14, (1152 + 64) / 8 * 7.5       # 3,360 pJ, 1,140 pJ
    assert conv["per_node"]["45nm"] == {"compute_pj": round(c45, 3), "weight_read_pj": w45, "activation_pj": a45,
                                        "total_pj": round(c45 + w45 + a45, 3),
                                        "data_movement_share": round((w45 + a45) / (c45 + w45 + a45), 4)}
    assert conv["per_node"]["7nm"]["total_pj"] == round(c7 + w7 + a7, 3)
    # FULLY_CONNECTED: 1 row x 3 units x depth 64 = 192 MACs; the reference loop adds the filter and the input
    # offset per MAC: int32 adds 192 + 2*192 + 3 (bias) + 6 (requantization) = 585; int32 mults 3.
    # Weights 192 B + 3*12 = 36 B; activations 192 B read, 3 B written.
    assert fc["counts"] == {"macs": 192, "ops": {"int32_add": 585, "int32_mult": 3, "int8_mult": 192},
                            "weight_read_bytes": 192, "param_read_bytes": 36, "act_read_bytes": 192,
                            "act_write_bytes": 3}
    f45 = (192 * 0.2 + 585 * 0.1 + 3 * 3.1) + 228 / 8 * 100 + 195 / 8 * 10   # 106.2 + 2,850 + 243.75
    assert fc["per_node"]["45nm"]["total_pj"] == round(f45, 3)
    total = em["total"]["45nm"]
    assert total["total_uj"] == round((c45 + w45 + a45 + f45) * 1e-6, 6)
    assert total["data_movement_share"] == round(1 - (c45 + 106.2) / (c45 + w45 + a45 + f45), 4)


def test_dsp_loops_reuse_weights_and_inputs():
    # dsp CONV_2D 2x2 micro-kernel: K = 18 padded to 20, 8 pixel pairs; the layer is small (72 B <= 1 KB) so
    # weights are pre-extended int16: 8 pairs x 4 channels x 20 x 2 B = 1,280 B read (vs reference 1,152 B of int8
    # read per pixel: the reuse over 2 pixels pays for the doubled width). FULLY_CONNECTED 4-row GEMV: 4 rows
    # (3 padded) x 64 x 2 B of weights, each input byte read once for the 4 rows.
    conv, fc = energy(conv_fc_model(), "dsp")["layers"]
    assert conv["counts"]["macs"] == 2 * 8 * 4 * 20 and conv["counts"]["weight_read_bytes"] == 8 * 4 * 20 * 2
    assert "int16" in conv["kernel"]
    assert conv["counts"]["act_read_bytes"] == 16 * 18 + 2 * 8 * 4 * 20 + 2 * 8 * 4 * 4
    assert fc["counts"]["weight_read_bytes"] == 4 * 64 * 2 and fc["counts"]["act_read_bytes"] == 64
    # no offset adds in the loops: dsp folds them into the bias
    assert fc["counts"]["ops"]["int32_add"] == 4 * 64 + 2 * 3


@pytest.mark.parametrize("kernels", ["reference", "dsp", "helium"])
def test_int8_reads_less_weight_energy_than_float32(kernels):
    i8, f32 = energy(conv_fc_model(), kernels), energy(conv_fc_model(dtype="float32"), kernels)
    for node in ("45nm", "7nm"):
        assert i8["total"][node]["weight_read_uj"] < 0.5 * f32["total"][node]["weight_read_uj"]
        assert i8["total"][node]["compute_uj"] < f32["total"][node]["compute_uj"]
    assert f32["layers"][0]["counts"]["ops"]["fp32_mult"] == 1152


def test_pruning_lowers_weight_reads():
    base = energy(conv_fc_model(), "reference")["total"]["45nm"]
    channels = energy(conv_fc_model(conv_out=2), "reference")["total"]["45nm"]  # half the conv's channels
    assert channels["weight_read_uj"] < 0.6 * base["weight_read_uj"]
    blocks = energy(conv_fc_model(fc_zero_blocks=0.75), "reference")
    fc = blocks["layers"][1]
    assert fc["kernel"].startswith("reference block-sparse")
    # 3 rows x 4 stored blocks x (4 values + 2 index bytes) = 72 B instead of 192 B
    assert fc["counts"]["weight_read_bytes"] == 72 and fc["counts"]["macs"] == 48
    assert blocks["total"]["45nm"]["weight_read_uj"] < base["weight_read_uj"]


def test_arena_size_picks_the_sram_level():
    ir = read_model(conv_fc_model())
    levels = [model_energy(ir, arena_bytes=a, arena_method="t")["activations_level"] for a in (8192, 8193, 40_000)]
    assert levels == ["8 KB SRAM", "32 KB SRAM", "1 MB SRAM"]


def test_kws_dsp_layers_and_alias(kws_model_path):
    r = analyse(kws_model_path, board="qemu-m4", measure_arena=False)
    em = r["energy_model"]
    assert em["kernels"] == "dsp" and em["board"] == "qemu-m4"
    assert em["arena_method"].startswith("lower bound") and em["activations_level"] == "32 KB SRAM"
    kinds = {layer["op"]: layer["kernel"] for layer in em["layers"]}
    assert kinds["RESHAPE"].startswith("alias") and kinds["DEPTHWISE_CONV_2D"].startswith("dsp depthwise 3x3")
    t = em["total"]["45nm"]
    assert 0.9 < t["data_movement_share"] < 1.0       # the talk's point, on a real model
    assert t["weight_read_uj"] > 10 * t["compute_uj"]
    ir = read_model(kws_model_path)
    assert layer_counts(ir, ir.operators[0], "helium").kernel.startswith("helium")


def test_inspect_json_and_human_view(kws_model_path):
    res = subprocess.run([FORMICARY, "inspect", str(kws_model_path), "--kernels", "reference", "--no-arena",
                          "--json"], capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    em = json.loads(res.stdout)["energy_model"]
    assert set(em) >= {"method", "source", "kernels", "board", "weights_memory", "weights_level", "arena_bytes",
                       "arena_method", "activations_level", "layers", "total"}
    assert em["kernels"] == "reference" and em["method"] == "modelled"
    assert set(em["total"]["7nm"]) == {"compute_uj", "weight_read_uj", "activation_uj", "total_uj",
                                       "data_movement_share"}
    assert set(em["layers"][0]) == {"index", "op", "kernel", "counts", "per_node"}
    res = subprocess.run([FORMICARY, "inspect", str(kws_model_path), "--board", "qemu-m55", "--no-arena"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    assert "where the energy goes" in res.stdout and "helium kernels" in res.stdout
    assert "data movement" in res.stdout
    bad = subprocess.run([FORMICARY, "inspect", str(kws_model_path), "--kernels", "nosuchset", "--no-arena"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode != 0 and "nosuchset" in (bad.stderr + bad.stdout)
