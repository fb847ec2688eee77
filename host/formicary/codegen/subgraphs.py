"""Multi-subgraph models (control flow: IF) as one program for codegen.

`flatten(model)` gives every subgraph's tensors and operators one global numbering, subgraph by subgraph in
subgraph order (subgraph 0 first, so its indices are unchanged): op lowerings, the emitter and the profile all
use the global numbers. Only subgraphs reachable from subgraph 0 through IF ops are lowered; the call graph
must be a tree (each branch subgraph called by exactly one IF op, no recursion).

`step_sets(program)` gives each activation tensor the set of "steps" during which it is live, on a timeline
where the two branches of an IF are laid out one after the other: steps of branches that never run together
are distinct, so tensors of different branches never conflict, while a tensor of a caller that is live across
an IF conflicts with every step of both branches. Every step belongs to the executions (routes) that reach it,
so the largest sum of live sizes over the steps is the arena lower bound over all routes (max, not sum).
An IF op takes: for each branch b, an `enter` step (the branch's inputs are copied in: IF inputs and branch
inputs live together), b's own steps, an `exit` step (b's outputs copied to the IF's outputs).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from formicary.tflite.ir import ModelIR, Operator, SubgraphIR

MAX_DEPTH = 32  # nesting of IF ops; the generated C recurses this deep at most


class ControlFlowError(Exception):
    """The subgraph structure cannot be compiled (reason, fix), reported as a model-level problem."""

    def __init__(self, reason: str, fix: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fix = fix


@dataclass
class SubgraphInfo:
    index: int
    name: str
    tensor_offset: int
    op_start: int            # global index of its first op
    op_count: int
    inputs: list[int]        # global tensor indices
    outputs: list[int]
    reachable: bool = False
    caller: int | None = None  # global index of the IF op that runs it

    @property
    def ops(self) -> range:
        return range(self.op_start, self.op_start + self.op_count)


@dataclass
class Program:
    flat: ModelIR                          # global tensors/operators; inputs/outputs = subgraph 0's
    subgraphs: list[SubgraphInfo]
    branches: dict[int, tuple[int, int]] = field(default_factory=dict)  # IF op (global) -> (then, else)

    @property
    def multi(self) -> bool:
        return len(self.subgraphs) > 1

    def subgraph_of_op(self, op_index: int) -> SubgraphInfo:
        return next(s for s in self.subgraphs if op_index in s.ops)

    def reachable_ops(self) -> list[int]:
        return [i for s in self.subgraphs if s.reachable for i in s.ops]


def _remap(sg: SubgraphIR, t_off: int, o_off: int) -> tuple[list, list[Operator]]:
    tensors = [replace(t, index=t.index + t_off) for t in sg.tensors]
    ops = [replace(op, index=op.index + o_off,
                   inputs=tuple(i + t_off if i >= 0 else -1 for i in op.inputs),
                   outputs=tuple(i + t_off for i in op.outputs)) for op in sg.operators]
    return tensors, ops


def flatten(model: ModelIR) -> Program:
    """One global numbering of every subgraph; raises ControlFlowError for call graphs formicary-rt refuses."""
    subgraphs = model.subgraphs or [SubgraphIR(0, "main", model.tensors, model.operators, model.inputs,
                                               model.outputs)]
    if len(subgraphs) == 1:
        info = SubgraphInfo(0, subgraphs[0].name, 0, 0, len(model.operators), list(model.inputs),
                            list(model.outputs), reachable=True)
        return Program(model, [info])
    tensors: list = []
    operators: list[Operator] = []
    infos: list[SubgraphInfo] = []
    for sg in subgraphs:
        t_off, o_off = len(tensors), len(operators)
        ts, ops = _remap(sg, t_off, o_off)
        tensors += ts
        operators += ops
        infos.append(SubgraphInfo(sg.index, sg.name, t_off, o_off, len(ops), [t + t_off for t in sg.inputs],
                                  [t + t_off for t in sg.outputs]))
    flat = replace(model, tensors=tensors, operators=operators, inputs=list(model.inputs),
                   outputs=list(model.outputs))
    program = Program(flat, infos)
    _walk(program, 0, 0)
    return program


def _walk(program: Program, sg: int, depth: int) -> None:
    info = program.subgraphs[sg]
    info.reachable = True
    if depth > MAX_DEPTH:
        raise ControlFlowError(f"IF ops nest deeper than {MAX_DEPTH} levels", "flatten the nesting of the model.")
    for i in info.ops:
        op = program.flat.operators[i]
        if op.opcode in ("WHILE", "CALL_ONCE", "CALL", "STABLEHLO_CASE"):
            raise ControlFlowError(f"op {i} ({op.opcode} in subgraph {sg} '{info.name}'): formicary-rt runs IF "
                                   "as its only control-flow op", "export the model with tf.cond (IF) only.")
        if op.opcode != "IF":
            continue
        pair = []
        for key in ("then_subgraph_index", "else_subgraph_index"):
            target = op.options.get(key)
            if not isinstance(target, int) or not 0 < target < len(program.subgraphs):
                raise ControlFlowError(f"op {i} (IF) names subgraph {target} as its {key[:4]} branch, which does "
                                       "not exist or is the main subgraph", "the file is corrupt; re-export it.")
            pair.append(target)
        if pair[0] == pair[1]:
            raise ControlFlowError(f"op {i} (IF) runs subgraph {pair[0]} in both branches",
                                   "export the condition's two branches as two subgraphs.")
        for target in pair:
            callee = program.subgraphs[target]
            if callee.reachable:
                raise ControlFlowError(f"subgraph {target} '{callee.name}' is run by more than one IF op "
                                       "(or recursively)", "export each branch as its own subgraph.")
            callee.caller = i
        program.branches[i] = (pair[0], pair[1])
        for target in pair:
            _walk(program, target, depth + 1)


@dataclass
class Timeline:
    """Global steps of the program: per op its own step(s), per IF op its enter/exit steps, per branch
    subgraph the step its inputs are written (enter) and the step its outputs are read (exit)."""

    op_steps: dict[int, list[int]] = field(default_factory=dict)   # all steps during the op (IF: nested too)
    op_step: dict[int, int] = field(default_factory=dict)          # a plain op's own step
    if_enter: dict[int, list[int]] = field(default_factory=dict)
    if_exit: dict[int, list[int]] = field(default_factory=dict)
    sg_enter: dict[int, int] = field(default_factory=dict)
    sg_exit: dict[int, int] = field(default_factory=dict)
    owner: list[int] = field(default_factory=list)  # step -> the subgraph whose running makes the step happen
    n_steps: int = 0

    def route_steps(self, route: frozenset[int]) -> list[int]:
        """The steps executed when exactly the subgraphs of `route` run."""
        return [s for s in range(self.n_steps) if self.owner[s] in route]


def timeline(program: Program) -> Timeline:
    tl = Timeline()

    def lay(sg: int) -> None:
        for i in program.subgraphs[sg].ops:
            start = tl.n_steps
            if i in program.branches:
                for target in program.branches[i]:
                    tl.sg_enter[target] = tl.n_steps
                    tl.if_enter.setdefault(i, []).append(tl.n_steps)
                    tl.owner.append(target)
                    tl.n_steps += 1
                    lay(target)
                    tl.sg_exit[target] = tl.n_steps
                    tl.if_exit.setdefault(i, []).append(tl.n_steps)
                    tl.owner.append(target)
                    tl.n_steps += 1
            else:
                tl.op_step[i] = tl.n_steps
                tl.owner.append(sg)
                tl.n_steps += 1
            tl.op_steps[i] = list(range(start, tl.n_steps))

    lay(0)
    return tl


def step_sets(program: Program, tl: Timeline, preserve_inputs: bool = False) -> dict[int, frozenset[int]]:
    """Live steps of every activation tensor of the reachable subgraphs (see the module doc)."""
    flat = program.flat
    out: dict[int, frozenset[int]] = {}
    for info in program.subgraphs:
        if not info.reachable:
            continue
        ops = list(info.ops)
        pos = {i: k for k, i in enumerate(ops)}
        first: dict[int, int] = {}   # tensor -> position (-1 = subgraph enter)
        last: dict[int, int] = {}    # tensor -> position (len(ops) = subgraph exit)
        # Position -1 is a branch's enter step, len(ops) its exit step. In subgraph 0, model outputs (and inputs
        # kept with preserve_inputs) live to len(ops), a position with no step of its own: what matters is that
        # the last op, even an IF, is then not their last reader, so they stay live through all its steps.
        entry = 0 if info.index == 0 else -1
        final = len(ops)
        for t in info.inputs:
            first[t] = entry
        for i in ops:
            op = flat.operators[i]
            for t in op.outputs:
                first.setdefault(t, pos[i])
                last[t] = max(last.get(t, pos[i]), pos[i])
            for t in op.inputs:
                if t >= 0:
                    first.setdefault(t, entry)
                    last[t] = max(last.get(t, pos[i]), pos[i])
        for t in info.outputs:
            first.setdefault(t, entry)
            last[t] = final
        if preserve_inputs and info.index == 0:
            for t in info.inputs:
                last[t] = final
        for t, f in first.items():
            if flat.tensors[t].is_constant:
                continue
            lst = last.get(t, f)
            steps: set[int] = set()
            for k in range(f, lst + 1):
                if k < 0:
                    steps.add(tl.sg_enter[info.index])
                    continue
                if k >= len(ops):
                    if info.index:
                        steps.add(tl.sg_exit[info.index])
                    continue
                i = ops[k]
                op = flat.operators[i]
                if i in program.branches and k == f and t in op.outputs:
                    steps.update(tl.if_exit[i])
                elif i in program.branches and k == lst and t not in op.outputs:
                    steps.update(tl.if_enter[i])  # last read: copied into the chosen branch
                else:
                    steps.update(tl.op_steps[i])
            out[t] = frozenset(steps)
    return out


MAX_ROUTES = 4096


def routes(program: Program) -> list[frozenset[int]]:
    """Every set of subgraphs one invocation can run (subgraph 0 always), as fm_model_route() reports them;
    at most MAX_ROUTES (ControlFlowError beyond: sequential IFs multiply the routes)."""
    def of(sg: int) -> list[frozenset[int]]:
        combos = [frozenset({sg})]
        for i in program.subgraphs[sg].ops:
            if i not in program.branches:
                continue
            choices = [r for target in program.branches[i] for r in of(target)]
            combos = [a | b for a in combos for b in choices]
            if len(combos) > MAX_ROUTES:
                raise ControlFlowError(f"more than {MAX_ROUTES} routes through the model's IF ops",
                                       "nest the conditions instead of chaining many IF ops.")
        return combos

    return sorted(of(0), key=lambda r: sorted(r))


def route_mask(route: frozenset[int]) -> int:
    """fm_model_route() bits of a route."""
    mask = 0
    for sg in route:
        mask |= 1 << min(sg, 31)
    return mask
