"""Builds the MLPerf DUT parser as host programs (sanitizers on) and serves one on a TCP socket, so the host
runner talks to it through a real pyserial `socket://` URL."""
from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MLPERF = REPO / "firmware" / "mlperf"
CFLAGS = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-g", "-O1",
          "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]


def _cc() -> str:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no host C compiler to build the MLPerf DUT parser")
    return cc


@pytest.fixture(scope="session")
def dut_host_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mlperf") / "dut_host"
    subprocess.run([_cc(), *CFLAGS, f"-I{MLPERF}", str(HERE / "dut_host.c"), str(MLPERF / "fm_mlperf.c"),
                    "-o", str(out)], check=True)
    return out


@pytest.fixture(scope="session")
def fuzz_standalone_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mlperf_fuzz") / "fuzz_mlperf"
    subprocess.run([_cc(), *CFLAGS, "-DFM_FUZZ_STANDALONE", f"-I{MLPERF}", str(HERE / "fuzz_mlperf.c"),
                    str(MLPERF / "fm_mlperf.c"), "-o", str(out)], check=True)
    return out


class SocketDut:
    """dut_host behind 127.0.0.1:PORT: bytes from the socket go to its stdin, its stdout to the socket."""

    def __init__(self, argv: list[str]) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self.server.getsockname()[1]}"
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.injected: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        self.conn = conn

        def down() -> None:  # DUT -> host
            while True:
                data = self.proc.stdout.read1(4096)
                if not data:
                    break
                conn.sendall(data)

        threading.Thread(target=down, daemon=True).start()
        while True:
            try:
                data = conn.recv(4096)
            except OSError:
                break
            if not data:
                break
            self.proc.stdin.write(data)
            self.proc.stdin.flush()

    def inject(self, data: bytes) -> None:
        """Bytes on the line the host did not send (noise, a terminal left open)."""
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def close(self) -> str:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        self.proc.wait(timeout=10)
        self.server.close()
        return self.proc.stderr.read().decode(errors="replace")


@pytest.fixture
def socket_dut(dut_host_binary: Path) -> Iterator:
    made: list[SocketDut] = []

    def make(input_bytes: int = 490, lap_us: int = 1000, fail: bool = False) -> SocketDut:
        argv = [str(dut_host_binary), str(input_bytes), str(lap_us)] + (["fail"] if fail else [])
        d = SocketDut(argv)
        made.append(d)
        return d

    yield make
    for d in made:
        stderr = d.close()
        assert d.proc.returncode == 0, f"DUT host program failed (sanitizer?):\n{stderr}"
