"""Put a built firmware on a board: start QEMU for virtual boards (detached, it outlives this process), or
`pio run -t upload` with the board's upload tool for real ones."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from formicary.boards import Board, load_board
from formicary.errors import FormicaryError
from formicary.target.firmware import Firmware, prepare_firmware
from formicary.toolchain import run_pio


def upload(project_dir: Path, board: Board, port: str | None = None) -> None:
    """Upload a built project to a real board with PlatformIO (the board's upload protocol)."""
    args = ["run", "-e", board.name, "-t", "upload"] + (["--upload-port", port] if port else [])
    proc = run_pio(args, cwd=project_dir)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-2000:]
        raise FormicaryError(f"uploading to {board.name} with {board.upload_protocol} failed.",
                             "check the USB connection and that the upload tool is installed "
                             f"({board.upload_protocol}); see details.log.", details={"log": tail})


def flash_firmware(firmware: Firmware, board: Board, *, port: str | None = None) -> dict[str, Any]:
    """Put FIRMWARE on BOARD. Returns {"board", "elf", "firmware_mode", "virtual", "url", ...}: the serial URL
    to talk to the board (a virtual board's QEMU URL, or PORT)."""
    if board.virtual:
        from formicary.device.qemu import launch_detached

        q = launch_detached(board, firmware.elf)
        return {"board": board.name, "elf": str(firmware.elf), "firmware_mode": firmware.firmware_mode,
                "virtual": True, "url": q.url, "qemu_pid": q.pid, "stop": f"kill -- -{q.pid}"}
    upload(firmware.project_dir, board, port)
    return {"board": board.name, "elf": str(firmware.elf), "firmware_mode": firmware.firmware_mode,
            "virtual": False, "url": port, "upload_protocol": board.upload_protocol}


def flash(target: str | Path, board: str | Board, *, port: str | None = None, out_dir: str | Path | None = None,
          firmware_mode: str | None = None, mlperf_model_id: str | None = None) -> dict[str, Any]:
    """TARGET is a project from `formicary build` (flashed with whatever firmware it holds), or a .tflite (built
    first through the firmware cache, into OUT_DIR when given, with `firmware_mode`, default bench)."""
    b = load_board(board) if isinstance(board, str) else board
    target = Path(target)
    if target.is_dir() and (target / "formicary-build.json").is_file():
        from formicary.build import read_build_info

        mode = read_build_info(target).get("firmware_mode", "bench")
        fw = prepare_firmware(target, b, firmware_mode=mode, command="formicary flash",
                              mlperf_model_id=mlperf_model_id)
    else:
        fw = prepare_firmware(target, b, out_dir=out_dir, firmware_mode=firmware_mode or "bench",
                              command="formicary flash", mlperf_model_id=mlperf_model_id)
    return flash_firmware(fw, b, port=port)


__all__ = ["flash", "flash_firmware", "upload"]
