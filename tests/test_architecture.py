"""The import contract of docs/architecture.md holds (import-linter, configured in pyproject.toml), and the check
really catches a module that imports one above it."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lint(host_dir: Path) -> subprocess.CompletedProcess:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.skip("import-linter is not installed (it is in the `test` extra: pip install -e '.[test]')")
    # run from the folder that holds the package, so that this `formicary` is the one analysed
    return subprocess.run([lint, str(ROOT / "pyproject.toml")], cwd=host_dir, capture_output=True, text=True,
                          timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(host_dir)})


def test_layers_hold():
    proc = _lint(ROOT / "host")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "1 kept, 0 broken" in proc.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    shutil.copytree(ROOT / "host" / "formicary", tmp_path / "formicary",
                    ignore=shutil.ignore_patterns("__pycache__", "_resources"))
    codegen = tmp_path / "formicary" / "codegen" / "lifetimes.py"
    codegen.write_text(codegen.read_text() + "\n\ndef _oops():\n    from formicary.bench import runner  # upward\n")
    proc = _lint(tmp_path)
    assert proc.returncode != 0
    assert "formicary.codegen.lifetimes -> formicary.bench.runner" in proc.stdout
