"""`formicary export`: a self-contained library that user applications build with their own build system.

Two models in one user PlatformIO project (KWS + a VWW-style net, shared arena) and in a CMake project with an
arm-none-eabi toolchain file (two TF-free nets, separate arenas) are built offline for qemu-m4, run on the virtual
board and print outputs bit-exact with TFLM; the Arduino layout is checked structurally (no Arduino core here);
re-exporting replaces a model cleanly and reports what changed."""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from formicary.codegen.prefix import check_prefixed, default_name, prefix_model
from formicary.errors import FormicaryError
from formicary.export import MANIFEST, export_model
from formicary.tflite.builder import fully_connected_model

from tests.support.cli import run_cli
from tests.support.exportapps import (
    app_main,
    cmake_project,
    parse_outputs,
    platformio_project,
    run_on_virtual_board,
)
from tests.support.netmodels import mobilenet_v1

pytestmark = pytest.mark.xdist_group("export")
BOARD = "qemu-m4"


@pytest.fixture(scope="module")
def nets(tmp_path_factory) -> dict[str, Path]:
    """Two small int8 nets built without TensorFlow: a VWW-style MobileNetV1 and a smaller one, 3 classes."""
    root = tmp_path_factory.mktemp("nets")
    out = {"vww": root / "vww.tflite", "tiny": root / "tiny.tflite", "fc": root / "fc.tflite"}
    out["vww"].write_bytes(mobilenet_v1())
    out["tiny"].write_bytes(mobilenet_v1(hw=24, width=(4, 8), classes=3, seed=1))
    rng = np.random.default_rng(3)
    out["fc"].write_bytes(fully_connected_model(rng.integers(-127, 128, (4, 16), dtype=np.int8), batches=1,
                                                in_scale=0.05, in_zp=0, f_scale=[0.01], out_scale=0.1, out_zp=0))
    return out


def _inputs(entry: dict, rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.integers(-128, 128, size=t["shape"], dtype=np.int8) for t in entry["inputs"]]


def _model(result: dict, name: str) -> dict:
    return next(m for m in result["models"] if m["name"] == name)


def _assert_matches_tflm(lines: list[str], models: list[tuple[str, list[np.ndarray], Path]]) -> None:
    from formicary.oracle.tflm import run_tflm

    got = parse_outputs(lines)
    assert sorted(got) == sorted(n for n, _, _ in models)
    for name, x, path in models:
        rc, outs = got[name]
        assert rc == 0, f"{name}_invoke() returned {rc}"
        ref = run_tflm(path, [x])[0]
        assert [o.tobytes() for o in ref] == outs, f"{name}: board outputs differ from TFLM"


def _symbols(elf: Path) -> dict[str, tuple[str, int]]:
    nm = shutil.which("arm-none-eabi-nm")
    out = subprocess.run([nm, "-S", str(elf)], capture_output=True, text=True, check=True).stdout
    syms = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4:
            syms[parts[3]] = (parts[2], int(parts[1], 16))
    return syms


@pytest.mark.slow
def test_platformio_app_runs_kws_and_vww_with_a_shared_arena(tmp_path, nets, kws_model_path, arm_qemu_tools):
    from formicary.toolchain import run_pio

    project = platformio_project(tmp_path / "app")
    lib = project / "lib" / "models"
    rng = np.random.default_rng(0)
    sample = kws_model_path.parents[1] / "data" / "kws01" / "tst_000000_Stop_7.bin"
    models = []
    for name, path in (("kws", kws_model_path), ("vww", nets["vww"])):
        result = export_model(path, BOARD, "platformio", lib, name=name, shared_arena=True, store_path=tmp_path / "no")
        entry = _model(result, name)
        x = _inputs(entry, rng)
        if name == "kws" and sample.is_file():  # a real utterance's features rather than noise
            x = [np.frombuffer(sample.read_bytes(), dtype=np.int8).reshape(entry["inputs"][0]["shape"])]
        models.append((name, x, path))
    assert result["shared_arena_bytes"] == max(m["arena_bytes"] for m in result["models"])
    (project / "src" / "main.c").write_text(app_main([(n, x) for n, x, _ in models]))
    proc = run_pio(["run"], cwd=project)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert "warning:" not in log, [ln for ln in log.splitlines() if "warning:" in ln]
    elf = project / ".pio" / "build" / "app" / "program.elf"
    syms = _symbols(elf)
    # one arena for both models, of the larger model's size; both APIs present, prefixed
    assert syms["fm_shared_arena"][1] == result["shared_arena_bytes"]
    assert not any(s == "fm_arena" or s.startswith("fm_arena.") for s in syms)
    assert {"kws_invoke", "vww_invoke", "fm_conv2d_s8", "fm_depthwise_conv2d_s8"} <= set(syms)
    _assert_matches_tflm(run_on_virtual_board(elf, BOARD), models)


