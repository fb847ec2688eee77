"""A plain wheel install works without the checkout: the wheel carries firmware/ and boards/, and formicary finds
them there (formicary.resources). Built with pip, installed into a fresh virtualenv."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    tmp = tmp_path_factory.mktemp("wheel")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                            "-w", str(tmp / "dist"), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = (tmp / "dist").glob("formicary-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", site,
                              str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-3000:]
    # the fresh venv gets formicary from the wheel only; its dependencies come from this environment's
    # site-packages, appended after the venv's own (no network here to install them again)
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp),
           "PYTHONPATH": sysconfig.get_paths()["purelib"], "FORMICARY_CACHE_DIR": str(tmp / "cache")}
    return py, env


def _run(py: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(py), "-c", "from formicary.cli import main; main()", *args], capture_output=True,
                          text=True, timeout=300, env=env, cwd=env["HOME"])


def test_wheel_finds_its_own_resources(wheel_venv):
    py, env = wheel_venv
    where = subprocess.run([str(py), "-c", "import formicary, formicary.resources as r; "
                                           "print(formicary.__file__); print(r.resource_root())"],
                           capture_output=True, text=True, env=env, cwd=env["HOME"], timeout=60)
    assert where.returncode == 0, where.stderr
    module, root = where.stdout.split()
    assert str(ROOT) not in module and root.endswith(os.path.join("formicary", "_resources"))
    assert (Path(root) / "firmware" / "runtime" / "src" / "fm_runtime.c").is_file()
    boards = _run(py, env, "boards", "--json")
    assert boards.returncode == 0, boards.stderr
    assert "qemu-m4" in {b["name"] for b in json.loads(boards.stdout)["boards"]}


def test_wheel_install_verifies_a_model_on_the_host(wheel_venv, kws_model_path):
    py, env = wheel_venv
    proc = _run(py, env, "verify", str(kws_model_path), "--inputs", "2", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["bit_exact"] and out["inputs"] == 2
