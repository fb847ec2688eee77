"""formicary's on-board agent for Linux single-board computers (copied to the board and run there).

Self-contained on purpose: the Python standard library and numpy only, so any board Python with a TFLite runtime
can run it; `formicary.target.ssh` copies this file, the model and the inputs (.npz) to the board and runs
`PYTHON sbc_agent.py REQUEST.json`. Results stream back on stdout as JSON lines, one event per line, flushed as
they happen, so a connection that drops mid-run loses only what was not yet sent:

  {"event": "hello", ...runtime, version, python, machine, threads, xnnpack, tensor specs}
  {"event": "inference", "input": k, "ms": 1.234}        one per timed invoke() (warm-ups are not sent)
  {"event": "outputs", "input": k, "outputs": [{"dtype", "shape", "b64"}]}
  {"event": "power", "source", "samples": [[t_s, W], …], "windows": [[t0, t1, n], …]}   with a sensor
  {"event": "done", "peak_rss_bytes": n}
  {"event": "error", "kind": "...", "message": "...", ...}  then exit status 3

Latency is time.perf_counter() around each invoke() (wall-clock milliseconds). Runtimes are tried in the
request's order (default tflite_runtime, ai_edge_litert, tensorflow.lite). Power sensors read on the board:
INA219/INA226 on I2C through smbus2 (registers big-endian), the kernel's ina2xx hwmon driver (power1_input, µW),
and a Raspberry Pi 5's PMIC through `vcgencmd pmic_read_adc`.
"""
from __future__ import annotations

import base64
import glob
import json
import os
import platform
import re
import resource
import subprocess
import sys
import threading
import time

AGENT_VERSION = 1
DEFAULT_RUNTIMES = ("tflite_runtime", "ai_edge_litert", "tensorflow.lite")


def emit(event: dict) -> None:
    sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
    sys.stdout.flush()


class AgentError(Exception):
    def __init__(self, kind: str, message: str, **extra: object) -> None:
        super().__init__(message)
        self.kind, self.message, self.extra = kind, message, extra


# ---- runtimes ---------------------------------------------------------------------------------------------

def _import_runtime(name: str):
    """(Interpreter class, OpResolverType or None, version) of one runtime; ImportError when absent."""
    if name == "tflite_runtime":
        import tflite_runtime
        from tflite_runtime import interpreter as mod
        version = getattr(tflite_runtime, "__version__", "?")
    elif name == "ai_edge_litert":
        from ai_edge_litert import interpreter as mod
        try:
            from importlib.metadata import version as _v
            version = _v("ai-edge-litert")
        except Exception:  # noqa: BLE001 - a version we cannot read is not a reason to fail
            version = "?"
    elif name == "tensorflow.lite":
        import tensorflow as tf
        return tf.lite.Interpreter, getattr(tf.lite.experimental, "OpResolverType", None), tf.__version__
    else:
        raise ImportError(f"unknown runtime {name}")
    return mod.Interpreter, getattr(mod, "OpResolverType", None), version


def load_runtime(order):
    tried = []
    for name in order:
        try:
            cls, resolver, version = _import_runtime(name)
            return name, cls, resolver, version, tried
        except Exception as exc:  # noqa: BLE001 - ImportError, or a runtime that breaks on import (numpy ABI)
            tried.append({"runtime": name, "error": f"{type(exc).__name__}: {exc}"[:300]})
    raise AgentError("no_runtime", "no TFLite runtime could be imported", tried=tried)


def make_interpreter(cls, resolver, model: str, threads, xnnpack):
    kwargs = {"model_path": model}
    if threads:
        kwargs["num_threads"] = int(threads)
    applied = "default"  # the runtime's default: XNNPACK applied where the build enables it by default
    if xnnpack is False:
        if resolver is None:
            raise AgentError("option", "this runtime cannot turn XNNPACK off (no OpResolverType)")
        kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        applied = "off"
    elif xnnpack is True:
        applied = "on"
    interp = cls(**kwargs)
    interp.allocate_tensors()
    return interp, applied


