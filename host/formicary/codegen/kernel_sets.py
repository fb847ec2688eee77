"""Kernel sets: interchangeable implementations of the formicary-rt kernels.

A set is a folder `firmware/kernels/<set>/` of C files named like the reference kernels
(`firmware/kernels/reference/conv2d_s8.c`, ...) implementing the same functions with the same signatures
(`firmware/kernels/include/fm_kernels.h`), as TFLM's `kernels/cmsis_nn/` does for its reference kernels. A set
needs only the files it improves: for every kernel file a model needs, `select_kernel_sources` takes the set's
file when the set has one and the reference file otherwise. The host build (`CodegenResult.firmware_sources`)
and the PlatformIO project (`formicary.build.generate_project`) both compile what it returns.

The Python side of a set (`KernelSet.scratch`) says how many arena bytes of scratch each of its kernels needs for
an op's shapes, like CMSIS-NN's `*_get_buffer_size()` siblings; codegen asks it while lowering and the arena
planner places the scratch as a buffer alive during that op only. The reference set needs it only for
TRANSPOSE_CONV int8 (TFLM's int32 accumulators).

`KernelSet.pack` is the ahead-of-time half of an optimized set: for the kernels of the convolution family it
rewrites the constant weights at codegen into the layout its micro-kernels consume (codegen/packing.py). A set may
name a `base` set for the files it lacks (helium -> dsp -> reference): a file's scratch and packing always come
from the set that owns the file compiled, so a kernel and its AOT data never disagree.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from formicary.errors import FormicaryError

REFERENCE = "reference"
# Written by `generate` next to fm_model.c: which set the model was generated for and which kernel files it calls.
MANIFEST = "fm_kernels.json"

# (op, ctx) -> scratch bytes the kernel needs for this op's shapes (ctx: codegen.ops.base.LowerContext)
ScratchFn = Callable[..., int]
# (request: codegen.packing.PackRequest, ctx) -> struct fields replacing `filter`/`bias`, or None to keep them
PackFn = Callable[..., "dict[str, str] | None"]


def firmware_dir() -> Path:
    from formicary.codegen.generate import FIRMWARE_DIR

    return FIRMWARE_DIR


def kernels_dir() -> Path:
    return firmware_dir() / "kernels"


@dataclass(frozen=True)
class KernelSet:
    name: str
    root: Path | None = None          # folder of the set's .c files; None: firmware/kernels/<name>
    scratch: Mapping[str, ScratchFn] = field(default_factory=dict)  # kernel function -> bytes for an op
    pack: Mapping[str, PackFn] = field(default_factory=dict)         # kernel function -> AOT weight layout
    base: str | None = REFERENCE      # set serving the files this one lacks (None only for the reference set)
    description: str = ""
    cores: tuple[str, ...] | None = None  # board cores whose instructions the set's C uses; None: any (portable C)
    # zero-block fraction from which the set's block-sparse kernels beat its dense ones (ops/sparse.pays);
    # None: ops/sparse.SPARSE_MIN_ZERO_BLOCKS
    sparse_min_zero_blocks: float | None = None

    @property
    def folder(self) -> Path:
        return Path(self.root) if self.root is not None else kernels_dir() / self.name

    def files(self) -> list[str]:
        """Names of the kernel files this set provides."""
        return sorted(p.name for p in self.folder.glob("*.c")) if self.folder.is_dir() else []

    def chain(self) -> list[KernelSet]:
        """This set, then its base sets down to the reference set."""
        out: list[KernelSet] = [self]
        while out[-1].base is not None and out[-1].name != REFERENCE:
            nxt = kernel_set(out[-1].base)
            if any(k.name == nxt.name for k in out):
                raise FormicaryError(f"kernel set {self.name}: its base sets form a cycle "
                                     f"({' -> '.join(k.name for k in out)} -> {nxt.name}).",
                                     "fix the `base` of the sets in host/formicary/codegen/sets/.")
            out.append(nxt)
        if out[-1].name != REFERENCE:
            out.append(kernel_set(REFERENCE))
        return out

    def owner(self, file_name: str) -> KernelSet | None:
        """The set in this set's chain whose file `file_name` is compiled (None: no set has it)."""
        return next((k for k in self.chain() if (k.folder / file_name).is_file()), None)

    def owner_of_kernel(self, kernel: str) -> KernelSet:
        """The set whose file implements kernel function `kernel` (fm_<op>_<type> lives in <op>_<type>.c)."""
        return self.owner(kernel_file(kernel)) or self

    def scratch_bytes(self, kernel: str, op, ctx) -> int:
        """Scratch bytes `kernel` needs for `op`, as declared by the set owning its file (0: none declared)."""
        fn = self.owner_of_kernel(kernel).scratch.get(kernel) if kernel else None
        n = int(fn(op, ctx)) if fn is not None else 0
        if n < 0:
            raise ValueError(f"kernel set {self.name}: negative scratch size {n} for {kernel}")
        return n

    def packer(self, kernel: str) -> PackFn | None:
        """The AOT weight packer of the set owning `kernel`'s file, if it has one."""
        return self.owner_of_kernel(kernel).pack.get(kernel) if kernel else None


