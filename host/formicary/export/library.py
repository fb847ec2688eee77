"""Assemble an exported library: one or more models, one formicary-rt, one copy of each kernel they use.

Layout (every format): `src/` holds, flat, formicary-rt (fm_runtime.c/.h), the kernel headers, the kernel C files
the models call (from the board's kernel set, each file from the first set of its base chain having it), one
`<name>_model.c/.h` per model (symbols prefixed, codegen/prefix.py), `fm_shared_arena.c/.h` and the umbrella
header `formicary_models.h`. Next to it: the format's metadata (formats.py), README.md and formicary-export.json,
the manifest that records the formicary version, board, kernel set, every model (source, sha256, arena, flash,
MACs, kernels) and every file the export wrote with its sha256.

Exporting into a folder that holds an export adds the model, or replaces the model of the same name: the files
of the previous export that are no longer needed are removed, files the user added are left alone, and the
result says what changed (model hash, arena, flash; files added, changed, removed). All models of one library
share the kernels, so they must come from the same board's kernel set.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from formicary import __version__
from formicary.boards import Board, load_board
from formicary.codegen import kernel_sets
from formicary.codegen.generate import FIRMWARE_DIR, generate, read_model_bytes
from formicary.codegen.prefix import (
    SHARED_ARENA,
    SHARED_ARENA_HEADER,
    SHARED_ARENA_MACRO,
    check_name,
    default_name,
    prefix_model,
)
from formicary.errors import FormicaryError

MANIFEST = "formicary-export.json"
EXPORT_FORMATS = ("platformio", "cmake", "arduino", "c")
UMBRELLA = "formicary_models.h"
RUNTIME_FILES = ("runtime/include/fm_runtime.h", "runtime/src/fm_runtime.c")
SIZE_SECTIONS = ("text", "data", "bss")


@dataclass(frozen=True)
class ExportRequest:
    model: Path
    board: Board
    fmt: str
    out: Path
    name: str
    shared_arena: bool
    library: str


def read_export(out: str | Path) -> dict | None:
    """The manifest of an export folder, or None when the folder holds no export."""
    path = Path(out) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _library_name(out: Path) -> str:
    name = default_name(out.resolve().name) or "formicary_models"
    return name if not name.startswith("m_") else "formicary_models"


def _request(model: str | Path, board: str | Board, fmt: str, out: str | Path, name: str | None,
             shared_arena: bool) -> ExportRequest:
    if fmt not in EXPORT_FORMATS:
        raise FormicaryError(f"unknown export format {fmt!r}.", f"use one of: {', '.join(EXPORT_FORMATS)}.")
    b = load_board(board) if isinstance(board, str) else board
    model = Path(model)
    if model.suffix != ".tflite":
        raise FormicaryError(f"{model.name} is not a .tflite model.",
                             "compile it first (`formicary compile`), then export the .tflite.")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FormicaryError(f"{out} exists and is not a folder.", "choose another -o DIR.")
    if out.is_dir() and any(out.iterdir()) and read_export(out) is None:
        raise FormicaryError(f"{out} is not empty and holds no formicary export ({MANIFEST}).",
                             "export into an empty or new folder, or into a folder an earlier export wrote.")
    return ExportRequest(model=model, board=b, fmt=fmt, out=out, name=check_name(name or default_name(model.stem)),
                         shared_arena=shared_arena, library=_library_name(out))


def export_model(model: str | Path, board: str | Board, fmt: str, out: str | Path, *, name: str | None = None,
                 shared_arena: bool = False, store_path: str | Path | None = None) -> dict[str, Any]:
    """Export MODEL for BOARD into the library folder OUT (created, or updated when it holds an export).

    Returns the manifest plus `changes` (per model and per file) and `out`."""
    from formicary import progress
    from formicary.export import formats

    req = _request(model, board, fmt, out, name, shared_arena)
    kset = kernel_sets.check_core(req.board.kernels, req.board.name, req.board.core)
    old = read_export(req.out)
    if old is not None and old.get("kernel_set") != kset.name:
        raise FormicaryError(
            f"{req.out} holds models for kernel set {old.get('kernel_set')} (board {old.get('board')}); "
            f"board {req.board.name} uses {kset.name}: the models of one library share their kernels.",
            f"export into another folder, or use --board {old.get('board')}.")
    data = read_model_bytes(req.model)
    staged = Path(tempfile.mkdtemp(prefix=".fm-export-", dir=req.out.parent if req.out.parent.exists() else None))
    try:
        with progress.step(f"codegen {req.model.name} ({kset.name} kernels, prefix {req.name}_)"):
            gen = generate(data, staged / "gen", kernels=kset)
        header, source = prefix_model((staged / "gen" / "fm_model.h").read_text(),
                                      (staged / "gen" / "fm_model.c").read_text(), req.name,
                                      shared_arena=req.shared_arena)
        stamp = (f"/* formicary {__version__} export: model `{req.name}` from {req.model.name} (sha256 "
                 f"{gen.model_hash}), board {req.board.name}, {kset.name} kernels. */\n")
        header, source = stamp + header, stamp + source
        kernel_files = kernel_sets.read_manifest(staged / "gen")["kernels"]
        entry = {
            "name": req.name, "source": req.model.name, "sha256": gen.model_hash, "shared_arena": req.shared_arena,
            "arena_bytes": gen.arena_bytes, "const_bytes": gen.const_bytes,
            "macs": sum(o.macs for o in gen.ops), "ops": len(gen.ops), "kernels": kernel_files,
            "inputs": _tensor_info(data, "input"), "outputs": _tensor_info(data, "output"),
            "latency": _stored_latency(gen.model_hash, req.board.name, kset.name, store_path),
        }
        models = {m["name"]: m for m in (old or {}).get("models", [])}
        models[req.name] = entry
        files: dict[str, bytes] = {}
        for m in models.values():  # other models keep their generated files as exported
            if m["name"] == req.name:
                files[f"src/{m['name']}_model.h"] = header.encode()
                files[f"src/{m['name']}_model.c"] = source.encode()
            else:
                for ext in ("h", "c"):
                    rel = f"src/{m['name']}_model.{ext}"
                    if not (req.out / rel).is_file():
                        raise FormicaryError(f"{req.out / rel} of model {m['name']} is missing.",
                                             f"re-export {m['source']} with --name {m['name']} first, or delete "
                                             f"the folder and export every model again.")
                    files[rel] = (req.out / rel).read_bytes()
        files.update(_runtime_and_kernels(kset, [k for m in models.values() for k in m["kernels"]]))
        shared = max((m["arena_bytes"] for m in models.values() if m["shared_arena"]), default=0)
        files.update(_shared_arena(shared))
        files[f"src/{UMBRELLA}"] = _umbrella(list(models.values()), shared).encode()
        with progress.step(f"measure flash with arm-none-eabi-gcc ({req.board.name} flags)"):
            sizes, objects = _measure(files, req.board, staged / "measure", (old or {}).get("objects", {}))
        if sizes is not None:
            for m in models.values():
                m["flash_bytes"] = sizes[f"{m['name']}_model.c"]["text"] + sizes[f"{m['name']}_model.c"]["data"]
                m["ram_bytes"] = sizes[f"{m['name']}_model.c"]["bss"] + sizes[f"{m['name']}_model.c"]["data"]
        manifest = {
            "formicary_version": __version__, "format": req.fmt, "library": (old or {}).get("library", req.library),
            "board": req.board.name, "core": req.board.core, "cpu_flags": list(req.board.cpu_flags),
            "kernel_set": kset.name, "shared_arena_bytes": shared,
            "models": sorted(models.values(), key=lambda m: m["name"]),
            "runtime_flash_bytes": (sum(v["text"] + v["data"] for k, v in sizes.items() if not k.endswith("_model.c"))
                                    if sizes is not None else None),
            "flash_measured_with": (f"arm-none-eabi-gcc -O2 {' '.join(req.board.cpu_flags)} "
                                    "-ffunction-sections -fdata-sections (object sizes; the linker's "
                                    "--gc-sections drops what the application does not call)") if sizes else None,
        }
        manifest["objects"] = objects
        files.update(formats.metadata_files(manifest))
        files["README.md"] = formats.readme(manifest).encode()
        manifest["files"] = {rel: _sha(blob) for rel, blob in sorted(files.items())}
        changes = _apply(req.out, old, files, manifest)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    changes["models"] = _model_changes(old, manifest, req.name)
    return {**manifest, "out": str(req.out), "exported": req.name, "changes": changes}


def _tensor_info(data: bytes, role: str) -> list[dict]:
    """Name, shape, type and quantization of the model's inputs or outputs (for the README and the manifest)."""
    from formicary.tflite import read_model

    m = read_model(data)
    out = []
    for t in (m.inputs if role == "input" else m.outputs):
        tensor = m.tensors[t]
        q = tensor.quant
        out.append({"name": tensor.name, "shape": [int(d) for d in tensor.shape], "dtype": tensor.dtype,
                    "bytes": int(tensor.nbytes),
                    "scale": float(q.scale[0]) if q is not None and q.scale.size else None,
                    "zero_point": int(q.zero_point[0]) if q is not None and q.zero_point.size else None})
    return out


