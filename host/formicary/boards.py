"""Board definitions: one TOML file per board in `boards/`, loaded into frozen, typed dataclasses.

The TOML files are the single source of truth; the PlatformIO board manifests in
`boards/platform/boards/*.json` are generated from them (`python -m formicary.boards --write-platform`), and a
test checks that the two agree.
"""
from __future__ import annotations

import json
import sys
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from formicary import resources
from formicary.errors import FormicaryError

BOARDS_DIR = resources.boards_dir()
PLATFORM_DIR = resources.platform_dir()

def port_families() -> tuple[str, ...]:
    """The board families the firmware has a port for: every firmware/port/<family>/ holding fm_port_<family>.c.
    Adding a family is adding that folder and a board TOML; nothing here lists them."""
    port = resources.firmware_dir() / "port"
    return tuple(sorted(d.name for d in port.iterdir() if (d / f"fm_port_{d.name}.c").is_file()))


CYCLE_COUNTERS = ("dwt", "systick-icount", "systick", "ccount", "perf-counter")
UPLOAD_PROTOCOLS = ("qemu", "stlink", "openocd", "jlink", "picotool", "nrfjprog", "esptool", "ssh")
BOARD_KINDS = ("mcu", "sbc")
# The TFLite runtimes the on-board agent tries, in this order unless a board or --runtime says otherwise.
SBC_RUNTIMES = ("tflite_runtime", "ai_edge_litert", "tensorflow.lite")


@dataclass(frozen=True)
class Uart:
    kind: str       # cmsdk | stm32-usart | stm32l4-lpuart | nrf-uart | ...
    base: int       # peripheral base address
    baud: int


@dataclass(frozen=True)
class Memory:
    flash_origin: int
    flash_bytes: int
    ram_origin: int
    ram_bytes: int


@dataclass(frozen=True)
class Sbc:
    """What a Linux single-board computer adds to a board: reached over SSH, the model run by a TFLite runtime in
    the board's Python (not formicary-rt), latency in wall-clock milliseconds (`time.perf_counter` on the board)."""
    cpu: str                      # e.g. "4x Cortex-A72"
    cores: int
    arch: str                     # uname -m: aarch64 | armv7l
    python: str                   # the board Python the agent runs under
    runtimes: tuple[str, ...] = SBC_RUNTIMES   # tried in this order
    alt_pythons: tuple[str, ...] = ()          # other Pythons with another runtime (--python picks one)
    host: str | None = None                    # default user@addr[:port]; None: --host is needed (or a VM)
    workdir: str = "/tmp/formicary"            # where the agent and the model are copied on the board


@dataclass(frozen=True)
class PowerModel:
    """Datasheet active current at the board's clock: enough for an energy estimate, not a measurement."""
    supply_v: float
    active_current_ma: float
    source: str
    checked: bool = False  # True once the figure has been compared with the cited datasheet table
    # Where the figure comes from when it is not this board's own silicon (virtual boards: a representative
    # production MCU with the same core) and how it was brought to the board's clock.
    basis: str = ""

    @property
    def active_power_mw(self) -> float:
        return self.supply_v * self.active_current_ma


# The kernel set a board uses unless its TOML names one (`kernels = ...`) or a command passes --kernels: the fastest
# set the core can run (host/formicary/codegen/sets/). Cores not listed use the portable reference kernels.
KERNELS_BY_CORE = {
    "cortex-m4": "dsp", "cortex-m7": "dsp", "cortex-m33": "dsp", "cortex-m35p": "dsp",  # Armv7E-M / v8-M DSP
    "cortex-m55": "helium", "cortex-m85": "helium",                                     # Armv8.1-M MVE
}


