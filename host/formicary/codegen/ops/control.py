"""Control flow: IF (TFLite/TFLM semantics). inputs[0] is the condition (bool, its first element decides);
inputs[1:] are passed to the chosen branch subgraph's inputs (the branch input aliases the caller's tensor:
same arena bytes, no copy; a constant is copied in), the branch runs (its ops report to the profile
under their own global indices), and its outputs are copied into the IF's outputs. Outputs are copied, not aliased: a branch
output may be (an alias of) a branch input, and both branches' outputs would then share bytes with inputs they
still read. The IF op's own profile entry covers reading the condition and any copies in. Branch subgraphs are emitted as `fm_subgraph_<k>()`
(emitter.py); codegen.subgraphs checks the call graph is a tree."""
from __future__ import annotations

from formicary.codegen.ops import register
from formicary.codegen.ops.base import LowerContext, LoweredOp, Unsupported
from formicary.tflite.ir import Operator


def subgraph_function(index: int) -> str:
    return f"fm_subgraph_{index}"


@register("IF")
def lower_if(op: Operator, ctx: LowerContext) -> LoweredOp:
    program = ctx.program
    if program is None or op.index not in program.branches:
        raise Unsupported("IF outside a multi-subgraph model", "re-export the model.")
    ins = ctx.inputs()
    if not ins or ins[0] is None or any(t is None for t in ins[1:]):
        raise Unsupported("IF without a condition or with an omitted input", "re-export the model.")
    cond = ins[0]
    if cond.dtype != "bool" or cond.numel < 1:
        raise Unsupported(f"IF condition '{cond.name}' is {cond.dtype}{list(cond.shape)}",
                          "condition IF on a bool tensor (tf.cond converts to one).")
    outs = ctx.outputs()
    model = ctx.model
    i = op.index
    alias: dict[int, int] = {}
    lines = [f"static int {ctx.name('if')}(void)", "{", "    int rc;",
             f"    FM_HOOK({i}, 0);",
             f"    if (((const uint8_t *){ctx.tensor_ref(cond)})[0] != 0u) {{"]
    for k, target in enumerate(program.branches[i]):
        sg = program.subgraphs[target]
        if len(sg.inputs) != len(ins) - 1 or len(sg.outputs) != len(outs):
            raise Unsupported(f"IF passes {len(ins) - 1} inputs / takes {len(outs)} outputs, subgraph {target} "
                              f"'{sg.name}' has {len(sg.inputs)} / {len(sg.outputs)}", "re-export the model.")
        if k == 1:
            lines.append("    } else {")
        for src, dst_i in zip(ins[1:], sg.inputs):
            dst = model.tensors[dst_i]
            _same(src, dst, "input")
            if dst.is_constant:
                raise Unsupported(f"subgraph {target} input '{dst.name}' is a constant", "re-export the model.")
            if not src.is_constant and sg.inputs.count(dst_i) == 1:
                # The branch reads the caller's bytes in place: no copy, no second buffer. Safe because TFLite
                # ops never write their inputs, and the planner merges in place only into a buffer whose every
                # tensor (the caller's included) is dead (lifetimes.build_buffers).
                alias[dst_i] = src.index
                continue
            lines.append(f"        memcpy({ctx.tensor_ref(dst)}, {ctx.tensor_ref(src)}, {src.nbytes}u);")
        lines += [f"        FM_HOOK({i}, 1);", f"        rc = {subgraph_function(target)}();",
                  "        if (rc != FM_OK) return rc;"]
        for src_i, dst in zip(sg.outputs, outs):
            src = model.tensors[src_i]
            _same(src, dst, "output")
            lines.append(f"        memcpy({ctx.tensor_ref(dst)}, {ctx.tensor_ref(src)}, {src.nbytes}u);")
    lines += ["    }", "    return FM_OK;", "}"]
    ctx.decls.append("\n".join(lines))
    return LoweredOp(call=f"{ctx.name('if')}()", kernel="(if)", own_hooks=True, alias=alias)


def _same(a, b, role: str) -> None:
    if a.dtype != b.dtype or a.nbytes != b.nbytes:
        raise Unsupported(f"IF {role} '{a.name}' ({a.dtype}{list(a.shape)}) does not match the branch's "
                          f"'{b.name}' ({b.dtype}{list(b.shape)})", "re-export the model.")
