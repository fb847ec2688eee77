"""Host builds of generated C (formicary.target.host): formicary-rt and the kernels a model uses are compiled once
into a static library keyed on the exact source list, their contents and the flags; a model build compiles only
its fm_model.c and links that library, in the ctypes shared object and in the sanitizer executable alike."""
from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from formicary.codegen import generate
from formicary.errors import FormicaryError
from formicary.target import host
from formicary.tflite import read_model

from tests.support.tfl_builder import Op, T, build

pytestmark = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                                reason="no host C compiler (apt-get install gcc)")


def _relu_model(zero_point: int = -3) -> bytes:
    tensors = [T((2, 5), scale=[0.1], zero_point=[zero_point]), T((2, 5), scale=[0.1], zero_point=[zero_point])]
    return build(tensors, [Op("RELU", [0], [1])], [0], [1])


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("FORMICARY_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "native"


@pytest.fixture()
def relu(tmp_path):
    return generate(_relu_model(), tmp_path / "gen")


def _inputs(result):
    return [Path(p) for p in result.firmware_sources()], [Path(p) for p in result.include_dirs]


def _compiles(monkeypatch) -> list[list[str]]:
    """Every compiler/archiver command host.py runs from now on."""
    calls: list[list[str]] = []
    real = host._run

    def spy(cmd, what):
        calls.append(cmd)
        return real(cmd, what)

    monkeypatch.setattr(host, "_run", spy)
    return calls


def test_library_is_built_once_per_sources_and_flags(cache, relu, monkeypatch):
    sources, incs = _inputs(relu)
    calls = _compiles(monkeypatch)
    lib = host.runtime_library(sources, incs, sanitize=False)
    assert lib.parent == cache and lib.name.startswith("libfmrt-") and lib.suffix == ".a"
    members = subprocess.run(["ar", "t", str(lib)], capture_output=True, text=True, check=True).stdout.split()
    assert len(members) == len(sources) == len(calls) - 1  # one object per source, then `ar`
    assert host.runtime_library(sources, incs, sanitize=False) == lib
    assert len(calls) == len(sources) + 1  # cached: nothing compiled again
    sanitized = host.runtime_library(sources, incs, sanitize=True)
    assert sanitized != lib and "-fsanitize=address,undefined" in calls[-2]
    assert all("-Werror" in c and "-fPIC" in c for c in calls if "-c" in c)


def test_library_key_follows_source_contents_and_list(cache, relu, tmp_path):
    sources, incs = _inputs(relu)
    lib = host.runtime_library(sources, incs, sanitize=False)
    copies = tmp_path / "copies"
    copies.mkdir()
    for src in sources:
        shutil.copy(src, copies / src.name)
    moved = [copies / s.name for s in sources]
    copied = host.runtime_library(moved, incs, sanitize=False)
    assert copied != lib  # same bytes from another kernel folder: another library
    moved[-1].write_text(moved[-1].read_text() + "\n/* edited */\n")
    assert host.runtime_library(moved, incs, sanitize=False) not in (lib, copied)
    assert host.runtime_library(sources[:1], incs, sanitize=False) != lib  # a smaller kernel selection


def test_warnings_still_fail_the_library_build(cache, relu, tmp_path):
    sources, incs = _inputs(relu)
    bad = tmp_path / sources[-1].name
    bad.write_text(sources[-1].read_text() + "\nstatic int unused_helper(int x) { return x; }\n")
    with pytest.raises(FormicaryError, match="formicary-rt") as err:
        host.runtime_library([*sources[:-1], bad], incs, sanitize=False)
    assert "unused" in err.value.details["stderr"]
    assert not list(cache.glob("libfmrt-*.a"))


def test_parallel_builders_share_one_build(cache, relu, monkeypatch):
    """Two builders of the same library at once (as two xdist workers would): one compiles, the other waits on
    the lock and reuses the result."""
    sources, incs = _inputs(relu)
    calls = _compiles(monkeypatch)
    got: list[Path] = []
    threads = [threading.Thread(target=lambda: got.append(host.runtime_library(sources, incs, sanitize=False)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 2 and got[0] == got[1] and got[0].is_file()
    assert len(calls) == len(sources) + 1


def test_shared_object_and_sanitizer_executable_link_the_library(cache, relu, monkeypatch):
    model = read_model(_relu_model())
    x = np.array([[-128, -4, -3, -2, 0], [1, 5, 60, 126, 127]], np.int8)
    expected = np.maximum(x, -3)  # RELU clamps at the quantized zero; same scale in and out
    calls = _compiles(monkeypatch)
    out = host.load(relu, model).run([x])[0]
    assert np.array_equal(out, expected)
    model_cmd = calls[-1]
    assert sum(a.endswith("fm_model.c") for a in model_cmd) == 1
    assert not any(a.endswith(".c") and "fm_model" not in a for a in model_cmd)  # no kernel compiled again
    assert any(Path(a).name.startswith("libfmrt-") for a in model_cmd)
    exe = host.build_executable(relu, sanitize=True)
    assert any(Path(a).name.startswith("libfmrt-") for a in calls[-1]) and "-fsanitize=address,undefined" in calls[-1]
    assert np.array_equal(host.run_executable(exe, model, [[x]])[0][0], expected)
