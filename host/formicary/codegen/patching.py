"""Patch-based execution (MCUNetV2-style): the first stage of a network, up to a split layer, runs one spatial
patch of the split layer's output at a time, each patch recomputing the halo its receptive field needs, so the
stage's large intermediate activations only ever exist as patch-sized buffers.

What is patched: a chain starting at op 0 whose ops are windowed (CONV_2D, DEPTHWISE_CONV_2D, AVERAGE_POOL_2D,
MAX_POOL_2D, batch 1), each op's output read only by the next op. The split layer is the chain's last op; its
output (and the stage input, a model input) exist whole.

Geometry per patch, walking back from the split layer's output tile: an op computing output rows [a, b) reads
input rows [a*s - P, (b-1)*s - P + (k-1)*d + 1) clipped to the image; the kernel gets that window as its input
(input_dims = the window), the patch's output as its output and pad = P - a*s + y0 (y0 = the window's first
row), so padding is the real padding at image borders only (the kernels treat rows outside their input as
padding) and interior borders read the recomputed halo. Columns likewise.

`plan_patches` picks the split layer and grid [rows, cols] minimising the arena's lower bound within a recompute
budget (extra MACs as a share of the model's), and `place` plans the arena for it. `patch_emit.py` writes the C.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from formicary.codegen import lifetimes, planner, quant
from formicary.tflite.ir import ModelIR

WINDOWED = ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D")
MAX_GRID = 8                      # rows and columns tried per split
DEFAULT_BUDGET_PCT = 10.0         # extra MACs allowed, % of the model's MACs (the `auto` plan's 10 % rule)
SCRATCH_ALIGN = 4


@dataclass(frozen=True)
class Window1D:
    kernel: int
    stride: int
    dilation: int
    pad: int                      # the full op's leading padding
    size_in: int
    size_out: int

    def need(self, a: int, b: int) -> tuple[int, int, int]:
        """Input span [y0, y1) that output span [a, b) reads, clipped to the image, and the leading pad the
        kernel gets for it."""
        lo = a * self.stride - self.pad
        hi = (b - 1) * self.stride - self.pad + (self.kernel - 1) * self.dilation + 1
        y0, y1 = max(lo, 0), min(hi, self.size_in)
        return y0, max(y1, y0), self.pad - a * self.stride + y0


@dataclass(frozen=True)
class StageOp:
    index: int
    opcode: str
    rows: Window1D
    cols: Window1D
    in_tensor: int
    out_tensor: int
    in_c: int
    out_c: int
    itemsize: int
    macs_per_pixel: float         # the op's MACs / its output pixels


@dataclass(frozen=True)
class PatchGeom:
    """One op in one patch: the input window (origin in the full tensor, size), the output tile, kernel pads."""
    in_y: int
    in_x: int
    in_h: int
    in_w: int
    out_y: int
    out_x: int
    out_h: int
    out_w: int
    pad_h: int
    pad_w: int


@dataclass
class PatchPlan:
    split_layer: int | None       # last op of the patched stage (None: no patching pays)
    grid: tuple[int, int] = (1, 1)
    stage: list[StageOp] = field(default_factory=list)
    geoms: list[list[PatchGeom]] = field(default_factory=list)   # [patch][stage op]
    peak_bytes: int = 0           # the arena's lower bound under this plan
    liveness_bytes: int = 0       # the liveness plan's lower bound
    extra_macs: int = 0
    total_macs: int = 0
    budget_pct: float = DEFAULT_BUDGET_PCT

    @property
    def active(self) -> bool:
        return self.split_layer is not None

    @property
    def copies_in(self) -> bool:
        """Input windows narrower than the image are copied in row by row (a full-width window is a contiguous
        slice of the stage input and is read in place)."""
        return copies_in(self.stage, self.geoms)

    @property
    def copies_out(self) -> bool:
        """Column patches: each tile is written to a patch buffer and copied out row by row."""
        return self.grid[1] > 1

    def to_dict(self) -> dict:
        pct = 100.0 * self.extra_macs / self.total_macs if self.total_macs else 0.0
        return {"split_layer": self.split_layer, "grid": list(self.grid), "peak_bytes": self.peak_bytes,
                "liveness_bytes": self.liveness_bytes, "extra_macs": self.extra_macs,
                "extra_macs_pct": round(pct, 3), "budget_pct": self.budget_pct,
                "stage_ops": [s.index for s in self.stage]}


# ---- the stage ------------------------------------------------------------------------------------------------

def _stage_op(model: ModelIR, op, macs: int) -> StageOp | None:
    if op.opcode not in WINDOWED or not op.outputs:
        return None
    inp, out = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    if len(inp.shape) != 4 or len(out.shape) != 4 or inp.shape[0] != 1 or out.shape[0] != 1:
        return None
    if inp.dtype not in ("int8", "float32") or out.dtype != inp.dtype:
        return None
    o = op.options
    if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        f = model.tensors[op.inputs[1]]
        kh, kw = int(f.shape[1]), int(f.shape[2])
        sh, sw = int(o.get("stride_h", 1)), int(o.get("stride_w", 1))
        dh, dw = int(o.get("dilation_h_factor", 1)), int(o.get("dilation_w_factor", 1))
    else:
        kh, kw = int(o.get("filter_height", 1)), int(o.get("filter_width", 1))
        sh, sw = int(o.get("stride_h", 1)), int(o.get("stride_w", 1))
        dh = dw = 1
    H, W, C = (int(d) for d in inp.shape[1:])
    OH, OW, OC = (int(d) for d in out.shape[1:])
    if min(H, W, OH, OW, sh, sw) <= 0:
        return None
    # the full op's leading pads from its output size, as the lowering computes them (SAME or VALID alike)
    rows = Window1D(kh, sh, dh, quant.compute_padding(sh, dh, H, kh, OH), H, OH)
    cols = Window1D(kw, sw, dw, quant.compute_padding(sw, dw, W, kw, OW), W, OW)
    return StageOp(op.index, op.opcode, rows, cols, op.inputs[0], op.outputs[0], C, OC,
                   int(np.dtype(inp.np_dtype).itemsize), macs / float(OH * OW))


def candidate_stage(model: ModelIR, macs: list[int]) -> list[StageOp]:
    """The longest patchable chain from op 0 (every prefix of it is a candidate stage)."""
    readers: dict[int, int] = {}
    for op in model.operators:
        for t in op.inputs:
            if t >= 0:
                readers[t] = readers.get(t, 0) + 1
    chain: list[StageOp] = []
    for op in model.operators:
        s = _stage_op(model, op, macs[op.index])
        if s is None:
            break
        if chain:
            if s.in_tensor != chain[-1].out_tensor:
                break
        elif s.in_tensor not in model.inputs:
            break
        chain.append(s)
        # the next op may join only if this op's output feeds it alone and is not a model output
        if readers.get(s.out_tensor, 0) != 1 or s.out_tensor in model.outputs:
            break
    return chain


def _splits(n: int, parts: int) -> list[tuple[int, int]]:
    edges = [round(i * n / parts) for i in range(parts + 1)]
    return [(edges[i], edges[i + 1]) for i in range(parts)]


def copies_in(stage: list[StageOp], geoms: list[list[PatchGeom]]) -> bool:
    return any(p[0].in_w != stage[0].cols.size_in for p in geoms)


def patch_geometry(stage: list[StageOp], grid: tuple[int, int]) -> list[list[PatchGeom]]:
    """Per patch (row-major over the split layer's output), per stage op: windows and pads."""
    last = stage[-1]
    out: list[list[PatchGeom]] = []
    for ya, yb in _splits(last.rows.size_out, grid[0]):
        for xa, xb in _splits(last.cols.size_out, grid[1]):
            geoms: list[PatchGeom] = []
            a, b, c, d = ya, yb, xa, xb
            for s in reversed(stage):
                y0, y1, ph = s.rows.need(a, b)
                x0, x1, pw = s.cols.need(c, d)
                geoms.append(PatchGeom(y0, x0, y1 - y0, x1 - x0, a, c, b - a, d - c, ph, pw))
                a, b, c, d = y0, y1, x0, x1
            out.append(list(reversed(geoms)))
    return out


def extra_macs(stage: list[StageOp], geoms: list[list[PatchGeom]]) -> int:
    done = sum(g.out_h * g.out_w * s.macs_per_pixel for patch in geoms for s, g in zip(stage, patch))
    full = sum(s.rows.size_out * s.cols.size_out * s.macs_per_pixel for s in stage)
    return round(done - full)


# ---- memory ---------------------------------------------------------------------------------------------------

def patch_buffers(model: ModelIR, buffers: list[lifetimes.Buffer], owner: dict[int, int],
                  stage: list[StageOp], geoms: list[list[PatchGeom]], grid: tuple[int, int]
                  ) -> dict[str, lifetimes.Buffer] | None:
    """Turn liveness buffers into the patch plan's, in place: the stage's intermediate tensors shrink to their
    largest patch, the stage input stays live to the split layer and its output from the stage's first op; with
    column patches, one buffer for the copied-in input window and one for the output tile. Returns the added
    buffers by role, or None when a stage tensor shares its buffer (cannot be shrunk alone)."""
    by_id = {b.id: b for b in buffers}
    s0, s1 = stage[0].index, stage[-1].index
    for k, s in enumerate(stage[:-1]):
        b = by_id[owner[s.out_tensor]]
        if len(b.tensors) != 1:
            return None
        b.size = max(p[k].out_h * p[k].out_w for p in geoms) * s.out_c * s.itemsize
    first_in = by_id[owner[stage[0].in_tensor]]
    first_in.last = max(first_in.last, s1)
    out_b = by_id[owner[stage[-1].out_tensor]]
    out_b.first = min(out_b.first, s0)
    added: dict[str, lifetimes.Buffer] = {}
    s, l = stage[0], stage[-1]
    in_bytes = max(p[0].in_h * p[0].in_w for p in geoms) * s.in_c * s.itemsize
    out_bytes = max(p[-1].out_h * p[-1].out_w for p in geoms) * l.out_c * l.itemsize
    for role, size, t, align, needed in (("patch_in", in_bytes, s0, s.itemsize, copies_in(stage, geoms)),
                                         ("patch_out", out_bytes, s1, l.itemsize, grid[1] > 1)):
        if needed:
            added[role] = lifetimes.Buffer(id=len(buffers), tensors=[], size=size, first=t, last=t,
                                           names=[role], align=max(align, SCRATCH_ALIGN))
            buffers.append(added[role])
    return added


def _bound_for(model: ModelIR, base: list[lifetimes.Buffer], owner: dict[int, int], stage: list[StageOp],
               geoms: list[list[PatchGeom]], grid: tuple[int, int], n_ops: int) -> int | None:
    bufs = [lifetimes.Buffer(b.id, b.tensors, b.size, b.first, b.last, align=b.align) for b in base]
    if patch_buffers(model, bufs, owner, stage, geoms, grid) is None:
        return None
    return lifetimes.lower_bound(bufs, n_ops)


def plan_patches(model: ModelIR, buffers: list[lifetimes.Buffer], owner: dict[int, int], macs: list[int],
                 budget_pct: float = DEFAULT_BUDGET_PCT, max_grid: int = MAX_GRID,
                 force: tuple[int, tuple[int, int]] | None = None,
                 target_bytes: int | None = None) -> PatchPlan:
    """Search split layer x grid for the smallest arena lower bound whose extra MACs stay within `budget_pct`
    of the model's MACs (ties: fewer extra MACs, then fewer patches). `buffers` are the liveness plan's (not
    modified). No candidate below the liveness bound: an inactive plan. `target_bytes` (a RAM budget): the
    candidate with the fewest extra MACs whose bound fits it, if any (else the smallest as above). `force` =
    (split layer, (rows, cols)) takes that plan whatever it costs (tests, experiments); ValueError when the split
    cannot be patched."""
    n_ops = len(model.operators)
    total = int(sum(macs))
    live = lifetimes.lower_bound(buffers, n_ops)
    best = PatchPlan(None, peak_bytes=live, liveness_bytes=live, total_macs=total, budget_pct=budget_pct)
    chain = candidate_stage(model, macs)
    if force is not None:
        split, grid = force
        ends = [k + 1 for k, s in enumerate(chain) if s.index == split]
        if not ends:
            raise ValueError(f"op {split} does not end a patchable stage (patchable: {[s.index for s in chain]})")
        stage = chain[:ends[0]]
        grid = (min(grid[0], stage[-1].rows.size_out), min(grid[1], stage[-1].cols.size_out))
        geoms = patch_geometry(stage, grid)
        bound = _bound_for(model, buffers, owner, stage, geoms, grid, n_ops)
        if bound is None:
            raise ValueError(f"a tensor of the stage ending at op {split} shares its buffer")
        return PatchPlan(split, grid, stage, geoms, bound, live, extra_macs(stage, geoms), total, budget_pct)
    best_key = (live, 0, 1)
    for end in range(1, len(chain) + 1):
        stage = chain[:end]
        last = stage[-1]
        for r in range(1, min(max_grid, last.rows.size_out) + 1):
            for c in range(1, min(max_grid, last.cols.size_out) + 1):
                if r * c == 1:
                    continue
                geoms = patch_geometry(stage, (r, c))
                extra = extra_macs(stage, geoms)
                if total and 100.0 * extra / total > budget_pct:
                    continue
                bound = _bound_for(model, buffers, owner, stage, geoms, (r, c), n_ops)
                if bound is None:
                    continue
                key = (bound, extra, r * c)
                if target_bytes is not None and bound <= target_bytes:
                    key = (-1, extra, r * c, bound)  # fits the target: cheapest first
                if key < best_key:
                    best_key = key
                    best = PatchPlan(last.index, (r, c), stage, geoms, bound, live, extra, total, budget_pct)
    if target_bytes is not None and live <= target_bytes:
        return PatchPlan(None, peak_bytes=live, liveness_bytes=live, total_macs=total, budget_pct=budget_pct)
    return best


def stage_scratch(model: ModelIR, plan: PatchPlan, kernel_of: dict[int, str], scratch_of) -> dict[int, int]:
    """Scratch bytes per stage op over its patch geometries: a kernel set may pick another path (with another
    scratch size) for a patch's smaller dims, so each distinct patch shape is asked. `scratch_of(kernel, op,
    model)` is the kernel set's scratch size for the op in a model whose tensors have the patch's shapes."""
    import copy
    import dataclasses

    out: dict[int, int] = {}
    for k, s in enumerate(plan.stage):
        op = model.operators[s.index]
        shapes = {(g[k].in_h, g[k].in_w, g[k].out_h, g[k].out_w) for g in plan.geoms}
        best = 0
        for ih, iw, oh, ow in sorted(shapes):
            view = copy.copy(model)
            view.tensors = list(model.tensors)
            for t, (h, w, c) in ((s.in_tensor, (ih, iw, s.in_c)), (s.out_tensor, (oh, ow, s.out_c))):
                view.tensors[t] = dataclasses.replace(model.tensors[t], shape=(1, h, w, c))
            best = max(best, int(scratch_of(kernel_of[s.index], op, view)))
        out[s.index] = best
    return out


def place(model: ModelIR, buffers: list[lifetimes.Buffer], owner: dict[int, int], plan: PatchPlan,
          ) -> tuple[int, int, dict[str, lifetimes.Buffer]]:
    """Plan the arena for an active patch plan (buffers modified and placed); returns (arena, bound, added)."""
    added = patch_buffers(model, buffers, owner, plan.stage, plan.geoms, plan.grid)
    assert added is not None
    bound = lifetimes.lower_bound(buffers, len(model.operators))
    arena = planner.plan(buffers, bound)
    planner.check(buffers)
    plan.peak_bytes = arena
    return arena, bound, added