def _spec(d: dict) -> dict:
    q = d.get("quantization") or (0.0, 0)
    return {"name": d.get("name", ""), "dtype": str(d["dtype"].__name__ if hasattr(d["dtype"], "__name__")
                                                     else d["dtype"]),
            "shape": [int(x) for x in d["shape"]], "scale": float(q[0]), "zero_point": int(q[1])}


# ---- power sensors ----------------------------------------------------------------------------------------

# chip: (shunt LSB V, bus LSB V, bus shift)
INA_CHIPS = {219: (10e-6, 4e-3, 3), 226: (2.5e-6, 1.25e-3, 0)}


def ina_decode(chip: int, raw_shunt: int, raw_bus: int, shunt_ohm: float) -> tuple:
    """Shunt and bus registers (16-bit, as read big-endian) -> (bus V, current A, power W); computed from the
    shunt voltage, so the sensor needs no calibration register written."""
    shunt_lsb, bus_lsb, shift = INA_CHIPS[chip]
    if raw_shunt >= 0x8000:
        raw_shunt -= 0x10000
    bus = ((raw_bus >> shift) if chip == 219 else (raw_bus & 0x7FFF)) * bus_lsb
    current = raw_shunt * shunt_lsb / shunt_ohm
    return bus, current, bus * current


class InaI2c:
    """An INA219/INA226 read directly over I2C with smbus2 (`bus` may be any object with
    read_i2c_block_data, e.g. a recorded fixture)."""

    def __init__(self, chip: int, bus=1, address: int = 0x40, shunt_ohm: float = 0.1) -> None:
        if chip not in INA_CHIPS:
            raise AgentError("sensor", f"unknown INA chip {chip}: use 219 or 226")
        if isinstance(bus, int):
            try:
                from smbus2 import SMBus
            except ImportError as exc:
                raise AgentError("sensor", "reading an INA over I2C needs smbus2 on the board: "
                                           f"{sys.executable} -m pip install smbus2") from exc
            bus = SMBus(bus)
        self.chip, self.bus, self.address, self.shunt_ohm = chip, bus, address, shunt_ohm
        self.name = f"ina{chip}@0x{address:02x} (smbus2, shunt {shunt_ohm:g} ohm)"

    def _reg(self, reg: int) -> int:
        hi, lo = self.bus.read_i2c_block_data(self.address, reg, 2)
        return (hi << 8) | lo  # INA registers are big-endian

    def read_w(self) -> float:
        return ina_decode(self.chip, self._reg(0x01), self._reg(0x02), self.shunt_ohm)[2]


