"""Fixtures for the results store tests: a fresh store per test and synthetic bench result dicts.

The synthetic results follow docs/bench-json.md; they exercise the store and never end up in docs.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest


def synthetic_result(label: str = "int8", *, board: str = "qemu-m4", unit: str = "instructions",
                     base: int = 3_000_000, accuracy: float | None = 0.915, n: int = 40, seed: int = 1,
                     energy: float | None = 300.0, flash: int = 93_000, ram: int = 30_000,
                     model_name: str = "kws") -> dict[str, Any]:
    rng = random.Random(seed)
    method = "qemu-icount-systick" if unit == "instructions" else "dwt-cyccnt"
    return {
        "schema": 1, "board": board, "virtual": unit == "instructions",
        "host": {"hostname": "test-host", "python": "3.11", "formicary": "0.1.0"},
        "started_at": "2026-11-28T10:00:00+00:00", "finished_at": "2026-11-28T10:01:00+00:00",
        "complete": True, "incomplete_reason": None,
        "model": {"path": f"/models/{model_name}-{label}.tflite", "sha256": f"{seed:02x}" * 32, "name": model_name,
                  "variant": {"quantization": "int8" if "int8" in label else label, "sparsity": 0.5 if "pruned"
                              in label else 0.0, "clusters": None, "qat": False, "label": label,
                              "prune_structure": "block" if "pruned" in label else None,
                              "training": [{"stage": "lora", "rank": 4, "label": "lora4"}] if "lora" in label
                              else []}},
        "firmware": {"runtime_version": "0.1.0", "protocol_version": 1, "kernels": "dsp", "optimize": "speed"},
        "settings": {"runs": n, "warmup": 2, "profile": True, "data": "kws01"},
        "latency": {"unit": unit, "method": method, "estimate_ms": base / 25e3,
                    "samples": [base + rng.randint(0, base // 50) for _ in range(n)], "routes": [1] * n,
                    "min": None, "median": None},
        "layers": [{"index": i, "op": op, "name": f"layer{i}", "macs": 1000 * (i + 1), "unit": unit,
                    "median": None, "samples": [base // 10 * (i + 1) + rng.randint(0, 99) for _ in range(5)],
                    "subgraph": 0}
                   for i, op in enumerate(["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "SOFTMAX"])],
        "bit_exact": True, "mismatches": 0, "inputs": 20, "accuracy": accuracy,
        "outputs": [{"input": f"{i:03d}.bin", "label": i % 12, "predicted": i % 12, "match_reference": True,
                     "route": 1} for i in range(20)],
        "subgraphs": [{"index": 0, "name": "main", "ops": 4, "inferences": n, "share": 1.0}],
        "flash_bytes": flash, "ram_bytes": ram, "arena_bytes": 22_000, "macs": 2_700_000, "model_bytes": 53_000,
        "energy": None if energy is None else {"uj_per_inference": energy, "method": "modelled",
                                               "source": "qemu-m4 power model x latency"},
        "energy_floor_uj": {"45nm": 12.0, "7nm": 1.1},
        "power_samples": [[0.0, 0.03], [0.001, 0.031]],
    }


@pytest.fixture
def make_result():
    return synthetic_result


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store" / "results.sqlite"


@pytest.fixture
def store(store_path: Path):
    from formicary.store import ResultStore

    s = ResultStore(store_path)
    yield s
    s.close()
