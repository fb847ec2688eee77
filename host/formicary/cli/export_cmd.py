"""`formicary export MODEL --board B --format F -o DIR`: the model as a library for the user's own firmware."""
from __future__ import annotations

from pathlib import Path

import typer

from formicary.cli._output import JSON_OPTION, emit


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export(model: Path = typer.Argument(..., help="Quantized .tflite model."),
               board: str = typer.Option(..., "--board", "-b", help="Board the library is for (its kernel set "
                                                                    "and CPU flags): see `formicary boards`."),
               fmt: str = typer.Option("platformio", "--format", "-f",
                                       help="platformio | cmake | arduino | c (library metadata to write)."),
               out: Path = typer.Option(..., "-o", "--out",
                                        help="Library folder: created, or updated when an earlier export wrote it "
                                             "(the model of the same name is replaced, the others kept)."),
               name: str = typer.Option(None, "--name", help="C prefix of the model's symbols (<name>_invoke()); "
                                                             "default: from the file name."),
               shared_arena: bool = typer.Option(False, "--shared-arena",
                                                 help="Use the arena shared by the library's models instead of its "
                                                      "own (for applications running one model at a time)."),
               store: Path = typer.Option(None, "--store", help="Results store to read the measured latency from "
                                                                "(default: formicary's store)."),
               as_json: bool = JSON_OPTION) -> None:
        """Write a self-contained library: the model with prefixed symbols, formicary-rt, its kernels, README."""
        from formicary.export import export_model

        result = export_model(model, board, fmt, out, name=name, shared_arena=shared_arena, store_path=store)
        result["units"] = {"arena_bytes": "bytes", "flash_bytes": "bytes", "ram_bytes": "bytes",
                           "const_bytes": "bytes", "shared_arena_bytes": "bytes", "runtime_flash_bytes": "bytes",
                           "macs": "multiply-accumulates"}
        emit(result, as_json, _human)


def _human(console, r: dict) -> None:
    console.print(f"exported {r['exported']} into {r['out']} ({r['format']} library {r['library']}, board "
                  f"{r['board']}, {r['kernel_set']} kernels, formicary {r['formicary_version']})")
    for m in r["models"]:
        flash = f"{m['flash_bytes']:,} B flash" if m.get("flash_bytes") is not None else \
            f"~{m['const_bytes']:,} B weights"
        arena = "shared arena" if m["shared_arena"] else "own arena"
        console.print(f"  {m['name']:<16} sha256 {m['sha256'][:12]}  arena {m['arena_bytes']:,} B ({arena})  "
                      f"{flash}  {m['macs']:,} MACs")
    if r.get("runtime_flash_bytes") is not None:
        console.print(f"  formicary-rt + {len({k for m in r['models'] for k in m['kernels']})} kernels: "
                      f"{r['runtime_flash_bytes']:,} B flash (once for all models)")
    if r["shared_arena_bytes"]:
        console.print(f"  shared arena: {r['shared_arena_bytes']:,} B")
    for c in r["changes"]["models"]:
        if c["status"] == "added":
            console.print(f"model {c['name']}: added")
            continue
        diff = "; ".join(f"{k} {_short(a)} -> {_short(b)}" for k, (a, b) in c.get("diff", {}).items())
        console.print(f"model {c['name']}: {c['status']}" + (f" ({diff})" if diff else " (no change)"))
    ch = r["changes"]
    console.print(f"files: {len(ch['added'])} added, {len(ch['changed'])} changed, {len(ch['removed'])} removed"
                  + (f" ({', '.join(ch['removed'])})" if ch["removed"] else ""))


def _short(v) -> str:
    if isinstance(v, str) and len(v) == 64:
        return v[:12]
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)
