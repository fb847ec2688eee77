"""Put a built firmware on a board: start QEMU for virtual boards, `pio run -t upload` for real ones."""
from __future__ import annotations

from pathlib import Path

from formicary.boards import load_board
from formicary.build import build_model, read_build_info
from formicary.errors import FormicaryError
from formicary.toolchain import run_pio


def flash(target: str | Path, board: str, *, port: str | None = None, out_dir: str | Path | None = None,
          firmware_mode: str = "bench") -> dict:
    """TARGET is a project from `formicary build` (flashed with whatever firmware it holds), or a model (built
    first into OUT_DIR, with `firmware_mode`).

    Returns {"board", "elf", "url", "virtual", "qemu_pid"?}: the serial URL to talk to the board.
    """
    b = load_board(board)
    target = Path(target)
    if target.is_dir():
        info = read_build_info(target)
        if info["board"] != b.name:
            raise FormicaryError(f"{target} was built for {info['board']}, not {b.name}.",
                                 f"build it for {b.name} (`formicary build MODEL --board {b.name} -o DIR`).")
        elf = Path(info["elf"])
        project = target
        firmware_mode = info.get("firmware_mode", "bench")
    else:
        project = Path(out_dir or f"{target.stem}-{b.name}")
        elf = build_model(target, b, project, firmware_mode=firmware_mode).elf
    if b.virtual:
        from formicary.device.qemu import launch_detached

        q = launch_detached(b, elf)
        return {"board": b.name, "elf": str(elf), "firmware_mode": firmware_mode, "virtual": True, "url": q.url,
                "qemu_pid": q.pid,
                "stop": f"kill -- -{q.pid}"}
    args = ["run", "-e", b.name, "-t", "upload"] + (["--upload-port", port] if port else [])
    proc = run_pio(args, cwd=project)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-2000:]
        raise FormicaryError(f"uploading to {b.name} with {b.upload_protocol} failed.",
                             "check the USB connection and that the upload tool is installed "
                             f"({b.upload_protocol}); see details.log.", details={"log": tail})
    return {"board": b.name, "elf": str(elf), "firmware_mode": firmware_mode, "virtual": False, "url": port,
            "upload_protocol": b.upload_protocol}
