"""Arena placement: give every buffer an offset so that buffers live at the same time never overlap.

Two heuristics, best result kept:
- greedy first fit (TFLM's GreedyMemoryPlanner idea) under several orderings;
- two-ended placement for a target size (tried from the lower bound upwards): buffers in order of first use
  go to the bottom or the top of the arena, opposite to the most recent buffer they overlap. Chains of layers
  (the usual microcontroller network) then alternate ends and meet the lower bound exactly, where first fit
  can waste a lot when sizes vary.
"""
from __future__ import annotations

from formicary.codegen.lifetimes import Buffer

ALIGN = 4  # bytes: arena size granularity. Each buffer is aligned to its element size (1 for int8, 4 for
           # int32/float), which Cortex-M needs; more alignment would only waste RAM.
MAX_TARGET_TRIES = 64


def _align(x: int, a: int = ALIGN) -> int:
    return (x + a - 1) // a * a


def _align_down(x: int, a: int) -> int:
    return x // a * a


def _first_fit(order: list[Buffer]) -> tuple[int, dict[int, int]]:
    placed: list[tuple[int, int, Buffer]] = []  # (offset, end, buffer)
    offsets: dict[int, int] = {}
    total = 0
    for buf in order:
        if buf.size == 0:
            offsets[buf.id] = 0
            continue
        busy = sorted((off, end) for off, end, other in placed if other.overlaps_in_time(buf))
        offset = 0
        for off, end in busy:
            if offset + buf.size <= off:
                break
            offset = max(offset, _align(end, buf.align))
        offsets[buf.id] = offset
        placed.append((offset, offset + buf.size, buf))
        total = max(total, offset + buf.size)
    return total, offsets


def _gaps(busy: list[tuple[int, int]], limit: int) -> list[tuple[int, int]]:
    gaps, cursor = [], 0
    for off, end in sorted(busy):
        if off > cursor:
            gaps.append((cursor, off))
        cursor = max(cursor, end)
    if cursor < limit:
        gaps.append((cursor, limit))
    return gaps


def _two_ended(buffers: list[Buffer], limit: int) -> dict[int, int] | None:
    order = sorted(buffers, key=lambda b: (b.first, -b.size))
    placed: list[tuple[int, int, Buffer]] = []
    offsets: dict[int, int] = {}
    for buf in order:
        if buf.size == 0:
            offsets[buf.id] = 0
            continue
        overlapping = [(off, end, other) for off, end, other in placed if other.overlaps_in_time(buf)]
        gaps = _gaps([(off, end) for off, end, _ in overlapping], limit)
        low = next((_align(s, buf.align) for s, e in gaps if _align(s, buf.align) + buf.size <= e), None)
        high = next((_align_down(e - buf.size, buf.align) for s, e in reversed(gaps)
                     if _align_down(e - buf.size, buf.align) >= s), None)
        if low is None or high is None:
            return None
        prefer_top = False
        if overlapping:
            off, end, _ = max(overlapping, key=lambda p: (p[2].first, p[2].id))
            prefer_top = (off + end) / 2 < limit / 2
        offsets[buf.id] = high if prefer_top else low
        placed.append((offsets[buf.id], offsets[buf.id] + buf.size, buf))
    return offsets


def plan(buffers: list[Buffer], lower_bound: int | None = None) -> int:
    """Set `offset` on every buffer; returns the arena size in bytes (aligned up to ALIGN)."""
    orderings = [
        sorted(buffers, key=lambda b: (-b.size, b.first)),
        sorted(buffers, key=lambda b: (b.first, -b.size)),
        sorted(buffers, key=lambda b: (-(b.last - b.first), -b.size)),
        sorted(buffers, key=lambda b: (-b.size * (b.last - b.first + 1), b.first)),
    ]
    best_total, best_offsets = None, {}
    for order in orderings:
        total, offsets = _first_fit(order)
        if best_total is None or total < best_total:
            best_total, best_offsets = total, offsets
    best_total = best_total or 0
    if lower_bound is not None and best_total > lower_bound:
        step = max(1, (best_total - lower_bound) // MAX_TARGET_TRIES)
        for limit in range(lower_bound, best_total, step):
            offsets = _two_ended(buffers, limit)
            if offsets is not None:
                best_total, best_offsets = max((offsets[b.id] + b.size for b in buffers), default=0), offsets
                break
    for b in buffers:
        b.offset = best_offsets.get(b.id, 0)
    return _align(best_total)


def check(buffers: list[Buffer]) -> None:
    """Raise if two time-overlapping buffers share bytes (a bug here would corrupt activations silently)."""
    for i, a in enumerate(buffers):
        if a.offset < 0 or a.offset % a.align:
            raise AssertionError(f"buffer {a.id} unplaced or misaligned (offset {a.offset})")
        for b in buffers[i + 1:]:
            if (a.size and b.size and a.overlaps_in_time(b)
                    and a.offset < b.offset + b.size and b.offset < a.offset + a.size):
                raise AssertionError(f"arena plan overlap: buffers {a.id} and {b.id}")
