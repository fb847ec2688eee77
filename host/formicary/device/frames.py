"""The wire format shared with firmware/protocol/fm_frame.c: COBS frames carrying header, payload and CRC-32.

Decoded frame: version u8, type u8, seq u8, flags u8, len u16 LE, counter u16 LE, payload, crc32 u32 LE
(zlib's CRC-32 over header and payload). Frames are separated by 0x00; see docs/protocol.md.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

# Frame version; additions old peers can ignore (routes: CAP_ROUTES, READ_ROUTES) keep it (docs/protocol.md).
PROTO_VERSION = 2  # 2: HELLO capabilities byte, READ_POWER; later in 2: routes
HEADER = struct.Struct("<BBBBHH")
HDR_BYTES = HEADER.size
CRC_BYTES = 4
MAX_PAYLOAD = 512
MAX_RAW = HDR_BYTES + MAX_PAYLOAD + CRC_BYTES
MAX_ENCODED = MAX_RAW + MAX_RAW // 254 + 1

# Flags, kinds, capability bits and payload layouts: the firmware's are in firmware/protocol/fm_protocol_ids.h,
# and tests/device/test_device_protocol_ids.py checks that every value there equals the one here.
MAX_RUNS = 256
RUN_FLAG_PROFILE = 0x01
RUN_FLAG_POWER_LAYERS = 0x02
PROGRESS_WARMUP, PROGRESS_MEASURED, PROGRESS_ACCEPTED = 0, 1, 2
CAP_POWER_PRESENT = 0x01
CAP_POWER_BUILT = 0x02
CAP_ROUTES = 0x04  # RUN_PROGRESS carries each inference's route; READ_ROUTES reads them
TIMER_KIND_SYSTICK, TIMER_KIND_DWT = 1, 2
POWER_KIND_SAMPLES, POWER_KIND_STARTS = 0, 1
RUN_ARGS = struct.Struct("<IIB")
RUN_RESP = struct.Struct("<IIBI")
RUN_PROGRESS = struct.Struct("<BII")
RUN_PROGRESS_ROUTE = struct.Struct("<BIII")  # firmware with CAP_ROUTES: ... route u32
LOAD_INPUT_HDR = struct.Struct("<BI")
LOAD_INPUT_RESP = struct.Struct("<BII")
READ_OUTPUT = struct.Struct("<BIH")
READ_OUTPUT_RESP_HDR = struct.Struct("<BI")
READ_TIMINGS = struct.Struct("<IH")
READ_LAYERS = struct.Struct("<HH")
READ_ROUTES = struct.Struct("<IH")
READ_POWER = struct.Struct("<BIH")
POWER_HEADER = struct.Struct("<BIHIIIHI")
POWER_RECORD = struct.Struct("<IHhhH")  # same layout as bench.power.ina.INA_RECORD, with timer ticks
POWER_START = struct.Struct("<I")


class Msg(IntEnum):
    HELLO = 0x01
    LOAD_INPUT = 0x02
    RUN = 0x03
    READ_TIMINGS = 0x04
    READ_OUTPUT = 0x05
    READ_LAYER_TIMINGS = 0x06
    RESET = 0x07
    READ_POWER = 0x08
    READ_ROUTES = 0x09
    RESPONSE = 0x80
    RUN_PROGRESS = 0xA3
    BOOT = 0xFE
    ERROR = 0xFF


class ErrorCode(IntEnum):
    UNKNOWN_COMMAND = 1
    BAD_LENGTH = 2
    RANGE = 3
    SEQUENCE = 4
    STATE = 5
    INVOKE = 6
    INTERNAL = 7
    BAD_FLAGS = 8
    # framing errors reported by the device's receiver (fm_rx_status_t)
    OVERSIZE = 16
    COBS = 17
    SHORT = 18
    CRC = 19
    LENGTH = 20
    VERSION = 21


FRAMING_ERRORS = {ErrorCode.OVERSIZE, ErrorCode.COBS, ErrorCode.SHORT, ErrorCode.CRC, ErrorCode.LENGTH}


class FrameError(ValueError):
    """A received frame was damaged; `reason` is one of: cobs, short, crc, length, version, oversize."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Frame:
    type: int
    seq: int
    payload: bytes
    counter: int = 0
    version: int = PROTO_VERSION
    flags: int = 0


def cobs_encode(data: bytes) -> bytes:
    out = bytearray()
    i, n = 0, len(data)
    while True:
        run = 0
        while i + run < n and data[i + run] != 0 and run < 254:
            run += 1
        out.append(run + 1)
        out += data[i:i + run]
        i += run
        if run == 254:
            if i >= n:
                break
            continue
        if i >= n:
            break
        i += 1  # the zero that ended this block
        if i == n:
            out.append(1)
            break
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        i += 1
        if code == 0:
            raise FrameError("cobs", "zero byte inside a COBS frame")
        run = code - 1
        if run > n - i:
            raise FrameError("cobs", "COBS block runs past the end of the frame")
        block = data[i:i + run]
        if 0 in block:
            raise FrameError("cobs", "zero byte inside a COBS block")
        out += block
        i += run
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


def build_raw(type_: int, seq: int, payload: bytes = b"", counter: int = 0, version: int = PROTO_VERSION) -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    body = HEADER.pack(version, type_, seq & 0xFF, 0, len(payload), counter & 0xFFFF) + payload
    return body + struct.pack("<I", zlib.crc32(body))


def encode(type_: int, seq: int, payload: bytes = b"", counter: int = 0) -> bytes:
    """A complete frame on the wire: leading delimiter, COBS body, trailing delimiter."""
    return b"\x00" + cobs_encode(build_raw(type_, seq, payload, counter)) + b"\x00"


def decode(encoded: bytes) -> Frame:
    """Decode one COBS body (without delimiters); raises FrameError when it is damaged."""
    raw = cobs_decode(encoded)
    if len(raw) < HDR_BYTES + CRC_BYTES:
        raise FrameError("short", f"frame of {len(raw)} bytes is shorter than header + CRC")
    body, crc = raw[:-CRC_BYTES], struct.unpack("<I", raw[-CRC_BYTES:])[0]
    if zlib.crc32(body) != crc:
        raise FrameError("crc", "CRC mismatch")
    version, type_, seq, flags, length, counter = HEADER.unpack_from(body)
    if version != PROTO_VERSION:
        raise FrameError("version", f"protocol version {version}, expected {PROTO_VERSION}")
    if length != len(body) - HDR_BYTES:
        raise FrameError("length", f"header says {length} payload bytes, frame has {len(body) - HDR_BYTES}")
    return Frame(type=type_, seq=seq, payload=bytes(body[HDR_BYTES:]), counter=counter, version=version, flags=flags)


class FrameReader:
    """Splits a byte stream at 0x00 delimiters and decodes frames; damaged frames come back as FrameError."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._overflow = False

    def feed(self, data: bytes) -> list[Frame | FrameError]:
        out: list[Frame | FrameError] = []
        for b in data:
            if b != 0:
                if len(self._buf) < MAX_ENCODED:
                    self._buf.append(b)
                else:
                    self._overflow = True
                continue
            chunk, overflow = bytes(self._buf), self._overflow
            self._buf.clear()
            self._overflow = False
            if overflow:
                out.append(FrameError("oversize", "frame longer than the protocol allows"))
            elif chunk:
                try:
                    out.append(decode(chunk))
                except FrameError as exc:
                    out.append(exc)
        return out
