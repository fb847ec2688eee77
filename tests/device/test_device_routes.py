"""Routes on the wire: the firmware (host build, ASan+UBSan) reports fm_model_route() after every inference in
RUN_PROGRESS and READ_ROUTES; the host reads them when HELLO says so (CAP_ROUTES) and runs firmware that predates
routes (built from the commit before them) without asking for any."""
from __future__ import annotations

import shutil
import struct
import subprocess
import time

import numpy as np
import pytest
from formicary.device import frames
from formicary.device.frames import ErrorCode, FrameReader, Msg
from formicary.device.session import DeviceCommandError, DeviceError, Session

from tests.support import hostbuild
from tests.support.device import PipeTransport, fake_expected, fake_input

# The last commit whose firmware has no routes (protocol 2 without CAP_ROUTES / READ_ROUTES).
PRE_ROUTES_COMMIT = "57f31b104ff56c422860c8542ea2eb97c9ba5fcc"


def _session(t) -> Session:
    s = Session(t, timeout=1.0)
    assert s.wait_boot(5.0)
    return s


@pytest.fixture(scope="module")
def routed_device_bin(tmp_path_factory):
    """The firmware with a fake model that defines fm_model_route(): 1 | 2 << (input[0] mod 3)."""
    if hostbuild.compiler() is None:
        pytest.skip("no host C compiler")
    return hostbuild.build_host_device(tmp_path_factory.mktemp("routed") / "host_device",
                                       extra_flags=("-DFM_FAKE_ROUTES=1",))


