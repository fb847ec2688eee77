"""Protocol client for the benchmark firmware (docs/protocol.md).

Robustness rules: every response is matched by type and sequence number and protected by CRC-32; damaged
frames and garbage are skipped (resynchronising at the next 0x00); idempotent commands are retried after a
timeout, and RUN is retried with the same sequence number so the firmware answers from its cache instead of
running twice. A boot banner or a frame counter that goes backwards means the device reset: that is an error,
never silently accepted. Results collected before a failure are attached to the error (`partial`).
"""
from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from formicary.device import frames
from formicary.device.frames import ErrorCode, Frame, FrameError, FrameReader, Msg
from formicary.device.transport import Transport
from formicary.errors import FormicaryError

# TFLite TensorType numbering (as in fm_runtime.h) -> numpy dtype name.
DTYPES = {0: "float32", 2: "int32", 3: "uint8", 4: "int64", 6: "bool", 7: "int16", 9: "int8"}
TIMER_KINDS = {frames.TIMER_KIND_SYSTICK: "systick", frames.TIMER_KIND_DWT: "dwt"}
LOAD_CHUNK = frames.MAX_PAYLOAD - frames.LOAD_INPUT_HDR.size
OUTPUT_CHUNK = frames.MAX_PAYLOAD - frames.READ_OUTPUT_RESP_HDR.size


class DeviceError(FormicaryError):
    """A device-side failure (base class, so callers can catch all of them)."""


class DeviceTimeout(DeviceError):
    pass


class DeviceResetError(DeviceError):
    pass


class ModelMismatchError(DeviceError):
    pass


class DeviceCommandError(DeviceError):
    """The firmware answered with an error frame."""

    def __init__(self, cause: str, fix: str | None, code: int, detail: int, message: str, **kw) -> None:
        super().__init__(cause, fix, **kw)
        self.code = code
        self.detail = detail
        self.message = message


# Human wording of the `latency.method` values a device reports (docs/bench-json.md).
TIMING_METHOD_TEXT = {"qemu-icount-systick": "retired instructions: QEMU -icount, read through SysTick",
                      "dwt-cyccnt": "core cycles: DWT CYCCNT"}

@dataclass(frozen=True)
class TensorSpec:
    dtype: str
    shape: tuple[int, ...]
    scale: float
    zero_point: int
    bytes: int


@dataclass(frozen=True)
class DeviceInfo:
    protocol_version: int
    board: str
    runtime_version: str
    model_hash: str
    arena_bytes: int
    timer: str           # "systick" or "dwt"
    timer_hz: int
    clock_hz: int
    virtual: bool
    num_ops: int
    max_payload: int
    max_runs: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    power_sensor: bool = False      # HELLO capability bit 0: a power sensor answered at boot (READ_POWER works)
    power_configured: bool = False  # bit 1: the firmware was built for one (-DFM_POWER_INA), present or not
    routes: bool = False            # bit 2: the firmware reports each inference's route (READ_ROUTES)

    @property
    def timing_unit(self) -> str:
        return "instructions" if (self.virtual and self.timer == "systick") else "cycles"

    @property
    def timing_method(self) -> str:
        if self.timing_unit == "instructions":
            # SysTick at timer_hz under QEMU -icount shift=0, where 1 instruction = 1 ns (docs/bench-json.md)
            return "qemu-icount-systick"
        return "dwt-cyccnt" if self.timer == "dwt" else f"systick at {self.timer_hz} Hz"

    def ticks_to_unit(self, ticks: int) -> int:
        """Timer ticks -> instructions (virtual boards) or cycles (real boards)."""
        if self.timing_unit == "instructions":
            return round(ticks * 1_000_000_000 / self.timer_hz)
        return ticks


@dataclass(frozen=True)
class LayerTiming:
    index: int
    op_type: str
    name: str
    ticks: int
    value: int
    macs: int


@dataclass(frozen=True)
class PowerRecord:
    """One sensor reading as the firmware took it: its timer value and the INA registers, undecoded."""
    ticks: int
    raw_bus: int
    raw_shunt: int
    raw_current: int
    raw_power: int


