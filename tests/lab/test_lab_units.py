"""The parts of the labgrid integration that need no lab: place references, inventories with places, the store's
place and lab-host columns, and what happens without labgrid installed."""
from __future__ import annotations

import sys

import pytest
from formicary.errors import FormicaryError


def test_place_reference_round_trips_and_defaults(monkeypatch):
    from formicary.lab import placeref

    monkeypatch.delenv("LG_COORDINATOR", raising=False)
    ref = placeref.parse("place:lab/l4r5-03")
    assert ref.name == "lab/l4r5-03" and ref.coordinator == "127.0.0.1:20408" and not ref.held
    port = placeref.place_port("lab/m4-1", "lab-server", wait=30, steal=True, held=True)
    assert port == "place:lab/m4-1@lab-server:20408?wait=30&steal=1&held=1"
    back = placeref.parse(port)
    assert (back.name, back.coordinator, back.wait, back.steal, back.held) == ("lab/m4-1", "lab-server:20408", 30.0,
                                                                               True, True)
    monkeypatch.setenv("LG_COORDINATOR", "10.0.0.5:4000")
    assert placeref.parse("place:x").coordinator == "10.0.0.5:4000"
    with pytest.raises(FormicaryError, match="names no place"):
        placeref.parse("place:@host")
    assert not placeref.is_place("socket://127.0.0.1:4000") and placeref.is_place(port)


def test_inventory_takes_places_and_tag_filters(tmp_path):
    from formicary.bench.fleet import load_inventory

    inv = tmp_path / "lab.toml"
    inv.write_text("""
[lab]
coordinator = "lab-server:20408"

[[device]]
name = "nucleo"
place = "lab/l4r5-03"

[[device]]
name = "m4s"
place_tags = { board = "qemu-m4", lab = "a" }
count = 3

[[device]]
name = "local"
board = "qemu-m7"
""")
    got = load_inventory(inv)
    assert got.coordinator == "lab-server:20408" and got.uses_lab
    nucleo, m4s, local = got.devices
    assert nucleo.place == "lab/l4r5-03" and nucleo.board == ""  # from the place's tag at run time
    assert m4s.board == "qemu-m4" and m4s.count == 3 and dict(m4s.place_tags) == {"board": "qemu-m4", "lab": "a"}
    assert local.place is None and not local.place_tags

    for body, match in [
        ('place = "p"\nport = "socket://h:1"\nboard = "qemu-m4"', "has both a `port` and a place"),
        ('place = "p"\nplace_tags = { board = "qemu-m4" }', "has both `place` and `place_tags`"),
        ('place = "p"\ncount = 2', "`count` must be an integer >= 1 with `place_tags`"),
        ('place_tags = {}', "`place_tags` must be a table"),
        ('board = "nucleo-f446re"', "real board and has no `port`"),
    ]:
        inv.write_text(f'[[device]]\nname = "d"\n{body}\n')
        with pytest.raises(FormicaryError, match=match):
            load_inventory(inv)


def test_store_records_the_place_and_lab_host(tmp_path):
    from formicary.store import SCHEMA_VERSION, ResultStore

    from tests.store.conftest import synthetic_result

    with ResultStore(tmp_path / "runs.sqlite") as st:
        assert st.schema_version == SCHEMA_VERSION >= 6
        lab = {"place": "lab/m4-1", "host": "lab-host-2", "coordinator": "lab-server:20408"}
        remote = st.get_run(st.record_result({**synthetic_result(), "lab": lab}))
        local = st.get_run(st.record_result(synthetic_result(seed=2)))
        assert remote["lab"] == lab and local["lab"] is None
        assert "lab" not in remote["extra"]  # columns, not extra_json
        assert [r["lab"] for r in st.list_runs()] == [None, lab]


def test_without_labgrid_the_commands_say_how_to_install_it(monkeypatch):
    from formicary.boards import load_board
    from formicary.lab import require_labgrid
    from formicary.target.bringup import target_for

    monkeypatch.setitem(sys.modules, "labgrid.remote.client", None)  # import fails as if not installed
    with pytest.raises(FormicaryError) as err:
        require_labgrid("formicary lab status")
    assert "pip install 'formicary[lab]'" in err.value.fix and "pyserial-labgrid" in err.value.fix
    with pytest.raises(FormicaryError, match="the place lab/m4-1 needs labgrid"):
        target_for(load_board("qemu-m4"), "place:lab/m4-1")