@pytest.fixture(scope="module")
def pre_routes_tree(tmp_path_factory):
    """Firmware, host package and tests as they were before routes, exported from git."""
    if hostbuild.compiler() is None or shutil.which("git") is None:
        pytest.skip("needs a C compiler and git")
    root = tmp_path_factory.mktemp("pre-routes")
    has = subprocess.run(["git", "-C", str(hostbuild.ROOT), "cat-file", "-e", f"{PRE_ROUTES_COMMIT}^{{commit}}"],
                         check=False, capture_output=True)
    if has.returncode != 0:
        pytest.skip("not a git checkout with the pre-routes commit (shallow clone or sdist)")
    archive = subprocess.run(["git", "-C", str(hostbuild.ROOT), "archive", PRE_ROUTES_COMMIT, "firmware",
                              "host/formicary", "tests/__init__.py", "tests/support", "tests/device", "tests/fuzz"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    return root


@pytest.fixture(scope="module")
def old_device_bin(pre_routes_tree):
    """The host build of the firmware as it was before routes."""
    return hostbuild.build_host_device(pre_routes_tree / "host_device", root=pre_routes_tree)


def _input_with_first(byte: int, seed: int = 0) -> np.ndarray:
    x = fake_input(seed).copy()
    x[0] = byte
    return x


def test_weak_default_route_is_one_for_every_inference(host_transport):
    s = _session(host_transport)
    info = s.hello()
    assert info.routes and info.protocol_version == frames.PROTO_VERSION
    x = fake_input(2)
    (y,), rr = s.infer([x.tobytes()], runs=5, warmup=2)
    assert np.array_equal(np.frombuffer(y, np.int8), fake_expected(x))
    assert rr.routes == [1] * 5 and len(rr.ticks) == 5


def test_routes_follow_the_input_streamed_and_stored_agree(routed_device_bin):
    t = PipeTransport([str(routed_device_bin)])
    try:
        s = _session(t)
        seen = []
        for first, want in ((0, 0b011), (1, 0b101), (2, 0b1001), (3, 0b011), (-1, 0b011)):  # -1: byte 255
            x = _input_with_first(first)
            (y,), rr = s.infer([x.tobytes()], runs=3, warmup=1, profile=True)
            assert np.array_equal(np.frombuffer(y, np.int8), fake_expected(x))
            assert rr.routes == [want] * 3
            seen.append(want)
            # the profile is the last inference's: both fake ops ran and report a time
            assert all(layer.ticks > 0 for layer in s.read_layer_timings())
        assert sorted(set(seen)) == [0b011, 0b101, 0b1001]
        # the progress frames carry the route too (raw exchange: kind, index, ticks, route)
        s.load_input(0, _input_with_first(1).tobytes())
        t.write(frames.encode(Msg.RUN, 91, struct.pack("<IIB", 2, 1, 0)))
        reader, got = FrameReader(), []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not any(f.type == Msg.RUN | Msg.RESPONSE for f in got):
            got.extend(reader.feed(t.read(4096, 0.1)))
        progress = [f for f in got if f.type == Msg.RUN_PROGRESS]
        assert [len(f.payload) for f in progress] == [frames.RUN_PROGRESS.size] + [frames.RUN_PROGRESS_ROUTE.size] * 3
        assert [frames.RUN_PROGRESS_ROUTE.unpack(f.payload)[::3] for f in progress[1:]] == [(0, 5), (1, 5), (1, 5)]
    finally:
        t.close()


def test_read_routes_checks_every_field(host_transport):
    s = _session(host_transport)
    s.hello()

    def err(payload: bytes) -> int:
        with pytest.raises(DeviceCommandError) as e:
            s._request(Msg.READ_ROUTES, payload)
        return e.value.code

    assert err(struct.pack("<IH", 0, 1)) == ErrorCode.STATE           # no RUN yet
    assert err(b"\x00" * 5) == ErrorCode.BAD_LENGTH
    assert err(b"\x00" * 7) == ErrorCode.BAD_LENGTH
    s.load_input(0, fake_input(0).tobytes())
    s.run(runs=3)
    for first, count in ((0, 4), (3, 1), (4, 0), (0xFFFFFFFF, 2), (2, 0xFFFF)):
        assert err(struct.pack("<IH", first, count)) == ErrorCode.RANGE, (first, count)
    f = s._request(Msg.READ_ROUTES, struct.pack("<IH", 1, 2))
    assert f.payload == struct.pack("<IHII", 1, 2, 1, 1)
    assert s._request(Msg.READ_ROUTES, struct.pack("<IH", 3, 0)).payload == struct.pack("<IH", 3, 0)
    # new inputs invalidate the last RUN's routes, as they do its timings
    s.load_input(0, fake_input(1).tobytes())
    assert err(struct.pack("<IH", 0, 1)) == ErrorCode.STATE


def test_many_runs_page_through_read_routes(routed_device_bin):
    t = PipeTransport([str(routed_device_bin)])
    try:
        s = _session(t)
        s.load_input(0, _input_with_first(2).tobytes())
        rr = s.run(runs=frames.MAX_RUNS)  # 256 routes: two READ_ROUTES pages of at most 126
        assert rr.routes == [0b1001] * frames.MAX_RUNS and s.stats.retries == 0
    finally:
        t.close()


def test_host_rejects_a_lying_routes_page(host_transport, monkeypatch):
    s = _session(host_transport)
    s.load_input(0, fake_input(0).tobytes())
    real = s._request

    def shifted(type_, payload=b"", **kw):
        f = real(type_, payload, **kw)
        if type_ == Msg.READ_ROUTES:  # answers another page than asked for
            return frames.Frame(type=f.type, seq=f.seq, payload=struct.pack("<IH", 1, 1) + f.payload[6:10],
                                counter=f.counter)
        return f

    monkeypatch.setattr(s, "_request", shifted)
    with pytest.raises(DeviceError, match="routes out of order"):
        s.run(runs=2)


def test_old_firmware_without_routes_still_works(old_device_bin):
    t = PipeTransport([str(old_device_bin)])
    try:
        s = _session(t)
        info = s.hello()
        assert info.protocol_version == frames.PROTO_VERSION and not info.routes
        x = fake_input(4)
        (y,), rr = s.infer([x.tobytes()], runs=3, warmup=1, profile=True)
        assert np.array_equal(np.frombuffer(y, np.int8), fake_expected(x))
        assert rr.routes is None and len(rr.values) == 3
        assert len(s.read_layer_timings()) == 2
        # the old firmware does not know READ_ROUTES: the new host never sends it, and it would be refused
        with pytest.raises(DeviceCommandError) as e:
            s._request(Msg.READ_ROUTES, struct.pack("<IH", 0, 1))
        assert e.value.code == ErrorCode.UNKNOWN_COMMAND
        assert s.stats.retries == 0 and s.stats.damaged_frames == 0
    finally:
        t.close()


@pytest.mark.qemu
def test_generated_route_replaces_the_weak_default_on_qemu(fake_firmware):
    """On the board toolchain too, a model's own fm_model_route() wins over the app's weak default at link time,
    and the route of every inference reaches the host."""
    from formicary.device import connect_qemu

    if shutil.which("qemu-system-arm") is None:
        pytest.skip("qemu-system-arm not installed")
    fw = fake_firmware("qemu-m4", ("-DFM_FAKE_ROUTES=1", "-Werror"))
    with connect_qemu("qemu-m4", fw.elf) as conn:
        s = conn.session
        assert s.info.routes
        for first, want in ((0, 0b011), (1, 0b101), (2, 0b1001)):
            x = _input_with_first(first, seed=first)
            (y,), rr = s.infer([x.tobytes()], runs=3, warmup=1)
            assert np.array_equal(np.frombuffer(y, np.int8), fake_expected(x))
            assert rr.routes == [want] * 3


OLD_HOST = """
import sys
import numpy as np
from formicary.device.session import Session
from tests.support.device import PipeTransport, fake_expected, fake_input

t = PipeTransport([sys.argv[1]])
s = Session(t, timeout=1.0)
assert s.wait_boot(5.0)
x = fake_input(6)
(y,), rr = s.infer([x.tobytes()], runs=4, warmup=1, profile=True)
assert np.array_equal(np.frombuffer(y, np.int8), fake_expected(x))
assert len(rr.values) == 4 and not hasattr(rr, "routes")
assert len(s.read_layer_timings()) == 2 and s.stats.retries == 0 and s.stats.damaged_frames == 0
t.close()
print("old host ok")
"""


def test_old_host_still_works_with_firmware_that_reports_routes(pre_routes_tree, host_device_bin):
    """The host package from before routes drives this firmware: the longer RUN_PROGRESS and the capability bit
    are ignored, nothing else changed."""
    import os
    import sys

    env = {**os.environ, "PYTHONPATH": f"{pre_routes_tree / 'host'}{os.pathsep}{pre_routes_tree}"}
    proc = subprocess.run([sys.executable, "-c", OLD_HOST, str(host_device_bin)], cwd=pre_routes_tree, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "old host ok", proc.stderr[-2000:]
