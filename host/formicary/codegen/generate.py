"""`generate(model, out_dir)`: .tflite → fm_model.h / fm_model.c for formicary-rt.

Order: read → lower every op (collecting every unsupported op) → lifetimes/buffers → plan → emit into a
temporary folder → move into place. Nothing is written unless the whole model compiles.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from formicary.codegen import kernel_sets, lifetimes, patching, planner, subgraphs
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
    memory_plan: str = "liveness"                        # the plan the arena was laid out with
    patch: dict = field(default_factory=dict)            # plan `patch`: patching.PatchPlan.to_dict()

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
    patch: tuple | None = None  # set by plan_patch_memory: (patching.PatchPlan, its extra buffers by role)


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
    return Lowered(model, hashlib.sha256(model_bytes).hexdigest(), lowered, decls, consts, array_bytes, program)


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


def plan_memory(lowered: Lowered, preserve_inputs: bool = False) -> tuple[list[lifetimes.Buffer], dict[int, int],
                                                                           int, int]:
    """Buffers and their arena offsets; returns (buffers, tensor -> buffer id, arena bytes, lower bound).
    Single-subgraph models: time is the op index. Multi-subgraph models: time is a step of the timeline of
    codegen.subgraphs, where the branches of an IF never overlap, so the arena is the max over routes."""
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
    plan = _place(lowered, alias, inplace, preserve_inputs, steps, op_time, n_steps)
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


def _place(lowered: Lowered, alias: dict[int, int], inplace: dict[int, tuple[int, int]], preserve_inputs: bool,
           steps: dict[int, frozenset[int]] | None, op_time: dict[int, int], n_steps: int):
    model = lowered.model
    buffers, owner = lifetimes.build_buffers(model, alias, inplace, preserve_inputs, steps)
    scratch: dict[int, int] = {}
    for op, low in zip(model.operators, lowered.ops):
        if low.scratch_bytes:
            t = op_time[op.index]
            b = lifetimes.Buffer(id=len(buffers), tensors=[], size=low.scratch_bytes, first=t,
                                 last=t, names=[f"scratch op {op.index}"], align=SCRATCH_ALIGN,
                                 steps=frozenset({t}) if steps is not None else None)
            buffers.append(b)
            scratch[op.index] = b.id
    bound = lifetimes.lower_bound(buffers, n_steps)
    arena = planner.plan(buffers, bound)
    planner.check(buffers)
    return buffers, owner, arena, bound, scratch


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
            lowered.ops[op_index].scratch_bytes = base[scratch[op_index]].size = n
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


def generate(model: str | Path | bytes, out_dir: str | Path, *, preserve_inputs: bool = False,
             kernels: str | kernel_sets.KernelSet | None = None, memory_plan: str = "liveness",
             patch_budget_pct: float = patching.DEFAULT_BUDGET_PCT,
             patch_force: tuple[int, tuple[int, int]] | None = None,
             patch_target_bytes: int | None = None) -> CodegenResult:
    """Compile a .tflite to fm_model.h/fm_model.c in out_dir (created or updated atomically per file), plus
    fm_kernels.json naming the kernel set and the kernel files the model calls (read by the firmware build).

    By default input bytes are reused for later activations (smallest arena): write the inputs before every
    fm_invoke(). `preserve_inputs=True` keeps them intact across invocations (FM_PRESERVES_INPUTS 1) at the
    cost of their size in RAM. `kernels`: the kernel set to link with (default: reference). `memory_plan`:
    `liveness` or `patch` (the first stage run patch by patch, docs/memory.md; `patch_budget_pct` caps its extra
    MACs as a share of the model's; `patch_force` = (split layer, (rows, cols)) imposes a split and grid;
    `patch_target_bytes`: the cheapest patch plan whose arena bound fits that many bytes, none if liveness fits)."""
    kset = kernel_sets.kernel_set(kernels)
    data = read_model_bytes(model)
    lowered = lower_model(data, kset)
    m = lowered.model
    if memory_plan == "patch":
        buffers, owner, arena, bound = plan_patch_memory(lowered, preserve_inputs, patch_budget_pct, kset,
                                                         patch_force, patch_target_bytes)
    elif memory_plan == "liveness":
        buffers, owner, arena, bound = plan_memory(lowered, preserve_inputs)
    else:
        raise FormicaryError(f"unknown memory plan {memory_plan!r}.", "use liveness or patch.")
    pplan, added = lowered.patch if lowered.patch is not None else (None, {})
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
        memory_plan=memory_plan, patch=pplan.to_dict() if pplan is not None else {})
