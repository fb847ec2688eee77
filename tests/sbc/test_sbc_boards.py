"""SBC board files: what each says, and what the loader refuses."""
from __future__ import annotations

import pytest

from formicary.boards import SBC_RUNTIMES, list_boards, load_board
from formicary.errors import FormicaryError


def test_sbc_boards_in_the_registry() -> None:
    sbcs = {b.name: b for b in list_boards() if b.is_sbc}
    assert {"rpi-4", "rpi-5", "rpi-zero-2w", "linux-aarch64", "linux-armv7", "qemu-aarch64"} <= set(sbcs)
    for b in sbcs.values():
        assert b.sbc.cores >= 1 and b.ram_bytes > 0 and b.clock_hz > 0 and b.sbc.cpu and b.timing_unit == "ms"
        assert b.sbc.runtimes == SBC_RUNTIMES and not b.buildable
    for name in ("rpi-4", "rpi-5", "rpi-zero-2w", "qemu-aarch64"):
        p = sbcs[name].power
        assert p is not None and p.source and p.checked is False  # from memory: said so
    assert sbcs["qemu-aarch64"].virtual and "not a Pi 4's" in sbcs["qemu-aarch64"].power.basis
    assert sbcs["qemu-aarch64"].sbc.python == "/opt/tflite-runtime/bin/python3"
    assert "/opt/litert/bin/python3" in sbcs["qemu-aarch64"].sbc.alt_pythons
    assert sbcs["linux-armv7"].sbc.arch == "armv7l" and sbcs["rpi-5"].core == "cortex-a76"
    d = load_board("rpi-4").to_dict()
    assert d["kind"] == "sbc" and d["sbc"]["runtimes"] == list(SBC_RUNTIMES)


def test_sbc_board_file_errors(tmp_path) -> None:
    base = ('name = "{n}"\nkind = "sbc"\ndescription = "x"\ncore = "cortex-a53"\nclock_hz = 1\nvirtual = false\n'
            'ram_bytes = 1\n')
    (tmp_path / "a.toml").write_text(base.format(n="a") + '[sbc]\ncpu = "x"\ncores = 1\narch = "aarch64"\n'
                                     'runtimes = ["onnxruntime"]\n')
    with pytest.raises(FormicaryError, match="unknown runtime"):
        load_board("a", tmp_path)
    (tmp_path / "a.toml").write_text(base.format(n="a"))
    with pytest.raises(FormicaryError, match="no `sbc`"):
        load_board("a", tmp_path)
    with pytest.raises(FormicaryError, match="cannot be built"):
        load_board("rpi-4").firmware_defines()
