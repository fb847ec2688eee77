"""`generate(model, out_dir)`: .tflite → fm_model.h / fm_model.c for formicary-rt.

Order: read → lower every op (collecting every unsupported op) → lifetimes/buffers → plan → emit into a
temporary folder → move into place. Nothing is written unless the whole model compiles.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from formicary.codegen import (
    access,
    kernel_sets,
    lifetimes,
    patching,
    planner,
    subgraphs,
)
from formicary.codegen.emitter import emit_header, emit_source
from formicary.codegen.ops import (
    LowerContext,
    LoweredOp,
    Unsupported,
    lowering_for,
    supported_opcodes,
)
from formicary.errors import FormicaryError
from formicary.resources import firmware_dir
from formicary.tflite import ModelIR, read_model

FIRMWARE_DIR = firmware_dir()
RUNTIME_SOURCES = ("runtime/src/fm_runtime.c",)
INCLUDE_DIRS = ("runtime/include", "kernels/include")
SCRATCH_ALIGN = 4  # bytes: a kernel's scratch area starts on a word boundary
# Memory plans (`memory_plan`): `liveness` gives every live tensor its own bytes; `in-place` also lets an op's
# output overlap its dying input where the kernel's declared access pattern proves it safe (codegen/access.py);
# `patch` runs the first stage patch by patch (codegen/patching.py, when present); `auto` takes the smallest
# plan whose extra instructions stay within AUTO_MAX_EXTRA of liveness's.
MEMORY_PLANS = ("liveness", "in-place", "patch", "auto")
DEFAULT_MEMORY_PLAN = "auto"
AUTO_MAX_EXTRA = 0.10
# Extra instructions of a patch plan per unit of extra-MAC share, per kernel set: measured on qemu-m4 with
# benchmarks/patch_case.py (reference: +9.2 % MACs -> +10.6 % instructions, +4.5 % -> +5.2 %; dsp: +17.3 %,
# +9.5 %); sets not measured get 2.
PATCH_INSTRUCTIONS_PER_EXTRA_MAC = {"reference": 1.2, "dsp": 2.1}


@dataclass
class OpPlan:
    index: int
    opcode: str
    kernel: str
    macs: int
    inputs: list[int]
    outputs: list[int]
    packed_bytes: int = 0      # flash of the kernel set's AOT weight layout (0: TFLite layout kept)
    replaced_bytes: int = 0    # flash the TFLite-layout filter + bias would have taken instead


@dataclass
class CodegenResult:
    out_dir: str
    files: list[str]
    model_hash: str
    arena_bytes: int
    arena_lower_bound_bytes: int
    const_bytes: int                 # weights + per-op const arrays (flash); parameter structs not counted
    ops: list[OpPlan]
    kernel_sources: list[str]        # paths under firmware/ needed to link (runtime + kernels used, of the set)
    include_dirs: list[str]          # absolute include paths for a build
    tensors: list[dict] = field(default_factory=list)  # arena placement per activation tensor
    kernel_set: str = kernel_sets.REFERENCE  # the set the kernels come from (files it lacks: reference)
    scratch: list[dict] = field(default_factory=list)  # per op with scratch: {op, bytes, offset} in the arena
    subgraphs: list[dict] = field(default_factory=list)  # {index, name, first_op, ops, reachable, peak_bytes}: ops
                                                         # numbered globally, subgraph 0's first
    routes: list[dict] = field(default_factory=list)     # {route (fm_model_route bits), subgraphs, peak_bytes}
    memory_plan: str = "liveness"    # the plan the arena was laid out with (MEMORY_PLANS, never "auto")
    plans: list[dict] = field(default_factory=list)  # per plan considered: {plan, arena_bytes, extra_instructions,
                                                     # extra_instructions_pct, cost_model, available, reason}
    overlaps: list[dict] = field(default_factory=list)  # in-place: {op, input, output, max_offset, offset}
    patch: dict = field(default_factory=dict)          # plan `patch`: patching.PatchPlan.to_dict()

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ops"] = [asdict(o) for o in self.ops]
        return d

    def firmware_sources(self) -> list[Path]:
        return [FIRMWARE_DIR / s for s in self.kernel_sources]


@dataclass
class Lowered:
    model: ModelIR                 # every subgraph in one global numbering (subgraphs.flatten)
    model_hash: str
    ops: list[LoweredOp]
    decls: list[list[str]]
    constant_tensors: list[int]
    array_bytes: int = 0
    program: subgraphs.Program | None = None
    memory: dict = field(default_factory=dict)  # multi-subgraph models: peaks per subgraph and per route
    kernel_set: kernel_sets.KernelSet | None = None
    overlaps: list[dict] = field(default_factory=list)  # set by plan_memory under the in-place plan
    patch: tuple | None = None  # set by plan_patch_memory: (patching.PatchPlan, its extra buffers by role)
    patch_options: dict = field(default_factory=dict)  # plan_patch_memory's budget_pct / force / target_bytes


def lower_model(model_bytes: bytes, kernels: str | kernel_sets.KernelSet | None = None) -> Lowered:
    """Lower every op for a kernel set (default: reference), which sizes each op's scratch memory; one
    FormicaryError naming every op that cannot be compiled."""
    kset = kernel_sets.kernel_set(kernels)
    source = read_model(model_bytes)
    problems: list[dict] = []
    try:
        program = subgraphs.flatten(source)
    except subgraphs.ControlFlowError as exc:
        raise FormicaryError(f"formicary codegen cannot compile the model's subgraphs: {exc.reason}.", exc.fix,
                             details={"unsupported": [{"layer": -1, "op": "(model)", "reason": exc.reason,
                                                       "fix": exc.fix}]}) from None
    model = program.flat
    reachable = set(program.reachable_ops())
    if not model.operators or not model.inputs or not model.outputs:
        problems.append({"layer": -1, "op": "(model)", "reason": "the model has no operators, inputs or outputs",
                         "fix": "export a model with at least one op, one input and one output."})
    for role, ids in (("input", model.inputs), ("output", model.outputs)):
        for t in ids:
            if model.tensors[t].is_constant:
                problems.append({"layer": -1, "op": f"(model {role})", "reason": f"model {role} "
                                 f"'{model.tensors[t].name}' is a constant tensor",
                                 "fix": "export the model without constant inputs/outputs."})
    lowered: list[LoweredOp] = []
    decls: list[list[str]] = []
    consts: list[int] = []
    array_bytes = 0
    for op in model.operators:
        if op.index not in reachable:  # a subgraph no IF runs: nothing emitted (TFLM never runs it either)
            lowered.append(LoweredOp(call=None, kernel="(not run)"))
            decls.append([])
            continue
        fn = lowering_for(op.opcode)
        ctx = LowerContext(model, op, kset, program)
        try:
            if fn is None:
                raise Unsupported(f"no formicary-rt kernel for {op.opcode}",
                                  f"replace this layer with supported ones ({', '.join(supported_opcodes())}).")
            if any(model.tensors[t].is_variable for t in (*op.inputs, *op.outputs) if t >= 0):
                raise Unsupported("stateful (variable) tensors are not supported",
                                  "export a stateless model.")
            low = fn(op, ctx)
            low.packed_bytes, low.replaced_bytes = ctx.packed_bytes, ctx.replaced_bytes
            low.scratch_bytes = _scratch_bytes(kset, op, ctx, low)
        except Unsupported as exc:
            problems.append({"layer": op.index, "op": op.opcode, "reason": exc.reason, "fix": exc.fix})
            lowered.append(LoweredOp(call=None))
            decls.append([])
            continue
        lowered.append(low)
        decls.append(ctx.decls)
        array_bytes += ctx.array_bytes
        consts.extend(t for t in sorted(ctx.constant_tensors) if t not in consts)
    if problems:
        listing = "; ".join(f"layer {p['layer']} {p['op']}: {p['reason']}" for p in problems)
        fixes = sorted({p["fix"] for p in problems})
        raise FormicaryError(
            f"formicary codegen cannot compile {len(problems)} op(s): {listing}.",
            " ".join(fixes), details={"unsupported": problems})
    return Lowered(model, hashlib.sha256(model_bytes).hexdigest(), lowered, decls, consts, array_bytes, program,
                   kernel_set=kset)


def _scratch_bytes(kset: kernel_sets.KernelSet, op, ctx: LowerContext, low: LoweredOp) -> int:
    """Scratch bytes the set's kernel needs for this op; a call with no scratch gets NULL for its pointer."""
    ref = ctx.scratch_ref()
    takes_scratch = low.call is not None and ref in low.call
    n = kset.scratch_bytes(low.kernel, op, ctx) if low.call is not None else 0
    if n and not takes_scratch:
        raise FormicaryError(
            f"kernel set {kset.name} declares {n} scratch bytes for {low.kernel or op.opcode} (layer {op.index}), "
            "whose signature has no scratch pointer.",
            "declare scratch only for kernels taking `void *scratch` (firmware/kernels/include/fm_kernels.h), or "
            "add that parameter to the kernel in every set first (docs/codegen.md).")
    if takes_scratch and not n:
        low.call = low.call.replace(ref, "NULL")
    return n