@pytest.mark.slow
def test_cmake_app_runs_two_models_with_separate_arenas(tmp_path, nets, arm_qemu_tools):
    if shutil.which("cmake") is None or shutil.which("ninja") is None:
        pytest.skip("cmake and ninja are needed (apt-get install cmake ninja-build)")
    lib = tmp_path / "formicary_models"
    rng = np.random.default_rng(1)
    models = []
    for name in ("vww", "tiny"):
        result = export_model(nets[name], BOARD, "cmake", lib, name=name, store_path=tmp_path / "no")
        models.append((name, _inputs(_model(result, name), rng), nets[name]))
    app = cmake_project(tmp_path / "app", lib)
    (app / "main.c").write_text(app_main([(n, x) for n, x, _ in models]))
    build = app / "build"
    for cmd in (["cmake", "-G", "Ninja", "-S", str(app), "-B", str(build),
                 f"-DCMAKE_TOOLCHAIN_FILE={app / 'arm-none-eabi.cmake'}"], ["cmake", "--build", str(build)]):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    syms = _symbols(build / "app.elf")
    assert "fm_shared_arena" not in syms  # each model has its own static arena
    _assert_matches_tflm(run_on_virtual_board(build / "app.elf", BOARD), models)


def test_arduino_layout(tmp_path, nets):
    """What an Arduino IDE needs of a 1.5-format library (no Arduino core here to build it with)."""
    lib = tmp_path / "fmlib"
    for name in ("vww", "tiny"):
        result = export_model(nets[name], BOARD, "arduino", lib, name=name, store_path=tmp_path / "no")
    props = dict(ln.split("=", 1) for ln in (lib / "library.properties").read_text().splitlines() if "=" in ln)
    assert {"name", "version", "author", "maintainer", "sentence", "paragraph", "category", "url",
            "architectures", "includes"} <= set(props)
    assert props["name"] == "fmlib" and props["version"] == result["formicary_version"]
    assert props["includes"] == "formicary_models.h" and (lib / "src" / "formicary_models.h").is_file()
    # sources only under src/, flat: every quoted #include resolves inside src/ (the only include path there)
    src = lib / "src"
    assert not [p for p in lib.rglob("*.c") if p.parent != src]
    for f in list(src.glob("*.c")) + list(src.glob("*.h")):
        for inc in re.findall(r'#include "([^"]+)"', f.read_text()):
            assert (src / inc).is_file(), f"{f.name} includes {inc}, not in src/"
    sketch = lib / "examples" / "fmlib_run" / "fmlib_run.ino"
    text = sketch.read_text()
    assert "#include <formicary_models.h>" in text and "vww_invoke()" in text and "tiny_invoke()" in text
    # the sketch as the IDE compiles it (C++, Arduino.h prepended), against a stand-in for the Arduino API
    gxx = shutil.which("arm-none-eabi-g++")
    if gxx is not None:
        stub = tmp_path / "Arduino.h"
        stub.write_text("#include <stdint.h>\nstruct SerialStub { void begin(long) {} template <class T> void print(T) {}"
                        "\n  template <class T> void println(T) {} };\nstatic SerialStub Serial;\n"
                        "static inline void delay(unsigned long) {}\n")
        proc = subprocess.run([gxx, "-mcpu=cortex-m4", "-mthumb", "-fsyntax-only", "-Wall", "-Wextra", "-Werror",
                               "-x", "c++", "-include", str(stub), "-I", str(src), str(sketch)],
                              capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
    # the kernels the models call, from the board's set (dsp on qemu-m4: its conv2d, not the reference one)
    assert "fm_dsp_gemm.h" in (src / "conv2d_s8.c").read_text()
    assert not (lib / "library.json").exists() and not (lib / "CMakeLists.txt").exists()


def test_reexport_replaces_a_model_cleanly_and_says_what_changed(tmp_path, nets, monkeypatch, capsys):
    lib = tmp_path / "lib"
    export_model(nets["vww"], BOARD, "platformio", lib, name="net", store_path=tmp_path / "no")
    export_model(nets["fc"], BOARD, "platformio", lib, name="fc", store_path=tmp_path / "no")
    (lib / "src" / "my_notes.txt").write_text("the user's own file")
    before = json.loads((lib / MANIFEST).read_text())
    assert (lib / "src" / "conv2d_s8.c").is_file()
    # the conv net is replaced by the FC model: its kernels go, the FC model and the user's file stay
    code, out = run_cli(monkeypatch, capsys, "export", str(nets["fc"]), "--board", BOARD, "-o", str(lib),
                        "--name", "net", "--json")
    assert code == 0, out
    r = json.loads(out)
    change = next(c for c in r["changes"]["models"] if c["name"] == "net")
    assert change["status"] == "replaced"
    assert change["diff"]["sha256"] == [_model(before, "net")["sha256"], hashlib.sha256(nets["fc"].read_bytes()).hexdigest()]
    assert change["diff"]["arena_bytes"][0] > change["diff"]["arena_bytes"][1]
    assert change["diff"]["flash_bytes"][0] > change["diff"]["flash_bytes"][1]
    assert "src/conv2d_s8.c" in r["changes"]["removed"] and not (lib / "src" / "conv2d_s8.c").exists()
    assert "src/net_model.c" in r["changes"]["changed"]
    assert (lib / "src" / "my_notes.txt").read_text() == "the user's own file"
    assert sorted(m["name"] for m in r["models"]) == ["fc", "net"]
    # every file the manifest lists is on disk with that content; the model hash and version are recorded
    for rel, sha in r["files"].items():
        assert hashlib.sha256((lib / rel).read_bytes()).hexdigest() == sha
    assert r["formicary_version"] and "net_model.h" in (lib / "src" / "formicary_models.h").read_text()
    assert hashlib.sha256(nets["fc"].read_bytes()).hexdigest() in (lib / "src" / "net_model.h").read_text()
    # the human view says the same
    code, out = run_cli(monkeypatch, capsys, "export", str(nets["vww"]), "--board", BOARD, "-o", str(lib),
                        "--name", "net")
    assert code == 0 and "model net: replaced (sha256" in out and "arena_bytes" in out and "added" in out


def test_export_refuses_what_would_break_the_library(tmp_path, nets):
    lib = tmp_path / "lib"
    export_model(nets["fc"], BOARD, "c", lib, name="fc", store_path=tmp_path / "no")
    assert "FORMICARY_SRCS" in (lib / "formicary.mk").read_text()
    with pytest.raises(FormicaryError, match="share their kernels"):  # helium kernels beside dsp ones
        export_model(nets["fc"], "qemu-m55", "c", lib, name="fc2", store_path=tmp_path / "no")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "main.c").write_text("int main(void) { return 0; }\n")
    with pytest.raises(FormicaryError, match="holds no formicary export"):
        export_model(nets["fc"], BOARD, "c", foreign, store_path=tmp_path / "no")
    with pytest.raises(FormicaryError, match="cannot prefix C symbols"):
        export_model(nets["fc"], BOARD, "c", lib, name="Bad-Name", store_path=tmp_path / "no")


