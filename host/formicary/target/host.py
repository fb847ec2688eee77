"""Host builds of generated models: a shared library loaded with ctypes (fast, for verify), or a standalone
executable under AddressSanitizer/UBSan (ASan cannot be loaded into an already running Python without
LD_PRELOAD, so sanitized runs go through a subprocess).

formicary-rt and the whole kernel set the model uses are compiled once per set and flag set into a static
library (`libfmrt-<key>.a`, see `runtime_library`); a model build compiles only its generated fm_model.c and links
that library (the linker keeps the kernels the model calls). Both are cached by a hash of every source byte and flag, under the user cache folder.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from formicary.errors import FormicaryError
from formicary.resources import firmware_dir

WARNING_FLAGS = ["-Wall", "-Wextra", "-Werror"]
FM_ERR_RANGE = 2  # fm_runtime.h: a run-time index outside its tensor (GATHER positions), as TFLM's invoke fails
SANITIZE_FLAGS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g"]
# Host test driver (not firmware, so it does not live under firmware/ where a PlatformIO library build would
# pick up its main()). Written next to the build on demand.
HOST_MAIN_SOURCE = r"""/*
 * Host test driver for a generated model (not firmware): reads N input sets from a file, runs fm_invoke()
 * on each and writes the outputs to another file. Built by formicary.target.host with sanitizers so that kernels
 * and generated code run under ASan/UBSan outside the Python process.
 *
 * usage: fm_run_file INPUT_FILE OUTPUT_FILE
 * INPUT_FILE: N records, each the concatenation of all inputs' bytes (fm_input_bytes(0..FM_NUM_INPUTS-1)).
 * OUTPUT_FILE: N records of all outputs' bytes. Exit code 0 ok, 2 I/O error, 3 + rc on fm_invoke failure.
 */
#include <stdio.h>
#include <string.h>

#include "fm_model.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s INPUT_FILE OUTPUT_FILE\n", argv[0]);
        return 2;
    }
    FILE *in = fopen(argv[1], "rb");
    FILE *out = fopen(argv[2], "wb");
    if (!in || !out) {
        fprintf(stderr, "cannot open files\n");
        return 2;
    }
    long records = 0;
    for (;;) {
        int got_all = 1;
        for (int i = 0; i < FM_NUM_INPUTS; ++i) {
            size_t n = fm_input_bytes(i);
            if (fread(fm_input_data(i), 1, n, in) != n) {
                got_all = 0;
                break;
            }
        }
        if (!got_all) {
            break;
        }
        int rc = fm_invoke();
        if (rc != 0) {
            fprintf(stderr, "fm_invoke failed with %d on record %ld\n", rc, records);
            return 3 + rc;
        }
        for (int i = 0; i < FM_NUM_OUTPUTS; ++i) {
            size_t n = fm_output_bytes(i);
            if (fwrite(fm_output_data(i), 1, n, out) != n) {
                return 2;
            }
        }
        ++records;
    }
    fclose(in);
    fclose(out);
    fprintf(stderr, "fm_run_file: %ld records\n", records);
    return 0;
}
"""


def cache_dir() -> Path:
    base = os.environ.get("FORMICARY_CACHE_DIR")
    if base:
        return Path(base) / "native"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("formicary")) / "native"


def compiler() -> str:
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc):
            return cc
    raise FormicaryError("no host C compiler found (cc/gcc/clang).",
                         "install one, e.g. `apt-get install gcc`, or set CC.")


@dataclass
class BuildInputs:
    model_dir: Path          # folder with fm_model.h / fm_model.c
    sources: list[Path]      # runtime + kernel .c files
    include_dirs: list[Path]


def _inputs(result) -> BuildInputs:
    """The generated model, and formicary-rt with its whole kernel set as the runtime library: one library per
    set and flags serves every model (a model links the objects it calls), where a library per model's kernel
    selection was rebuilt for every new mix of ops (seconds each under the sanitizers)."""
    from formicary.codegen.generate import RUNTIME_SOURCES
    from formicary.codegen.kernel_sets import set_sources

    runtime = [firmware_dir() / s for s in RUNTIME_SOURCES]
    return BuildInputs(Path(result.out_dir), runtime + set_sources(result.kernel_set),
                       [Path(p) for p in result.include_dirs])


def _flags(sanitize: bool) -> list[str]:
    return ["-std=c99", "-O2", *WARNING_FLAGS, *(SANITIZE_FLAGS if sanitize else [])]


@lru_cache(maxsize=None)
def _tool_id(tool: str) -> str:
    """The tool's resolved path and version line: a compiler upgrade invalidates cached builds."""
    path = shutil.which(tool) or tool
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False, timeout=30).stdout
    except OSError:
        out = ""
    return f"{os.path.realpath(path)}\0{out.splitlines()[0] if out else ''}"


def _archiver() -> str:
    for ar in (os.environ.get("AR"), "ar", "gcc-ar", "llvm-ar"):
        if ar and shutil.which(ar):
            return ar
    raise FormicaryError("no archiver (ar) found to pack formicary-rt into a static library.",
                         "install binutils (`apt-get install binutils`), or set AR.")


