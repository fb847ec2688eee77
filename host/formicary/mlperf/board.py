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
from formicary.mlperf.runner import (
    DEFAULT_BAUD,
    MlperfDut,
    open_dut,
    read_labels,
    run_modes,
)

VIRTUAL_LINE_TIMEOUT_S = 30.0  # QEMU on a loaded 2-core machine can stall for seconds between lines


def _check_model(dut: MlperfDut, model_hash: str, where: str) -> None:
    runs = dut.profile().get("model", "")
    if runs != model_hash:
        raise FormicaryError(
            f"the DUT on {where} runs model {runs or 'unknown'}, not {model_hash[:16]}… (this model's MLPerf build).",
            "flash the MLPerf build of this model (`formicary flash MODEL --board B --firmware mlperf`), "
            "or pass the model the DUT was built with.", details={"dut_model": runs, "expected": model_hash})


def _virtual_session(board: Board, elf: Path, model_hash: str, data_dir: Path, kwargs: dict[str, Any],
                     line_timeout_s: float) -> dict[str, Any]:
    import serial

    from formicary.device.qemu import launch

    q = launch(board, elf)
    try:
        port = serial.serial_for_url(q.url, baudrate=DEFAULT_BAUD, timeout=0.05)
        q.resume()  # connected first: the boot banner is not lost
        with MlperfDut(port, q.url, line_timeout_s) as dut:
            try:
                dut.sync(timeout_s=2 * line_timeout_s)
                _check_model(dut, model_hash, q.url)
                return {"port": q.url, "baud": None, **run_modes(dut, data_dir, **kwargs)}
            except FormicaryError:
                q.check_alive(grace=1.0)  # a dead QEMU is the better explanation of a silent DUT
                raise
    finally:
        q.close()


def _real_session(board: Board, project_dir: Path, model_hash: str, port: str, baud: int, data_dir: Path,
                  kwargs: dict[str, Any], line_timeout_s: float) -> dict[str, Any]:
    def connect() -> MlperfDut:
        dut = open_dut(port, baud, line_timeout_s)
        try:
            _check_model(dut, model_hash, port)
        except FormicaryError:
            dut.close()
            raise
        return dut

    try:
        dut = connect()
    except FormicaryError as exc:
        if board.virtual:
            raise  # a QEMU started elsewhere cannot be re-flashed over its serial port
        from formicary.flash import flash

        try:
            flash(project_dir, board.name, port=port)
        except FormicaryError as flash_error:
            flash_error.details = {**flash_error.details, "why_flashed": exc.cause}
            raise
        dut = connect()
    with dut:
        return {"port": port, "baud": baud, **run_modes(dut, data_dir, **kwargs)}


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
    from formicary.bench.power.modelled import modelled_energy

    if "latency_instructions" in perf:  # virtual board: instructions, 1 per cycle at the board clock
        ticks, unit = perf["latency_instructions"]["value"], "instructions"
    else:  # real board: the DUT's µs at its clock
        ticks, unit = perf["latency"]["value"] * board.clock_hz / 1e6, "cycles"
    perf["energy"] = modelled_energy(board.power, board.clock_hz, [ticks], board.name, timing_unit=unit)


def run_mlperf_on_board(target: str | Path, board: str | Board, data_dir: str | Path, *, port: str | None = None,
                        baud: int | None = None, mode: str = "both", n: int | None = None, warmup: int = 1,
                        min_duration_s: float = 10.0, limit: int | None = None, rebuild: bool = False,
                        progress: Any = None, line_timeout_s: float | None = None,
                        power_source: Any = None) -> dict[str, Any]:
    """Build (or reuse) the MLPerf firmware of TARGET for BOARD, run it and return the `formicary mlperf` JSON.

    Performance mode gets `energy`: measured with `power_source` (a host monitor, serial-marker windows), else
    modelled from the board's power model x the DUT's time, labelled so."""
    from formicary.bench.runner import prepare_firmware

    b = load_board(board) if isinstance(board, str) else board
    data_dir = Path(data_dir)
    read_labels(data_dir)  # a bad data folder fails before anything is built
    if not b.virtual and port is None:
        raise FormicaryError(f"{b.name} is a real board and no --port was given.",
                             "pass the DUT's serial port, e.g. --port /dev/ttyACM0 (or rfc2217://host:port).")
    if power_source is not None and b.virtual and port is None:
        raise FormicaryError("a power monitor cannot measure a QEMU virtual board.",
                             "leave out --power: virtual boards get the board's modelled energy.")
    fw = prepare_firmware(target, b, rebuild=rebuild, firmware_mode="mlperf", command="formicary mlperf")
    kwargs = {"mode": mode, "n": n, "warmup": warmup, "min_duration_s": min_duration_s, "limit": limit,
              "progress": progress, "power_source": power_source}
    if b.virtual and port is None:
        result = _virtual_session(b, fw.elf, fw.model_hash, data_dir, kwargs,
                                  line_timeout_s or VIRTUAL_LINE_TIMEOUT_S)
    else:
        assert port is not None
        result = _real_session(b, fw.project_dir, fw.model_hash, port, baud or b.uart.baud, data_dir, kwargs,
                               line_timeout_s or (VIRTUAL_LINE_TIMEOUT_S if b.virtual else 5.0))
    if b.virtual:
        _annotate_virtual_time(result, b)
    _add_modelled_energy(result, b)
    result.update({"board": b.name, "virtual": b.virtual,
                   "firmware": {"project_dir": str(fw.project_dir), "elf": str(fw.elf), "built": fw.built,
                                "flash_bytes": fw.flash_bytes, "ram_bytes": fw.ram_bytes,
                                "model_hash": fw.model_hash}})
    return result