def _stored_latency(model_hash: str, board: str, kset: str, store_path: str | Path | None) -> dict | None:
    """The latest complete stored run of this exact model on this board with this kernel set, if any."""
    try:
        from formicary.store.results import ResultStore, default_store_path

        path = Path(store_path) if store_path else default_store_path()
        if not path.is_file():
            return None
        with ResultStore(path) as store:
            for run in store.list_runs(board=board, model=model_hash, status="complete", limit=20):
                full = store.get_run(run["id"])
                if (full.get("model", {}).get("sha256") != model_hash
                        or (full.get("firmware", {}).get("kernels") or kernel_sets.REFERENCE) != kset):
                    continue
                lat = full.get("latency") or {}
                return {"run": full.get("uid"), "median": lat.get("median"), "unit": lat.get("unit"),
                        "estimate_ms": lat.get("estimate_ms"), "method": lat.get("method"),
                        "started_at": full.get("started_at")}
    except Exception:  # noqa: BLE001 - the store is a nicety here: an unreadable one must not block an export
        return None
    return None


def _runtime_and_kernels(kset: kernel_sets.KernelSet, kernel_files: list[str]) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for rel in RUNTIME_FILES:
        files[f"src/{Path(rel).name}"] = (FIRMWARE_DIR / rel).read_bytes()
    for h in sorted((FIRMWARE_DIR / "kernels" / "include").glob("*.h")):
        files[f"src/{h.name}"] = h.read_bytes()
    for k in kset.chain():  # a set's own headers (fm_dsp_gemm.h, ...) sit next to its C files
        for h in sorted(k.folder.glob("*.h")):
            files.setdefault(f"src/{h.name}", h.read_bytes())
    for path in kernel_sets.select_kernel_sources(kset, kernel_files):
        files[f"src/{path.name}"] = path.read_bytes()
    return files


