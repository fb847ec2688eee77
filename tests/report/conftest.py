"""Synthetic runs for the report tests: variants of one model (one of them dominated), an incomplete run and a
real-board run in cycles. Test data only; never used for docs."""
from __future__ import annotations

import random
from pathlib import Path

import pytest

VARIANTS = [  # label, quantization, accuracy, median latency, model bytes, energy µJ
    ("float32", "float32", 0.930, 9_000_000, 300_000, 900.0),
    ("int8", "int8", 0.915, 3_000_000, 53_000, 300.0),
    ("int8-pruned50", "int8", 0.900, 2_900_000, 30_000, 290.0),
    ("int16x8", "int16x8", 0.925, 5_000_000, 80_000, 520.0),
    ("int8-bad", "int8", 0.880, 3_500_000, 60_000, 350.0),  # dominated by int8 on every axis
]


def _result(i, label, quant, acc, base, size, energy, *, unit="instructions", board="qemu-m4"):
    rng = random.Random(i)
    return {
        "schema": 1, "board": board, "virtual": unit == "instructions", "host": {"hostname": "test"},
        "started_at": f"2026-11-28T10:{i:02d}:00+00:00", "finished_at": f"2026-11-28T10:{i:02d}:30+00:00",
        "complete": True, "incomplete_reason": None,
        "model": {"path": f"kws-{label}.tflite", "sha256": f"{i:02x}" * 32, "name": "kws",
                  "variant": {"quantization": quant, "sparsity": 0.5 if "pruned" in label else 0.0, "clusters": None,
                              "qat": False, "label": label}},
        "firmware": {"runtime_version": "0.1.0", "protocol_version": 1},
        "settings": {"runs": 30, "warmup": 2, "profile": True, "data": "kws01"},
        "latency": {"unit": unit, "method": "qemu-icount-systick" if unit == "instructions" else "dwt-cyccnt",
                    "estimate_ms": base / 25e3, "samples": [base + rng.randint(0, base // 40) for _ in range(30)]},
        "layers": [{"index": k, "op": op, "name": f"l{k}", "macs": 1000, "unit": unit, "median": None,
                    "samples": [base // 6 + rng.randint(0, 999) for _ in range(3)]}
                   for k, op in enumerate(["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "SOFTMAX"])],
        "bit_exact": True, "mismatches": 0, "inputs": 200, "accuracy": acc, "outputs": [],
        "flash_bytes": size + 40_000, "ram_bytes": 30_000, "arena_bytes": 22_000, "macs": 2_700_000,
        "model_bytes": size,
        "energy": {"uj_per_inference": energy, "method": "modelled", "source": f"{board} power model x latency"},
        "energy_floor_uj": {"45nm": 12.0, "7nm": 1.1}, "power_samples": None,
    }


@pytest.fixture
def report_store(tmp_path: Path):
    """A store with the variants, an interrupted-then-finished incomplete run, and a cycles run; yields
    (store, {label: run_id})."""
    from formicary.store import ResultStore

    store = ResultStore(tmp_path / "results.sqlite")
    ids = {v[0]: store.record_result(_result(i, *v)) for i, v in enumerate(VARIANTS, 1)}
    partial = store.begin_run({k: v for k, v in _result(9, *VARIANTS[1]).items() if k != "layers"})
    store.finish_run(partial, False, "board unplugged")
    ids["partial"] = partial
    ids["cycles"] = store.record_result(_result(10, "int8", "int8", 0.915, 4_000_000, 53_000, 40.0, unit="cycles",
                                                board="nucleo-f446re"))
    yield store, ids
    store.close()
