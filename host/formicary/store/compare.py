"""Compare two runs metric by metric and evaluate regression thresholds for CI.

Threshold grammar (`--fail-if`), one comparison per expression:

    METRIC OP [+|-]NUMBER[%|pt]        OP is one of  >  >=  <  <=

* signed with `%`  — relative change of B against A in percent:  `latency.median>+5%`
* signed with `pt` — absolute change in percentage points (accuracy only):  `accuracy<-1pt`
* signed, no suffix — absolute change in the metric's own unit:  `flash_bytes>+1024`, `ram_bytes>+0`
* unsigned, no suffix — a bound on B's value itself:  `accuracy<0.9`, `flash_bytes>262144`

A threshold trips when the comparison is true. Metrics: see METRICS. Exit codes (see `formicary runs compare`):
0 nothing tripped, 1 at least one threshold tripped, 2 error (unknown run or metric, bad expression, latency
units differ, a metric missing from a run).
"""
from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from formicary.errors import FormicaryError


# name -> (getter, unit; None means the run's latency unit, kind)
def _latency(stat: str) -> Callable[[dict], Any]:
    def get(run: dict) -> Any:
        return (run.get("latency") or {}).get(stat)
    return get


METRICS: dict[str, tuple[Callable[[dict], Any], str | None, str]] = {
    **{f"latency.{k}": (_latency(k), None, "latency") for k in ("median", "p90", "p99", "min", "max", "mean")},
    "accuracy": (lambda r: r.get("accuracy"), "fraction", "fraction"),
    "energy.uj_per_inference": (lambda r: (r.get("energy") or {}).get("uj_per_inference"), "uJ", "energy"),
    "flash_bytes": (lambda r: r.get("flash_bytes"), "bytes", "size"),
    "ram_bytes": (lambda r: r.get("ram_bytes"), "bytes", "size"),
    "arena_bytes": (lambda r: r.get("arena_bytes"), "bytes", "size"),
    "model_bytes": (lambda r: r.get("model_bytes"), "bytes", "size"),
    "mismatches": (lambda r: r.get("mismatches"), "count", "count"),
}
ALIASES = {"energy": "energy.uj_per_inference", "latency": "latency.median", "flash": "flash_bytes",
           "ram": "ram_bytes"}
DEFAULT_METRICS = ["latency.median", "latency.p90", "accuracy", "energy.uj_per_inference", "flash_bytes",
                   "ram_bytes", "arena_bytes", "model_bytes", "mismatches"]

_OPS: dict[str, Callable[[float, float], bool]] = {">": operator.gt, ">=": operator.ge, "<": operator.lt,
                                                   "<=": operator.le}
_EXPR = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(>=|<=|>|<)\s*([+-]?)\s*(\d+(?:\.\d*)?|\.\d+)\s*(%|pts?)?\s*$")


@dataclass(frozen=True)
class Threshold:
    """One parsed `--fail-if` expression."""
    text: str
    metric: str
    op: str
    value: float
    mode: str  # "relative" (percent), "points", "delta" (metric unit) or "absolute" (B's value)

    def describe(self) -> str:
        return {"relative": "relative change of B vs A in %", "points": "change in percentage points",
                "delta": "change B - A in the metric's unit", "absolute": "B's value"}[self.mode]


def parse_threshold(text: str) -> Threshold:
    """Parse `latency.median>+5%`-style expressions (grammar in the module docstring)."""
    m = _EXPR.match(text)
    if not m:
        raise FormicaryError(f"cannot parse threshold {text!r}",
                             "write METRIC OP VALUE, e.g. 'latency.median>+5%', 'accuracy<-1pt', "
                             "'flash_bytes>+1024' or 'accuracy<0.9'")
    name, op, sign, number, suffix = m.groups()
    metric = ALIASES.get(name, name)
    if metric not in METRICS:
        raise FormicaryError(f"unknown metric {name!r} in threshold {text!r}",
                             f"use one of {', '.join(METRICS)} (aliases: {', '.join(ALIASES)})")
    value = float(number) * (-1 if sign == "-" else 1)
    if suffix and not sign:
        raise FormicaryError(f"threshold {text!r}: a {suffix} value is a change and needs a sign",
                             f"write e.g. '{name}{op}+{number}{suffix}' or '{name}{op}-{number}{suffix}'")
    if suffix and suffix.startswith("pt") and METRICS[metric][2] != "fraction":
        raise FormicaryError(f"threshold {text!r}: percentage points apply to accuracy only",
                             f"use a relative change ('{name}{op}{sign}{number}%') or an absolute one")
    mode = "absolute" if not sign else "relative" if suffix == "%" else "points" if suffix else "delta"
    return Threshold(text=text.strip(), metric=metric, op=op, value=value, mode=mode)


def _relative_pct(a: float, b: float) -> float:
    if a == 0:
        return 0.0 if b == 0 else math.copysign(math.inf, b)
    return (b - a) / abs(a) * 100.0


