"""Hardware-in-the-loop pytest plugin (entry point `pytest11: formicary`): docs/hil.md.

A test asks for `dut` and gets the model built for `--board`, flashed (a QEMU virtual board is started; a
real board is uploaded with PlatformIO) and connected over serial, with "run this input and compare it with
the TFLM interpreter" built in. Without `--board` every test that needs the device skips, so the plugin is
harmless in projects that never use it. Importing this module must stay cheap: pytest loads it in every run,
so formicary's heavy modules are only imported inside the fixtures.
"""
from __future__ import annotations

import atexit
import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

# light modules only: pytest imports this plugin in every run
from formicary.oracle.compare import FLOAT_ATOL, FLOAT_RTOL
from formicary.oracle.compare import describe_differences as compare_outputs
from formicary.oracle.inputs import prepare_inputs
from formicary.target.firmware import file_sha256 as model_sha256

# option -> (ini name, environment variable); the command line wins over the environment, which wins over ini.
_SETTINGS = {
    "board": ("formicary_board", "FORMICARY_BOARD"),
    "port": ("formicary_port", "FORMICARY_PORT"),
    "model": ("formicary_model", "FORMICARY_MODEL"),
    "build_dir": ("formicary_build_dir", "FORMICARY_BUILD_DIR"),
    "baud": ("formicary_baud", "FORMICARY_BAUD"),
    "place": ("formicary_place", "FORMICARY_PLACE"),
}
HIL_FIXTURES = ("dut", "dut_factory")
# --------------------------------------------------------------------------------------------- options
def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("formicary", "formicary hardware-in-the-loop (docs/hil.md)")
    g.addoption("--board", dest="formicary_board", default=None,
                help="run `dut` tests on this board (a name from `formicary boards`); env FORMICARY_BOARD.")
    g.addoption("--port", dest="formicary_port", default=None,
                help="pyserial URL of the board (/dev/ttyACM0, socket://host:port, rfc2217://...). Required for "
                     "real boards; for virtual boards omit it to let the plugin start QEMU, or give the URL of a "
                     "QEMU started by `formicary flash`; SBC boards: user@addr[:port] for SSH (the virtual SBC "
                     "boots its own without it); env FORMICARY_PORT.")
    g.addoption("--formicary-place", dest="formicary_place", default=None,
                help="a labgrid place (NAME or NAME@COORDINATOR, docs/lab.md) holding the --board: acquired for the "
                     "session, released at its end; needs `pip install 'formicary[lab]'`; env FORMICARY_PLACE.")
    g.addoption("--formicary-model", dest="formicary_model", default=None,
                help="model the default `dut_model` fixture returns (.tflite or a Keras model); env FORMICARY_MODEL.")
    g.addoption("--formicary-build-dir", dest="formicary_build_dir", default=None,
                help="where firmware is built, one folder per model sha256 and board (default: pytest's cache "
                     "folder); env FORMICARY_BUILD_DIR.")
    g.addoption("--formicary-baud", dest="formicary_baud", default=None,
                help="baud rate of --port (default: the board's UART baud rate from its definition); "
                     "env FORMICARY_BAUD.")
    g.addoption("--formicary-no-flash", dest="formicary_no_flash", action="store_true", default=False,
                help="real boards: do not upload, the board at --port already runs this model's firmware "
                     "(checked through the model hash).")
    for name, (ini, env) in _SETTINGS.items():
        flag = f"--{name}" if name in ("board", "port") else f"--formicary-{name.replace('_', '-')}"
        parser.addini(ini, f"formicary hardware-in-the-loop: default for {flag} "
                           f"(overridden by ${env} and the command line)", default=None)


def _setting(config: pytest.Config, name: str) -> str | None:
    ini, env = _SETTINGS[name]
    value = config.getoption(f"formicary_{name}", default=None)
    if value:
        return str(value)
    if os.environ.get(env):
        return os.environ[env]
    value = config.getini(ini)
    return str(value) if value else None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "hil: hardware-in-the-loop test run on a board through the formicary "
                                       "`dut`/`dut_factory` fixtures (select with -m hil)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # every test that talks to a board carries the marker, so `-m hil` / `-m "not hil"` select them
    for item in items:
        if any(f in getattr(item, "fixturenames", ()) for f in HIL_FIXTURES):
            item.add_marker(pytest.mark.hil)


def pytest_report_header(config: pytest.Config) -> str | None:
    board = _setting(config, "board")
    if board is None:
        return None
    port = _setting(config, "port")
    return f"formicary hil: board {board}" + (f", port {port}" if port else "")