def default_kernels(core: str) -> str:
    return KERNELS_BY_CORE.get(core, "reference")


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    vendor: str
    core: str
    cpu_flags: tuple[str, ...]
    clock_hz: int
    cycle_counter: str
    port: str
    virtual: bool
    buildable: bool
    memory: Memory
    uart: Uart
    upload_protocol: str
    qemu_machine: str | None = None
    power: PowerModel | None = None
    kernels: str = "reference"  # kernel set, a folder of firmware/kernels/ (default: KERNELS_BY_CORE[core])
    kind: str = "mcu"           # mcu: formicary-rt firmware over a UART; sbc: a TFLite runtime over SSH
    sbc: Sbc | None = None

    @property
    def is_sbc(self) -> bool:
        return self.kind == "sbc"

    # Short names used all over the code base.
    @property
    def flash_bytes(self) -> int:
        return self.memory.flash_bytes

    @property
    def ram_bytes(self) -> int:
        return self.memory.ram_bytes

    @property
    def timing_unit(self) -> str:
        """What a latency on this board counts: retired instructions on QEMU, core cycles with DWT, wall-clock
        milliseconds on an SBC."""
        if self.is_sbc:
            return "ms"
        return "instructions" if self.cycle_counter == "systick-icount" else "cycles"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["cpu_flags"] = list(self.cpu_flags)
        if self.sbc is not None:
            out["sbc"]["runtimes"] = list(self.sbc.runtimes)
            out["sbc"]["alt_pythons"] = list(self.sbc.alt_pythons)
        out["flash_bytes"] = self.flash_bytes
        out["ram_bytes"] = self.ram_bytes
        out["timing_unit"] = self.timing_unit
        return out

    def firmware_defines(self) -> dict[str, str]:
        """Preprocessor symbols the firmware's port layer and app read (see firmware/port/fm_port.h)."""
        if not self.buildable:
            raise FormicaryError(f"board {self.name!r} ({self.core}) cannot be built with formicary's Cortex-M platform.",
                                 "pick a Cortex-M board from `formicary boards`.")
        defines = {
            f"FM_PORT_{self.port.upper()}": "1",
            "FM_CLOCK_HZ": f"{self.clock_hz}u",
            "FM_UART_BASE": f"0x{self.uart.base:08X}u",
            "FM_UART_BAUD": f"{self.uart.baud}u",
            "FM_TIMER_DWT" if self.cycle_counter == "dwt" else "FM_TIMER_SYSTICK": "1",
        }
        if self.virtual:
            defines["FM_VIRTUAL"] = "1"
        return defines

    def platformio_manifest(self) -> dict[str, Any]:
        """The PlatformIO board JSON (boards/platform/boards/<name>.json) generated from this definition."""
        mcpu = next((f.split("=", 1)[1] for f in self.cpu_flags if f.startswith("-mcpu=")), self.core)
        return {
            "name": self.description,
            "vendor": self.vendor,
            "url": "https://github.com/formicary/formicary/tree/main/boards",
            "frameworks": [],
            "build": {
                "core": self.core,
                "cpu": mcpu,
                "f_cpu": f"{self.clock_hz}L",
                "cpu_flags": list(self.cpu_flags),
                "formicary_defines": self.firmware_defines(),
                "formicary_memory": {
                    "flash_origin": self.memory.flash_origin, "flash_bytes": self.memory.flash_bytes,
                    "ram_origin": self.memory.ram_origin, "ram_bytes": self.memory.ram_bytes,
                },
            },
            "upload": {
                "maximum_size": self.memory.flash_bytes,
                "maximum_ram_size": self.memory.ram_bytes,
                "protocol": self.upload_protocol,
                "protocols": [self.upload_protocol],
            },
            "debug": {"qemu_machine": self.qemu_machine} if self.qemu_machine else {},
        }


