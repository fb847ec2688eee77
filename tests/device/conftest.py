"""Fixtures for device tests: host builds of the firmware protocol (sanitized), fake-model firmware per
board (built once per session with PlatformIO), and QEMU virtual boards."""
from __future__ import annotations

import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import hostbuild

FAKE_MODEL_DIR = Path(__file__).resolve().parent / "fixtures" / "fake_model"
FAKE_IN, FAKE_OUT = 1000, 12


def fake_expected(x: np.ndarray) -> np.ndarray:
    """What tests/device/fixtures/fake_model/fm_model.c computes, in numpy."""
    x = np.asarray(x, dtype=np.int8).astype(np.int64).reshape(-1)
    i = np.arange(x.size)[:, None]
    j = np.arange(FAKE_OUT)[None, :]
    w = ((7 * i + 13 * j) % 17) - 8
    acc = (x[:, None] * w).sum(axis=0)
    return np.clip((acc + 128) >> 8, -128, 127).astype(np.int8)


def fake_input(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-128, 128, FAKE_IN, dtype=np.int64).astype(np.int8)


class PipeTransport:
    """Transport to a host process speaking the protocol on stdin/stdout."""

    def __init__(self, argv: list[str]) -> None:
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0:abort_on_error=1")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self.url = "pipe"

    def write(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def read(self, max_bytes: int, timeout: float) -> bytes:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], max(timeout, 0))
        if not ready:
            return b""
        data = os.read(self.proc.stdout.fileno(), max_bytes)
        if not data:
            from formicary.errors import FormicaryError
            raise FormicaryError(f"host device exited with code {self.proc.wait()}")
        return data

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()  # type: ignore[union-attr]
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        # a sanitizer report makes the process exit non-zero: fail loudly
        assert self.proc.returncode == 0, f"host device exited with {self.proc.returncode} (sanitizer report?)"


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
def fake_firmware(tmp_path_factory):
    """build(board, extra_flags=()) -> BuildResult, cached per session."""
    from formicary.build import build_project, generate_project

    cache: dict = {}

    def build(board: str, extra_flags: tuple[str, ...] = ()):
        _need_arm_toolchain()
        key = (board, extra_flags)
        if key not in cache:
            d = tmp_path_factory.mktemp(f"fw-{board}")
            generate_project(board, FAKE_MODEL_DIR, d, extra_flags=list(extra_flags))
            cache[key] = build_project(d, board)
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
