"""The firmware cache: one build per (model, board, firmware mode, optimisation, firmware sources), reused until
any of them changes.

Every command that needs a model running on a board (bench, verify, mlperf, fleet, flash, the HIL plugin) gets
its firmware here. The cache key hashes everything that changes the ELF: the .tflite bytes, the board, the
firmware mode and optimisation, formicary's version, the protocol version and the firmware + dev-platform
sources, so an edited kernel or a new protocol never reuses a stale build. Builds of one key are serialised by a
file lock, so parallel workers (fleets, pytest-xdist) never build into one folder at once.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from formicary import __version__
from formicary.boards import Board
from formicary.errors import FormicaryError
from formicary.resources import firmware_dir, platform_dir

Event = dict[str, Any]
MODEL_SUFFIXES = (".tflite",)


@dataclass(frozen=True)
class Firmware:
    """A built firmware and the model it runs."""
    project_dir: Path
    elf: Path
    tflite: Path
    model_hash: str      # sha256 of the generated model, what the device reports in HELLO / m-model
    flash_bytes: int
    ram_bytes: int
    arena_bytes: int
    built: bool          # False when an existing build was reused
    optimize: str = "size"         # builds that predate the field were -Os
    firmware_mode: str = "bench"
    kernels: str = "reference"     # kernel set (builds that predate the field used the reference kernels)

    def to_dict(self) -> dict[str, Any]:
        return {"project_dir": str(self.project_dir), "elf": str(self.elf), "tflite": str(self.tflite),
                "model_hash": self.model_hash, "flash_bytes": self.flash_bytes, "ram_bytes": self.ram_bytes,
                "arena_bytes": self.arena_bytes, "built": self.built, "optimize": self.optimize,
                "firmware_mode": self.firmware_mode, "kernels": self.kernels}


def file_sha256(path: Path) -> str:
    """sha256 of a file, or of every file (relative name and bytes) of a folder such as a SavedModel."""
    h = hashlib.sha256()
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if f != path:
            h.update(str(f.relative_to(path)).encode() + b"\0")
        with open(f, "rb") as fp:
            for block in iter(lambda: fp.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


@lru_cache(maxsize=1)
def firmware_sources_sha256() -> str:
    """One hash over the firmware and dev-platform sources (C, headers, linker scripts, builder, JSON)."""
    h = hashlib.sha256()
    for root in (firmware_dir(), platform_dir()):
        for p in sorted(root.rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts and p.suffix in (".c", ".h", ".json", ".py", ".in"):
                h.update(str(p.relative_to(root)).encode() + b"\0")
                h.update(p.read_bytes())
    return h.hexdigest()


def cache_root() -> Path:
    """Where builds are cached: $FORMICARY_CACHE_DIR/builds, else the user cache folder."""
    base = os.environ.get("FORMICARY_CACHE_DIR")
    if base:
        return Path(base) / "builds"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("formicary")) / "builds"


def firmware_key(tflite: Path, board: Board, firmware_mode: str = "bench", optimize: str | None = None,
                 kernels: str | None = None) -> str:
    """The cache folder name of a model's firmware for a board: readable prefix, hash of everything else."""
    from formicary.build import DEFAULT_OPTIMIZE
    from formicary.device.frames import PROTO_VERSION

    parts = [file_sha256(tflite), board.name, firmware_mode, optimize or DEFAULT_OPTIMIZE,
             kernels or board.kernels, __version__, f"p{PROTO_VERSION}", firmware_sources_sha256()]
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]
    return f"{Path(tflite).stem}-{board.name}-{firmware_mode}-{digest}"


def default_build_dir(tflite: Path, board: Board, firmware_mode: str = "bench", optimize: str | None = None,
                      root: Path | None = None, kernels: str | None = None) -> Path:
    return Path(root or cache_root()) / firmware_key(tflite, board, firmware_mode, optimize, kernels)