@dataclass
class PowerRecords:
    """READ_POWER after a RUN: the samples of the measured inferences and where each inference started.

    `records` are oldest first (a full ring overwrote the oldest `dropped` ones); `starts[i]` is the timer value
    when measured inference i began (its length is RunResult.ticks[i]). Timer values wrap at 2**32 and are in
    `timer_hz` ticks, the same clock as the timings. `errors` counts sensor reads that failed (bus errors).
    """
    chip: int
    current_lsb_pa: int
    timer_hz: int
    records: list[PowerRecord]
    starts: list[int]
    dropped: int
    errors: int


POWER_HEADER = frames.POWER_HEADER
POWER_RECORD = frames.POWER_RECORD


@dataclass
class RunResult:
    ticks: list[int]
    values: list[int]
    unit: str
    method: str
    warmup: int
    profiled: bool
    # routes[i]: bitmask of the model's subgraphs that measured inference i ran (bit 0: the main graph);
    # None when the firmware predates routes (no CAP_ROUTES in HELLO)
    routes: list[int] | None = None


@dataclass
class LinkStats:
    damaged_frames: int = 0        # frames from the device that failed COBS/CRC/length checks
    device_framing_errors: int = 0  # error frames: the device received damaged bytes from us
    stale_frames: int = 0          # valid frames that answered an older request
    retries: int = 0


def _msg_name(type_: int) -> str:
    try:
        return Msg(type_).name
    except ValueError:
        return f"message 0x{type_:02X}"