def _shared_arena(shared: int) -> dict[str, bytes]:
    h = (f"/* Generated by `formicary export`: the arena shared by the models exported with --shared-arena. */\n"
         f"#ifndef FM_SHARED_ARENA_H\n#define FM_SHARED_ARENA_H\n#include <stdint.h>\n\n"
         f"/* The largest arena of the models sharing it (0: no model shares it). */\n"
         f"#define {SHARED_ARENA_MACRO} {shared}u\n"
         f'#ifdef __cplusplus\nextern "C" {{\n#endif\n'
         f"extern uint8_t {SHARED_ARENA}[];\n"
         f"#ifdef __cplusplus\n}}\n#endif\n\n#endif /* FM_SHARED_ARENA_H */\n")
    c = ("/* Generated by `formicary export`. Models sharing this arena must run one at a time: a model's inputs\n"
         "   and outputs live in it, so read a model's outputs before invoking another one. */\n"
         '#include "fm_runtime.h"\n'
         f'#include "{SHARED_ARENA_HEADER}"\n\n'
         f"#if {SHARED_ARENA_MACRO} > 0\n"
         f"uint8_t {SHARED_ARENA}[{SHARED_ARENA_MACRO}] FM_ALIGNED(16);\n"
         "#endif\n")
    return {f"src/{SHARED_ARENA_HEADER}": h.encode(), "src/fm_shared_arena.c": c.encode()}


def _umbrella(models: list[dict], shared: int) -> str:
    lines = ["/* Generated by `formicary export` - do not edit. Every model of this library; each model's API is",
             "   its own header: <name>_input_data(i), <name>_invoke(), <name>_output_data(i), <NAME>_ARENA_BYTES. */",
             "#ifndef FORMICARY_MODELS_H", "#define FORMICARY_MODELS_H", ""]
    for m in sorted(models, key=lambda m: m["name"]):
        arena = "shared arena" if m["shared_arena"] else "own arena"
        lines.append(f'#include "{m["name"]}_model.h" /* {m["source"]}, sha256 {m["sha256"][:12]}, {arena} */')
    if shared:
        lines += ["", f'#include "{SHARED_ARENA_HEADER}" /* {shared} bytes shared: run those models one at a time */']
    lines += ["", "#endif /* FORMICARY_MODELS_H */", ""]
    return "\n".join(lines)


