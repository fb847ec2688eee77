"""SSH to a Linux single-board computer with paramiko: `--host user@addr[:port]`, ~/.ssh/config, keys and
known_hosts honoured, and every way it can fail turned into one FormicaryError (cause + fix).

Host keys are checked strictly (RejectPolicy): an unknown host and a changed key both stop before anything is
sent; known_hosts files are the user's (~/.ssh/known_hosts, or UserKnownHostsFile from ~/.ssh/config) plus an
explicit one (the virtual SBC's). Keys: an explicit key, IdentityFile from the config, the ssh-agent and the
default ~/.ssh/id_* files, as OpenSSH tries them.
"""
from __future__ import annotations

import os
import shlex
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from formicary.errors import FormicaryError

DEFAULT_CONNECT_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class SshTarget:
    """Where and how to log in. `host` may be an alias of ~/.ssh/config."""
    host: str
    port: int | None = None
    user: str | None = None
    key_path: Path | None = None
    known_hosts: Path | None = None
    config_path: Path | None = None   # default ~/.ssh/config

    @property
    def spec(self) -> str:
        who = f"{self.user}@" if self.user else ""
        where = f"[{self.host}]" if ":" in self.host else self.host
        return f"{who}{where}" + (f":{self.port}" if self.port else "")


def parse_host(spec: str) -> SshTarget:
    """`user@addr[:port]`, `addr`, `[v6addr]:port` or an ~/.ssh/config alias -> SshTarget."""
    text = spec.strip()
    user = None
    if "@" in text:
        user, text = text.rsplit("@", 1)
        if not user:
            raise FormicaryError(f"--host {spec!r} has an empty user name.", "write --host user@addr[:port].")
    port = None
    if text.startswith("["):  # [v6]:port
        addr, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = rest[1:]
    elif text.count(":") == 1:
        addr, port = text.split(":")
    else:
        addr = text
    if not addr:
        raise FormicaryError(f"--host {spec!r} names no address.", "write --host user@addr[:port].")
    if port is not None:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise FormicaryError(f"--host {spec!r}: port {port!r} is not a TCP port.",
                                 "write --host user@addr:PORT with PORT in 1..65535.")
        port = int(port)
    return SshTarget(addr, port, user)


def _resolve(target: SshTarget) -> dict[str, Any]:
    """paramiko connect() arguments from the target and ~/.ssh/config (explicit values win)."""
    import paramiko

    cfg_path = target.config_path or Path.home() / ".ssh" / "config"
    conf: dict[str, Any] = {}
    if cfg_path.is_file():
        conf = paramiko.SSHConfig.from_path(str(cfg_path)).lookup(target.host)
    keys = [str(target.key_path)] if target.key_path else []
    keys += [os.path.expanduser(k) for k in conf.get("identityfile", []) if os.path.exists(os.path.expanduser(k))]
    known = [os.path.expanduser(p) for p in str(conf.get("userknownhostsfile", "")).split() if p]
    return {"hostname": conf.get("hostname", target.host),
            "port": target.port or int(conf.get("port", 22)),
            "username": target.user or conf.get("user") or os.environ.get("USER") or "root",
            "key_filename": keys or None, "known_hosts": known,
            "proxy_command": conf.get("proxycommand")}


@dataclass
class SshConnection:
    """An open SSH connection (paramiko SSHClient) to a board."""
    target: SshTarget
    client: Any
    where: str
    _sftp: Any = field(default=None, repr=False)

    @property
    def transport(self) -> Any:
        return self.client.get_transport()

    def sftp(self) -> Any:
        if self._sftp is None:
            self._sftp = self.client.open_sftp()
        return self._sftp

    def run(self, command: str, timeout: float = 60.0) -> tuple[int, str, str]:
        """Run a short command; (exit status, stdout, stderr)."""
        try:
            _, out, err = self.client.exec_command(command, timeout=timeout)
            stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
            return out.channel.recv_exit_status(), stdout, stderr
        except (OSError, EOFError, socket.timeout) as exc:
            raise self.dropped(f"while running `{command}`: {exc}") from exc
        except Exception as exc:
            import paramiko

            if isinstance(exc, paramiko.SSHException):
                raise self.dropped(f"while running `{command}`: {exc}") from exc
            raise

    def stream(self, command: str, timeout: float) -> tuple[Any, Iterator[str]]:
        """Start COMMAND and yield its stdout lines as they arrive (the channel is returned for its exit status
        and stderr). `timeout`: the longest silence tolerated between two lines."""
        chan = self.transport.open_session()
        chan.settimeout(timeout)
        chan.exec_command(command)
        reader = chan.makefile("r")

        def lines() -> Iterator[str]:
            while True:
                line = reader.readline()
                if not line:
                    return
                yield line.decode(errors="replace") if isinstance(line, bytes) else line

        return chan, lines()

    def dropped(self, detail: str) -> FormicaryError:
        return FormicaryError(f"the SSH connection to {self.where} dropped {detail}",
                              "check the board's network and power (is it still reachable with `ssh`?), then run "
                              "again.", details={"host": self.where})

    def drop(self) -> None:
        """Cut the TCP connection without an SSH goodbye (fault-injection tests: what a pulled cable does)."""
        sock = self.transport.sock
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        try:
            if self._sftp is not None:
                self._sftp.close()
        except Exception:  # noqa: BLE001 - closing a dead connection must not raise
            pass
        self.client.close()