def check_core(kset: str | KernelSet | None, board_name: str, core: str) -> KernelSet:
    """The set, once every set of its chain can run on `core` (a firmware build); one clear error otherwise.
    Host builds take any set: the intrinsics have portable definitions there."""
    ks = kernel_set(kset)
    for k in ks.chain():
        if k.cores is not None and core not in k.cores:
            fits = [n for n in available_kernel_sets() if all(
                c.cores is None or core in c.cores for c in kernel_set(n).chain())]
            raise FormicaryError(f"the {ks.name} kernel set needs a core with its instructions "
                                 f"({', '.join(k.cores)}); board {board_name} has a {core}.",
                                 f"use --kernels {' or '.join(fits)} for this board.",
                                 details={"kernels": ks.name, "board": board_name, "core": core, "usable": fits})
    return ks


def kernel_file(kernel: str) -> str:
    """`fm_conv2d_s8` -> `conv2d_s8.c`: kernel functions and their files are named alike."""
    return (kernel[3:] if kernel.startswith("fm_") else kernel) + ".c"


# Sets with a Python side (scratch declarations). A folder under firmware/kernels/ without an entry here is a set
# whose kernels need no scratch.
def _transpose_conv_scratch(op, ctx) -> int:
    from formicary.codegen.ops.upsample import transpose_conv_scratch_bytes

    return transpose_conv_scratch_bytes(op, ctx)


# The reference set's only scratch: TRANSPOSE_CONV int8 accumulates in int32 per output element, as TFLM's does.
_SETS: dict[str, KernelSet] = {REFERENCE: KernelSet(REFERENCE, base=None, scratch={
    "fm_transpose_conv_s8": _transpose_conv_scratch}, description=(
    "portable C99 loops, the layout of TFLM's reference kernels; no packing, scratch only for TRANSPOSE_CONV's "
    "int32 accumulators"))}
_BUILTIN_LOADED = False


def _load_builtin_sets() -> None:
    """Import host/formicary/codegen/sets/ once: each module registers its set's Python side."""
    global _BUILTIN_LOADED
    if not _BUILTIN_LOADED:
        _BUILTIN_LOADED = True
        from formicary.codegen import sets

        sets.load_all()


def register_kernel_set(kset: KernelSet) -> KernelSet:
    """Declare a set (its folder and scratch sizes); replaces an earlier declaration of the same name."""
    if kset.name == REFERENCE and kset is not _SETS[REFERENCE]:
        raise ValueError("the reference kernel set cannot be replaced")
    _SETS[kset.name] = kset
    return kset


def unregister_kernel_set(name: str) -> None:
    if name != REFERENCE:
        _SETS.pop(name, None)


def available_kernel_sets() -> list[str]:
    """Declared sets and the folders under firmware/kernels/ holding kernel files (reference first)."""
    _load_builtin_sets()
    names = set(_SETS)
    root = kernels_dir()
    if root.is_dir():
        names.update(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("*.c")))
    return sorted(names, key=lambda n: (n != REFERENCE, n))


