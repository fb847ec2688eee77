"""The firmware builds offline with PlatformIO on our dev-platform for every buildable board, warning-free,
and a firmware that does not fit fails before flashing, saying by how much."""
from __future__ import annotations

import shutil
import subprocess

import pytest
from formicary.boards import list_boards
from formicary.errors import FormicaryError
from formicary.toolchain import run_pio

from tests.support.device import FAKE_MODEL_DIR

BUILDABLE = [b.name for b in list_boards() if b.buildable]


@pytest.mark.parametrize("board", BUILDABLE)
def test_fake_model_firmware_builds(fake_firmware, board):
    fw = fake_firmware(board)
    assert fw.elf.is_file()
    assert 2_000 < fw.flash_bytes < fw.flash_capacity
    assert fw.ram_bytes < fw.ram_capacity
    ini = (fw.project_dir / "platformio.ini").read_text()
    assert "test_framework = custom" in ini and "symlink://" in ini and "@symlink:///usr" not in ini


# every board's bench firmware; mlperf-energy adds the MLPerf DUT mode and the sync pin on the board with the most
# port code (the INA and sync-pin builds of the real boards are -Werror in test_device_power/test_device_sync_pin)
WARNING_FREE = [(b, "bench") for b in BUILDABLE] + [("nucleo-l4r5zi", "mlperf-energy")]


@pytest.mark.parametrize("board,mode", WARNING_FREE)
def test_build_is_warning_free(board, mode, tmp_path):
    from formicary.build import firmware_mode_flags, generate_project

    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)")
    # a project of its own, built from scratch: every file is compiled, so every warning shows in the log
    project = generate_project(board, FAKE_MODEL_DIR, tmp_path / "fw", extra_flags=list(firmware_mode_flags(mode)))
    proc = run_pio(["run", "-e", board], cwd=project)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-2000:]
    assert "warning:" not in log, [ln for ln in log.splitlines() if "warning:" in ln]


def test_mlperf_mode_is_only_in_mlperf_builds(fake_firmware):
    from formicary.build import firmware_mode_flags

    bench = fake_firmware("qemu-m4", tuple(firmware_mode_flags("bench")))
    mlperf = fake_firmware("qemu-m4", tuple(firmware_mode_flags("mlperf")))
    nm = shutil.which("arm-none-eabi-nm")

    def symbols(elf) -> str:
        return subprocess.run([nm, str(elf)], capture_output=True, text=True, check=True).stdout

    # the parser is always compiled but only linked into MLPerf builds (--gc-sections)
    assert "fm_mlperf_feed" not in symbols(bench.elf)
    assert "fm_mlperf_feed" in symbols(mlperf.elf)


def test_firmware_too_big_for_the_board_fails_with_the_overflow(fake_firmware):
    with pytest.raises(FormicaryError) as err:
        fake_firmware("qemu-stm32f405", ("-DFM_FAKE_BALLAST_BYTES=200000",))
    assert "does not fit qemu-stm32f405" in err.value.cause
    overflow = err.value.details["overflow_bytes"]["RAM"]
    # 200,000 bytes of ballast + ~12 KB of firmware RAM on a 128 KiB part
    assert 200_000 + 11_000 - 131_072 <= overflow <= 200_000 + 14_000 - 131_072


def test_optimize_levels_reach_the_compiler(tmp_path):
    from formicary.build import generate_project

    speed = (generate_project("qemu-m4", FAKE_MODEL_DIR, tmp_path / "speed") / "platformio.ini").read_text()
    size = (generate_project("qemu-m4", FAKE_MODEL_DIR, tmp_path / "size", optimize="size")
            / "platformio.ini").read_text()
    assert "build_flags = -O2 " in speed and "-O2" not in size  # size: the platform's -Os stays in force
    with pytest.raises(FormicaryError, match="unknown optimisation"):
        generate_project("qemu-m4", FAKE_MODEL_DIR, tmp_path / "x", optimize="fast")


@pytest.mark.parametrize("optimize,level", [("speed", "-O2"), ("size", "-Os")])
def test_exactly_one_optimisation_level_reaches_the_compiler(tmp_path, optimize, level):
    """build.py's OPTIMIZE_FLAGS decide; the dev-platform adds its default only when a project names none."""
    import re

    from formicary.build import generate_project

    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed")
    project = generate_project("qemu-m4", FAKE_MODEL_DIR, tmp_path / optimize, optimize=optimize)
    proc = run_pio(["run", "-v", "-e", "qemu-m4"], cwd=project)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-2000:]
    gcc = [ln for ln in log.splitlines() if "arm-none-eabi-gcc" in ln and (" -c " in ln or ".elf" in ln)]
    assert len(gcc) > 10  # every firmware source and the link
    assert {tuple(re.findall(r"(?<!\S)-O\w*", ln)) for ln in gcc} == {(level,)}