# ------------------------------------------------------------------------------------------------ data
@dataclass
class DutResult:
    """One inference on the board: outputs with the model's dtype and shape, and its latency.

    `latency` is the first measured run, in `unit` ("instructions" on virtual boards, "cycles" on real cores
    with DWT) measured by `method`; `latencies` has every measured run. `reference` is filled by `Dut.check`.
    `routes` has each measured run's route (bitmask of the model's subgraphs it ran, e.g. which expert of a
    mixture; bit 0 = the main graph), None when the firmware predates routes.
    """
    outputs: list[np.ndarray]
    latency: int
    unit: str
    method: str
    latencies: list[int]
    inputs: list[np.ndarray]
    reference: list[np.ndarray] | None = None
    routes: list[int] | None = None

    @property
    def output(self) -> np.ndarray:
        """The first (usually only) output."""
        return self.outputs[0]

    def latency_dict(self) -> dict[str, Any]:
        return {"value": self.latency, "unit": self.unit, "method": self.method}


# ------------------------------------------------------------------------------------------------- Dut
class Dut:
    """A device under test running one model: run inputs, compare with the TFLM reference, reset."""

    def __init__(self, board: Any, model: Path, tflite: Path, model_hash: str, connection: Any,
                 build: dict[str, Any] | None) -> None:
        self.board = board            # formicary.boards.Board
        self.model = model            # the model as given (.tflite or Keras)
        self.tflite = tflite          # what the firmware runs and TFLM is given
        self.model_hash = model_hash  # sha256 of the .tflite, checked against the device's HELLO
        self.connection = connection
        self.build = build            # formicary-build.json of the firmware (flash/RAM use, ELF path)
        self.broken = False  # the link failed (timeout, reset, QEMU gone): the factory reconnects next time
        self._tflite_bytes: bytes | None = None

    @property
    def info(self):
        """formicary.device.DeviceInfo from the device's HELLO (board, model hash, tensors, timer)."""
        return self.connection.session.info

    @property
    def session(self):
        return self.connection.session

    @property
    def url(self) -> str:
        return self.connection.url

    def _model_bytes(self) -> bytes:
        if self._tflite_bytes is None:
            self._tflite_bytes = self.tflite.read_bytes()
        return self._tflite_bytes

    def prepare(self, inputs: Any) -> list[np.ndarray]:
        """Inputs converted as `run` and `reference` convert them (see prepare_inputs)."""
        return prepare_inputs(inputs, self.info.inputs)

    def _shape_outputs(self, raw: Sequence[bytes]) -> list[np.ndarray]:
        return [np.frombuffer(b, dtype=np.dtype(spec.dtype)).reshape(spec.shape).copy()
                for b, spec in zip(raw, self.info.outputs)]

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        from formicary.errors import FormicaryError

        try:
            yield
        except (FormicaryError, OSError):  # timeouts, resets, a dead QEMU, a serial port gone
            self.broken = True
            raise

    def run(self, inputs: Any, *, runs: int = 1, warmup: int = 0) -> DutResult:
        """Load `inputs`, run `warmup` + `runs` inferences, read the outputs (of the last run)."""
        xs = self.prepare(inputs)
        with self._guard():
            raw, result = self.session.infer([x.tobytes() for x in xs], runs=runs, warmup=warmup)
        return DutResult(outputs=self._shape_outputs(raw), latency=result.values[0], unit=result.unit,
                         method=result.method, latencies=list(result.values), inputs=xs,
                         routes=None if result.routes is None else list(result.routes))

    def reference(self, inputs: Any) -> list[np.ndarray]:
        """What the TFLM interpreter computes for `inputs` (same conversion as `run`)."""
        return self.reference_many([inputs])[0]

    def reference_many(self, batch: Sequence[Any]) -> list[list[np.ndarray]]:
        """TFLM outputs for many input sets in one interpreter (much faster than one `reference` each)."""
        from formicary.oracle.tflm import run_tflm

        prepared = [self.prepare(x) for x in batch]
        results = run_tflm(self._model_bytes(), prepared)
        return [[np.asarray(o).reshape(spec.shape) for o, spec in zip(outs, self.info.outputs)]
                for outs in results]

    def check(self, inputs: Any, *, reference: Sequence[np.ndarray] | np.ndarray | None = None,
              rtol: float = FLOAT_RTOL, atol: float = FLOAT_ATOL) -> DutResult:
        """Run `inputs` on the device and assert the outputs equal TFLM's: bit-exact for integer outputs,
        np.allclose(rtol, atol) for float32. `reference` skips the TFLM run (e.g. from `reference_many`)."""
        __tracebackhide__ = True
        result = self.run(inputs)
        if reference is None:
            ref = self.reference(result.inputs)
        else:
            ref = [reference] if isinstance(reference, np.ndarray) else list(reference)
        result.reference = [np.asarray(r) for r in ref]
        problems = compare_outputs(result.outputs, result.reference, rtol=rtol, atol=atol)
        if problems:
            raise AssertionError(self.describe() + ": device and TFLM disagree\n  " + "\n  ".join(problems))
        return result

    def describe(self) -> str:
        return f"{self.board.name} running {self.model.name} (sha256 {self.model_hash[:12]}…)"

    def reset(self):
        """Reset the board (RESET command) and start a fresh session; returns the new DeviceInfo."""
        with self._guard():
            return self.session.reset()

    def close(self) -> None:
        self.connection.close()

    def __repr__(self) -> str:
        return f"<Dut {self.describe()} at {self.url}>"


