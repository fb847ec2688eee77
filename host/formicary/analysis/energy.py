"""The energy-per-operation table (energy_table.json, kept as data with its sources) and the energy floor.

The floor is a lower bound from physics, not a prediction: it counts only the arithmetic the model needs and
each byte of weights and activations moving once, at the cheapest memory level that can hold the working set.
See docs/report-json.md for the definition and what it ignores. Where the energy goes per layer, with the
kernels' real access counts, flash and arena levels, is energy_model.py (docs/energy.md).
"""
from __future__ import annotations

import json
import math
from functools import lru_cache
from importlib import resources

NODES = ("45nm", "7nm")


@lru_cache(maxsize=1)
def table() -> dict:
    return json.loads(resources.files("formicary.analysis").joinpath("energy_table.json").read_text())


def arithmetic_types(precision: str) -> tuple[str, str]:
    """(mult entry, add entry) of the table used for one MAC at the model's arithmetic precision."""
    if precision == "int8":
        return "int8_mult", "int32_add"      # int8×int8 products accumulate in int32
    if precision == "int16x8":
        return "int32_mult", "int32_add"     # no 16-bit entry in the table: the next one that holds it
    if precision == "float16":
        return "fp16_mult", "fp16_add"
    return "fp32_mult", "fp32_add"


def memory_level(working_set_bytes: int) -> dict:
    """Smallest memory in the table that holds the working set (DRAM beyond the largest SRAM)."""
    for level in table()["memory_per_64bit_access"]:
        if level["max_bytes"] is None or working_set_bytes <= level["max_bytes"]:
            return level
    raise AssertionError("energy table has no unbounded (DRAM) level")


def energy_floor(*, macs: int, adds: int, mults: int, precision: str, memory_bytes: int,
                 working_set_bytes: int) -> dict:
    """Energy floor in µJ per node, plus the breakdown that produced it."""
    ops = table()["ops"]
    mult_key, add_key = arithmetic_types(precision)
    level = memory_level(working_set_bytes)
    accesses = math.ceil(memory_bytes / 8)
    out: dict = {}
    for node in NODES:
        e_mult, e_add = ops[mult_key][node], ops[add_key][node]
        compute_pj = (macs + mults) * e_mult + (macs + adds) * e_add
        memory_pj = accesses * level[node]
        out[node] = {"total_uj": (compute_pj + memory_pj) * 1e-6, "compute_uj": compute_pj * 1e-6,
                     "memory_uj": memory_pj * 1e-6}
    return {"mult": mult_key, "add": add_key, "memory_level": level["name"], "memory_accesses_64bit": accesses,
            "memory_bytes": memory_bytes, "working_set_bytes": working_set_bytes, "per_node": out}


def flash_level() -> dict:
    """The price of a read from the MCU's flash: not in the table, an assumption kept in the table's data
    (`memory_assumed`, kind flash) with the reason written next to it."""
    return next(m for m in table()["memory_assumed"] if m["kind"] == "flash")
