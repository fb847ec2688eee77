"""The energy-monitor sync line (-DFM_SYNC_PIN): the real firmware app on the host, its pin replaced by a logger
(host_sync_port.c); and the real pin drivers built for the three real boards, warning-free."""
from __future__ import annotations

import os
import shutil

import pytest

from formicary.device.session import Session

from tests.support import hostbuild
from tests.support.device import PipeTransport, fake_input


@pytest.fixture(scope="module")
def sync_device_bin(tmp_path_factory):
    if hostbuild.compiler() is None:
        pytest.skip("no host C compiler (apt-get install gcc)")
    out = tmp_path_factory.mktemp("sync") / "host_device_sync"
    return hostbuild.build_host_device(out, extra_flags=("-DFM_SYNC_PIN",),
                                       extra_sources=(str(hostbuild.DEVICE_TESTS / "host_sync_port.c"),))


def test_one_pulse_per_run_and_low_afterwards(sync_device_bin, tmp_path, monkeypatch):
    log = tmp_path / "sync.log"
    monkeypatch.setenv("FM_SYNC_LOG", str(log))
    t = PipeTransport([str(sync_device_bin)])
    try:
        s = Session(t, timeout=2.0)
        s.wait_boot(5)
        s.hello()
        s.load_input(0, fake_input(0).tobytes())
        for runs, warmup in ((3, 2), (1, 0), (5, 0)):
            s.run(runs=runs, warmup=warmup)
        s.read_output(0)  # other commands never touch the line
    finally:
        t.close()
    assert log.read_text().split() == ["1", "0"] * 3


@pytest.mark.parametrize("board", ["nucleo-f446re", "nucleo-l4r5zi", "nrf52840-dk"])
def test_sync_pin_builds_for_real_boards(fake_firmware, board):
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed")
    fw = fake_firmware(board, ("-DFM_SYNC_PIN", "-Werror"))
    out = os.popen(f"arm-none-eabi-nm {fw.elf}").read()
    # the family's pin driver, not the port's weak no-op default ("W")
    assert " T fm_port_sync\n" in out and " T fm_port_sync_init\n" in out
