"""Fixtures for device tests: host builds of the firmware protocol (sanitized), fake-model firmware per
board (built once per session with PlatformIO), and QEMU virtual boards."""
from __future__ import annotations

import fcntl
import hashlib
import os
import pickle
import shutil
import time
from pathlib import Path

import pytest

from tests.support import hostbuild
from tests.support.device import FAKE_MODEL_DIR, PipeTransport


@pytest.fixture(scope="session")
def host_device_bin(tmp_path_factory) -> Path:
    if hostbuild.compiler() is None:
        pytest.skip("no host C compiler (apt-get install gcc)")
    return hostbuild.build_host_device(tmp_path_factory.mktemp("hostdev") / "host_device")


@pytest.fixture(scope="session")
def codec_tool_bin(tmp_path_factory) -> Path:
    if hostbuild.compiler() is None:
        pytest.skip("no host C compiler (apt-get install gcc)")
    return hostbuild.build_codec_tool(tmp_path_factory.mktemp("codec") / "codec_tool")


@pytest.fixture()
def host_transport(host_device_bin):
    t = PipeTransport([str(host_device_bin)])
    yield t
    t.close()


def _need_arm_toolchain() -> None:
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)")


@pytest.fixture(scope="session")
def fake_firmware():
    """build(board, extra_flags=()) -> BuildResult, built once per test run: the xdist workers share the builds
    through the run's cache folder (tests/conftest.py), one builder per firmware at a time. Tests must not
    modify these projects; a failed build is not kept."""
    from formicary.build import build_project, generate_project

    cache: dict = {}

    def build(board: str, extra_flags: tuple[str, ...] = ()):
        _need_arm_toolchain()
        key = (board, extra_flags)
        if key not in cache:
            root = Path(os.environ["FORMICARY_CACHE_DIR"]) / "fake-firmware"
            d = root / f"{board}-{hashlib.sha256(repr(extra_flags).encode()).hexdigest()[:12]}"
            root.mkdir(parents=True, exist_ok=True)
            with open(root / f"{d.name}.lock", "a+b") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                done = d / "build-result.pickle"
                if done.is_file():
                    cache[key] = pickle.loads(done.read_bytes())
                else:
                    shutil.rmtree(d, ignore_errors=True)
                    generate_project(board, FAKE_MODEL_DIR, d, extra_flags=list(extra_flags))
                    cache[key] = build_project(d, board)
                    done.write_bytes(pickle.dumps(cache[key]))
        return cache[key]

    return build


@pytest.fixture()
def qemu_board(fake_firmware):
    """connect(board, **kw) -> Connection to a virtual board running the fake model; closed after the test."""
    from formicary.device import connect_qemu

    if shutil.which("qemu-system-arm") is None:
        pytest.skip("qemu-system-arm not installed (apt-get install qemu-system-arm)")
    opened = []

    def connect(board: str, **kw):
        fw = fake_firmware(board)
        conn = connect_qemu(board, fw.elf, **kw)
        opened.append(conn)
        return conn

    yield connect
    for conn in opened:
        conn.close()
        # the whole process group must be gone
        deadline = time.monotonic() + 3
        while conn.qemu.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not conn.qemu.alive(), "QEMU survived Connection.close()"