class Hwmon:
    """The kernel's ina2xx (or any) hwmon driver: power1_input in µW, else curr1_input (mA) x in1_input (mV)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.name = f"hwmon {path}"
        try:
            with open(os.path.join(path, "name")) as f:
                self.name = f"hwmon {f.read().strip()} ({path})"
        except OSError:
            pass
        self._power = os.path.join(path, "power1_input")
        if not os.path.exists(self._power):
            self._power = None
            if not (os.path.exists(os.path.join(path, "curr1_input")) and
                    os.path.exists(os.path.join(path, "in1_input"))):
                raise AgentError("sensor", f"{path} has neither power1_input nor curr1_input + in1_input")

    def _read(self, leaf: str) -> int:
        with open(os.path.join(self.path, leaf)) as f:
            return int(f.read().strip())

    def read_w(self) -> float:
        if self._power:
            return self._read("power1_input") * 1e-6
        return self._read("curr1_input") * 1e-3 * self._read("in1_input") * 1e-3


def find_hwmon(root: str = "/sys/class/hwmon") -> str | None:
    """The first hwmon device of an INA2xx-family driver."""
    for path in sorted(glob.glob(os.path.join(root, "hwmon*"))):
        try:
            with open(os.path.join(path, "name")) as f:
                name = f.read().strip()
        except OSError:
            continue
        if name.startswith("ina2") or name.startswith("ina3"):
            return path
    return None


_PMIC_LINE = re.compile(r"^\s*(\S+)_([AV])\s+(?:current|volt)\(\d+\)=([-+0-9.eE]+)[AV]\s*$")


def parse_pmic_read_adc(text: str) -> dict:
    """`vcgencmd pmic_read_adc` output -> {rail: (amps, volts)} for every rail reporting both."""
    amps, volts = {}, {}
    for line in text.splitlines():
        m = _PMIC_LINE.match(line)
        if m:
            (amps if m.group(2) == "A" else volts)[m.group(1)] = float(m.group(3))
    return {rail: (amps[rail], volts[rail]) for rail in amps if rail in volts}


class Pmic:
    """A Raspberry Pi 5's PMIC rails (`vcgencmd pmic_read_adc`): the sum of current x voltage over the rails.
    The 5 V input (EXT5V) has no current channel, so this is the rails' power, below the board's input power."""

    def __init__(self, command=("vcgencmd", "pmic_read_adc"), runner=None) -> None:
        self.command = list(command)
        self.runner = runner or (lambda cmd: subprocess.run(cmd, capture_output=True, text=True, timeout=5,
                                                            check=True).stdout)
        self.name = "vcgencmd pmic_read_adc (Raspberry Pi 5 PMIC rails)"
        if not parse_pmic_read_adc(self._text()):
            raise AgentError("sensor", "`vcgencmd pmic_read_adc` reported no rail with both current and voltage")

    def _text(self) -> str:
        try:
            return self.runner(self.command)
        except (OSError, subprocess.SubprocessError) as exc:
            raise AgentError("sensor", f"`{' '.join(self.command)}` failed: {exc}") from exc

    def read_w(self) -> float:
        return sum(a * v for a, v in parse_pmic_read_adc(self._text()).values())


def open_sensor(spec):
    """None | "none" | "auto" | "ina219[:BUS[:ADDR[:SHUNT_OHM]]]" | "ina226[...]" | "hwmon[:PATH]" | "pmic"."""
    if not spec or spec == "none":
        return None
    kind, _, rest = spec.partition(":")
    if kind == "auto":
        path = find_hwmon()
        if path:
            return Hwmon(path)
        try:
            return Pmic()
        except AgentError:
            return None
    if kind in ("ina219", "ina226"):
        parts = rest.split(":") if rest else []
        bus = int(parts[0]) if len(parts) > 0 and parts[0] else 1
        addr = int(parts[1], 0) if len(parts) > 1 and parts[1] else 0x40
        shunt = float(parts[2]) if len(parts) > 2 and parts[2] else 0.1
        return InaI2c(int(kind[3:]), bus, addr, shunt)
    if kind == "hwmon":
        path = rest or find_hwmon()
        if not path:
            raise AgentError("sensor", "no INA2xx hwmon device under /sys/class/hwmon")
        return Hwmon(path)
    if kind == "pmic":
        return Pmic()
    raise AgentError("sensor", f"unknown sensor {spec!r}")


class Sampler(threading.Thread):
    """Reads a sensor as fast as it answers (at most every `period` s) into (perf_counter, W) pairs; `edge()`
    adds a reading from the caller's thread, so every inference window starts and ends on a sample."""

    def __init__(self, sensor, period: float = 0.001) -> None:
        super().__init__(daemon=True)
        self.sensor, self.period = sensor, period
        self.samples: list = []
        self.error = None
        self._halt = threading.Event()
        self._lock = threading.Lock()  # one bus transaction at a time

    def _read(self) -> None:
        with self._lock:
            w = self.sensor.read_w()
            self.samples.append((time.perf_counter(), w))

    def edge(self) -> None:
        if self.error is None:
            try:
                self._read()
            except Exception as exc:  # noqa: BLE001 - reported, the bench goes on without energy
                self.error = f"{type(exc).__name__}: {exc}"

    def run(self) -> None:
        while not self._halt.is_set() and self.error is None:
            self.edge()
            self._halt.wait(self.period)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


