"""Lets the unmodified MLCommons MLPerf Tiny runner (`benchmark/runner/` of mlcommons/tiny) find a DUT on a pty.

The runner finds its DUT by USB VID/PID (`serial.tools.list_ports.comports()` against devices.yaml); a virtual
board reached through `socat pty,… tcp:…` has no USB identity. Put this folder first on PYTHONPATH and set
FORMICARY_DUT_PORT to the pty: Python imports this file at start-up (site's `sitecustomize` hook), and the port
is listed with the VID:PID of FORMICARY_DUT_USB (default 0x0483:0x374B, devices.yaml's `l4r5zi` DUT entry).
Nothing of the runner is changed; without FORMICARY_DUT_PORT this file does nothing. docs/mlperf.md shows the steps.
"""
import os

_PORT = os.environ.get("FORMICARY_DUT_PORT")


def _usb_ids(text: str) -> tuple[int, int]:
    vid, _, pid = text.partition(":")
    return int(vid, 0), int(pid, 0)


if _PORT:
    from serial.tools import list_ports, list_ports_common

    _VID, _PID = _usb_ids(os.environ.get("FORMICARY_DUT_USB", "0x0483:0x374B"))
    _system_comports = list_ports.comports

    def _comports(include_links: bool = False) -> list:
        dut = list_ports_common.ListPortInfo(_PORT, skip_link_detection=True)
        dut.vid, dut.pid = _VID, _PID
        dut.description = "formicary virtual DUT (pty)"
        dut.hwid = f"USB VID:PID={_VID:04X}:{_PID:04X}"
        return [p for p in _system_comports(include_links) if p.device != _PORT] + [dut]

    list_ports.comports = _comports

    try:  # the runner also scans raw USB (pyusb) for power monitors; a machine without libusb has no backend
        import usb.core as _usb_core
    except ImportError:
        pass
    else:
        _usb_find = _usb_core.find

        def _find(*args, **kwargs):
            try:
                return _usb_find(*args, **kwargs)
            except _usb_core.NoBackendError:
                return iter(()) if kwargs.get("find_all") else None

        _usb_core.find = _find
