"""C for a patch plan (codegen/patching.py): per-op geometry tables and `fm_patch_stage()`, which runs the stage's
ops patch by patch with the kernels the liveness plan calls, each on a copy of its parameter struct whose
input/output dims and pads are the patch's. The stage input window is copied in (or, full-width, used in place)
and the split layer's tile copied out (or written in place) row by row."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from formicary.codegen.lifetimes import Buffer
from formicary.codegen.ops.base import LoweredOp
from formicary.codegen.patching import PatchPlan

_GEOM_FIELDS = ("in_y", "in_x", "in_h", "in_w", "out_y", "out_x", "out_h", "out_w", "pad_h", "pad_w")


@dataclass
class PatchEmit:
    ops: set[int]
    first: int
    defines: list[str] = field(default_factory=list)     # after the tensor placement macros
    functions: list[str] = field(default_factory=list)   # before fm_invoke()
    invoke_lines: list[str] = field(default_factory=list)  # in fm_invoke(), in place of the stage's ops


def _params_type(decls: list[str], name: str) -> str:
    for d in decls:
        m = re.match(rf"static const (\w+) {re.escape(name)} = ", d)
        if m:
            return m.group(1)
    raise ValueError(f"no parameter struct {name}")


def emit(plan: PatchPlan, lowered: list[LoweredOp], decls: list[list[str]], added: dict[str, Buffer]) -> PatchEmit:
    stage = plan.stage
    n = len(plan.geoms)
    first, last = stage[0], stage[-1]
    pe = PatchEmit(ops={s.index for s in stage}, first=first.index)
    for role, b in added.items():
        pe.defines.append(f"#define fm_{role} ((uint8_t *)(fm_arena + {b.offset}u)) /* {b.size} B patch {role[6:]} */")
    f = pe.functions
    f += [(f"/* Patch-based stage: ops {first.index}..{last.index} run once per patch of op {last.index}'s output, "
           f"{plan.grid[0]}x{plan.grid[1]} patches,"),
          ("   halos recomputed (docs/memory.md, Patch-based execution). Per op and patch: the input window "
           "(origin, size),"),
          "   the output tile and the kernel's leading pads (the real padding only at image borders). */",
          "typedef struct { int32_t " + ", ".join(_GEOM_FIELDS) + "; } fm_patch_geom_t;"]
    for k, s in enumerate(stage):
        rows = ", ".join("{" + ", ".join(str(getattr(p[k], a)) for a in _GEOM_FIELDS) + "}" for p in plan.geoms)
        f.append(f"static const fm_patch_geom_t fm_patch_op{s.index}[{n}] = {{{rows}}};")
    if plan.copies_in or plan.copies_out:
        f += [("static void fm_patch_rows(uint8_t *dst, size_t dst_pitch, const uint8_t *src, size_t src_pitch, "
               "int32_t rows, size_t bytes)"),
              "{", "    for (int32_t r = 0; r < rows; ++r) {",
              "        memcpy(dst + (size_t)r * dst_pitch, src + (size_t)r * src_pitch, bytes);", "    }", "}"]
    f += ["static int fm_patch_stage(void)", "{", "    int rc;", f"    for (int p = 0; p < {n}; ++p) {{",
          "        void *src, *dst;", "        (void)src; (void)dst;"]
    for k, s in enumerate(stage):
        low = lowered[s.index]
        pname = f"fm_op{s.index}_params"
        ptype = _params_type(decls[s.index], pname)
        call = low.call.replace(f"&{pname}", "&q", 1)
        in_px, out_px = s.in_c * s.itemsize, s.out_c * s.itemsize   # bytes per pixel
        f += [f"        /* op {s.index}: {s.opcode} */", f"        FM_HOOK({s.index}, 0);", "        {",
              f"            const fm_patch_geom_t *g = &fm_patch_op{s.index}[p];"]
        if k == 0:
            src_row = f"(size_t){s.cols.size_in * in_px}u"
            if plan.copies_in:
                f += [(f"            fm_patch_rows(fm_patch_in, (size_t)g->in_w * {in_px}u, "
                       f"(const uint8_t *)fm_t{s.in_tensor} + ((size_t)g->in_y * {s.cols.size_in} + (size_t)g->in_x) "
                       f"* {in_px}u, {src_row}, g->in_h, (size_t)g->in_w * {in_px}u);"),
                      "            src = fm_patch_in;"]
            else:
                f.append(f"            src = (uint8_t *)fm_t{s.in_tensor} + (size_t)g->in_y * {src_row};")
            call = re.sub(rf"\bfm_t{s.in_tensor}\b", "src", call)
        if k == len(stage) - 1:
            if plan.copies_out:
                f.append("            dst = fm_patch_out;")
            else:
                f.append(f"            dst = (uint8_t *)fm_t{s.out_tensor} + (size_t)g->out_y * "
                         f"(size_t){s.cols.size_out * out_px}u;")
            call = re.sub(rf"\bfm_t{s.out_tensor}\b", "dst", call)
        f += [f"            {ptype} q = {pname};",
              "            q.input_dims.h = g->in_h; q.input_dims.w = g->in_w;",
              "            q.output_dims.h = g->out_h; q.output_dims.w = g->out_w;",
              "            q.pad_h = g->pad_h; q.pad_w = g->pad_w;",
              f"            rc = {call};"]
        if k == len(stage) - 1 and plan.copies_out:
            f.append(f"            if (rc == FM_OK) fm_patch_rows((uint8_t *)fm_t{s.out_tensor} + ((size_t)g->out_y * "
                     f"{s.cols.size_out} + (size_t)g->out_x) * {out_px}u, (size_t){s.cols.size_out * out_px}u, "
                     f"fm_patch_out, (size_t)g->out_w * {out_px}u, g->out_h, (size_t)g->out_w * {out_px}u);")
        f += ["        }", f"        if (rc != FM_OK) {{ FM_HOOK({s.index}, 1); return rc; }}",
              f"        FM_HOOK({s.index}, 1);"]
    f += ["    }", "    return FM_OK;", "}", ""]
    pe.invoke_lines = [f"    /* ops {first.index}..{last.index}: patch by patch ({plan.grid[0]}x{plan.grid[1]}) */",
                       "    rc = fm_patch_stage();", "    if (rc != FM_OK) return rc;"]
    return pe
