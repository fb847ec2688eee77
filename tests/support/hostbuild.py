"""Build firmware C for the host (gcc or clang) with AddressSanitizer and UBSan, for protocol tests."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FW = ROOT / "firmware"
DEVICE_TESTS = ROOT / "tests" / "device"   # host_device.c, codec_tool.c, host_*_port.c
FAKE = DEVICE_TESTS / "fixtures" / "fake_model"
FUZZ = ROOT / "tests" / "fuzz"
SENSORS = FW / "sensors"
POWER_TESTS = ROOT / "tests" / "power"

SAN = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer"]
WARN = ["-std=c11", "-Wall", "-Wextra", "-Werror"]


def _includes(root: Path) -> list[str]:
    fw = root / "firmware"
    return [f"-I{fw / 'app'}", f"-I{fw / 'protocol'}", f"-I{fw / 'port'}", f"-I{fw / 'sensors'}",
            f"-I{fw / 'runtime' / 'include'}", f"-I{root / 'tests' / 'device' / 'fixtures' / 'fake_model'}",
            f"-I{root / 'tests' / 'fuzz'}"]


INCLUDES = _includes(ROOT)


def firmware_sources(root: Path = ROOT) -> list[str]:
    """The firmware C a host build links: the app (without the Cortex-M main), the frame codec and the port's
    weak defaults; tests/fuzz/host_port.c stands in for the board."""
    fw = root / "firmware"
    app = sorted(str(p) for p in (fw / "app").glob("*.c") if p.name != "main.c")
    return [*app, str(fw / "protocol" / "fm_frame.c"), str(fw / "port" / "fm_port_defaults.c")]


def compiler() -> str | None:
    return shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


def build_host_device(out: Path, *, power_ina: int | None = None, extra_flags: tuple[str, ...] = (),
                      extra_sources: tuple[str, ...] = (), root: Path = ROOT) -> Path:
    """The app + protocol + fake model as a stdin/stdout process.

    root: the source tree to build from (default this checkout; tests of older firmware pass an exported one).

    power_ina=219|226 builds it as firmware with -DFM_POWER_INA: the real power glue
    (firmware/port/power/fm_power_ina.c) and INA driver (firmware/sensors/fm_ina.c) over the simulated INA
    register file (tests/power/ina_sim.c) as its I2C bus (host_power_port.c); they replace the port's weak
    "no sensor" defaults.
    """
    power: list[str] = []
    if power_ina is not None:
        power = [f"-DFM_POWER_INA={power_ina}", f"-I{POWER_TESTS}",
                 str(FW / "port" / "power" / "fm_power_ina.c"), str(SENSORS / "fm_ina.c"),
                 str(DEVICE_TESTS / "host_power_port.c"), str(POWER_TESTS / "ina_sim.c")]
    cc = compiler()
    common = [cc, "-g", "-O1", *WARN, *SAN, '-DFM_BOARD_NAME="host"', "-DFM_CLOCK_HZ=25000000u",
              "-DFM_VIRTUAL=1",
              "-DFM_FAKE_STAGED=1",  # the firmware's input staging path; QEMU tests cover the direct one
              *extra_flags, *_includes(root)]
    tests = root / "tests"
    cmd = [*common, str(tests / "device" / "host_device.c"), str(tests / "fuzz" / "host_port.c"),
           *firmware_sources(root), str(tests / "device" / "fixtures" / "fake_model" / "fm_model.c"), *power,
           *extra_sources, "-lm", "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"host device build failed:\n{' '.join(cmd)}\n{proc.stderr}")
    return out


def build_codec_tool(out: Path) -> Path:
    """A tiny CLI around fm_frame.c: `encode` and `decode` modes on stdin/stdout (see codec_tool.c)."""
    cmd = [compiler(), "-g", "-O1", *WARN, *SAN, *INCLUDES, str(DEVICE_TESTS / "codec_tool.c"),
           str(FW / "protocol" / "fm_frame.c"), "-o", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out
