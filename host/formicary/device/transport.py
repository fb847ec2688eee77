"""Byte transport to a device: any pyserial URL (`/dev/ttyACM0`, `socket://host:port`, `rfc2217://…`, `loop://`)."""
from __future__ import annotations

from typing import Protocol

from formicary.errors import FormicaryError


class Transport(Protocol):
    def write(self, data: bytes) -> None: ...
    def read(self, max_bytes: int, timeout: float) -> bytes: ...
    def close(self) -> None: ...


class SerialTransport:
    """pyserial's serial_for_url behind the small Transport interface the session uses."""

    def __init__(self, url: str, baud: int = 115200, open_timeout: float = 5.0) -> None:
        import serial

        self.url = url
        # pyserial's RFC 2217 client (pyserial-labgrid's too) raises NotImplementedError on any write_timeout
        write_timeout = None if url.startswith("rfc2217://") else open_timeout
        try:
            self._port = serial.serial_for_url(url, baudrate=baud, timeout=0.05, write_timeout=write_timeout,
                                               do_not_open=False)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise FormicaryError(f"cannot open serial port {url!r}: {exc}",
                                 "check the --port URL (a device path, socket://HOST:PORT or rfc2217://HOST:PORT), "
                                 "that the board is connected and that no other program holds the port.") from exc

    def write(self, data: bytes) -> None:
        import serial

        try:
            self._port.write(data)
            self._port.flush()
        except (serial.SerialException, OSError) as exc:
            raise FormicaryError(f"writing to {self.url} failed: {exc}",
                                 "the device or QEMU went away; check the connection and run again.") from exc

    def read(self, max_bytes: int, timeout: float) -> bytes:
        """Up to max_bytes, waiting at most `timeout` seconds for the first byte."""
        import serial

        try:
            self._port.timeout = max(timeout, 0.0)
            first = self._port.read(1)
            if not first or max_bytes <= 1:
                return first
            # then whatever else has arrived, without waiting (in_waiting is only 0/1 for socket://)
            self._port.timeout = 0
            return first + self._port.read(max_bytes - 1)
        except (serial.SerialException, OSError) as exc:
            raise FormicaryError(f"reading from {self.url} failed: {exc}",
                                 "the device or QEMU went away; check the connection and run again.") from exc

    def close(self) -> None:
        try:
            self._port.close()
        except Exception:  # closing a port that already died must not hide the real error
            pass


def open_transport(url: str, baud: int = 115200) -> SerialTransport:
    return SerialTransport(url, baud=baud)