def _hash_headers(h, dirs: Sequence[Path]) -> None:
    for d in sorted({Path(d) for d in dirs}):
        for hdr in sorted(d.glob("*.h")):
            h.update(str(hdr).encode() + b"\0" + hdr.read_bytes() + b"\0")


@contextmanager
def _locked(path: Path):
    """An exclusive lock on `path` (created if needed) for the `with` body: one builder per key at a time, across
    processes (pytest-xdist workers, parallel verify runs)."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fp:
        fcntl.flock(fp, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fp, fcntl.LOCK_UN)


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise FormicaryError(f"host build of {what} failed:\n{proc.stderr.strip()[:4000]}",
                             "this is a formicary bug (generated C or kernels); please report it with the model.",
                             details={"command": cmd, "stderr": proc.stderr})


def runtime_library(sources: Sequence[Path], include_dirs: Sequence[Path], sanitize: bool) -> Path:
    """formicary-rt + the given kernel sources compiled once into `libfmrt-<key>.a` in the cache folder.

    The key covers the compiler and archiver, the flags, the exact list of source paths with their contents and
    every header beside them or in the include folders, so another kernel selection or an edited kernel gets its
    own library. Objects are position-independent: the same archive links into the ctypes shared object and
    into the standalone (sanitizer) executable. Built under a file lock, published with an atomic rename."""
    cc, ar = compiler(), _archiver()
    flags = [*_flags(sanitize), "-fPIC"]
    srcs = [Path(s).resolve() for s in sources]
    h = hashlib.sha256()
    for part in [_tool_id(cc), _tool_id(ar), *flags]:
        h.update(part.encode() + b"\0")
    for src in srcs:
        h.update(str(src).encode() + b"\0" + src.read_bytes() + b"\0")
    _hash_headers(h, [*include_dirs, *(s.parent for s in srcs)])
    lib = cache_dir() / f"libfmrt-{h.hexdigest()[:24]}.a"
    if lib.is_file():
        return lib
    with _locked(lib.with_suffix(".lock")):
        if lib.is_file():  # another process built it while this one waited
            return lib
        work = Path(tempfile.mkdtemp(prefix=lib.stem + ".", dir=lib.parent))
        try:
            incs = [f"-I{d}" for d in include_dirs]
            # numbered: two kernel folders may hold the same file name
            objs = [str(work / f"{i:03d}_{src.stem}.o") for i, src in enumerate(srcs)]
            # one compiler per core: a whole set under the sanitizers is ~60 files of 0.2-0.5 s each
            with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
                for done in [pool.submit(_run, [cc, *flags, *incs, "-c", str(src), "-o", obj],
                                         f"formicary-rt ({src.name})") for src, obj in zip(srcs, objs)]:
                    done.result()
            _run([ar, "rcs", str(work / lib.name), *objs], "the formicary-rt library")
            os.replace(work / lib.name, lib)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return lib


def _build(b: BuildInputs, kind: str, sanitize: bool, extra_sources: Sequence[Path] = ()) -> Path:
    """The generated model (+ extra sources) compiled and linked against the cached runtime library."""
    cc = compiler()
    lib = runtime_library(b.sources, b.include_dirs, sanitize)
    flags = _flags(sanitize)
    if kind == "so":
        flags += ["-fPIC", "-shared"]
    srcs = [b.model_dir / "fm_model.c", *extra_sources]
    h = hashlib.sha256()
    for part in [_tool_id(cc), kind, *flags, lib.name]:
        h.update(part.encode() + b"\0")
    for src in [*srcs, b.model_dir / "fm_model.h"]:
        h.update(src.read_bytes() + b"\0")
    target_dir = cache_dir() / h.hexdigest()[:24]
    target = target_dir / ("libfm_model.so" if kind == "so" else "fm_run_file")
    if target.is_file():
        return target
    target_dir.mkdir(parents=True, exist_ok=True)
    incs = [f"-I{d}" for d in (b.model_dir, *b.include_dirs)]
    fd, tmp_name = tempfile.mkstemp(prefix=target.name + ".", dir=target_dir)
    os.close(fd)  # an open handle makes exec fail with ETXTBSY
    tmp = Path(tmp_name)
    # the library after the objects that use it; libm for the float kernels (expf, tanhf)
    cmd = [cc, *flags, *incs, *map(str, srcs), str(lib), "-o", str(tmp), "-lm"]
    try:
        _run(cmd, "the generated model")
    except FormicaryError:
        tmp.unlink(missing_ok=True)
        raise
    os.chmod(tmp, 0o755)
    os.replace(tmp, target)  # atomic: parallel builds of the same key are fine
    return target


def build_shared(result, sanitize: bool = False) -> Path:
    """Shared library of the generated model + runtime + kernels (loadable with ctypes when not sanitized)."""
    return _build(_inputs(result), "so", sanitize)


def build_executable(result, sanitize: bool = True) -> Path:
    """Standalone `fm_run_file IN OUT` driver, by default with -fsanitize=address,undefined."""
    main = cache_dir() / "fm_run_file.c"
    main.parent.mkdir(parents=True, exist_ok=True)
    if not main.is_file() or main.read_text() != HOST_MAIN_SOURCE:
        tmp = main.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(HOST_MAIN_SOURCE)
        os.replace(tmp, main)
    return _build(_inputs(result), "exe", sanitize, [main])


@dataclass
class TensorSpec:
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize if self.shape else np.dtype(self.dtype).itemsize


class NativeModel:
    """A generated model loaded in-process: `run(inputs) -> outputs` (numpy arrays shaped like the model's)."""

    def __init__(self, lib_path: Path, inputs: list[TensorSpec], outputs: list[TensorSpec]) -> None:
        self.lib = ctypes.CDLL(str(lib_path))
        for fn in ("fm_input_data", "fm_output_data"):
            getattr(self.lib, fn).restype = ctypes.c_void_p
            getattr(self.lib, fn).argtypes = [ctypes.c_int]
        for fn in ("fm_input_bytes", "fm_output_bytes"):
            getattr(self.lib, fn).restype = ctypes.c_size_t
            getattr(self.lib, fn).argtypes = [ctypes.c_int]
        self.lib.fm_invoke.restype = ctypes.c_int
        self.inputs, self.outputs = inputs, outputs
        for i, spec in enumerate(inputs):
            if self.lib.fm_input_bytes(i) != spec.nbytes:
                raise FormicaryError(f"native model input {i} has {self.lib.fm_input_bytes(i)} bytes, expected "
                                     f"{spec.nbytes}", "regenerate the model code.")

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        if len(inputs) != len(self.inputs):
            raise ValueError(f"expected {len(self.inputs)} inputs, got {len(inputs)}")
        for i, (x, spec) in enumerate(zip(inputs, self.inputs)):
            arr = np.ascontiguousarray(x, dtype=spec.dtype)
            if arr.nbytes != spec.nbytes:
                raise ValueError(f"input {i}: {arr.nbytes} bytes, model takes {spec.nbytes}")
            ctypes.memmove(self.lib.fm_input_data(i), arr.ctypes.data, arr.nbytes)
        rc = self.lib.fm_invoke()
        if rc == FM_ERR_RANGE:
            raise FormicaryError(f"fm_invoke() returned {rc}: a run-time index (a GATHER position) lies outside its "
                                 "tensor", "check the model's index inputs (TFLite Micro fails on them too).")
        if rc != 0:
            raise FormicaryError(f"fm_invoke() returned {rc}", "a kernel refused its parameters: report this bug.")
        outs = []
        for i, spec in enumerate(self.outputs):
            buf = (ctypes.c_uint8 * spec.nbytes).from_address(self.lib.fm_output_data(i))
            outs.append(np.frombuffer(bytes(buf), dtype=spec.dtype).reshape(spec.shape).copy())
        return outs


def specs_for(model) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Input/output specs from a ModelIR."""
    ins = [TensorSpec(tuple(t.shape), np.dtype(t.np_dtype)) for t in model.input_tensors]
    outs = [TensorSpec(tuple(t.shape), np.dtype(t.np_dtype)) for t in model.output_tensors]
    return ins, outs


def load(result, model) -> NativeModel:
    """Build (cached) and load the generated model as a shared library."""
    ins, outs = specs_for(model)
    return NativeModel(build_shared(result), ins, outs)


def run_executable(exe: Path, model, batches: Sequence[Sequence[np.ndarray]], timeout: float = 600) -> list[
        list[np.ndarray]]:
    """Run input sets through a `fm_run_file` executable (e.g. the sanitizer build); outputs per set."""
    ins, outs = specs_for(model)
    with tempfile.TemporaryDirectory(prefix="fm-run-") as tmp:
        in_path, out_path = Path(tmp) / "in.bin", Path(tmp) / "out.bin"
        with in_path.open("wb") as fh:
            for batch in batches:
                for x, spec in zip(batch, ins):
                    fh.write(np.ascontiguousarray(x, dtype=spec.dtype).tobytes())
        proc = subprocess.run([str(exe), str(in_path), str(out_path)], capture_output=True, text=True,
                              timeout=timeout, check=False)
        if proc.returncode != 0:
            raise FormicaryError(f"generated model failed on the host (exit {proc.returncode}):\n"
                                 f"{proc.stderr.strip()[-4000:]}",
                                 "this is a formicary bug (sanitizer finding or kernel error); please report it.",
                                 details={"stderr": proc.stderr})
        raw = out_path.read_bytes()
    record = sum(s.nbytes for s in outs)
    if len(raw) != record * len(batches):
        raise FormicaryError(f"host run wrote {len(raw)} bytes, expected {record * len(batches)}",
                             "this is a formicary bug; please report it.")
    results = []
    for r in range(len(batches)):
        pos, row = r * record, []
        for spec in outs:
            row.append(np.frombuffer(raw[pos:pos + spec.nbytes], dtype=spec.dtype).reshape(spec.shape).copy())
            pos += spec.nbytes
        results.append(row)
    return results
