"""Fixtures for the SBC tests: a loopback sshd (this machine as a "board", the agent run by the venv's Python)
for the SSH error cases, and the virtual SBC (helper A's image, booted once per session) for the real thing."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


@dataclass(frozen=True)
class Loopback:
    host: str
    port: int
    user: str
    key_path: Path
    known_hosts: Path
    other_key: Path        # a key sshd does not accept (refused login)
    wrong_known_hosts: Path  # known_hosts with another key for the same host (wrong host key)
    python: str            # the board's Python: this venv's, with ai_edge_litert


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@pytest.fixture(scope="session")
def loopback_sshd(tmp_path_factory):
    """sshd on a free loopback port accepting one generated key for the current user (needs root and
    openssh-server: scripts/bootstrap.sh installs it)."""
    if not os.path.exists(SSHD) or not shutil.which("ssh-keygen"):
        pytest.skip("openssh-server is not installed (scripts/bootstrap.sh installs it as root)")
    if os.geteuid() != 0:
        pytest.skip("a private sshd needs root (it switches to the logged-in user)")
    d = tmp_path_factory.mktemp("sshd")
    os.chmod(d, 0o700)
    for name in ("host_key", "user_key", "other_key", "other_host_key"):
        _keygen(d / name)
    (d / "authorized_keys").write_text((d / "user_key.pub").read_text())
    os.chmod(d / "authorized_keys", 0o600)
    port = _free_port()
    cfg = d / "sshd_config"
    cfg.write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {d / 'host_key'}
PidFile {d / 'sshd.pid'}
AuthorizedKeysFile {d / 'authorized_keys'}
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
Subsystem sftp internal-sftp
""")
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory sshd insists on
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.skip(f"sshd did not start: {proc.stderr.read().decode()[-500:]}")
            time.sleep(0.1)
    host_pub = (d / "host_key.pub").read_text().split()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    other = (d / "other_host_key.pub").read_text().split()
    (d / "wrong_known_hosts").write_text(f"[127.0.0.1]:{port} {other[0]} {other[1]}\n")
    import pwd

    yield Loopback("127.0.0.1", port, pwd.getpwuid(os.getuid()).pw_name, d / "user_key", d / "known_hosts",
                   d / "other_key", d / "wrong_known_hosts", sys.executable)
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()


try:  # the virtual SBC module and its session fixture (tests/conftest.py) come with the virtual SBC's branch
    import formicary.target.virtual_sbc  # noqa: F401
except ImportError:
    @pytest.fixture(scope="session")
    def virtual_sbc():
        pytest.skip("formicary.target.virtual_sbc is not in this tree: no virtual SBC to boot")
