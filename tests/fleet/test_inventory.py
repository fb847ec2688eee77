"""Inventory parsing and validation for `formicary fleet`: every mistake is one clear error naming the entry."""
from __future__ import annotations

import subprocess
import sys

import pytest
from formicary.bench.fleet import load_inventory
from formicary.errors import FormicaryError


def _write(tmp_path, text: str):
    p = tmp_path / "inv.toml"
    p.write_text(text)
    return p


def test_example_inventory_is_valid(repo_root):
    inv = load_inventory(repo_root / "examples" / "fleet-virtual.toml")
    assert [d.name for d in inv.devices] == ["m4-a", "m7-a", "f405-a"]
    assert [d.board for d in inv.devices] == ["qemu-m4", "qemu-m7", "qemu-stm32f405"]
    assert all(d.port is None for d in inv.devices)
    assert inv.devices[2].runs == 20 and inv.devices[0].tags == ("virtual", "cortex-m4")


def test_full_entry(tmp_path):
    inv = load_inventory(_write(tmp_path, '[[device]]\nname = "n1"\nboard = "nucleo-f446re"\n'
                                          'port = "rfc2217://lab:4000"\nruns = 5\ntags = ["a"]\ntimeout = 90\n'))
    d = inv.devices[0]
    assert (d.name, d.board, d.port, d.runs, d.tags, d.timeout, d.line) == \
        ("n1", "nucleo-f446re", "rfc2217://lab:4000", 5, ("a",), 90.0, 1)


@pytest.mark.parametrize("text, expected, line", [
    ('[[device]]\nname = "a"\nboard = "qemu-m4"\n\n[[device]]\nname = "a"\nboard = "qemu-m7"\n',
     "the name 'a' is already used by device #1", 5),
    ('[[device]]\nname = "a"\nboard = "qemu-m99"\n', "unknown board 'qemu-m99'", 1),
    ('[[device]]\nname = "a"\nboard = "nucleo-f446re"\n', "real board and has no `port`", 1),
    ('[[device]]\nname = "a"\nboard = "qemu-m4"\nrunz = 3\n', "unknown key(s) 'runz'", 1),
    ('[[device]]\nboard = "qemu-m4"\n', "needs a non-empty string `name`", 1),
    ('[[device]]\nname = "a"\nboard = "qemu-m4"\nruns = 0\n', "`runs` must be an integer >= 1", 1),
    ('[[device]]\nname = "a"\nboard = "qemu-m4"\ntags = "x"\n', "`tags` must be a list of strings", 1),
    (('[[device]]\nname = "a"\nboard = "nucleo-f446re"\nport = "/dev/ttyACM0"\n\n'
      '[[device]]\nname = "b"\nboard = "nucleo-f446re"\nport = "/dev/ttyACM0"\n'), "already used by device 'a'", 6),
    ('[[devices]]\nname = "a"\nboard = "qemu-m4"\n', "unknown top-level key(s) 'devices'", None),
    ('# nothing here\n', "lists no devices", None),
])
def test_bad_inventories(tmp_path, text, expected, line):
    with pytest.raises(FormicaryError) as err:
        load_inventory(_write(tmp_path, text))
    assert expected in err.value.cause
    assert err.value.fix
    if line is not None:
        assert err.value.details["line"] == line and f"inv.toml:{line}:" in err.value.cause


def test_bad_toml_gives_line(tmp_path):
    with pytest.raises(FormicaryError) as err:
        load_inventory(_write(tmp_path, '[[device]]\nname = "a"\nboard = qemu-m4\n'))
    assert "not valid TOML" in err.value.cause and "line 3" in err.value.cause
    assert err.value.details["line"] == 3


def test_cli_bad_inventory_exit_2(tmp_path):
    model = tmp_path / "m.tflite"  # never reached: the inventory is checked first
    inv = _write(tmp_path, '[[device]]\nname = "a"\nboard = "qemu-m4"\n[[device]]\nname = "a"\nboard = "qemu-m7"\n')
    r = subprocess.run([sys.executable, "-c", "from formicary.cli import main; main()", "fleet", str(inv),
                        str(model)], check=False, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "device #2 ('a'): the name 'a' is already used by device #1" in r.stderr
    assert "fix: give every device a unique name" in r.stderr
    r = subprocess.run([sys.executable, "-c", "from formicary.cli import main; main()", "fleet",
                        str(tmp_path / "missing.toml"), str(model), "--json"],
                       check=False, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and '"cause": "cannot read the inventory' in r.stdout