@contextlib.contextmanager
def build_lock(folder: Path) -> Iterator[None]:
    """Exclusive lock on a build folder, so parallel workers never build into it at once."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # no flock (Windows): no parallel-build protection
        yield
        return
    with open(folder / ".formicary-build.lock", "a+b") as fp:
        fcntl.flock(fp, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fp, fcntl.LOCK_UN)


def _firmware(project: Path, info: dict[str, Any], built: bool) -> Firmware:
    elf = Path(info["elf"])
    if not elf.is_file():
        raise FormicaryError(f"the firmware {elf} of {project} is missing.", "rebuild it (`formicary build`).")
    return Firmware(project_dir=project, elf=elf, tflite=Path(info["tflite"]), model_hash=info["model_hash"],
                    flash_bytes=int(info["flash_bytes"]), ram_bytes=int(info["ram_bytes"]),
                    arena_bytes=int(info.get("arena_bytes") or 0), built=built,
                    optimize=str(info.get("optimize", "size")),
                    firmware_mode=str(info.get("firmware_mode", "bench")),
                    kernels=str(info.get("kernels") or "reference"))


def _reusable(info: dict[str, Any] | None, board: Board, key: str) -> bool:
    return bool(info) and info.get("board") == board.name and info.get("cache_key") == key \
        and Path(info.get("elf", "")).is_file() and Path(info.get("tflite", "")).is_file()


def prepare_firmware(target: str | Path, board: Board, *, out_dir: str | Path | None = None,
                     cache_dir: str | Path | None = None, rebuild: bool = False, firmware_mode: str = "bench",
                     optimize: str | None = None, kernels: str | None = None, command: str = "formicary bench",
                     on_event: Callable[[Event], None] | None = None) -> Firmware:
    """The firmware for TARGET on BOARD.

    TARGET is a project made by `formicary build` (used as is, after checking its board and firmware mode) or a
    .tflite model, built unless a build with the same cache key exists: in OUT_DIR when given, else in
    CACHE_DIR (default `cache_root()`) under `firmware_key()`. `kernels` overrides the board's kernel set. Keras models are compiled to .tflite by the
    caller first (`formicary.compile.to_tflite`): the target layer never imports the compiler.
    """
    from formicary.build import DEFAULT_OPTIMIZE, build_model, read_build_info, require_firmware_mode

    target = Path(target)
    optimize = optimize or DEFAULT_OPTIMIZE
    if not target.exists():
        raise FormicaryError(f"{target} does not exist.",
                             "pass a model (.tflite/.keras/.h5) or a project made by `formicary build`.")
    if target.is_dir() and (target / "formicary-build.json").is_file():
        info = read_build_info(target)
        if info["board"] != board.name:
            raise FormicaryError(f"{target} was built for {info['board']}, not {board.name}.",
                                 f"build it for {board.name}: `formicary build MODEL --board {board.name} -o DIR`.")
        require_firmware_mode(info, target, (firmware_mode,), command)
        if kernels and info.get("kernels", "reference") != kernels:
            raise FormicaryError(f"{target} was built with the {info.get('kernels', 'reference')} kernels, not "
                                 f"{kernels}.", f"build it with them: `formicary build MODEL --board {board.name} "
                                 f"--kernels {kernels} -o DIR`, or drop --kernels.")
        return _firmware(target, info, built=False)
    if target.is_dir() or target.suffix not in MODEL_SUFFIXES:
        raise FormicaryError(f"{target} is neither a .tflite model nor a project made by `formicary build`.",
                             "compile it first (`formicary compile MODEL -o DIR`), or pass a build folder.")
    target = target.resolve()  # recorded paths outlive the cwd
    kernels = kernels or board.kernels
    key = firmware_key(target, board, firmware_mode, optimize, kernels)
    project = Path(out_dir).resolve() if out_dir else Path(cache_dir or cache_root()).resolve() / key
    with build_lock(project):
        info = None
        if not rebuild and (project / "formicary-build.json").is_file():
            info = read_build_info(project)
        if _reusable(info, board, key):
            return _firmware(project, info, built=False)  # type: ignore[arg-type]
        if on_event:
            on_event({"event": "build", "board": board.name})
        build_model(target, board, project, firmware_mode=firmware_mode, optimize=optimize, kernels=kernels)
        info = read_build_info(project)
        info["cache_key"] = key
        (project / "formicary-build.json").write_text(json.dumps(info, indent=2) + "\n")
        return _firmware(project, info, built=True)


__all__ = ["Firmware", "build_lock", "cache_root", "default_build_dir", "file_sha256", "firmware_key",
           "firmware_sources_sha256", "prepare_firmware"]
