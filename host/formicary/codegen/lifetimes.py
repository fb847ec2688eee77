"""Tensor lifetimes over the op sequence, with aliasing (must share) and in-place (may share) merged into
buffers: each buffer is one arena region used by one or more tensors.

Time is the op index. A buffer is live from the op that writes its first tensor (0 for model inputs) to the
last op that reads any of its tensors (the last op for model outputs), both inclusive: an op's inputs and
outputs are live together while it runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from formicary.tflite.ir import ModelIR


@dataclass
class Buffer:
    id: int
    tensors: list[int]
    size: int
    first: int
    last: int
    offset: int = -1
    align: int = 1           # bytes: the largest element size among its tensors
    names: list[str] = field(default_factory=list)
    steps: frozenset[int] | None = None  # multi-subgraph models: the live steps (subgraphs.step_sets), which
                                         # need not be contiguous; first/last are then their min/max

    def overlaps_in_time(self, other: Buffer) -> bool:
        if self.steps is not None and other.steps is not None:
            return not self.steps.isdisjoint(other.steps)
        return self.first <= other.last and other.first <= self.last

    def live_at(self, step: int) -> bool:
        return step in self.steps if self.steps is not None else self.first <= step <= self.last


def _activation_tensors(model: ModelIR) -> set[int]:
    used: set[int] = set(model.inputs) | set(model.outputs)
    for op in model.operators:
        used.update(t for t in op.inputs if t >= 0)
        used.update(op.outputs)
    return {t for t in used if not model.tensors[t].is_constant}


def tensor_intervals(model: ModelIR, preserve_inputs: bool = False) -> dict[int, tuple[int, int]]:
    """(first, last) op index for every non-constant tensor the graph touches. With `preserve_inputs` the
    model inputs stay live to the end, so repeated fm_invoke() calls can reuse one loaded input."""
    n = len(model.operators)
    last_op = max(n - 1, 0)
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for t in model.inputs:
        first[t] = 0
    for op in model.operators:
        for t in op.outputs:
            first.setdefault(t, op.index)
            last[t] = max(last.get(t, op.index), op.index)
        for t in op.inputs:
            if t >= 0:
                first.setdefault(t, 0)  # read but never written: an undeclared input, live from the start
                last[t] = max(last.get(t, op.index), op.index)
    for t in model.outputs:
        first.setdefault(t, 0)
        last[t] = last_op
    if preserve_inputs:
        for t in model.inputs:
            last[t] = last_op
    return {t: (first[t], last.get(t, first[t])) for t in _activation_tensors(model)}


def build_buffers(model: ModelIR, alias: dict[int, int], inplace: dict[int, tuple[int, int]],
                  preserve_inputs: bool = False, steps: dict[int, frozenset[int]] | None = None,
                  ) -> tuple[list[Buffer], dict[int, int]]:
    """Merge tensors into buffers. `alias` maps out -> in (must share); `inplace` maps out -> (in, time of the
    op) (share when the input's buffer dies at that op, sizes match and neither is a model input/output).
    `steps`: live steps per tensor for multi-subgraph models (then times are steps, not op indices).
    Returns the buffers and tensor -> buffer id."""
    if steps is not None:
        intervals = {t: (min(s), max(s)) for t, s in steps.items() if s}
    else:
        intervals = tensor_intervals(model, preserve_inputs)
    parent = {t: t for t in intervals}

    def find(t: int) -> int:
        while parent[t] != t:
            parent[t] = parent[parent[t]]
            t = parent[t]
        return t

    def group_span(root: int) -> tuple[int, int]:
        members = [t for t in intervals if find(t) == root]
        return min(intervals[t][0] for t in members), max(intervals[t][1] for t in members)

    for out, inp in alias.items():
        if out in parent and inp in parent:
            parent[find(out)] = find(inp)

    protected = {find(t) for t in (*model.inputs, *model.outputs) if t in parent}
    for out, (inp, op_index) in sorted(inplace.items(), key=lambda kv: kv[1][1]):
        if out not in parent or inp not in parent:
            continue
        ro, ri = find(out), find(inp)
        if ro == ri or ro in protected or ri in protected:
            continue
        if model.tensors[out].nbytes != model.tensors[inp].nbytes:
            continue
        if group_span(ri)[1] != op_index:  # the input is read by a later op: cannot overwrite it
            continue
        parent[ro] = ri

    groups: dict[int, list[int]] = {}
    for t in intervals:
        groups.setdefault(find(t), []).append(t)
    buffers: list[Buffer] = []
    owner: dict[int, int] = {}
    for root in sorted(groups):
        members = sorted(groups[root])
        b = Buffer(id=len(buffers), tensors=members,
                   size=max(model.tensors[t].nbytes for t in members),
                   first=min(intervals[t][0] for t in members), last=max(intervals[t][1] for t in members),
                   names=[model.tensors[t].name for t in members],
                   align=max(max(1, int(np.dtype(model.tensors[t].np_dtype).itemsize)) for t in members))
        if steps is not None:
            b.steps = frozenset().union(*(steps[t] for t in members))
        buffers.append(b)
        for t in members:
            owner[t] = b.id
    return buffers, owner


def lower_bound(buffers: list[Buffer], n_ops: int,
                overlaps: dict[tuple[int, int], int] | None = None) -> int:
    """Max over steps (op indices, or the steps of a multi-subgraph timeline) of the summed size of live
    buffers: no placement can use less. With subgraphs every step lies on the routes that reach it, so this is
    the max over routes. `overlaps` (planner.Overlaps): an output allowed at most D bytes above its input's start
    spans with it at least max(in - min(D, 0), out) bytes, which replaces their sum at the step they share."""
    by_id = {b.id: b for b in buffers}
    best = 0
    for step in range(max(n_ops, 1)):
        total = sum(b.size for b in buffers if b.live_at(step))
        for (o, i), d in (overlaps or {}).items():
            bo, bi = by_id[o], by_id[i]
            if bo.live_at(step) and bi.live_at(step):
                if type(d) is not int:  # planner.Above: the output starts >= d above the input
                    span = max(bi.size, max(d, 0) + bo.size)
                else:
                    span = max(bi.size - min(d, 0), bo.size)
                total -= max(0, bo.size + bi.size - span)
        best = max(best, total)
    return best
