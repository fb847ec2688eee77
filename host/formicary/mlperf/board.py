"""`formicary mlperf --board B MODEL DATA`: build the MLPerf firmware mode for the board, put it on the board and
run MLPerf Tiny's performance and accuracy modes over its UART.

Virtual boards without --port: QEMU is started paused with the MLPerf firmware, the host connects, then the
guest runs. Real boards (or a QEMU started by `formicary flash --firmware mlperf`): the port is opened and the
DUT's `m-model-[…]` (the generated model's hash) is checked; a real board that runs another model, or does not
answer, is flashed with the MLPerf build first.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from formicary.boards import Board, load_board
from formicary.errors import FormicaryError
from formicary.mlperf.runner import read_labels, run_modes


def _annotate_virtual_time(result: dict[str, Any], board: Board) -> None:
    """On a virtual board the DUT's microseconds are QEMU virtual time (-icount shift=0: one retired instruction
    = 1 ns), not wall time or time on real silicon: say so, give the instruction count (what was really
    counted) and the estimate at the board's nominal clock."""
    perf = result.get("performance")
    if not perf:
        return
    note = ("virtual board: the DUT's µs are QEMU virtual time under -icount shift=0 (1 retired instruction = "
            "1 ns), neither wall time nor time on real silicon")
    for key in ("duration", "latency"):
        perf[key]["method"] += f"; {note}"
    instructions = round(perf["latency"]["value"] * 1000)
    perf["latency_instructions"] = {"value": instructions, "unit": "instructions",
                                    "method": "qemu-icount-systick via m-lap-us (µs × 1000)"}
    perf["latency_estimate"] = {
        "value": instructions / board.clock_hz * 1e6, "unit": "us",
        "method": f"estimate: instructions at the nominal {board.clock_hz / 1e6:g} MHz clock, "
                  "1 instruction per cycle assumed"}


def _add_modelled_energy(result: dict[str, Any], board: Board) -> None:
    """Board power model x the DUT's time per inference, when nothing measured the energy."""
    perf = result.get("performance")
    if not perf or "energy" in perf or board.power is None:
        return
    from formicary.power.modelled import modelled_energy

    if "latency_instructions" in perf:  # virtual board: instructions, 1 per cycle at the board clock
        ticks, unit = perf["latency_instructions"]["value"], "instructions"
    else:  # real board: the DUT's µs at its clock
        ticks, unit = perf["latency"]["value"] * board.clock_hz / 1e6, "cycles"
    perf["energy"] = modelled_energy(board.power, board.clock_hz, [ticks], board.name, timing_unit=unit)


def mlperf_session(board: Board, fw: Any, data_dir: Path, *, port: str | None = None, baud: int | None = None,
                   line_timeout_s: float | None = None, **modes: Any) -> dict[str, Any]:
    """Bring BOARD up with the MLPerf firmware FW (QEMU, or the port; a real board running another model is
    flashed) and run the MLPerf modes (`run_modes` keyword arguments) over the DUT link."""
    from formicary.target.bringup import LinkOptions, bring_up

    with bring_up(board, fw, port=port, baud=baud, kind="mlperf", options=LinkOptions(line_timeout=line_timeout_s)) \
            as link:
        try:
            return {"port": link.url, "baud": link.baud, **run_modes(link.handle, data_dir, **modes)}
        except FormicaryError:
            link.check_health()  # a dead QEMU is the better explanation of a silent DUT
            raise


def run_mlperf_on_board(target: str | Path, board: str | Board, data_dir: str | Path, *, port: str | None = None,
                        baud: int | None = None, mode: str = "both", n: int | None = None, warmup: int = 1,
                        min_duration_s: float = 10.0, limit: int | None = None, rebuild: bool = False,
                        progress: Any = None, line_timeout_s: float | None = None,
                        power_source: Any = None, memory_plan: str | None = None) -> dict[str, Any]:
    """Build (or reuse) the MLPerf firmware of TARGET for BOARD, run it and return the `formicary mlperf` JSON.

    Performance mode gets `energy`: measured with `power_source` (a host monitor, serial-marker windows), else
    modelled from the board's power model x the DUT's time, labelled so."""
    from formicary.target.bringup import target_for
    from formicary.target.firmware import prepare_firmware

    b = load_board(board) if isinstance(board, str) else board
    data_dir = Path(data_dir)
    read_labels(data_dir)  # a bad data folder fails before anything is built
    target_for(b, port)    # so does a real board without a port
    if power_source is not None and b.virtual and port is None:
        raise FormicaryError("a power monitor cannot measure a QEMU virtual board.",
                             "leave out --power: virtual boards get the board's modelled energy.")
    fw = prepare_firmware(target, b, rebuild=rebuild, firmware_mode="mlperf", command="formicary mlperf",
                          memory_plan=memory_plan)
    kwargs = {"mode": mode, "n": n, "warmup": warmup, "min_duration_s": min_duration_s, "limit": limit,
              "progress": progress, "power_source": power_source}
    result = mlperf_session(b, fw, data_dir, port=port, baud=baud, line_timeout_s=line_timeout_s, **kwargs)
    if b.virtual:
        _annotate_virtual_time(result, b)
    _add_modelled_energy(result, b)
    result.update({"board": b.name, "virtual": b.virtual,
                   "firmware": {"project_dir": str(fw.project_dir), "elf": str(fw.elf), "built": fw.built,
                                "flash_bytes": fw.flash_bytes, "ram_bytes": fw.ram_bytes,
                                "model_hash": fw.model_hash}})
    return result
