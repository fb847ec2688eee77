"""Build firmware C for the host (gcc or clang) with AddressSanitizer and UBSan, for protocol tests."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FW = ROOT / "firmware"
HERE = Path(__file__).resolve().parent
FAKE = HERE / "fixtures" / "fake_model"
FUZZ = ROOT / "tests" / "fuzz"

SAN = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer"]
WARN = ["-std=c11", "-Wall", "-Wextra", "-Werror"]
INCLUDES = [f"-I{FW / 'app'}", f"-I{FW / 'protocol'}", f"-I{FW / 'port'}", f"-I{FW / 'runtime' / 'include'}",
            f"-I{FAKE}", f"-I{FUZZ}"]


def compiler() -> str | None:
    return shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


def build_host_device(out: Path) -> Path:
    """The app + protocol + fake model as a stdin/stdout process."""
    cmd = [compiler(), "-g", "-O1", *WARN, *SAN, '-DFM_BOARD_NAME="host"', "-DFM_CLOCK_HZ=25000000u",
           "-DFM_VIRTUAL=1",
           "-DFM_FAKE_STAGED=1",  # the firmware's input staging path; QEMU tests cover the direct one
           *INCLUDES, str(HERE / "host_device.c"), str(FUZZ / "host_port.c"), str(FW / "app" / "fm_app.c"),
           str(FW / "app" / "model_glue.c"), str(FW / "protocol" / "fm_frame.c"), str(FAKE / "fm_model.c"),
           "-o", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out


def build_codec_tool(out: Path) -> Path:
    """A tiny CLI around fm_frame.c: `encode` and `decode` modes on stdin/stdout (see codec_tool.c)."""
    cmd = [compiler(), "-g", "-O1", *WARN, *SAN, *INCLUDES, str(HERE / "codec_tool.c"),
           str(FW / "protocol" / "fm_frame.c"), "-o", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out