@dataclass(frozen=True)
class _SbcSpec:
    dtype: str
    shape: tuple[int, ...]
    scale: float
    zero_point: int


@dataclass(frozen=True)
class _SbcInfo:
    inputs: list[_SbcSpec]
    outputs: list[_SbcSpec]
    timing_unit: str = "ms"
    timing_method: str = "perf_counter"


class SbcDut(Dut):
    """A Linux single-board computer as a device under test: each `run` copies the inputs and runs the on-board
    agent over SSH (formicary.target.sbc) in the board's TFLite runtime; latencies are wall-clock ms
    (`perf_counter` on the board). `check` compares with TFLM like an MCU's, so pass `rtol`/`atol` or use the
    strict runtime options (sbc={"xnnpack": False}) for integer models."""

    def __init__(self, board: Any, model: Path, tflite: Path, link: Any, sbc: dict[str, Any] | None = None) -> None:
        super().__init__(board, model, tflite, model_sha256(tflite), link, None)
        self.sbc = dict(sbc or {})
        self._info: _SbcInfo | None = None

    @property
    def info(self) -> _SbcInfo:
        if self._info is None:
            from ai_edge_litert.interpreter import Interpreter

            it = Interpreter(model_path=str(self.tflite))

            def specs(details: list[dict]) -> list[_SbcSpec]:
                return [_SbcSpec(np.dtype(d["dtype"]).name, tuple(int(x) for x in d["shape"]),
                                 float(d["quantization"][0]), int(d["quantization"][1])) for d in details]

            self._info = _SbcInfo(specs(it.get_input_details()), specs(it.get_output_details()))
        return self._info

    @property
    def session(self):
        raise AttributeError("an SBC has no formicary-rt session: use run/check")

    def run(self, inputs: Any, *, runs: int = 1, warmup: int = 0) -> DutResult:
        import base64

        from formicary.target.sbc import AgentRequest

        xs = self.prepare(inputs)
        req = AgentRequest([xs], [runs], warmup, sensor="none", **self.sbc)
        ms: list[float] = []
        outs: list[np.ndarray] = []
        with self._guard():
            for ev in self.connection.run_agent(self.tflite, req):
                if ev["event"] == "inference":
                    ms.append(float(ev["ms"]))
                elif ev["event"] == "outputs":
                    outs = [np.frombuffer(base64.b64decode(o["b64"]), dtype=np.dtype(o["dtype"]))
                            .reshape(o["shape"]).copy() for o in ev["outputs"]]
        return DutResult(outputs=outs, latency=ms[0], unit="ms", method="perf_counter", latencies=ms, inputs=xs)

    def reset(self):
        return self.info  # nothing to reset: every run starts a fresh agent process

    @property
    def url(self) -> str:
        return self.connection.url