# ---- the run ----------------------------------------------------------------------------------------------

def _outputs(interp) -> list:
    out = []
    for d in interp.get_output_details():
        a = interp.get_tensor(d["index"])
        out.append({"dtype": str(a.dtype), "shape": list(a.shape), "b64": base64.b64encode(a.tobytes()).decode()})
    return out


def run(req: dict) -> None:
    try:
        import numpy as np
    except ImportError as exc:
        raise AgentError("no_numpy", str(exc)) from exc

    order = [req["runtime"]] if req.get("runtime") else list(req.get("runtimes") or DEFAULT_RUNTIMES)
    name, cls, resolver, version, tried = load_runtime(order)
    interp, xnn = make_interpreter(cls, resolver, req["model"], req.get("threads"), req.get("xnnpack"))
    ins, outs = interp.get_input_details(), interp.get_output_details()
    sensor = open_sensor(req.get("sensor"))
    emit({"event": "hello", "agent": AGENT_VERSION, "runtime": name, "runtime_version": version, "tried": tried,
          "python": platform.python_version(), "executable": sys.executable, "machine": platform.machine(),
          "kernel": platform.release(), "cpus": os.cpu_count(), "threads": req.get("threads"), "xnnpack": xnn,
          "inputs": [_spec(d) for d in ins], "outputs": [_spec(d) for d in outs],
          "profile": None if not req.get("profile") else
          f"{name} {version} has no per-operator profiler in its Python API",
          "sensor": sensor.name if sensor else None})
    with np.load(req["inputs"]) as data:
        sets = [[data[f"x{k}_{i}"] for i in range(len(ins))] for k in range(int(data["count"]))]
    sampler = Sampler(sensor) if sensor else None
    windows = []
    if sampler:
        sampler.start()
    try:
        for k, (tensors, n_runs) in enumerate(zip(sets, req["runs"])):
            for d, t in zip(ins, tensors):
                interp.set_tensor(d["index"], t.astype(d["dtype"], copy=False).reshape(d["shape"]))
            if k == 0:
                for _ in range(int(req.get("warmup", 0))):
                    interp.invoke()
            if sampler:
                sampler.edge()
            t_start = time.perf_counter()
            for _ in range(n_runs):
                t0 = time.perf_counter()
                interp.invoke()
                ms = (time.perf_counter() - t0) * 1e3
                emit({"event": "inference", "input": k, "ms": round(ms, 6)})
            windows.append([t_start, time.perf_counter(), n_runs])
            if sampler:
                sampler.edge()
            emit({"event": "outputs", "input": k, "outputs": _outputs(interp)})
            if req.get("pause_after_input"):  # tests: a window in which to drop the connection
                time.sleep(float(req["pause_after_input"]))
    finally:
        if sampler:
            sampler.stop()
    if sampler:
        emit({"event": "power", "source": sensor.name, "error": sampler.error,
              "samples": [[round(t, 6), w] for t, w in sampler.samples], "windows": windows})
    emit({"event": "done", "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024})


def main(argv: list) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: python3 sbc_agent.py REQUEST.json\n")
        return 2
    try:
        with open(argv[1]) as f:
            req = json.load(f)
        run(req)
        return 0
    except AgentError as exc:
        emit({"event": "error", "kind": exc.kind, "message": exc.message, "python": platform.python_version(),
              "executable": sys.executable, "machine": platform.machine(), **exc.extra})
        return 3
    except MemoryError:
        emit({"event": "error", "kind": "memory", "message": "out of memory on the board"})
        return 3
    except Exception as exc:  # noqa: BLE001 - anything else reaches the host as one readable event
        emit({"event": "error", "kind": "exception", "message": f"{type(exc).__name__}: {exc}"})
        return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv))
