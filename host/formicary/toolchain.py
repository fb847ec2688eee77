"""Where the external tools are, and the offline PlatformIO set-up.

PlatformIO's registry is unreachable here, so its one required core package, `tool-scons`, is assembled from
the `scons` wheel already installed in our virtualenv (see docs/environment.md for why each file is needed).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from formicary.errors import FormicaryError

# tool-scons version PlatformIO 6.2 asks for (platformio/dependencies.py pins ~4.41101.0, i.e. SCons 4.11.1).
SCONS_PACKAGE_VERSION = "4.41101.0"

PIO_ENV = {
    "PLATFORMIO_DISABLE_UPGRADE_CHECK": "true",
    "PLATFORMIO_SETTING_ENABLE_TELEMETRY": "No",
    "PLATFORMIO_SETTING_CHECK_PLATFORMIO_INTERVAL": "3650",
}


def pio_core_dir() -> Path:
    given = os.environ.get("PLATFORMIO_CORE_DIR")
    if given:
        return Path(given)
    from formicary.resources import resource_root

    root = resource_root()
    if (root / ".git").exists() or (root / "scripts" / "bootstrap.sh").is_file():
        return root / ".pio-core"  # a checkout: next to it, as scripts/bootstrap.sh sets up
    from platformdirs import user_data_dir

    return Path(user_data_dir("formicary")) / "pio-core"


def pio_environment() -> dict[str, str]:
    """Environment for running `pio`: offline settings and our core folder."""
    env = dict(os.environ)
    env.update(PIO_ENV)
    env["PLATFORMIO_CORE_DIR"] = str(pio_core_dir())
    return env


def require(tool: str, package: str) -> str:
    """Path of `tool`, or one clear error naming the package that provides it."""
    found = shutil.which(tool)
    if not found:
        raise FormicaryError(f"`{tool}` was not found on PATH.",
                             f"install it (Debian: apt-get install {package}) or run scripts/bootstrap.sh as root.")
    return found


def pio_executable() -> str:
    candidate = Path(sys.executable).with_name("pio")
    if candidate.exists():
        return str(candidate)
    return require("pio", "platformio (pip install platformio==6.2.0)")


def install_scons(core_dir: Path | None = None) -> Path:
    """Make `<core>/packages/tool-scons` from the installed scons, unless it is already there. Idempotent."""
    core_dir = core_dir or pio_core_dir()
    target = core_dir / "packages" / "tool-scons"
    marker = target / ".piopm"
    if marker.exists() and (target / "scons.py").exists():
        return target
    import SCons  # the scons wheel from our dependencies

    scons_src = Path(SCons.__file__).resolve().parent
    tmp = target.with_name("tool-scons.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp).mkdir(parents=True)
    shutil.copytree(scons_src, tmp / "SCons")
    (tmp / "scons.py").write_text(
        "import os, sys\n"
        "sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))\n"
        "import SCons.Script.Main\n"
        "SCons.Script.Main.main()\n")
    (tmp / "package.json").write_text(json.dumps(
        {"name": "tool-scons", "version": SCONS_PACKAGE_VERSION, "description": "SCons from PyPI, offline"}))
    # Without spec.owner == "platformio" PlatformIO ignores the package and goes to the registry.
    (tmp / ".piopm").write_text(json.dumps({
        "type": "tool", "name": "tool-scons", "version": SCONS_PACKAGE_VERSION,
        "spec": {"owner": "platformio", "id": 8532, "name": "tool-scons", "requirements": None, "uri": None}}))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def run_pio(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """`pio ARGS` in `cwd`, one at a time per core folder.

    Every `pio run` registers the project's symlinked dev-platform in `<core>/platforms/platform.pio-link`
    (truncated, then written); a second `pio` reading that file meanwhile stops with `UnknownPlatform`. Seen with
    pytest-xdist workers and parallel builds, so concurrent callers (processes included) wait on a lock file."""
    import fcntl

    core = pio_core_dir()
    core.mkdir(parents=True, exist_ok=True)
    with open(core / ".formicary-pio.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        install_scons(core)
        return subprocess.run([pio_executable(), *args], cwd=cwd, env=pio_environment(), text=True,
                              capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)


if __name__ == "__main__":
    if sys.argv[1:] == ["install-scons"]:
        print(install_scons())
    else:
        print("usage: python -m formicary.toolchain install-scons", file=sys.stderr)
        sys.exit(2)