def _require(data: dict, key: str, typ: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise FormicaryError(f"board file {where} has no `{key}`.", "add it (see boards/qemu-m4.toml for the format).")
    value = data[key]
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise FormicaryError(f"board file {where}: `{key}` has type {type(value).__name__}.",
                             f"make it a {getattr(typ, '__name__', typ)}.")
    return value


def _parse(path: Path) -> Board:
    where = path.name
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise FormicaryError(f"board file {path} is not valid TOML: {exc}", "fix the syntax.") from exc
    kind = data.get("kind", "mcu")
    if kind not in BOARD_KINDS:
        raise FormicaryError(f"board file {where}: unknown kind {kind!r}.", f"use one of {', '.join(BOARD_KINDS)}.")
    if kind == "sbc":
        return _check(path, _parse_sbc(data, where))
    mem = _require(data, "memory", dict, where)
    uart = _require(data, "uart", dict, where)
    upload = _require(data, "upload", dict, where)
    power = data.get("power")
    if power is not None and not isinstance(power, dict):
        raise FormicaryError(f"board file {where}: `power` must be a table.", "write it as [power] with supply_v, "
                             "active_current_ma, source.")
    board = Board(
        name=_require(data, "name", str, where),
        description=_require(data, "description", str, where),
        vendor=data.get("vendor", ""),
        core=_require(data, "core", str, where),
        cpu_flags=tuple(_require(data, "cpu_flags", list, where)),
        clock_hz=_require(data, "clock_hz", int, where),
        cycle_counter=_require(data, "cycle_counter", str, where),
        port=_require(data, "port", str, where),
        virtual=_require(data, "virtual", bool, where),
        buildable=_require(data, "buildable", bool, where),
        memory=Memory(**{k: _require(mem, k, int, where) for k in
                         ("flash_origin", "flash_bytes", "ram_origin", "ram_bytes")}),
        uart=Uart(kind=_require(uart, "kind", str, where), base=_require(uart, "base", int, where),
                  baud=_require(uart, "baud", int, where)),
        upload_protocol=_require(upload, "protocol", str, where),
        qemu_machine=data.get("qemu_machine"),
        power=_parse_power(power, where) if power else None,
        kernels=_require(data, "kernels", str, where) if "kernels" in data else default_kernels(data.get("core", "")),
    )
    return _check(path, board)


def _parse_sbc(data: dict, where: str) -> Board:
    """An SBC board file: no flash map, UART or firmware port; an [sbc] table says how to run the model on it."""
    sbc = _require(data, "sbc", dict, where)
    power = data.get("power")
    runtimes = tuple(_require(sbc, "runtimes", list, where)) if "runtimes" in sbc else SBC_RUNTIMES
    unknown = [r for r in runtimes if r not in SBC_RUNTIMES]
    if unknown or not runtimes:
        raise FormicaryError(f"board file {where}: unknown runtime(s) {unknown or '(none)'} in [sbc] runtimes.",
                             f"use some of {', '.join(SBC_RUNTIMES)}.")
    spec = Sbc(cpu=_require(sbc, "cpu", str, where), cores=_require(sbc, "cores", int, where),
               arch=_require(sbc, "arch", str, where), python=sbc.get("python", "/usr/bin/python3"),
               runtimes=runtimes, alt_pythons=tuple(sbc.get("alt_pythons", ())), host=sbc.get("host"),
               workdir=sbc.get("workdir", "/tmp/formicary"))
    ram = _require(data, "ram_bytes", int, where)
    return Board(
        name=_require(data, "name", str, where), description=_require(data, "description", str, where),
        vendor=data.get("vendor", ""), core=_require(data, "core", str, where), cpu_flags=(),
        clock_hz=_require(data, "clock_hz", int, where), cycle_counter="perf-counter", port="ssh",
        virtual=_require(data, "virtual", bool, where), buildable=False,
        memory=Memory(flash_origin=0, flash_bytes=0, ram_origin=0, ram_bytes=ram),
        uart=Uart(kind="none", base=0, baud=0), upload_protocol="ssh", qemu_machine=data.get("qemu_machine"),
        power=_parse_power(power, where) if power else None, kernels="reference", kind="sbc", sbc=spec)


def _check(path: Path, board: Board) -> Board:
    where = path.name
    if board.name != path.stem:
        raise FormicaryError(f"board file {where} names itself {board.name!r}.", f"rename the file or set name = {path.stem!r}.")
    if board.cycle_counter not in CYCLE_COUNTERS:
        raise FormicaryError(f"board {board.name}: unknown cycle_counter {board.cycle_counter!r}.",
                             f"use one of {', '.join(CYCLE_COUNTERS)}.")
    if board.upload_protocol not in UPLOAD_PROTOCOLS:
        raise FormicaryError(f"board {board.name}: unknown upload protocol {board.upload_protocol!r}.",
                             f"use one of {', '.join(UPLOAD_PROTOCOLS)}.")
    if board.buildable and board.port not in port_families():
        raise FormicaryError(f"board {board.name}: no firmware port {board.port!r}.",
                             f"use one of {', '.join(port_families())} or set buildable = false.")
    if board.virtual and not board.qemu_machine:
        raise FormicaryError(f"board {board.name} is virtual but has no qemu_machine.", "add qemu_machine = \"…\".")
    if board.virtual and board.power is not None and not board.power.basis:
        # QEMU models no power: a virtual board's figure always belongs to some real chip, and must say which.
        raise FormicaryError(f"board {board.name} is virtual but its [power] has no `basis`.",
                             "add basis = \"…\" naming the representative silicon and how the figure was scaled "
                             "to clock_hz.")
    return board


def _parse_power(power: dict, where: str) -> PowerModel:
    checked = power.get("checked", False)
    if not isinstance(checked, bool):  # a quoted "false" must not read as True
        raise FormicaryError(f"board file {where}: [power] checked has type {type(checked).__name__}.",
                             "write checked = true or checked = false.")
    basis = power.get("basis", "")
    if not isinstance(basis, str):
        raise FormicaryError(f"board file {where}: [power] basis has type {type(basis).__name__}.",
                             "make it a string.")
    return PowerModel(supply_v=float(_require(power, "supply_v", (int, float), where)),
                      active_current_ma=float(_require(power, "active_current_ma", (int, float), where)),
                      source=_require(power, "source", str, where), checked=checked, basis=basis)


def list_boards(boards_dir: Path | None = None) -> list[Board]:
    """Every board definition, virtual boards first, then by name."""
    folder = boards_dir or BOARDS_DIR
    boards = [_parse(p) for p in sorted(folder.glob("*.toml"))]
    return sorted(boards, key=lambda b: (not b.virtual, b.name))


def load_board(name: str, boards_dir: Path | None = None) -> Board:
    """The board called `name`; an unknown name raises FormicaryError listing the known ones."""
    folder = boards_dir or BOARDS_DIR
    path = folder / f"{name}.toml"
    if "/" in name or not path.is_file():
        known = ", ".join(b.name for b in list_boards(folder))
        raise FormicaryError(f"unknown board {name!r}.", f"use one of: {known}.", details={"board": name})
    return _parse(path)


def write_platform_manifests(boards_dir: Path | None = None) -> list[Path]:
    """Regenerate boards/platform/boards/*.json from the TOML definitions of buildable boards."""
    out_dir = (boards_dir or BOARDS_DIR) / "platform" / "boards"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for board in list_boards(boards_dir):
        if not board.buildable:
            continue
        path = out_dir / f"{board.name}.json"
        path.write_text(json.dumps(board.platformio_manifest(), indent=2) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":
    if sys.argv[1:] == ["--write-platform"]:
        for p in write_platform_manifests():
            print(p)
    else:
        print("usage: python -m formicary.boards --write-platform", file=sys.stderr)
        sys.exit(2)