class _Reader:
    def __init__(self, r: bytes) -> None:
        self.b, self.i = r, 0

    def take(self, n: int) -> bytes:
        if self.i + n > len(self.b):
            raise DeviceError("the device sent a truncated response.", "update the firmware and host to the same version.")
        out = self.b[self.i:self.i + n]
        self.i += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return struct.unpack("<H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def i32(self) -> int:
        return struct.unpack("<i", self.take(4))[0]

    def f32(self) -> float:
        return struct.unpack("<f", self.take(4))[0]

    def s(self) -> str:
        return self.take(self.u8()).decode("utf-8", errors="replace")


def _tensor(r: _Reader) -> TensorSpec:
    dtype = r.u8()
    ndim = r.u8()
    shape = tuple(r.i32() for _ in range(ndim))
    return TensorSpec(dtype=DTYPES.get(dtype, f"type{dtype}"), shape=shape, scale=r.f32(), zero_point=r.i32(),
                      bytes=r.u32())


class Session:
    """One conversation with the firmware over a Transport.

    `watchdog`, when given, is called on timeouts and transport errors; it raises a clearer error (e.g. "QEMU
    was killed") which then carries the partial results.
    """

    def __init__(self, transport: Transport, *, timeout: float = 2.0, retries: int = 3,
                 run_timeout: float = 30.0, expect_model_hash: str | None = None,
                 watchdog: Callable[[], None] | None = None) -> None:
        self.t = transport
        self.timeout = timeout
        self.retries = retries
        self.run_timeout = run_timeout
        self.expect_model_hash = expect_model_hash
        self.watchdog = watchdog
        self.stats = LinkStats()
        self.info: DeviceInfo | None = None
        self._reader = FrameReader()
        self._pending: list[Frame | FrameError] = []
        self._seq = 0
        self._last_counter: int | None = None
        self._booted_seen = False

    # ---- low level ----------------------------------------------------------------------------------
    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFF or 1
        return self._seq

    def _fail(self, err: DeviceError, partial: dict | None = None) -> None:
        if self.watchdog is not None:
            try:
                self.watchdog()
            except FormicaryError as exc:
                exc.partial = partial if partial is not None else exc.partial
                raise exc from err
        if partial is not None:
            err.partial = partial
        raise err

    def _recv(self, deadline: float) -> Frame | None:
        """Next valid frame before `deadline`, or None. Damaged frames are counted and skipped."""
        while True:
            while self._pending:
                item = self._pending.pop(0)
                if isinstance(item, FrameError):
                    self.stats.damaged_frames += 1
                    continue
                self._check_reset(item)
                return item
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                data = self.t.read(4096, min(left, 0.25))
            except FormicaryError as exc:
                self._fail(DeviceError(exc.cause, exc.fix))
                raise
            if data:
                self._pending.extend(self._reader.feed(data))

    def _check_reset(self, f: Frame) -> None:
        if f.type == Msg.BOOT:
            if self.info is not None or self._booted_seen:
                raise DeviceResetError(
                    "the device reset during the session (it sent its boot banner again).",
                    "check power and the firmware's stack/arena size; results after the reset are discarded.",
                    details={"board": self.info.board if self.info else None})
            self._booted_seen = True
            self._last_counter = f.counter
            return
        last = self._last_counter
        self._last_counter = f.counter
        if last is not None and f.counter <= last and not (last > 0xFF00 and f.counter < 0x0100):
            raise DeviceResetError(
                f"the device reset during the session (frame counter went from {last} to {f.counter}).",
                "check power and the firmware; results after the reset are discarded.")

    def _send(self, type_: int, seq: int, payload: bytes) -> None:
        self.t.write(frames.encode(type_, seq, payload))

    def _error_from(self, f: Frame, request: int) -> DeviceCommandError:
        r = _Reader(f.payload)
        code, req, detail, message = r.u8(), r.u8(), r.u32(), r.s()
        try:
            name = ErrorCode(code).name
        except ValueError:
            name = f"code {code}"
        return DeviceCommandError(
            f"the device refused {_msg_name(request)}: {message} ({name}, detail {detail}).",
            "this is a host/firmware disagreement; rebuild and flash the firmware that matches this formicary.",
            code=code, detail=detail, message=message,
            details={"error": name, "detail": detail, "request": _msg_name(request)})

    def _request(self, type_: int, payload: bytes = b"", *, timeout: float | None = None,
                 on_progress: Callable[[Frame], bool] | None = None, progress_timeout: float | None = None,
                 partial: Callable[[], dict] | None = None) -> Frame:
        seq = self._next_seq()
        timeout = self.timeout if timeout is None else timeout
        for attempt in range(self.retries + 1):
            if attempt:
                self.stats.retries += 1
            self._send(type_, seq, payload)
            progressed = False
            fast_resends = 0
            deadline = time.monotonic() + timeout
            while True:
                f = self._recv(deadline)
                if f is None:
                    break  # timeout: resend the same request with the same seq
                if f.type == Msg.ERROR:
                    if f.seq == seq and f.payload[:1] and f.payload[0] not in {int(c) for c in frames.FRAMING_ERRORS}:
                        raise self._error_from(f, type_)
                    self.stats.device_framing_errors += 1
                    if f.seq == 0 and not progressed and fast_resends < 2:
                        # the device got damaged bytes after we sent: maybe our request; resend at once
                        # rather than after the timeout (safe: every command is idempotent, and RUN is
                        # de-duplicated by seq on the device). The deadline stays: garbage that came
                        # before our request must not use up the attempts.
                        fast_resends += 1
                        self.stats.retries += 1
                        self._send(type_, seq, payload)
                    continue
                if f.seq != seq:
                    self.stats.stale_frames += 1
                    continue
                if f.type == Msg.RUN_PROGRESS and on_progress is not None:
                    progressed = True
                    last = on_progress(f)
                    # the final answer follows the last inference at once: do not wait a whole inference for it
                    deadline = time.monotonic() + (timeout if last else (progress_timeout or timeout))
                    continue
                if f.type == (type_ | Msg.RESPONSE):
                    return f
                self.stats.stale_frames += 1
        self._fail(DeviceTimeout(
            f"no answer from the device to {_msg_name(type_)} after {self.retries + 1} attempts "
            f"({timeout:.1f} s each).",
            "check that the board runs formicary firmware, the --port URL and the baud rate.",
            details={"request": _msg_name(type_)}), partial() if partial else None)
        raise AssertionError("unreachable")

    # ---- commands -----------------------------------------------------------------------------------
    def wait_boot(self, timeout: float = 5.0) -> bool:
        """Wait for the boot banner (virtual boards just started); False when none came."""
        deadline = time.monotonic() + timeout
        while True:
            f = self._recv(deadline)
            if f is None:
                return False
            if f.type == Msg.BOOT:
                return True

    def hello(self) -> DeviceInfo:
        f = self._request(Msg.HELLO)
        r = _Reader(f.payload)
        proto, n_in, n_out, timer, timer_hz, clock_hz, arena = r.u8(), r.u8(), r.u8(), r.u8(), r.u32(), r.u32(), r.u32()
        num_ops, max_payload, max_runs, virtual = r.u16(), r.u16(), r.u16(), bool(r.u8())
        caps = r.u8() if proto >= 2 else 0
        board, runtime, model_hash = r.s(), r.s(), r.s()
        inputs = tuple(_tensor(r) for _ in range(n_in))
        outputs = tuple(_tensor(r) for _ in range(n_out))
        info = DeviceInfo(protocol_version=proto, board=board, runtime_version=runtime, model_hash=model_hash,
                          arena_bytes=arena, timer=TIMER_KINDS.get(timer, f"timer{timer}"), timer_hz=timer_hz,
                          clock_hz=clock_hz, virtual=virtual, num_ops=num_ops, max_payload=max_payload,
                          max_runs=max_runs, inputs=inputs, outputs=outputs,
                          power_sensor=bool(caps & frames.CAP_POWER_PRESENT),
                          power_configured=bool(caps & frames.CAP_POWER_BUILT),
                          routes=bool(caps & frames.CAP_ROUTES))
        if proto != frames.PROTO_VERSION:
            raise DeviceError(f"the device speaks protocol {proto}, this formicary speaks {frames.PROTO_VERSION}.",
                              "rebuild and flash the firmware with this formicary.")
        if self.expect_model_hash is not None and model_hash != self.expect_model_hash:
            raise ModelMismatchError(
                f"the board runs a different model (hash {model_hash[:16]}…, expected "
                f"{self.expect_model_hash[:16]}…).",
                "flash the firmware built for this model (`formicary flash`), or pass the matching model.",
                details={"device_model_hash": model_hash, "expected_model_hash": self.expect_model_hash})
        self.info = info
        return info

    def _need_info(self) -> DeviceInfo:
        if self.info is None:
            return self.hello()
        return self.info

    def load_input(self, index: int, data: bytes) -> None:
        info = self._need_info()
        if not 0 <= index < len(info.inputs):
            raise FormicaryError(f"the model has {len(info.inputs)} input(s), not input {index}.")
        want = info.inputs[index].bytes
        if len(data) != want:
            raise FormicaryError(f"input {index} must be {want} bytes ({info.inputs[index].dtype} "
                                 f"{list(info.inputs[index].shape)}), got {len(data)}.",
                                 "quantize the input to the model's input type and shape.")
        chunk = min(LOAD_CHUNK, info.max_payload - frames.LOAD_INPUT_HDR.size)
        for offset in range(0, len(data), chunk):
            part = data[offset:offset + chunk]
            f = self._request(Msg.LOAD_INPUT, frames.LOAD_INPUT_HDR.pack(index, offset) + part)
            _, loaded, total = frames.LOAD_INPUT_RESP.unpack_from(f.payload)
            if loaded != offset + len(part) or total != want:
                raise DeviceError(f"the device acknowledged {loaded}/{total} bytes of input {index}, "
                                  f"expected {offset + len(part)}/{want}.", "run again.")

    def run(self, runs: int = 1, warmup: int = 0, profile: bool = False,
            on_result: Callable[[int, int], None] | None = None, *, power_layers: bool = False) -> RunResult:
        """Run `warmup` + `runs` inferences on the loaded inputs; returns per-inference timings.

        Firmware with a power sensor samples it between inferences during every RUN (read_power() afterwards);
        `power_layers` also samples between layers, which adds the I2C reads to the inference timings.
        """
        info = self._need_info()
        if not 1 <= runs <= info.max_runs:
            raise FormicaryError(f"runs must be 1..{info.max_runs} per RUN command, got {runs}.")
        if power_layers and not info.power_sensor:
            raise FormicaryError(f"{info.board} has no power sensor to sample between layers.",
                                 "build the firmware with -DFM_POWER_INA=219|226 (docs/power.md).")
        streamed: dict[int, int] = {}
        streamed_routes: dict[int, int] = {}

        def progress(f: Frame) -> bool:
            if len(f.payload) < frames.RUN_PROGRESS.size:
                raise DeviceError("the device sent a truncated RUN_PROGRESS.", "rebuild and flash the firmware "
                                  "with this formicary.")
            kind, index, ticks = frames.RUN_PROGRESS.unpack_from(f.payload)
            measured = kind == frames.PROGRESS_MEASURED
            if measured:
                streamed[index] = ticks
                if info.routes and len(f.payload) >= frames.RUN_PROGRESS_ROUTE.size:
                    streamed_routes[index] = frames.RUN_PROGRESS_ROUTE.unpack_from(f.payload)[3]
                if on_result is not None:
                    on_result(index, info.ticks_to_unit(ticks))
            return measured and index == runs - 1

        def partial() -> dict:
            done = [streamed[i] for i in sorted(streamed)]
            routes = [streamed_routes.get(i) for i in sorted(streamed)] if info.routes else None
            return {"runs_completed": len(done), "ticks": done, "values": [info.ticks_to_unit(t) for t in done],
                    "unit": info.timing_unit, "routes": routes}

        try:
            # Short timeout until the device accepts the RUN (it answers at once), then run_timeout per inference.
            flags = (frames.RUN_FLAG_PROFILE if profile else 0) | (frames.RUN_FLAG_POWER_LAYERS if power_layers else 0)
            f = self._request(Msg.RUN, frames.RUN_ARGS.pack(runs, warmup, flags),
                              on_progress=progress, progress_timeout=self.run_timeout, partial=partial)
            done_runs = frames.RUN_RESP.unpack_from(f.payload)[0]
            ticks = self._read_timings(done_runs)
            routes = self._read_routes(done_runs) if info.routes else None
        except FormicaryError as exc:  # includes the watchdog's "QEMU was killed": keep what we have
            if exc.partial is None:
                exc.partial = partial()
            raise
        for i, t in streamed.items():  # both arrived CRC-checked; a disagreement means a firmware bug
            if i < len(ticks) and ticks[i] != t:
                raise DeviceError(f"run {i}: streamed timing {t} != stored timing {ticks[i]}.", "report this bug.")
        for i, route in streamed_routes.items():
            if routes is not None and i < len(routes) and routes[i] != route:
                raise DeviceError(f"run {i}: streamed route {route:#x} != stored route {routes[i]:#x}.",
                                  "report this bug.")
        return RunResult(ticks=ticks, values=[info.ticks_to_unit(t) for t in ticks], unit=info.timing_unit,
                         method=info.timing_method, warmup=warmup, profiled=profile, routes=routes)

    def _read_timings(self, count: int) -> list[int]:
        out: list[int] = []
        page = (frames.MAX_PAYLOAD - frames.READ_TIMINGS.size) // 4
        while len(out) < count:
            n = min(page, count - len(out))
            f = self._request(Msg.READ_TIMINGS, frames.READ_TIMINGS.pack(len(out), n))
            first, got = frames.READ_TIMINGS.unpack_from(f.payload)
            if first != len(out) or got == 0:
                raise DeviceError("the device returned timings out of order.", "run again.")
            out.extend(struct.unpack_from(f"<{got}I", f.payload, frames.READ_TIMINGS.size))
        return out

    def _read_routes(self, count: int) -> list[int]:
        """READ_ROUTES, paged like READ_TIMINGS: the route mask of each measured inference of the last RUN."""
        out: list[int] = []
        page = (frames.MAX_PAYLOAD - frames.READ_ROUTES.size) // 4
        while len(out) < count:
            n = min(page, count - len(out))
            f = self._request(Msg.READ_ROUTES, frames.READ_ROUTES.pack(len(out), n))
            if len(f.payload) < frames.READ_ROUTES.size:
                raise DeviceError("the device sent a truncated READ_ROUTES answer.", "run again.")
            first, got = frames.READ_ROUTES.unpack_from(f.payload)
            if first != len(out) or got == 0 or got > n or len(f.payload) != frames.READ_ROUTES.size + 4 * got:
                raise DeviceError("the device returned routes out of order.", "run again.")
            out.extend(struct.unpack_from(f"<{got}I", f.payload, frames.READ_ROUTES.size))
        return out

    def read_output(self, index: int) -> bytes:
        info = self._need_info()
        if not 0 <= index < len(info.outputs):
            raise FormicaryError(f"the model has {len(info.outputs)} output(s), not output {index}.")
        total = info.outputs[index].bytes
        out = bytearray()
        while len(out) < total:
            n = min(OUTPUT_CHUNK, total - len(out))
            f = self._request(Msg.READ_OUTPUT, frames.READ_OUTPUT.pack(index, len(out), n))
            idx, offset = frames.READ_OUTPUT_RESP_HDR.unpack_from(f.payload)
            data = f.payload[frames.READ_OUTPUT_RESP_HDR.size:]
            if idx != index or offset != len(out) or len(data) != n:
                raise DeviceError("the device returned an output chunk that was not asked for.", "run again.")
            out += data
        return bytes(out)

    def read_layer_timings(self) -> list[LayerTiming]:
        info = self._need_info()
        layers: list[LayerTiming] = []
        while len(layers) < info.num_ops:
            f = self._request(Msg.READ_LAYER_TIMINGS, frames.READ_LAYERS.pack(len(layers), info.num_ops - len(layers)))
            r = _Reader(f.payload)
            first, got = r.u16(), r.u16()
            if first != len(layers) or got == 0:
                raise DeviceError("the device returned layer timings out of order.", "run again.")
            for i in range(got):
                ticks, macs, op_type, name = r.u32(), r.u32(), r.s(), r.s()
                layers.append(LayerTiming(index=first + i, op_type=op_type, name=name, ticks=ticks,
                                          value=info.ticks_to_unit(ticks), macs=macs))
        return layers

    def _read_power_pages(self, kind: int) -> tuple[tuple[int, ...], list[bytes]]:
        """All items of one READ_POWER kind, paged like READ_TIMINGS. A first request for 0 items gives the
        header (total, dropped, errors, chip, Current_LSB); every page must then carry the same header."""
        size = POWER_RECORD.size if kind == frames.POWER_KIND_SAMPLES else frames.POWER_START.size
        page = (frames.MAX_PAYLOAD - POWER_HEADER.size) // size
        header: tuple[int, ...] | None = None
        items: list[bytes] = []
        while header is None or len(items) < header[0]:
            n = 0 if header is None else min(page, header[0] - len(items))
            f = self._request(Msg.READ_POWER, frames.READ_POWER.pack(kind, len(items), n))
            if len(f.payload) < POWER_HEADER.size:
                raise DeviceError("the device sent a truncated READ_POWER answer.",
                                  "rebuild and flash the firmware with this formicary.")
            got_kind, first, got, *rest = POWER_HEADER.unpack_from(f.payload)
            if header is None:
                header = tuple(rest)
            elif got_kind != kind or tuple(rest) != header:
                raise DeviceError("the power records changed while they were being read.",
                                  "do not RUN while reading power; run again.")
            body = f.payload[POWER_HEADER.size:]
            if got_kind != kind or first != len(items) or got > n or len(body) != got * size or (n and not got):
                raise DeviceError("the device returned power records out of order.", "run again.")
            items.extend(body[i * size:(i + 1) * size] for i in range(got))
        return header, items

    def read_power(self) -> PowerRecords:
        """The power sensor's samples from the last RUN (READ_POWER), with each measured inference's start.

        Raises FormicaryError when the firmware has no power sensor (see `DeviceInfo.power_sensor`).
        """
        info = self._need_info()
        if not info.power_sensor:
            raise FormicaryError(
                f"{info.board} has no power sensor" + (" (the firmware was built for one, but it did not answer "
                                                      "at boot)" if info.power_configured else "") + ".",
                "wire an INA219/INA226 to the board's I2C and build with -DFM_POWER_INA=219|226 (docs/power.md).")
        head, recs = self._read_power_pages(frames.POWER_KIND_SAMPLES)
        head_s, starts = self._read_power_pages(frames.POWER_KIND_STARTS)
        if head_s[1:] != head[1:]:  # (total differs: samples vs inferences) dropped, errors, chip, LSB
            raise DeviceError("the power records changed while they were being read.", "run again.")
        _, dropped, errors, chip, lsb = head
        return PowerRecords(chip=chip, current_lsb_pa=lsb, timer_hz=info.timer_hz,
                            records=[PowerRecord(*POWER_RECORD.unpack(r)) for r in recs],
                            starts=[frames.POWER_START.unpack(b)[0] for b in starts], dropped=dropped, errors=errors)

    def infer(self, inputs: list[bytes], *, runs: int = 1, warmup: int = 0,
              profile: bool = False) -> tuple[list[bytes], RunResult]:
        """Load every input, run, read every output."""
        info = self._need_info()
        for i, data in enumerate(inputs):
            self.load_input(i, data)
        result = self.run(runs=runs, warmup=warmup, profile=profile)
        return [self.read_output(i) for i in range(len(info.outputs))], result

    def reset(self, boot_timeout: float = 5.0) -> DeviceInfo:
        """Reset the device on purpose and start a fresh session with it."""
        self._request(Msg.RESET)
        self.info = None
        self._booted_seen = False
        self._last_counter = None
        if not self.wait_boot(boot_timeout):
            self._fail(DeviceTimeout("the device did not come back after RESET.", "power-cycle the board."))
        return self.hello()

    def close(self) -> None:
        self.t.close()


@dataclass
class Connection:
    """A session plus what it runs on; `close()` closes both (and kills QEMU for virtual boards)."""
    session: Session
    qemu: object | None = None
    url: str = ""
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        try:
            self.session.close()
        finally:
            if self.qemu is not None:
                self.qemu.close()  # type: ignore[attr-defined]

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def connect_qemu(board: str, elf, *, expect_model_hash: str | None = None, timeout: float = 2.0,
                 run_timeout: float = 30.0, boot_timeout: float = 10.0) -> Connection:
    """Start a virtual board with `elf`, attach, release the CPU, wait for the banner and say HELLO."""
    from formicary.device import qemu as qemu_mod
    from formicary.device.transport import SerialTransport

    inst = qemu_mod.launch(board, elf)
    try:
        transport = SerialTransport(inst.url)
        session = Session(transport, timeout=timeout, run_timeout=run_timeout, expect_model_hash=expect_model_hash,
                          watchdog=inst.watchdog)
        inst.resume()
        if not session.wait_boot(boot_timeout):
            inst.check_alive()
            raise DeviceTimeout(f"virtual board {inst.board.name} sent no boot banner within {boot_timeout:.0f} s.",
                                "check that the ELF was built for this board.",
                                details={"qemu_log": inst.log_tail()})
        session.hello()
        return Connection(session=session, qemu=inst, url=inst.url)
    except BaseException:
        inst.close()
        raise


def connect_serial(url: str, *, baud: int = 115200, expect_model_hash: str | None = None,
                   timeout: float = 2.0, run_timeout: float = 30.0) -> Connection:
    """Attach to a real board (or a detached QEMU) by pyserial URL and say HELLO."""
    from formicary.device.transport import SerialTransport

    session = Session(SerialTransport(url, baud=baud), timeout=timeout, run_timeout=run_timeout,
                      expect_model_hash=expect_model_hash)
    try:
        session.hello()
    except BaseException:
        session.close()
        raise
    return Connection(session=session, url=url)