class DutFactory:
    """`dut_factory(board, model)` -> Dut, one per (board, model, port) for the whole session.

    Firmware comes from formicary's firmware cache rooted at BUILD_DIR (formicary.target.firmware: one folder
    per model, board and firmware sources, reused across sessions while nothing changes). Virtual boards get a fresh
    QEMU each; everything is closed (QEMU killed) at session end, and at interpreter exit as a last resort.
    """

    def __init__(self, build_dir: Path, *, default_port: str | None = None, default_board: str | None = None,
                 default_baud: int | None = None,
                 no_flash: bool = False) -> None:
        self.build_dir = Path(build_dir)
        self.default_port = default_port
        self.default_baud = default_baud
        self.default_board = default_board
        self.no_flash = no_flash
        self._duts: dict[tuple[str, str, str | None], Dut] = {}
        self._builds: dict[tuple[str, str], tuple[Any, Path]] = {}
        atexit.register(self.close)

    def __call__(self, board: str, model: str | Path, *, port: str | None = None) -> Dut:
        from formicary.boards import load_board

        b = load_board(board)
        model = Path(model)
        if not model.exists():
            raise FileNotFoundError(f"model {model} does not exist")
        if port is None and board == self.default_board:
            port = self.default_port  # --port belongs to --board only
        sha = model_sha256(model)
        key = (b.name, sha, port)
        dut = self._duts.get(key)
        if dut is not None and not dut.broken:
            return dut
        if dut is not None:  # a device error left the session unusable: start over on a fresh connection
            dut.close()
            del self._duts[key]
        if b.is_sbc:  # a TFLite runtime over SSH: no firmware; --port is the host (user@addr[:port])
            from formicary.compile import to_tflite
            from formicary.target.sbc import open_sbc

            tflite = to_tflite(model, self.build_dir / f"{model.stem}-{sha[:12]}", board=b.name)
            self._duts[key] = dut = SbcDut(b, model, Path(tflite), open_sbc(b, port))
            return dut
        fw, tflite = self._build(b, model, sha)
        self._duts[key] = dut = self._connect(b, model, fw, tflite, port)
        return dut

    def _build(self, board: Any, model: Path, sha: str) -> tuple[dict, Path]:
        from formicary.compile import to_tflite
        from formicary.target.firmware import prepare_firmware

        key = (board.name, sha)
        if key not in self._builds:
            # a Keras model is compiled once (default options) beside its firmware builds
            tflite = to_tflite(model, self.build_dir / f"{model.stem}-{sha[:12]}", board=board.name)
            fw = prepare_firmware(tflite, board, cache_dir=self.build_dir, command="the formicary pytest plugin")
            self._builds[key] = (fw, fw.tflite)
        return self._builds[key]

    def _connect(self, board: Any, model: Path, fw: Any, tflite: Path, port: str | None) -> Dut:
        from formicary.build import read_build_info
        from formicary.target.bringup import bring_up

        if not board.virtual and port is None:
            pytest.fail(f"{board.name} is a real board: pass its serial port with --port (or FORMICARY_PORT), "
                        "e.g. --port /dev/ttyACM0.", pytrace=False)
        # a real board is flashed when it runs another model (unless --formicary-no-flash); a virtual board with
        # --port is a QEMU from `formicary flash` and is only attached to
        baud = self.default_baud if port is not None and port == self.default_port else None
        link = bring_up(board, fw, port=port, baud=baud, flash_on_mismatch=not self.no_flash)
        # the link stands for its connection: closing it also releases a labgrid place
        return Dut(board, model, tflite, fw.model_hash, link, read_build_info(fw.project_dir))

    def close(self) -> None:
        errors = []
        for dut in self._duts.values():
            try:
                dut.close()
            except Exception as exc:  # noqa: BLE001 - close every board even if one fails
                errors.append(exc)
        self._duts.clear()
        if errors:
            raise errors[0]


# -------------------------------------------------------------------------------------------- fixtures
def _default_build_dir(config: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = _setting(config, "build_dir")
    if given:
        return Path(given).expanduser().resolve()
    cache = getattr(config, "cache", None)
    if cache is not None:
        return Path(cache.mkdir("formicary-hil"))
    return tmp_path_factory.mktemp("formicary-hil")


@pytest.fixture(scope="session")
def dut_factory(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DutFactory]:
    """`dut_factory(board, model, port=None) -> Dut`: several boards or models in one session."""
    config = request.config
    place = _setting(config, "place")
    default_port = (place if place.startswith("place:") else f"place:{place}") if place else _setting(config, "port")
    factory = DutFactory(_default_build_dir(config, tmp_path_factory), default_port=default_port,
                         default_baud=int(_setting(config, "baud") or 0) or None,
                         default_board=_setting(config, "board"),
                         no_flash=bool(config.getoption("formicary_no_flash", default=False)))
    yield factory
    factory.close()


@pytest.fixture(scope="session")
def dut_board(request: pytest.FixtureRequest) -> str:
    """The board from --board / FORMICARY_BOARD / ini formicary_board; skips the test when none is set."""
    board = _setting(request.config, "board")
    if not board:
        pytest.skip("no board to run on: hardware-in-the-loop tests need --board NAME (or FORMICARY_BOARD); "
                    "`formicary boards` lists the names")
    return board


@pytest.fixture(scope="session")
def dut_model(request: pytest.FixtureRequest) -> Path:
    """The model `dut` runs: --formicary-model by default; override this fixture in your conftest.py."""
    model = _setting(request.config, "model")
    if not model:
        pytest.skip("no model for the board: pass --formicary-model PATH (or FORMICARY_MODEL), or override "
                    "the `dut_model` fixture in conftest.py")
    return Path(model)


@pytest.fixture()
def dut(dut_board: str, dut_model: Path | str, dut_factory: DutFactory) -> Dut:
    """The model flashed on the board and connected, shared by every test of the session with the same
    board and model (so `dut_model` may be overridden at any scope)."""
    return dut_factory(dut_board, dut_model)


__all__: list[str] = [
    "FLOAT_ATOL",
    "FLOAT_RTOL",
    "Dut",
    "DutFactory",
    "DutResult",
    "SbcDut",
    "compare_outputs",
    "model_sha256",
    "prepare_inputs",
]
