"""Magnitude pruning with tfmot: a PolynomialDecay schedule (or 2:4 structure), fine-tuned, then stripped.

PolynomialDecay only reaches its final sparsity at `end_step`, and only if a pruning update falls on that
step before training ends; the schedule is laid out so that it does, and the result is measured afterwards
rather than trusted.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from formicary.errors import FormicaryError
from formicary.shrink import FineTune, fit, kernels, require_labels, sparsity_of, wrap_kernel_layers

Structure = Literal["unstructured", "2:4"]


@dataclass
class PruneResult:
    target: float
    structure: str
    achieved: float                       # over all prunable kernels
    per_layer: dict[str, float]
    schedule: dict[str, Any] = field(default_factory=dict)
    skipped_layers: list[str] = field(default_factory=list)   # 2:4 cannot touch kernels with < 4 input channels

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "structure": self.structure, "achieved": round(self.achieved, 4),
                "per_layer": {k: round(v, 4) for k, v in self.per_layer.items()}, "schedule": self.schedule,
                "skipped_layers": self.skipped_layers}


def schedule_for(tune: FineTune) -> tuple[int, int]:
    """(end_step, frequency): pruning ends at ~70 % of the steps on an update step, leaving the rest for
    fine-tuning with the final mask."""
    total = tune.total_steps
    if total < 2:
        raise FormicaryError(f"pruning needs at least 2 training steps, the --train data gives {total}",
                             "pass more --train samples or more --epochs.")
    frequency = max(1, min(100, total // 20))
    end_step = max(frequency, (int(total * 0.7) // frequency) * frequency)
    end_step = min(end_step, total - 1)
    end_step -= end_step % frequency
    return max(end_step, 0), frequency


def prune(model: Any, tune: FineTune, sparsity: float,
          structure: Structure = "unstructured") -> tuple[Any, PruneResult]:
    """Prune `model` (a tf_keras model; its layers are reused, so measure it before) and return the stripped
    model with what was achieved. FormicaryError if the requested sparsity was not reached."""
    import tensorflow_model_optimization as tfmot

    if not 0.0 < sparsity < 1.0:
        raise FormicaryError(f"--prune {sparsity} is not a sparsity in (0, 1)", "pass e.g. --prune 0.5 for 50 %.")
    if structure not in ("unstructured", "2:4"):
        raise FormicaryError(f"unknown --prune-structure {structure!r}", "use unstructured or 2:4.")
    if structure == "2:4" and abs(sparsity - 0.5) > 1e-9:
        raise FormicaryError(f"2:4 structured pruning zeroes exactly 50 % of each group; --prune {sparsity} "
                             "contradicts it", "use --prune 0.5 with --prune-structure 2:4.")
    require_labels(tune, "--prune")
    sk = tfmot.sparsity.keras
    end_step, frequency = schedule_for(tune)
    if structure == "2:4":
        schedule = sk.ConstantSparsity(0.5, begin_step=0, frequency=frequency)
        wrapped = wrap_kernel_layers(model, lambda layer: sk.prune_low_magnitude(
            layer, pruning_schedule=schedule, sparsity_m_by_n=(2, 4)))
        sched_info = {"kind": "2:4 (tfmot sparsity_m_by_n)", "frequency": frequency}
    else:
        schedule = sk.PolynomialDecay(initial_sparsity=0.0, final_sparsity=sparsity, begin_step=0,
                                      end_step=end_step, frequency=frequency)
        wrapped = wrap_kernel_layers(model, lambda layer: sk.prune_low_magnitude(layer, pruning_schedule=schedule))
        sched_info = {"kind": "PolynomialDecay", "begin_step": 0, "end_step": end_step, "frequency": frequency,
                      "total_steps": tune.total_steps}
    fit(wrapped, tune, callbacks=[sk.UpdatePruningStep()], original=model)
    stripped = sk.strip_pruning(wrapped)
    measured = sparsity_of(stripped)
    result = PruneResult(target=sparsity, structure=structure, achieved=measured["overall"],
                         per_layer=measured["per_layer"], schedule=sched_info)
    if structure == "2:4":
        _verify_2_4(stripped, result)
    else:
        _verify_unstructured(stripped, result)
    return stripped, result


def _verify_unstructured(model: Any, result: PruneResult) -> None:
    short = {}
    for name, k in kernels(model).items():
        # tfmot rounds the number of pruned weights per tensor; allow one weight of slack.
        if result.per_layer[name] + 1.0 / k.size + 1e-9 < result.target:
            short[name] = result.per_layer[name]
    if short:
        raise FormicaryError(f"pruning did not reach {result.target:.0%} sparsity: {short}",
                             "train for more --epochs or with more --train samples so the schedule completes.",
                             details={"per_layer": result.per_layer})


def groups_of_four_ok(kernel: np.ndarray) -> bool:
    """True if every 4 consecutive input-channel weights (TFLite layout [out, h, w, in]) hold ≤ 2 non-zeros."""
    if kernel.ndim == 2:
        rows = kernel.T
    elif kernel.ndim == 4:
        rows = np.transpose(kernel, (3, 0, 1, 2)).reshape(-1, kernel.shape[2])
    else:
        return False
    pad = (-rows.shape[1]) % 4
    rows = np.pad(rows, ((0, 0), (0, pad)))
    return bool(((rows.reshape(rows.shape[0], -1, 4) != 0).sum(axis=2) <= 2).all())


def _verify_2_4(model: Any, result: PruneResult) -> None:
    bad = []
    for name, k in kernels(model).items():
        in_channels = k.shape[-2] if k.ndim >= 2 else 0
        if in_channels < 4 or k.ndim not in (2, 4):
            result.skipped_layers.append(name)  # a group of 4 needs 4 input channels
            continue
        if not groups_of_four_ok(k):
            bad.append(name)
    if bad:
        raise FormicaryError(f"2:4 pruning left groups with more than 2 non-zeros in {bad}",
                             "train for more --epochs so the mask is applied.")
    if len(result.skipped_layers) == len(result.per_layer):
        raise FormicaryError("no layer of this model can take 2:4 sparsity (all have < 4 input channels)",
                             "use --prune-structure unstructured.")