def connect(target: SshTarget, timeout: float = DEFAULT_CONNECT_TIMEOUT_S) -> SshConnection:
    """Log in to TARGET, checking its host key; every failure is one FormicaryError naming the fix."""
    import paramiko

    args = _resolve(target)
    where = f"{args['username']}@{args['hostname']}:{args['port']}"
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    default_known = Path.home() / ".ssh" / "known_hosts"
    try:
        if default_known.is_file() and not target.known_hosts and not args["known_hosts"]:
            client.load_host_keys(str(default_known))  # writable: paramiko keeps it as the user's file
        for path in [*args["known_hosts"], *([str(target.known_hosts)] if target.known_hosts else [])]:
            if os.path.isfile(path):
                client.get_host_keys().load(path)
        client.load_system_host_keys()
    except (OSError, paramiko.SSHException) as exc:
        raise FormicaryError(f"cannot read the known_hosts file: {exc}", "fix or remove the broken line.") from exc
    sock = paramiko.ProxyCommand(args["proxy_command"]) if args.get("proxy_command") else None
    keyscan = f"ssh-keyscan -p {args['port']} {args['hostname']} >> ~/.ssh/known_hosts" if args["port"] != 22 \
        else f"ssh-keyscan {args['hostname']} >> ~/.ssh/known_hosts"
    try:
        client.connect(args["hostname"], port=args["port"], username=args["username"],
                       key_filename=args["key_filename"], timeout=timeout, banner_timeout=timeout,
                       auth_timeout=timeout, sock=sock, allow_agent=True, look_for_keys=True)
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise FormicaryError(
            f"the host key of {where} is not the one in known_hosts (it was {exc.expected_key.get_name()} "
            f"{exc.expected_key.get_fingerprint().hex()}, the board now offers {exc.key.get_name()} "
            f"{exc.key.get_fingerprint().hex()}): a reinstalled board, or someone in the middle.",
            f"if the board was reinstalled, remove the old key (`ssh-keygen -R {_known_name(args)}`) and accept "
            "the new one by logging in once with `ssh`; otherwise do not connect.",
            details={"host": where}) from exc
    except paramiko.AuthenticationException as exc:
        client.close()
        raise FormicaryError(
            f"{where} refused the login of {args['username']!r} ({exc}).",
            f"check the user name and install your public key on the board (`ssh-copy-id -p {args['port']} "
            f"{args['username']}@{args['hostname']}`), or name the key with IdentityFile in ~/.ssh/config.",
            details={"host": where}) from exc
    except paramiko.SSHException as exc:
        client.close()
        if "not found in known_hosts" in str(exc):
            raise FormicaryError(
                f"{where} is not in known_hosts, so its identity cannot be checked.",
                f"log in once with `ssh -p {args['port']} {args['username']}@{args['hostname']}` and accept the "
                f"key after checking its fingerprint (or `{keyscan}` on a trusted network).",
                details={"host": where}) from exc
        raise FormicaryError(f"SSH to {where} failed: {exc}", "check that sshd runs on the board and the address "
                             "is right (`ssh -v ...` shows more).", details={"host": where}) from exc
    except (OSError, socket.timeout, EOFError) as exc:
        client.close()
        raise FormicaryError(
            f"cannot reach {where}: {exc}.",
            "check the address and port (--host user@addr[:port]), that the board is up and that sshd runs on it.",
            details={"host": where}) from exc
    transport = client.get_transport()
    if transport is not None:
        transport.set_keepalive(5)  # a silent dead link is found within seconds, not at the TCP timeout
    return SshConnection(target, client, where)


def _known_name(args: dict[str, Any]) -> str:
    return f"[{args['hostname']}]:{args['port']}" if args["port"] != 22 else args["hostname"]


def quote(path: str) -> str:
    return shlex.quote(path)


__all__ = ["SshConnection", "SshTarget", "connect", "parse_host", "quote"]
