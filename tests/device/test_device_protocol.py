"""The firmware's protocol handler (fm_app.c + fm_frame.c, host build with ASan+UBSan) driven by the real
host Session: happy path, hostile input, out-of-order commands, retries, resync and reset detection."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from formicary.device import frames
from formicary.device.frames import ErrorCode, FrameReader, Msg
from formicary.device.session import DeviceCommandError, DeviceResetError, ModelMismatchError, Session

from tests.support.device import fake_expected, fake_input

FAKE_HASH_PREFIX = "978851310c82b1d9"


def session(t, **kw) -> Session:
    s = Session(t, timeout=kw.pop("timeout", 1.0), **kw)
    assert s.wait_boot(5.0)
    return s


def raw_exchange(t, wire: bytes, timeout: float = 1.0) -> list:
    """Send bytes, collect the frames that come back within `timeout` seconds."""
    t.write(wire)
    reader, out = FrameReader(), []
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = t.read(4096, 0.1)
        if data:
            out.extend(reader.feed(data))
        elif out:
            break
    return out


def test_hello_describes_model_and_board(host_transport):
    info = session(host_transport).hello()
    assert info.protocol_version == frames.PROTO_VERSION and info.board == "host"
    assert info.model_hash.startswith(FAKE_HASH_PREFIX) and len(info.model_hash) == 64
    assert info.arena_bytes == 1060 and info.num_ops == 2 and info.runtime_version
    assert not info.power_sensor and not info.power_configured  # HELLO capabilities (protocol 2): no sensor
    (inp,), (out,) = info.inputs, info.outputs
    assert (inp.dtype, inp.shape, inp.bytes, inp.scale, inp.zero_point) == ("int8", (1, 1000), 1000, 0.5, -3)
    assert (out.dtype, out.shape, out.bytes, out.scale, out.zero_point) == ("int8", (1, 12), 12, 0.25, 7)


def test_infer_matches_reference(host_transport):
    s = session(host_transport)
    for seed in range(3):
        x = fake_input(seed)
        (y,), result = s.infer([x.tobytes()], runs=4, warmup=2, profile=True)
        assert np.array_equal(np.frombuffer(y, np.int8), fake_expected(x))
        assert len(result.ticks) == 4
        layers = s.read_layer_timings()
        assert [(l.op_type, l.macs) for l in layers] == [("FULLY_CONNECTED", 12000), ("QUANTIZE", 0)]
    assert s.stats.retries == 0 and s.stats.damaged_frames == 0


def test_model_hash_mismatch_is_clear(host_transport):
    s = session(host_transport, expect_model_hash="ab" * 32)
    with pytest.raises(ModelMismatchError, match="different model"):
        s.hello()


def command_error(s: Session, type_: int, payload: bytes) -> DeviceCommandError:
    with pytest.raises(DeviceCommandError) as err:
        s._request(type_, payload)
    return err.value


def test_hostile_commands_get_error_frames(host_transport):
    s = session(host_transport)
    s.hello()
    cases = [
        (Msg.LOAD_INPUT, struct.pack("<BI", 5, 0) + b"x", ErrorCode.RANGE),            # no input 5
        (Msg.LOAD_INPUT, struct.pack("<BI", 0, 999) + b"xy", ErrorCode.RANGE),         # runs past the end
        (Msg.LOAD_INPUT, struct.pack("<BI", 0, 0xFFFFFFFF) + b"xy", ErrorCode.RANGE),  # offset overflow
        (Msg.LOAD_INPUT, struct.pack("<BI", 0, 100) + b"xy", ErrorCode.SEQUENCE),      # gap (out of order)
        (Msg.LOAD_INPUT, b"\x00\x00", ErrorCode.BAD_LENGTH),
        (Msg.RUN, struct.pack("<IIB", 1, 0, 0), ErrorCode.STATE),                      # input not loaded
        (Msg.READ_OUTPUT, struct.pack("<BIH", 0, 0, 12), ErrorCode.STATE),             # nothing ran
        (Msg.READ_LAYER_TIMINGS, struct.pack("<HH", 0, 2), ErrorCode.STATE),
        (Msg.READ_TIMINGS, struct.pack("<IH", 0, 1), ErrorCode.STATE),
        (Msg.READ_POWER, struct.pack("<BIH", 0, 0, 1), ErrorCode.STATE),                # no sensor here
        (Msg.READ_POWER, b"\x00", ErrorCode.BAD_LENGTH),
        (Msg.HELLO, b"\x01", ErrorCode.BAD_LENGTH),
        (0x42, b"", ErrorCode.UNKNOWN_COMMAND),
        (0x81, b"", ErrorCode.UNKNOWN_COMMAND),                                        # a response type
    ]
    for type_, payload, code in cases:
        assert command_error(s, type_, payload).code == code, (hex(type_), payload)
    s.load_input(0, fake_input(0).tobytes())
    more = [
        (Msg.RUN, struct.pack("<IIB", 0, 0, 0), ErrorCode.RANGE),
        (Msg.RUN, struct.pack("<IIB", 257, 0, 0), ErrorCode.RANGE),
        (Msg.RUN, struct.pack("<IIB", 1, 0, 0x80), ErrorCode.BAD_FLAGS),
        (Msg.RUN, struct.pack("<IIB", 1, 0, 0x02), ErrorCode.BAD_FLAGS),  # power-between-layers: no sensor
    ]
    for type_, payload, code in more:
        assert command_error(s, type_, payload).code == code
    s.run(runs=1)
    assert command_error(s, Msg.READ_OUTPUT, struct.pack("<BIH", 0, 10, 3)).code == ErrorCode.RANGE
    assert command_error(s, Msg.READ_OUTPUT, struct.pack("<BIH", 0, 0xFFFFFFFF, 2)).code == ErrorCode.RANGE
    assert command_error(s, Msg.READ_OUTPUT, struct.pack("<BIH", 1, 0, 1)).code == ErrorCode.RANGE
    assert command_error(s, Msg.READ_TIMINGS, struct.pack("<IH", 1, 1)).code == ErrorCode.RANGE
    assert command_error(s, Msg.READ_LAYER_TIMINGS, struct.pack("<HH", 0, 1)).code == ErrorCode.STATE
    # after all that the device still works and gives the right answer
    x = fake_input(7)
    (y,), _ = s.infer([x.tobytes()])
    assert np.array_equal(np.frombuffer(y, np.int8), fake_expected(x))


def test_framing_errors_are_reported_and_survived(host_transport):
    s = session(host_transport)
    s.hello()
    replies = raw_exchange(host_transport, b"\x00" + b"\x33" * 5000 + b"\x00")    # oversized
    replies += raw_exchange(host_transport, b"\x00\x05\x01\x02\x00")                # bad COBS
    replies += raw_exchange(host_transport, b"\x00" + frames.cobs_encode(b"\x01" * 20) + b"\x00")  # bad CRC
    wrong_len = bytearray(frames.build_raw(Msg.HELLO, 9, b""))
    wrong_len[4] = 7
    body = bytes(wrong_len[:-4])
    replies += raw_exchange(host_transport, b"\x00" + frames.cobs_encode(
        body + struct.pack("<I", __import__("zlib").crc32(body))) + b"\x00")          # length field lies
    codes = [f.payload[0] for f in replies if f.type == Msg.ERROR]
    assert codes == [ErrorCode.OVERSIZE, ErrorCode.COBS, ErrorCode.CRC, ErrorCode.LENGTH]
    assert s.hello().board == "host"


def test_garbage_between_and_inside_frames_resyncs(host_transport):
    s = session(host_transport)
    s.hello()
    rng = np.random.default_rng(1)
    host_transport.write(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    x = fake_input(3)
    (y,), _ = s.infer([x.tobytes()])
    assert np.array_equal(np.frombuffer(y, np.int8), fake_expected(x))
    assert s.stats.device_framing_errors > 0  # the garbage was seen and reported, not silently absorbed


def test_run_retry_with_same_seq_does_not_run_twice(host_transport):
    s = session(host_transport)
    s.load_input(0, fake_input(0).tobytes())
    run = frames.encode(Msg.RUN, 77, struct.pack("<IIB", 2, 0, 0))
    first = raw_exchange(host_transport, run)
    again = raw_exchange(host_transport, run)
    assert [f.type for f in first] == [Msg.RUN_PROGRESS] * 3 + [Msg.RUN | Msg.RESPONSE]
    assert [f.payload[0] for f in first[:3]] == [2, 1, 1]  # accepted, then two measured runs
    assert [f.type for f in again] == [Msg.RUN | Msg.RESPONSE]       # cached answer, no progress: not re-run
    assert again[0].payload == first[-1].payload
    assert again[0].counter > first[-1].counter


def test_large_output_and_input_chunking(host_transport):
    s = session(host_transport)
    x = fake_input(11)
    s.load_input(0, x.tobytes())
    # retrying a chunk that was already accepted is fine (lost acknowledgement)
    payload = struct.pack("<BI", 0, 507) + x.tobytes()[507:600]
    f = s._request(Msg.LOAD_INPUT, payload)
    assert struct.unpack_from("<BII", f.payload) == (0, 1000, 1000)


def test_reset_on_request_and_unexpected_reset(host_transport):
    s = session(host_transport)
    s.load_input(0, fake_input(0).tobytes())
    info = s.reset()
    assert info.board == "host"
    # RESET after a reset: state is gone, so RUN is refused
    assert command_error(s, Msg.RUN, struct.pack("<IIB", 1, 0, 0)).code == ErrorCode.STATE
    # a reset the session did not ask for (RESET sent behind its back) is detected, not absorbed
    host_transport.write(frames.encode(Msg.RESET, 200, b""))
    with pytest.raises(DeviceResetError, match="reset"):
        s.hello()
