"""Runs out of the store as JSON (everything) or CSV (one flat table: runs, samples, layers or outputs)."""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from formicary.errors import FormicaryError

CSV_TABLES = ("runs", "samples", "layers", "outputs")

# Flat run summary columns: every number next to the columns giving its unit and method.
RUN_COLUMNS = [
    "id", "uid", "status", "board", "virtual", "started_at", "finished_at", "incomplete_reason",
    "model_name", "model_sha256", "quantization", "sparsity", "clusters", "qat", "variant",
    "training", "runtime_version", "protocol_version",
    "latency_unit", "latency_method", "latency_count", "latency_min", "latency_median", "latency_p90",
    "latency_p99", "latency_max", "latency_mean", "latency_estimate_ms",
    "bit_exact", "mismatches", "inputs", "accuracy",
    "flash_bytes", "ram_bytes", "arena_bytes", "model_bytes", "macs",
    "energy_uj_per_inference", "energy_method", "energy_source",
]


def run_row(run: dict[str, Any]) -> dict[str, Any]:
    lat, model, variant = run["latency"], run["model"], run["model"]["variant"]
    energy = run.get("energy") or {}
    return {
        "id": run["id"], "uid": run["uid"], "status": run["status"], "board": run["board"],
        "virtual": run["virtual"], "started_at": run["started_at"], "finished_at": run["finished_at"],
        "incomplete_reason": run["incomplete_reason"], "model_name": model["name"],
        "model_sha256": model["sha256"], "quantization": variant["quantization"], "sparsity": variant["sparsity"],
        "clusters": variant["clusters"], "qat": variant["qat"], "variant": variant["label"],
        # the training stages as their stage names, e.g. "transfer+lora" (details are in the JSON export)
        "training": "+".join(s["stage"] for s in variant.get("training") or []) or None,
        "runtime_version": run["firmware"]["runtime_version"],
        "protocol_version": run["firmware"]["protocol_version"],
        "latency_unit": lat["unit"], "latency_method": lat["method"], "latency_count": lat["count"],
        **{f"latency_{k}": lat[k] for k in ("min", "median", "p90", "p99", "max", "mean", "estimate_ms")},
        "bit_exact": run["bit_exact"], "mismatches": run["mismatches"], "inputs": run["inputs"],
        "accuracy": run["accuracy"], "flash_bytes": run["flash_bytes"], "ram_bytes": run["ram_bytes"],
        "arena_bytes": run["arena_bytes"], "model_bytes": run["model_bytes"], "macs": run["macs"],
        "energy_uj_per_inference": energy.get("uj_per_inference"), "energy_method": energy.get("method"),
        "energy_source": energy.get("source"),
    }


def export_runs(runs: Sequence[dict[str, Any]], fmt: str, table: str, schema_version: int) -> str:
    if fmt == "json":
        return json.dumps({"store_schema": schema_version, "runs": list(runs)}, indent=2, default=str)
    if fmt != "csv":
        raise FormicaryError(f"unknown export format {fmt!r}", "use --format json or --format csv")
    if table not in CSV_TABLES:
        raise FormicaryError(f"unknown CSV table {table!r}", f"use one of {', '.join(CSV_TABLES)}")
    buf = io.StringIO()
    if table == "runs":
        writer = csv.DictWriter(buf, RUN_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(run_row(r) for r in runs)
    elif table == "samples":
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["run_id", "run_uid", "seq", "latency", "unit", "method", "route"])
        for r in runs:
            routes = r["latency"].get("routes") or [None] * len(r["latency"]["samples"])
            for i, (v, route) in enumerate(zip(r["latency"]["samples"], routes)):
                writer.writerow([r["id"], r["uid"], i, v, r["latency"]["unit"], r["latency"]["method"], route])
    elif table == "layers":
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["run_id", "run_uid", "index", "op", "name", "macs", "median", "count", "unit", "method"])
        for r in runs:
            for layer in r["layers"]:
                writer.writerow([r["id"], r["uid"], layer["index"], layer["op"], layer["name"], layer["macs"],
                                 layer["median"], len(layer["samples"]), layer["unit"] or r["latency"]["unit"],
                                 r["latency"]["method"]])
    else:
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["run_id", "run_uid", "seq", "input", "label", "predicted", "match_reference", "route"])
        for r in runs:
            for i, o in enumerate(r["outputs"]):
                writer.writerow([r["id"], r["uid"], i, o["input"], o["label"], o["predicted"],
                                 o["match_reference"], o.get("route")])
    return buf.getvalue()