def test_prefixing_leaves_no_unprefixed_external_symbol(tmp_path, nets):
    from formicary.codegen import generate

    gen = tmp_path / "gen"
    generate(nets["tiny"], gen, kernels="dsp")
    header, source = prefix_model((gen / "fm_model.h").read_text(), (gen / "fm_model.c").read_text(), "tiny",
                                  shared_arena=True)
    assert "fm_invoke" not in header + source and "FM_ARENA_BYTES" not in header + source
    assert "TINY_ARENA_BYTES <= FM_SHARED_ARENA_BYTES" in source and "static uint8_t fm_arena" not in source
    with pytest.raises(FormicaryError, match="fm_new_table"):  # what a new public symbol of the emitter would do
        check_prefixed(source + "\nconst int32_t fm_new_table[2] = {1, 2};\n", "tiny")
    assert default_name("kws_ref_model") == "kws_ref_model" and default_name("VWW-96") == "vww_96"
    assert default_name("96x96") == "m_96x96" and default_name("fm_net") == "model_fm_net"


def test_readme_gives_the_latency_of_a_stored_run_of_that_model_board_and_kernel_set(tmp_path, nets):
    from formicary.store import ResultStore

    sha = hashlib.sha256(nets["fc"].read_bytes()).hexdigest()

    def run(minute: int, kernels: str, samples: list[int], sha256: str = sha) -> dict:
        return {"schema": 1, "board": BOARD, "virtual": True, "complete": True,
                "started_at": f"2026-12-01T10:{minute:02d}:00+00:00", "finished_at": f"2026-12-01T10:{minute:02d}:30+00:00",
                "model": {"path": "fc.tflite", "sha256": sha256, "name": "fc"},
                "firmware": {"runtime_version": "0.1.0", "protocol_version": 1, "kernels": kernels},
                "latency": {"unit": "instructions", "method": "qemu-icount-systick", "samples": samples}}

    store_path = tmp_path / "results.sqlite"
    with ResultStore(store_path) as store:
        store.record_result(run(1, "dsp", [1000, 1010, 1020]))
        store.record_result(run(2, "reference", [5000, 5000, 5000]))  # newer, but not the kernels exported
        store.record_result(run(3, "dsp", [7, 7, 7], sha256="ab" * 32))  # another model
    r = export_model(nets["fc"], BOARD, "platformio", tmp_path / "lib", name="fc", store_path=store_path)
    lat = _model(r, "fc")["latency"]
    assert lat["median"] == 1010 and lat["unit"] == "instructions"
    readme = (tmp_path / "lib" / "README.md").read_text()
    assert "1,010 instructions" in readme and f"{_model(r, 'fc')['arena_bytes']:,} B" in readme
    assert f"{_model(r, 'fc')['macs']:,}" in readme and sha[:16] in readme
    # no stored run: the README says how to get one
    r = export_model(nets["fc"], BOARD, "platformio", tmp_path / "lib2", name="fc", store_path=tmp_path / "none")
    assert _model(r, "fc")["latency"] is None
    assert "not measured (run `formicary bench fc.tflite --board qemu-m4`" in (tmp_path / "lib2" / "README.md").read_text()