def _measure(files: dict[str, bytes], board: Board, work: Path, known: dict[str, dict]
             ) -> tuple[dict[str, dict[str, int]] | None, dict[str, dict]]:
    """text/data/bss of every C file of the library compiled for the board, and the per-file record kept in the
    manifest (a file with the same sha256 and flags as in the previous export is not compiled again). None
    without the toolchain or for boards formicary cannot build for: the README then gives the weights' bytes."""
    gcc, size = shutil.which("arm-none-eabi-gcc"), shutil.which("arm-none-eabi-size")
    if gcc is None or size is None or not board.buildable:
        return None, {}
    flags = [*board.cpu_flags, "-O2", "-std=c11", "-ffunction-sections", "-fdata-sections"]
    # a model's header comes with its .c (same generation); every other header may change any object
    headers = _sha(b"".join(blob for rel, blob in sorted(files.items())
                            if rel.endswith(".h") and not rel.endswith("_model.h") and not rel.endswith(UMBRELLA)))
    src = work / "src"
    src.mkdir(parents=True)
    for rel, blob in files.items():
        if rel.startswith("src/"):
            (src / rel[4:]).write_bytes(blob)
    sizes: dict[str, dict[str, int]] = {}
    records: dict[str, dict] = {}
    objs = []
    for c in sorted(src.glob("*.c")):
        key = {"sha256": _sha(c.read_bytes()), "headers_sha256": headers, "flags": " ".join(flags)}
        prev = known.get(c.name)
        if prev is not None and all(prev.get(k) == v for k, v in key.items()):
            sizes[c.name] = {k: prev[k] for k in SIZE_SECTIONS}
            records[c.name] = prev
            continue
        obj = work / (c.stem + ".o")
        proc = subprocess.run([gcc, *flags, "-I", str(src), "-c", str(c), "-o", str(obj)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise FormicaryError(f"the exported library does not compile for {board.name}: {c.name}.",
                                 "this is a formicary bug; details.log has the compiler's message.",
                                 details={"log": proc.stderr[-3000:]})
        objs.append(obj)
        records[c.name] = key
    if objs:
        out = subprocess.run([size, "-B", "-d", *map(str, objs)], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines()[1:]:
            parts = line.split()
            name = Path(parts[5]).stem + ".c"
            sizes[name] = dict(zip(SIZE_SECTIONS, map(int, parts[:3])))
            records[name] = {**records[name], **sizes[name]}
    return sizes, records


def _apply(out: Path, old: dict | None, files: dict[str, bytes], manifest: dict) -> dict[str, list[str]]:
    """Write the library into OUT: files of the previous export no longer produced are removed, changed ones
    replaced (each through a temporary file and a rename), files the user added untouched."""
    old_files: dict[str, str] = (old or {}).get("files", {})
    new_files: dict[str, str] = manifest["files"]
    out.mkdir(parents=True, exist_ok=True)
    added = sorted(set(new_files) - set(old_files))
    removed = sorted(set(old_files) - set(new_files))
    changed = sorted(rel for rel in set(new_files) & set(old_files)
                     if new_files[rel] != old_files[rel] or not (out / rel).is_file())
    for rel in removed:
        (out / rel).unlink(missing_ok=True)
    for rel in added + changed:
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.fm-tmp")
        tmp.write_bytes(files[rel])
        os.replace(tmp, dest)
    for rel in removed:  # folders the previous export made that are now empty
        parent = (out / rel).parent
        while parent != out and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    tmp = out / f".{MANIFEST}.fm-tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, out / MANIFEST)
    return {"added": added, "changed": changed, "removed": removed}


def _model_changes(old: dict | None, new: dict, exported: str) -> list[dict]:
    before = {m["name"]: m for m in (old or {}).get("models", [])}
    out = []
    for m in new["models"]:
        prev = before.get(m["name"])
        if prev is None:
            out.append({"name": m["name"], "status": "added"})
            continue
        diffs = {k: [prev.get(k), m.get(k)] for k in ("sha256", "arena_bytes", "flash_bytes", "shared_arena",
                                                       "kernels") if prev.get(k) != m.get(k)}
        status = "replaced" if m["name"] == exported else "kept"
        if status == "kept" and not diffs:
            continue
        out.append({"name": m["name"], "status": status if diffs or status == "kept" else "unchanged",
                    "diff": diffs})
    return out