def kernel_set(name: str | KernelSet | None) -> KernelSet:
    """The set called `name` (None: the reference set); an unknown name raises FormicaryError listing the sets."""
    if isinstance(name, KernelSet):
        return name
    name = name or REFERENCE
    _load_builtin_sets()
    if name in _SETS:
        kset = _SETS[name]
    elif "/" not in name and name not in (".", "..", "include") and (kernels_dir() / name).is_dir():
        kset = KernelSet(name)
    else:
        kset = None
    if kset is None or not kset.folder.is_dir():
        raise FormicaryError(f"unknown kernel set {name!r}.",
                             f"use one of: {', '.join(available_kernel_sets())} (folders of firmware/kernels/).",
                             details={"kernels": name, "available": available_kernel_sets()})
    return kset


def select_kernel_sources(kset: str | KernelSet | None, files: Iterable[str]) -> list[Path]:
    """Absolute paths of the kernel C files to compile: for every reference file name in `files` (in order, once
    each), the file of that name of the first set in the set's chain (itself, its base sets, reference) having it."""
    ks = kernel_set(kset)
    out: list[Path] = []
    for name in dict.fromkeys(files):
        owner = ks.owner(name)
        path = owner.folder / name if owner is not None else None
        if path is None:
            raise FormicaryError(f"no kernel file {name} in the {ks.name} or reference kernel set.",
                                 "this is a formicary bug (a lowering names a kernel file that does not exist).")
        out.append(path)
    return out


def set_sources(kset: str | KernelSet | None) -> list[Path]:
    """Every kernel file of the set, resolved through its chain (each name once, from the first set having it):
    what a library serving any model of the set compiles (the linker keeps the objects a model calls)."""
    ks = kernel_set(kset)
    return select_kernel_sources(ks, sorted({name for k in ks.chain() for name in k.files()}))


def write_manifest(model_dir: Path, kset: KernelSet, files: Iterable[str]) -> Path:
    path = Path(model_dir) / MANIFEST
    path.write_text(json.dumps({"kernel_set": kset.name, "kernels": list(dict.fromkeys(files))}, indent=2) + "\n")
    return path


def read_manifest(model_dir: Path) -> dict | None:
    path = Path(model_dir) / MANIFEST
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def model_kernel_sources(model_dir: Path) -> tuple[str | None, list[Path]]:
    """(kernel set, kernel files) a generated model in `model_dir` needs, from its manifest.

    A folder without a manifest: no kernels when its fm_model.c calls none (hand-written test models), every
    reference kernel when it includes fm_kernels.h (generated files copied without their manifest; the linker
    drops the kernels it does not call)."""
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    if manifest is not None:
        name = manifest.get("kernel_set", REFERENCE)
        return name, select_kernel_sources(name, manifest.get("kernels", []))
    source = model_dir / "fm_model.c"
    if source.is_file() and '"fm_kernels.h"' in source.read_text(errors="replace"):
        return REFERENCE, select_kernel_sources(REFERENCE, kernel_set(REFERENCE).files())
    return None, []


def relative_to_firmware(path: Path) -> str:
    """`kernels/<set>/x.c` for files under firmware/, else the absolute path (a set outside the tree)."""
    path, root = Path(path).resolve(), firmware_dir().resolve()
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def write_project_kernels(model_dir: Path, dest: Path) -> tuple[str | None, list[Path]]:
    """Put the kernel files the model in `model_dir` needs into a firmware project: one small C file per kernel
    in `dest` that #includes the selected file (so a set's own headers next to its files are found and edits
    to firmware/kernels/ reach the next build, as for the rest of firmware/). Returns (set, selected files)."""
    name, files = model_kernel_sources(model_dir)
    dest = Path(dest)
    if dest.exists():
        for old in dest.glob("*.c"):
            old.unlink()
    if files:
        dest.mkdir(parents=True, exist_ok=True)
    for f in files:
        (dest / f.name).write_text(f"/* Generated by formicary: kernel {f.stem} of set {name}. */\n"
                                   f'#include "{f.resolve().as_posix()}"\n')
    return name, files
