"""Arena placement: give every buffer an offset so that buffers live at the same time never overlap.

Overlaps (the `in-place` plan, codegen/access.py): `overlaps[(out, in)] = D` lets buffer `out` start at most D bytes
above buffer `in`'s start (D may be negative: below it), or anywhere entirely above `in`, although both are live at
the op that reads `in` for the last time and writes `out` first; the op's kernel never writes a byte it still reads.

Heuristics, best result kept:
- greedy first fit (TFLM's GreedyMemoryPlanner idea) under several orderings;
- two-ended placement for a target size (tried from the lower bound upwards): buffers in order of first use
  go to the bottom or the top of the arena, opposite to the most recent buffer they overlap. Chains of layers
  (the usual microcontroller network) then alternate ends and meet the lower bound exactly, where first fit
  can waste a lot when sizes vary. An overlapped output goes as high as its input lets it (D above the input's
  start): a chain of in-place layers then creeps down by each op's offset instead of alternating ends.
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


class Above(int):
    """An overlap value meaning the output must start AT LEAST this many bytes above its input's start (an op run
    rows last to first, codegen/access.py), instead of at most."""


Overlaps = dict[tuple[int, int], int]  # (out buffer id, in buffer id) -> max offset of out from in's start (an
                                       # Above value: min offset)


def _forbidden(buf: Buffer, placed: list[tuple[int, int, Buffer]], overlaps: Overlaps) -> list[tuple[int, int]]:
    """Open intervals (lo, hi) of offsets `buf` may not take, given the placed buffers live with it."""
    out: list[tuple[int, int]] = []
    for off, end, other in placed:
        if not other.size or not other.overlaps_in_time(buf):
            continue
        d = overlaps.get((buf.id, other.id))
        if isinstance(d, Above):                # buf is the output, other its input, run rows last to first
            lo, hi = off - buf.size, off + d
        elif d is not None:                     # buf is the output, other its input
            lo, hi = off + d, end
        elif isinstance(d := overlaps.get((other.id, buf.id)), Above):
            lo, hi = off - d, off + other.size
        elif d is not None:                     # buf is the input of the placed output
            lo, hi = off - buf.size, off - d
        else:
            lo, hi = off - buf.size, end
        if hi - lo > 1:
            out.append((lo, hi))
    return sorted(out)


def _lowest(forbidden: list[tuple[int, int]], align: int, start: int = 0) -> int:
    o = _align(start, align)
    moved = True
    while moved:
        moved = False
        for lo, hi in forbidden:
            if lo < o < hi:
                o, moved = _align(hi, align), True
    return o


def _highest(forbidden: list[tuple[int, int]], align: int, start: int) -> int:
    o = _align_down(start, align)
    moved = True
    while moved and o >= 0:
        moved = False
        for lo, hi in forbidden:
            if lo < o < hi:
                o, moved = _align_down(lo, align), True
    return o


def _free(forbidden: list[tuple[int, int]], o: int) -> bool:
    return all(not lo < o < hi for lo, hi in forbidden)


def _first_fit(order: list[Buffer], overlaps: Overlaps) -> tuple[int, dict[int, int]]:
    placed: list[tuple[int, int, Buffer]] = []  # (offset, end, buffer)
    offsets: dict[int, int] = {}
    total = 0
    for buf in order:
        if buf.size == 0:
            offsets[buf.id] = 0
            continue
        offset = _lowest(_forbidden(buf, placed, overlaps), buf.align)
        offsets[buf.id] = offset
        placed.append((offset, offset + buf.size, buf))
        total = max(total, offset + buf.size)
    return total, offsets


def _two_ended(buffers: list[Buffer], limit: int, overlaps: Overlaps) -> dict[int, int] | None:
    order = sorted(buffers, key=lambda b: (b.first, -b.size))
    inputs_of: dict[int, list[tuple[int, int]]] = {}
    for (o, i), d in overlaps.items():
        inputs_of.setdefault(o, []).append((i, d))
    overlapped_inputs = {i for (_, i), d in overlaps.items() if not isinstance(d, Above)}
    reversed_inputs = {i for (_, i), d in overlaps.items() if isinstance(d, Above)}
    reversed_outputs = {o for (o, _), d in overlaps.items() if isinstance(d, Above)}
    placed: list[tuple[int, int, Buffer]] = []
    offsets: dict[int, int] = {}
    for buf in order:
        if buf.size == 0:
            offsets[buf.id] = 0
            continue
        forbidden = _forbidden(buf, placed, overlaps)
        top = limit - buf.size
        hug = None
        for i, d in inputs_of.get(buf.id, []):
            if i in offsets and not isinstance(d, Above):  # as high as the input allows: leaves the most room for the chain below
                cand = _align_down(min(offsets[i] + d, top), buf.align)
                if cand >= 0 and _free(forbidden, cand) and (hug is None or cand > hug):
                    hug = cand
        if hug is not None:
            offsets[buf.id] = hug
            placed.append((hug, hug + buf.size, buf))
            continue
        low = _lowest(forbidden, buf.align)
        high = _highest(forbidden, buf.align, top)
        if low > top or high < 0:
            return None
        overlapping = [(off, end, other) for off, end, other in placed if other.overlaps_in_time(buf)]
        prefer_top = False
        if buf.id in reversed_outputs or (buf.id in overlapped_inputs and buf.id not in reversed_inputs):
            prefer_top = True  # its output will creep down from it (or it sits above its input): start high
        elif buf.id in reversed_inputs:
            prefer_top = False
        elif overlapping:
            off, end, _ = max(overlapping, key=lambda p: (p[2].first, p[2].id))
            prefer_top = (off + end) / 2 < limit / 2
        offsets[buf.id] = high if prefer_top else low
        placed.append((offsets[buf.id], offsets[buf.id] + buf.size, buf))
    return offsets


def plan(buffers: list[Buffer], lower_bound: int | None = None, overlaps: Overlaps | None = None) -> int:
    """Set `offset` on every buffer; returns the arena size in bytes (aligned up to ALIGN). `overlaps`: the
    output/input pairs that may share bytes (module docstring)."""
    overlaps = overlaps or {}
    orderings = [
        sorted(buffers, key=lambda b: (-b.size, b.first)),
        sorted(buffers, key=lambda b: (b.first, -b.size)),
        sorted(buffers, key=lambda b: (-(b.last - b.first), -b.size)),
        sorted(buffers, key=lambda b: (-b.size * (b.last - b.first + 1), b.first)),
    ]
    best_total, best_offsets = None, {}
    for order in orderings:
        total, offsets = _first_fit(order, overlaps)
        if best_total is None or total < best_total:
            best_total, best_offsets = total, offsets
    best_total = best_total or 0
    if lower_bound is not None and best_total > lower_bound:
        step = max(1, (best_total - lower_bound) // MAX_TARGET_TRIES)
        for limit in range(lower_bound, best_total, step):
            offsets = _two_ended(buffers, limit, overlaps)
            if offsets is not None:
                best_total, best_offsets = max((offsets[b.id] + b.size for b in buffers), default=0), offsets
                break
    for b in buffers:
        b.offset = best_offsets.get(b.id, 0)
    return _align(best_total)


def check(buffers: list[Buffer], overlaps: Overlaps | None = None) -> None:
    """Raise if two time-overlapping buffers share bytes (a bug here would corrupt activations silently), except
    an overlapped output placed at most its declared offset above its input's start."""
    overlaps = overlaps or {}
    for i, a in enumerate(buffers):
        if a.offset < 0 or a.offset % a.align:
            raise AssertionError(f"buffer {a.id} unplaced or misaligned (offset {a.offset})")
        for b in buffers[i + 1:]:
            if (a.size and b.size and a.overlaps_in_time(b)
                    and a.offset < b.offset + b.size and b.offset < a.offset + a.size):
                if _allowed(overlaps.get((a.id, b.id)), a.offset - b.offset) or \
                        _allowed(overlaps.get((b.id, a.id)), b.offset - a.offset):
                    continue
                raise AssertionError(f"arena plan overlap: buffers {a.id} and {b.id}")


def _allowed(d: int | None, offset: int) -> bool:
    """Whether an output at `offset` from its input's start respects the declared overlap `d`."""
    if d is None:
        return False
    return offset >= d if isinstance(d, Above) else offset <= d
