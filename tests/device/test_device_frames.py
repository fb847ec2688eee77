"""The frame codec: Python (host/formicary/device/frames.py) against C (firmware/protocol/fm_frame.c, built for
the host with ASan+UBSan), both directions, plus damage detection."""
from __future__ import annotations

import subprocess
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from formicary.device import frames
from formicary.device.frames import FrameError, FrameReader


def c_decode(tool, data: bytes) -> list[str]:
    out = subprocess.run([str(tool), "decode"], input=data, capture_output=True, check=True).stdout
    return out.decode().splitlines()


def c_encode(tool, type_: int, seq: int, counter: int, payload: bytes) -> bytes:
    return subprocess.run([str(tool), "encode", str(type_), str(seq), str(counter), payload.hex()],
                          capture_output=True, check=True).stdout


@given(st.binary(max_size=2000))
def test_cobs_round_trip(data):
    enc = frames.cobs_encode(data)
    assert 0 not in enc
    assert len(enc) <= len(data) + len(data) // 254 + 1
    assert frames.cobs_decode(enc) == data


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=1200))
def test_cobs_matches_c(codec_tool_bin, data):
    c = subprocess.run([str(codec_tool_bin), "cobs"], input=data, capture_output=True, check=True).stdout
    assert c == frames.cobs_encode(data)


@settings(max_examples=40, deadline=None)
@given(type_=st.integers(0, 255), seq=st.integers(0, 255), counter=st.integers(0, 0xFFFF),
       payload=st.binary(max_size=frames.MAX_PAYLOAD))
def test_python_and_c_frames_agree(codec_tool_bin, type_, seq, counter, payload):
    py = frames.encode(type_, seq, payload, counter)
    assert c_encode(codec_tool_bin, type_, seq, counter, payload) == py
    assert c_decode(codec_tool_bin, py) == [f"FRAME {type_} {seq} {counter} {payload.hex()}"]
    (f,) = FrameReader().feed(py)
    assert (f.type, f.seq, f.counter, f.payload) == (type_, seq, counter, payload)


def test_crc_is_zlib_crc32():
    raw = frames.build_raw(1, 2, b"hello")
    assert int.from_bytes(raw[-4:], "little") == zlib.crc32(raw[:-4])


@pytest.mark.parametrize("position", [1, 5, 9, 20])
def test_flipped_byte_is_rejected_by_both(codec_tool_bin, position):
    wire = bytearray(frames.encode(0x85, 7, bytes(range(1, 40)), 3))
    wire[position] ^= 0x10
    if wire[position] == 0:  # turned into a delimiter: splits the frame, still no valid frame may come out
        wire[position] = 0x42
    events = c_decode(codec_tool_bin, bytes(wire))
    assert events and all(e.startswith("ERR") for e in events)
    assert all(isinstance(x, FrameError) for x in FrameReader().feed(bytes(wire)))


def test_oversize_and_short_and_version(codec_tool_bin):
    big = b"\x00" + b"\x55" * (frames.MAX_ENCODED + 10) + b"\x00"
    assert c_decode(codec_tool_bin, big) == ["ERR 16"]
    assert [e.reason for e in FrameReader().feed(big)] == ["oversize"]
    short = b"\x00" + frames.cobs_encode(b"\x01\x02\x03") + b"\x00"
    assert c_decode(codec_tool_bin, short) == ["ERR 18"]
    wrong_version = b"\x00" + frames.cobs_encode(frames.build_raw(1, 1, b"", version=9)) + b"\x00"
    assert c_decode(codec_tool_bin, wrong_version) == ["ERR 21"]
    # empty frames (back-to-back delimiters) are idle filler, not errors
    assert c_decode(codec_tool_bin, b"\x00\x00\x00") == []


def test_resync_after_garbage(codec_tool_bin):
    good = frames.encode(0x81, 1, b"abc", 0)
    stream = b"\x13\x37garbage\xff" + good + b"\x01\x02" + good
    events = c_decode(codec_tool_bin, stream)
    assert events.count(f"FRAME {0x81} 1 0 {b'abc'.hex()}") == 2
    got = FrameReader().feed(stream)
    assert sum(1 for g in got if not isinstance(g, FrameError)) == 2
