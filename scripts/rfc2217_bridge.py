"""An RFC 2217 server in front of a pyserial URL (e.g. a QEMU UART at socket://127.0.0.1:PORT), built on pyserial's
own `serial.rfc2217.PortManager`: what ser2net does for a USB serial port on a lab host, for trying formicary's
`rfc2217://` path without hardware (docs/lab.md, "pyserial or pyserial-labgrid").

    python scripts/rfc2217_bridge.py socket://127.0.0.1:PORT [--listen 127.0.0.1:0]

Prints `rfc2217://HOST:PORT` once listening; serves one client at a time until killed.
"""
from __future__ import annotations

import argparse
import socket
import sys
import threading

import serial
import serial.rfc2217


class _Conn:
    """The socket as PortManager's `connection` (it calls write())."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)


def serve(url: str, listen: tuple[str, int]) -> None:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(listen)
    srv.listen(1)
    print(f"rfc2217://{srv.getsockname()[0]}:{srv.getsockname()[1]}", flush=True)
    while True:
        client, _ = srv.accept()
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        port = serial.serial_for_url(url, timeout=0.05)
        manager = serial.rfc2217.PortManager(port, _Conn(client))
        stop = threading.Event()

        def pump_out(port=port, client=client, manager=manager, stop=stop) -> None:  # device -> client, escaped
            while not stop.is_set():
                try:
                    data = port.read(4096)
                    if data:
                        client.sendall(b"".join(manager.escape(data)))
                except (OSError, serial.SerialException):
                    break
            stop.set()

        t = threading.Thread(target=pump_out, daemon=True)
        t.start()
        try:
            while not stop.is_set():
                data = client.recv(4096)
                if not data:
                    break
                port.write(b"".join(manager.filter(data)))
        except (OSError, serial.SerialException):
            pass
        finally:
            stop.set()
            t.join(timeout=2)
            client.close()
            port.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url")
    ap.add_argument("--listen", default="127.0.0.1:0")
    args = ap.parse_args()
    host, _, port = args.listen.rpartition(":")
    serve(args.url, (host, int(port)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
