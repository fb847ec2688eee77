"""Talking to devices: pyserial transport, frame codec, protocol session and QEMU virtual boards."""
from formicary.device.session import (Connection, DeviceCommandError, DeviceError, DeviceInfo, DeviceResetError,
                                      DeviceTimeout, LayerTiming, ModelMismatchError, RunResult, Session,
                                      connect_qemu, connect_serial)

__all__ = ["Connection", "DeviceCommandError", "DeviceError", "DeviceInfo", "DeviceResetError", "DeviceTimeout",
           "LayerTiming", "ModelMismatchError", "RunResult", "Session", "connect_qemu", "connect_serial"]