def plan_memory(lowered: Lowered, preserve_inputs: bool = False, memory_plan: str = "liveness",
                ) -> tuple[list[lifetimes.Buffer], dict[int, int], int, int]:
    """Buffers and their arena offsets; returns (buffers, tensor -> buffer id, arena bytes, lower bound).
    Single-subgraph models: time is the op index. Multi-subgraph models: time is a step of the timeline of
    codegen.subgraphs, where the branches of an IF never overlap, so the arena is the max over routes.
    `memory_plan` "in-place": outputs may overlap their dying inputs as the kernels' access patterns allow
    (single-subgraph models; the lower bound returned is then the in-place floor)."""
    model = lowered.model
    program = lowered.program
    steps = None
    if program is not None and program.multi:
        tl = subgraphs.timeline(program)
        steps = subgraphs.step_sets(program, tl, preserve_inputs)
        op_time, n_steps = dict(tl.op_step), tl.n_steps
    else:
        op_time, n_steps = {op.index: op.index for op in model.operators}, len(model.operators)
    alias: dict[int, int] = {}
    inplace: dict[int, tuple[int, int]] = {}
    for op, low in zip(model.operators, lowered.ops):
        alias.update(low.alias)
        inplace.update({o: (i, op_time[op.index]) for o, i in low.inplace.items()})
    overlap = memory_plan == "in-place" and steps is None
    plan = _place(lowered, alias, inplace, preserve_inputs, steps, op_time, n_steps, overlap)
    if steps is not None and plan[2] > planner.ALIGN * -(-plan[3] // planner.ALIGN):
        # Lifetimes with gaps need not form an interval graph: an in-place merge across an IF can close an odd
        # cycle of conflicts that no placement at the bound resolves. Planning without in-place merges then
        # sometimes wins; keep the smaller arena.
        other = _place(lowered, alias, {}, preserve_inputs, steps, op_time, n_steps)
        if other[2] < plan[2]:
            plan = other
    buffers, owner, arena, bound, scratch = plan
    if steps is not None:
        lowered.memory = _route_memory(program, tl, buffers, owner, scratch)
    for op_index, bid in scratch.items():
        lowered.ops[op_index].scratch_offset = buffers[bid].offset
    return buffers, owner, arena, bound


MAX_REVERSED_VARIANTS = 8  # single-op reversals tried by the in-place plan (plus none and all)


def _survives_invoke(model: ModelIR, buffer: lifetimes.Buffer, preserve_inputs: bool) -> bool:
    """Whether a buffer must still hold its bytes after fm_invoke(): a model output, or a model input the
    caller reuses across invocations (`preserve_inputs`). Such a buffer never dies at the op that reads it last,
    so no output may be written over it."""
    keep = set(model.outputs) | (set(model.inputs) if preserve_inputs else set())
    return any(t in keep for t in buffer.tensors)


def _ops_over_a_dying_input(lowered: Lowered, buffers: list[lifetimes.Buffer], owner: dict[int, int],
                            preserve_inputs: bool):
    """(op, lowered op, input buffer, output buffer) for every kernel call whose first input's buffer dies at it
    (and need not outlive fm_invoke()) while its output's buffer is born there: the ops whose output could be
    placed over their input."""
    model = lowered.model
    for op, low in zip(model.operators, lowered.ops):
        if low.call is None or not op.outputs or not op.inputs or op.inputs[0] < 0:
            continue
        t_in, t_out = op.inputs[0], op.outputs[0]
        if t_in not in owner or t_out not in owner:
            continue
        bi, bo = buffers[owner[t_in]], buffers[owner[t_out]]
        if bi.id == bo.id or bi.last != op.index or bo.first != op.index:
            continue
        if _survives_invoke(model, bi, preserve_inputs):  # e.g. a model output read by the last op
            continue
        yield op, low, bi, bo


def overlap_pairs(lowered: Lowered, buffers: list[lifetimes.Buffer], owner: dict[int, int],
                  reverse: frozenset[int] = frozenset(), preserve_inputs: bool = False,
                  ) -> tuple[planner.Overlaps, list[dict]]:
    """(out buffer, in buffer) -> max offset for every op whose kernel's declared access pattern lets its output
    overlap its input (codegen/access.py), where the input's buffer dies at that op and the output's is born there.
    Ops in `reverse` run their rows last to first: their output gets a min offset (planner.Above) instead."""
    model, kset = lowered.model, lowered.kernel_set or kernel_sets.kernel_set(None)
    overlaps: planner.Overlaps = {}
    listed: list[dict] = []
    for op, low, bi, bo in _ops_over_a_dying_input(lowered, buffers, owner, preserve_inputs):
        t_in, t_out = op.inputs[0], op.outputs[0]
        if op.index in reverse:
            d = access.reversed_offset_limit(kset, low.kernel, model, op)
            if d is None or d >= bi.size:
                continue
            overlaps[(bo.id, bi.id)] = planner.Above(d)
            listed.append({"op": op.index, "input": t_in, "output": t_out, "min_offset": d, "rows_reversed": True})
            continue
        d = access.output_offset_limit(kset, low.kernel, model, op)
        if d is None or d <= -bo.size:  # no byte could be shared
            continue
        overlaps[(bo.id, bi.id)] = d
        listed.append({"op": op.index, "input": t_in, "output": t_out, "max_offset": d, "rows_reversed": False})
    return overlaps, listed


def _reversal_candidates(lowered: Lowered, buffers: list[lifetimes.Buffer], owner: dict[int, int],
                         preserve_inputs: bool = False) -> list[int]:
    """Ops that may run rows last to first with their output over their dying input: row-callable kernels whose
    output is no larger than their input (a stem or pooling layer the next layers want high in the arena)."""
    model, kset = lowered.model, lowered.kernel_set or kernel_sets.kernel_set(None)
    found = []
    for op, low, bi, bo in _ops_over_a_dying_input(lowered, buffers, owner, preserve_inputs):
        if bo.size > bi.size:
            continue
        if access.reversed_offset_limit(kset, low.kernel, model, op) is not None:
            found.append(op.index)
    return found[:MAX_REVERSED_VARIANTS]


def _place(lowered: Lowered, alias: dict[int, int], inplace: dict[int, tuple[int, int]], preserve_inputs: bool,
           steps: dict[int, frozenset[int]] | None, op_time: dict[int, int], n_steps: int, overlap: bool = False):
    model = lowered.model
    if overlap:  # forward only, each candidate op reversed, all reversed: the smallest arena wins
        buffers, owner = lifetimes.build_buffers(model, alias, inplace, preserve_inputs, steps)
        cands = _reversal_candidates(lowered, buffers, owner, preserve_inputs)
        variants = [frozenset()] + [frozenset({c}) for c in cands] + ([frozenset(cands)] if len(cands) > 1 else [])
        best = None
        for rev in variants:
            got = _place_once(lowered, alias, inplace, preserve_inputs, steps, op_time, n_steps, True, rev)
            if best is None or got[0][2] < best[0][2]:
                best = got
        result, lowered.overlaps = best
        return result
    result, lowered.overlaps = _place_once(lowered, alias, inplace, preserve_inputs, steps, op_time, n_steps,
                                           False, frozenset())
    return result


def _place_once(lowered: Lowered, alias: dict[int, int], inplace: dict[int, tuple[int, int]], preserve_inputs: bool,
                steps: dict[int, frozenset[int]] | None, op_time: dict[int, int], n_steps: int, overlap: bool,
                reverse: frozenset[int]):
    model = lowered.model
    buffers, owner = lifetimes.build_buffers(model, alias, inplace, preserve_inputs, steps)
    overlaps, listed = overlap_pairs(lowered, buffers, owner, reverse, preserve_inputs) if overlap else ({}, [])
    scratch: dict[int, int] = {}
    for op, low in zip(model.operators, lowered.ops):
        if low.scratch_bytes:
            t = op_time[op.index]
            b = lifetimes.Buffer(id=len(buffers), tensors=[], size=low.scratch_bytes, first=t,
                                 last=t, names=[f"scratch op {op.index}"], align=SCRATCH_ALIGN,
                                 steps=frozenset({t}) if steps is not None else None)
            buffers.append(b)
            scratch[op.index] = b.id
    bound = lifetimes.lower_bound(buffers, n_steps, overlaps)
    arena = planner.plan(buffers, bound, overlaps)
    planner.check(buffers, overlaps)
    for item in listed:
        item["offset"] = buffers[owner[item["output"]]].offset - buffers[owner[item["input"]]].offset
    used = [i for i in listed if i["offset"] < buffers[owner[i["input"]]].size
            and i["offset"] + buffers[owner[i["output"]]].size > 0]
    return (buffers, owner, arena, bound, scratch), used


def _route_memory(program: subgraphs.Program, tl: subgraphs.Timeline, buffers: list[lifetimes.Buffer],
                  owner: dict[int, int], scratch: dict[int, int]) -> dict:
    """Peak live bytes per subgraph (buffers holding its own tensors, a branch input aliased to its caller's
    tensor counted in both: the arena it would need alone) and per route (the steps that route executes): the
    planned arena is the max over routes, not the sum over subgraphs."""
    sgs_of_buffer: dict[int, set[int]] = {}
    for t, bid in owner.items():
        sgs_of_buffer.setdefault(bid, set()).add(
            next(s.index for s in program.subgraphs
                 if s.tensor_offset <= t < s.tensor_offset + _tensor_count(program, s.index)))
    for op_index, bid in scratch.items():
        sgs_of_buffer.setdefault(bid, set()).add(program.subgraph_of_op(op_index).index)

    def peak(step_list: list[int], keep) -> int:
        return max((sum(b.size for b in buffers if keep(b) and b.live_at(s)) for s in step_list), default=0)

    everything = list(range(tl.n_steps))
    per_sg = {sg.index: peak(everything, lambda b, k=sg.index: k in sgs_of_buffer.get(b.id, ()))
              for sg in program.subgraphs if sg.reachable}
    try:
        found = subgraphs.routes(program)
    except subgraphs.ControlFlowError:  # too many routes to list: the plan does not need them
        found = []
    per_route = [{"route": subgraphs.route_mask(r), "subgraphs": sorted(r),
                  "peak_bytes": peak(tl.route_steps(r), lambda b: True)} for r in found]
    return {"subgraphs": per_sg, "routes": per_route}


def _tensor_count(program: subgraphs.Program, sg: int) -> int:
    subs = program.subgraphs
    end = subs[sg + 1].tensor_offset if sg + 1 < len(subs) else len(program.flat.tensors)
    return end - subs[sg].tensor_offset


def read_model_bytes(model: str | Path | bytes) -> bytes:
    if isinstance(model, (str, Path)):
        path = Path(model)
        if not path.is_file():
            raise FormicaryError(f"model file {path} does not exist.", "check the path.")
        return path.read_bytes()
    return bytes(model)


def plan_patch_memory(lowered: Lowered, preserve_inputs: bool = False,
                      budget_pct: float = patching.DEFAULT_BUDGET_PCT,
                      kernels: str | kernel_sets.KernelSet | None = None,
                      force: tuple[int, tuple[int, int]] | None = None, target_bytes: int | None = None,
                      ) -> tuple[list[lifetimes.Buffer], dict[int, int], int, int]:
    """Memory plan `patch` (codegen/patching.py), shaped like plan_memory: (buffers, owner, arena, bound). The
    plan found (a patching.PatchPlan, inactive when no patching pays or for multi-subgraph models, which then
    keep the liveness plan) and its extra buffers are left in `lowered.patch` for the emitter."""
    model = lowered.model
    lowered.patch = (patching.PatchPlan(None), {})
    if lowered.program is not None and lowered.program.multi:
        buffers, owner, arena, bound = plan_memory(lowered, preserve_inputs)
        lowered.patch[0].peak_bytes = lowered.patch[0].liveness_bytes = arena
        return buffers, owner, arena, bound
    # the one place the rest of the network's plan comes from: the in-place plan's overlaps (ops after the
    # split only; stage ops work on patch buffers) plug in here, and into patching.place
    base, owner = lifetimes.build_buffers(model, *_sharing(lowered), preserve_inputs)
    scratch: dict[int, int] = {}
    for op, low in zip(model.operators, lowered.ops):
        if low.scratch_bytes:
            scratch[op.index] = len(base)
            base.append(lifetimes.Buffer(id=len(base), tensors=[], size=low.scratch_bytes, first=op.index,
                                         last=op.index, names=[f"scratch op {op.index}"], align=SCRATCH_ALIGN))
    pplan = patching.plan_patches(model, base, owner, [int(low.macs) for low in lowered.ops], budget_pct,
                                  force=force, target_bytes=target_bytes)
    kset = kernel_sets.kernel_set(kernels)

    def scratch_of(kernel: str, op, view) -> int:
        return kset.scratch_bytes(kernel, op, LowerContext(view, op, kset, lowered.program))

    patch_scratch = patching.stage_scratch(model, pplan, {i: low.kernel for i, low in enumerate(lowered.ops)},
                                           scratch_of) if pplan.active else {}
    if any(n > lowered.ops[i].scratch_bytes and i not in scratch for i, n in patch_scratch.items()):
        # a patch takes a kernel path needing scratch the whole op (called with NULL) does not: keep liveness
        pplan = patching.PatchPlan(None, liveness_bytes=pplan.liveness_bytes, total_macs=pplan.total_macs,
                                   budget_pct=budget_pct)
    if not pplan.active:
        buffers, owner, arena, bound = plan_memory(lowered, preserve_inputs)
        pplan.peak_bytes = arena
        lowered.patch = (pplan, {})
        return buffers, owner, arena, bound
    for op_index, n in patch_scratch.items():
        if n > lowered.ops[op_index].scratch_bytes:  # a patch takes a path needing more scratch than the op
            base[scratch[op_index]].size = n   # (the op's own scratch_bytes stays: other plans share `lowered`)
    arena, bound, added = patching.place(model, base, owner, pplan)
    for op_index, bid in scratch.items():
        lowered.ops[op_index].scratch_offset = base[bid].offset
    lowered.patch = (pplan, added)
    return base, owner, arena, bound


def _sharing(lowered: Lowered) -> tuple[dict[int, int], dict[int, tuple[int, int]]]:
    alias: dict[int, int] = {}
    inplace: dict[int, tuple[int, int]] = {}
    for op, low in zip(lowered.model.operators, lowered.ops):
        alias.update(low.alias)
        inplace.update({o: (i, op.index) for o, i in low.inplace.items()})
    return alias, inplace


_CALL = re.compile(r"^(fm_\w+)\(&(\w+), (\w+), (\w+)(?:, (\w+))?\)$")


def reversed_rows_call(lowered: Lowered, op_index: int) -> None:
    """Rewrite op `op_index` to run its output rows last to first, one kernel call per row with that row's input
    rows (input_dims.h and pad_h of a copy of its parameters adjusted; bit-exact, the kernel computing each row as
    in the whole call): its output may then sit above its input (codegen/access.py reversed_offset_limit)."""
    op, low = lowered.model.operators[op_index], lowered.ops[op_index]
    m = _CALL.match(low.call or "")
    g = access.geometry(lowered.model, op)
    rows = access.row_windows(g) if g is not None else None
    if m is None or rows is None:
        raise FormicaryError(f"op {op_index} ({op.opcode}) cannot run rows last to first.",
                             "this is a formicary bug: access.ROW_CALLABLE names a kernel whose call differs.")
    fn, params, t_in, t_out, scratch = m.groups()
    c_type = next(re.match(r"static const (\w+) ", d).group(1) for d in lowered.decls[op_index]
                  if d.startswith("static const ") and f" {params} =" in d)
    in_row, out_row = g.in_d[2] * g.in_d[3], g.out_d[2] * g.out_d[3]
    name = f"fm_op{op_index}_rows_reversed"
    table = ", ".join(f"{{{lo}, {hi - lo}, {pad}}}" for lo, hi, pad in rows)
    extra = f", {scratch}" if scratch is not None else ""
    lowered.decls[op_index].append("\n".join([
        f"/* op {op_index} runs its output rows last to first (in-place plan: its output overlaps its input from",
        "   above); per row: first input row, input rows, leading pad. */",
        f"static const int16_t {name}_rows[{len(rows)}][3] = {{{table}}};",
        f"static int {name}(void)",
        "{",
        f"    {c_type} p = {params};",
        "    p.output_dims.h = 1;",
        f"    for (int32_t r = {len(rows) - 1}; r >= 0; --r) {{",
        f"        p.input_dims.h = {name}_rows[r][1];",
        f"        p.pad_h = {name}_rows[r][2];",
        f"        const int rc = {fn}(&p, (const int8_t *){t_in} + (size_t){name}_rows[r][0] * {in_row}u,",
        f"                            (int8_t *){t_out} + (size_t)r * {out_row}u{extra});",
        "        if (rc != FM_OK) {",
        "            return rc;",
        "        }",
        "    }",
        "    return FM_OK;",
        "}"]))
    low.call = f"{name}()"


# Cost model of the in-place plan. Overlapped ops call the very same kernels with other pointers: 0 instructions.
# An op run rows last to first makes one call per output row: measured on qemu-m4 (docs/memory.md), KWS's in-place
# firmware runs 4 pointwise convolutions x 25 rows that way for 11,080 more instructions than liveness (111 per
# row call, reference kernels); 250 per row leaves room for the optimized sets' per-call set-up. The model's
# instructions are estimated from its MACs at an instructions-per-MAC floor per set (measured on qemu-m4 on the
# MLPerf Tiny models: reference 9.1-15.5, dsp 1.3 and more; helium 0.3 assumed), so the percentage errs high.
ROW_CALL_INSTRUCTIONS = 250
INSTRUCTIONS_PER_MAC_FLOOR = {"reference": 9.0, "dsp": 1.0, "helium": 0.3}


def _extra_instructions(lowered: Lowered, overlaps: list[dict]) -> tuple[int, float]:
    """(modelled extra instructions, % of the model's estimated instructions) of a plan's overlaps."""
    rows = sum(access.geometry(lowered.model, lowered.model.operators[o["op"]]).out_d[1]
               for o in overlaps if o.get("rows_reversed"))
    extra = rows * ROW_CALL_INSTRUCTIONS
    name = lowered.kernel_set.name if lowered.kernel_set else kernel_sets.REFERENCE
    base = sum(int(low.macs) for low in lowered.ops) * INSTRUCTIONS_PER_MAC_FLOOR.get(name, 0.3)
    return extra, round(100.0 * extra / base, 3) if base else (0.0 if not extra else 100.0)


def check_memory_plan(memory_plan: str | None) -> str:
    plan = memory_plan or DEFAULT_MEMORY_PLAN
    if plan not in MEMORY_PLANS:
        raise FormicaryError(f"unknown memory plan {plan!r}.", f"use one of: {', '.join(MEMORY_PLANS)}.",
                             details={"memory_plan": plan, "available": list(MEMORY_PLANS)})
    return plan


def choose_memory_plan(lowered: Lowered, preserve_inputs: bool = False, memory_plan: str | None = None,
                       ) -> tuple[str, tuple, list[dict]]:
    """Plan the arena under `memory_plan`; "auto": the smallest arena among the plans whose extra instructions stay
    within AUTO_MAX_EXTRA of liveness's. Returns (plan used, plan_memory's result, one summary per plan considered).

    Instruction cost model: `in-place` calls the very same kernels with other pointers, so it adds no instruction
    (measured: docs/memory.md); `patch` adds its recomputed MACs' share of the model's MACs, scaled by
    PATCH_INSTRUCTIONS_PER_EXTRA_MAC of the kernel set (small patches cost optimized kernels more per MAC)."""
    plan = check_memory_plan(memory_plan)
    summaries: list[dict] = []
    results: dict[str, tuple] = {}

    def run(name: str) -> tuple:
        if name not in results:
            if name == "patch":
                lowered.overlaps = []
                options = dict(lowered.patch_options)
                if options.get("budget_pct") is None:  # auto: the MAC budget whose modelled cost is AUTO_MAX_EXTRA
                    options["budget_pct"] = (100 * AUTO_MAX_EXTRA / _patch_factor(lowered) if plan == "auto"
                                             else patching.DEFAULT_BUDGET_PCT)
                results[name] = plan_patch_memory(lowered, preserve_inputs, kernels=lowered.kernel_set, **options)
            else:
                results[name] = plan_memory(lowered, preserve_inputs, name)
            results[name] = (*results[name], list(lowered.overlaps))
        return results[name]

    # liveness first: the bound reported is its bound, and the plan chosen must be the last one run (or re-run),
    # since each run sets the ops' scratch offsets
    wanted = {"auto": ("liveness", "patch", "in-place"), "in-place": ("liveness", "in-place"),
              "patch": ("liveness", "patch")}.get(plan, (plan,))
    for name in wanted:
        arena = run(name)[2]
        if name == "patch":
            p = lowered.patch[0]
            factor = _patch_factor(lowered)
            pct = round(p.to_dict()["extra_macs_pct"] * factor, 3)
            summaries.append({"plan": name, "arena_bytes": arena, "lower_bound_bytes": run(name)[3],
                              "extra_instructions": None, "extra_instructions_pct": pct,
                              "cost_model": f"recomputed MACs x {factor} (measured, docs/memory.md)",
                              "available": p.active, "patch": p.to_dict()})
            continue
        extra, pct = _extra_instructions(lowered, run(name)[4])
        summaries.append({"plan": name, "arena_bytes": arena, "lower_bound_bytes": run(name)[3],
                          "extra_instructions": extra, "extra_instructions_pct": pct,
                          "cost_model": ("same kernel calls; rows-last-to-first ops: one call per output row at "
                                         f"{ROW_CALL_INSTRUCTIONS} instructions each") if name == "in-place"
                          else "baseline",
                          "available": True, "overlapped_ops": len(run(name)[4])})
    chosen = plan
    if plan == "auto":
        fits = [s for s in summaries if s["extra_instructions_pct"] <= 100 * AUTO_MAX_EXTRA]
        chosen = min(fits, key=lambda s: (s["arena_bytes"], s["extra_instructions_pct"]))["plan"]
    buffers, owner, arena, _, overlaps = run(chosen)
    if chosen != wanted[-1]:  # plan_memory set the ops' scratch offsets and overlaps of the last plan run: redo
        results.pop(chosen)
        buffers, owner, arena, _, overlaps = run(chosen)
    lowered.overlaps = overlaps
    # the bound reported is always the tensor-level liveness bound (what no plan without overlaps can beat)
    return chosen, (buffers, owner, arena, run("liveness")[3]), summaries


def _patch_factor(lowered: Lowered) -> float:
    name = lowered.kernel_set.name if lowered.kernel_set else kernel_sets.REFERENCE
    return PATCH_INSTRUCTIONS_PER_EXTRA_MAC.get(name, 2.0)


def memory_plans(model: str | Path | bytes, kernels: str | kernel_sets.KernelSet | None = None,
                 preserve_inputs: bool = False) -> dict:
    """Every available plan's arena for the model, without writing code: {"plans": [choose_memory_plan's
    summaries], "auto": the plan `auto` picks, "liveness_bound_bytes"}. For inspect, bench and the report."""
    lowered = lower_model(read_model_bytes(model), kernels)
    chosen, (_, _, _, bound), summaries = choose_memory_plan(lowered, preserve_inputs, "auto")
    return {"plans": summaries, "auto": chosen, "liveness_bound_bytes": bound,
            "kernels": lowered.kernel_set.name if lowered.kernel_set else kernel_sets.REFERENCE,
            "preserve_inputs": preserve_inputs}


def generate(model: str | Path | bytes, out_dir: str | Path, *, preserve_inputs: bool = False,
             kernels: str | kernel_sets.KernelSet | None = None, memory_plan: str | None = None,
             patch_budget_pct: float | None = None,
             patch_force: tuple[int, tuple[int, int]] | None = None,
             patch_target_bytes: int | None = None) -> CodegenResult:
    """Compile a .tflite to fm_model.h/fm_model.c in out_dir (created or updated atomically per file), plus
    fm_kernels.json naming the kernel set and the kernel files the model calls (read by the firmware build).

    By default input bytes are reused for later activations (smallest arena): write the inputs before every
    fm_invoke(). `preserve_inputs=True` keeps them intact across invocations (FM_PRESERVES_INPUTS 1) at the
    cost of their size in RAM. `kernels`: the kernel set to link with (default: reference). `memory_plan`: one of
    MEMORY_PLANS (default "auto", see choose_memory_plan). `patch_budget_pct` caps the
    patch plan's extra MACs as a share of the model's (default: patching.DEFAULT_BUDGET_PCT under `patch`, under
    `auto` the share whose modelled instruction cost is AUTO_MAX_EXTRA); `patch_force` = (split layer, (rows, cols)) imposes a split
    and grid; `patch_target_bytes`: the cheapest patch plan whose arena bound fits that many bytes."""
    kset = kernel_sets.kernel_set(kernels)
    plan_name = check_memory_plan(memory_plan)
    data = read_model_bytes(model)
    lowered = lower_model(data, kset)
    m = lowered.model
    lowered.patch_options = {"budget_pct": patch_budget_pct, "force": patch_force,
                             "target_bytes": patch_target_bytes}
    plan_name, (buffers, owner, arena, bound), plan_summaries = choose_memory_plan(lowered, preserve_inputs,
                                                                                   plan_name)
    for item in lowered.overlaps:
        if item.get("rows_reversed"):
            reversed_rows_call(lowered, item["op"])
    pplan, added = lowered.patch if plan_name == "patch" and lowered.patch is not None else (None, {})
    patch_c = None
    if pplan is not None and pplan.active:
        from formicary.codegen import patch_emit

        patch_c = patch_emit.emit(pplan, lowered.ops, lowered.decls, added)
    program = lowered.program
    header = emit_header(m, arena, lowered.model_hash, len(m.operators), preserve_inputs,
                         len(program.subgraphs) if program is not None else 1)
    source = emit_source(m, lowered.ops, lowered.decls, lowered.constant_tensors, buffers, owner, arena,
                         lowered.model_hash, program, patch=patch_c)

    kernel_files = [f for low in lowered.ops for f in low.sources]
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".fm-codegen-", dir=out.parent))
    written = ("fm_model.h", "fm_model.c", kernel_sets.MANIFEST)
    try:
        (tmp / "fm_model.h").write_text(header)
        (tmp / "fm_model.c").write_text(source)
        kernel_sets.write_manifest(tmp, kset, kernel_files)
        if not out.exists():
            os.replace(tmp, out)
        else:
            if not out.is_dir():
                raise FormicaryError(f"{out} exists and is not a folder.", "choose another -o DIR.")
            for f in written:
                os.replace(tmp / f, out / f)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    sources = list(RUNTIME_SOURCES) + [kernel_sets.relative_to_firmware(p)
                                       for p in kernel_sets.select_kernel_sources(kset, kernel_files)]
    const_bytes = sum(m.tensors[t].nbytes for t in lowered.constant_tensors) + lowered.array_bytes
    by_id = {b.id: b for b in buffers}
    return CodegenResult(
        out_dir=str(out), files=[str(out / f) for f in written],
        model_hash=lowered.model_hash, arena_bytes=arena, arena_lower_bound_bytes=bound,
        const_bytes=const_bytes,
        ops=[OpPlan(op.index, op.opcode, low.kernel, int(low.macs), list(op.inputs), list(op.outputs),
                    low.packed_bytes, low.replaced_bytes)
             for op, low in zip(m.operators, lowered.ops)],
        kernel_sources=sources, include_dirs=[str(FIRMWARE_DIR / d) for d in INCLUDE_DIRS],
        tensors=[{"index": t, "name": m.tensors[t].name, "bytes": m.tensors[t].nbytes,
                  "offset": by_id[owner[t]].offset, "first_op": by_id[owner[t]].first,
                  "last_op": by_id[owner[t]].last} for t in sorted(owner)],
        kernel_set=kset.name,
        scratch=[{"op": i, "bytes": low.scratch_bytes, "offset": low.scratch_offset}
                 for i, low in enumerate(lowered.ops) if low.scratch_bytes],
        subgraphs=[{"index": sg.index, "name": sg.name, "first_op": sg.op_start, "ops": sg.op_count,
                    "reachable": sg.reachable,
                    "peak_bytes": lowered.memory.get("subgraphs", {}).get(sg.index, bound if sg.index == 0 else 0)}
                   for sg in program.subgraphs] if program is not None else [],
        routes=lowered.memory.get("routes", []),
        memory_plan=plan_name, plans=plan_summaries, overlaps=list(lowered.overlaps),
        patch=lowered.patch[0].to_dict() if lowered.patch is not None else {})