def _side(run: dict[str, Any]) -> dict[str, Any]:
    variant = (run.get("model") or {}).get("variant") or {}
    return {"id": run.get("id"), "uid": run.get("uid"), "board": run.get("board"), "status": run.get("status"),
            "model": (run.get("model") or {}).get("name"), "sha256": (run.get("model") or {}).get("sha256"),
            "variant": variant.get("label"), "latency_unit": (run.get("latency") or {}).get("unit"),
            "latency_method": (run.get("latency") or {}).get("method")}


def compare_runs(a: dict[str, Any], b: dict[str, Any], thresholds: list[str | Threshold] = (),
                 metrics: list[str] | None = None) -> dict[str, Any]:
    """Per-metric deltas of B against A and the verdict of each threshold.

    Raises FormicaryError when latencies are in different units (instructions vs cycles: not comparable),
    or a threshold names a metric one of the runs lacks.
    """
    parsed = [t if isinstance(t, Threshold) else parse_threshold(t) for t in thresholds]
    ua, ub = (a.get("latency") or {}).get("unit"), (b.get("latency") or {}).get("unit")
    if ua and ub and ua != ub:
        raise FormicaryError(
            f"run {a.get('id')} measured latency in {ua} and run {b.get('id')} in {ub}: these are not comparable "
            f"(instructions count QEMU -icount ticks, cycles are a real core's DWT counter)",
            "compare runs of the same kind of board (virtual with virtual, real with real)",
            details={"a_unit": ua, "b_unit": ub})
    latency_unit = ua or ub
    warnings: list[str] = []
    for side, run in (("A", a), ("B", b)):
        if run.get("status") not in (None, "complete"):
            warnings.append(f"run {side} ({run.get('id')}) is {run.get('status')}: its figures cover only the "
                            f"samples collected before it stopped")
    if a.get("board") != b.get("board"):
        warnings.append(f"different boards: {a.get('board')} vs {b.get('board')}")
    ea, eb = a.get("energy") or {}, b.get("energy") or {}
    if ea and eb and ea.get("method") != eb.get("method"):
        warnings.append(f"energy methods differ: {ea.get('method')} vs {eb.get('method')}")
    la, lb = (a.get("latency") or {}).get("method"), (b.get("latency") or {}).get("method")
    if la and lb and la != lb:
        warnings.append(f"latency methods differ: {la} vs {lb}")

    names = list(metrics or DEFAULT_METRICS)
    names += [t.metric for t in parsed if t.metric not in names]
    rows = []
    for name in names:
        getter, unit, kind = METRICS[ALIASES.get(name, name)]
        va, vb = getter(a), getter(b)
        if va is None and vb is None:
            continue
        row: dict[str, Any] = {"metric": name, "a": va, "b": vb, "unit": unit or latency_unit,
                               "method": _method(kind, a, b), "delta": None, "relative_pct": None}
        if va is not None and vb is not None:
            row["delta"] = vb - va
            row["relative_pct"] = _relative_pct(va, vb)
            if kind == "fraction":
                row["delta_pt"] = (vb - va) * 100.0
        rows.append(row)

    checks = [evaluate(t, a, b) for t in parsed]
    return {"a": _side(a), "b": _side(b), "latency_unit": latency_unit, "metrics": rows, "checks": checks,
            "failed": any(c["tripped"] for c in checks), "warnings": warnings}


def _method(kind: str, a: dict, b: dict) -> str | None:
    def one(run: dict) -> str | None:
        if kind == "latency":
            return (run.get("latency") or {}).get("method")
        if kind == "energy":
            e = run.get("energy") or {}
            return e.get("method") and f"{e.get('method')} ({e.get('source')})"
        if kind == "fraction":
            return "on-device top-1 vs labels"
        if kind == "size":
            return "reported by bench"
        return None
    ma, mb = one(a), one(b)
    return ma if ma == mb else f"A: {ma}; B: {mb}"


def evaluate(t: Threshold, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Evaluate one threshold; `tripped` is True when the regression condition holds."""
    getter = METRICS[t.metric][0]
    va, vb = getter(a), getter(b)
    missing = [side for side, v in (("A", va), ("B", vb)) if v is None and (t.mode != "absolute" or side == "B")]
    if missing:
        raise FormicaryError(
            f"cannot evaluate {t.text!r}: run {' and '.join(missing)} has no {t.metric}",
            "drop this threshold or re-run the bench so both runs have it (accuracy needs labelled --data, "
            "energy a power source)")
    if t.mode == "relative":
        observed = _relative_pct(va, vb)
    elif t.mode == "points":
        observed = (vb - va) * 100.0
    elif t.mode == "delta":
        observed = vb - va
    else:
        observed = vb
    return {"expr": t.text, "metric": t.metric, "mode": t.mode, "meaning": t.describe(), "threshold": t.value,
            "observed": observed, "tripped": bool(_OPS[t.op](observed, t.value))}
