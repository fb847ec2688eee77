"""Pareto fronts: the variants no other variant beats on every axis at once."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

Sense = Literal["min", "max"]


def dominates(p: Sequence[float], q: Sequence[float], senses: Sequence[Sense]) -> bool:
    """True when p is at least as good as q on every axis and strictly better on one."""
    better = False
    for a, b, sense in zip(p, q, senses):
        if sense == "max":
            a, b = -a, -b
        if a > b:
            return False
        if a < b:
            better = True
    return better


def pareto_front(points: Sequence[Sequence[float]], senses: Sequence[Sense]) -> list[int]:
    """Indices of the non-dominated points (duplicates of a front point are all on the front)."""
    if any(len(p) != len(senses) for p in points):
        raise ValueError("every point needs one value per sense")
    return [i for i, p in enumerate(points)
            if not any(dominates(q, p, senses) for j, q in enumerate(points) if j != i)]
