"""`--dist loadgroup` that keeps working on pytest 9.2: tests marked `xdist_group(name)` run on one xdist worker.

pytest-xdist 3.8 tells its scheduler about groups by appending "@name" to each test's node id on the worker
(`item._nodeid`); pytest 9.2 builds node ids from a structured id, so that assignment no longer changes them and
the groups are silently ignored (pytest-dev/pytest-xdist#1386, fix pending in #1388). Here the workers write the
test -> group map to a file the controller names, and the controller's scheduler (xdist's LoadGroupScheduling)
reads it when it splits the tests into work units. With an xdist that groups by itself the map simply agrees.

Registered by tests/conftest.py (`pytest_plugins`); inert without xdist or with another --dist mode.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

WORKERINPUT_KEY = "formicary_xdist_groups"


def _group_of(item: pytest.Item) -> str | None:
    names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                    for m in item.iter_markers("xdist_group")})
    return "_".join(names) or None


def _loadgroup(config: pytest.Config) -> bool:
    return getattr(config.option, "dist", None) == "loadgroup" or bool(getattr(config.option, "loadgroup", False))


# ------------------------------------------------------------------------------------------ controller side
def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput") and config.pluginmanager.hasplugin("xdist"):
        config._formicary_groups_dir = None  # created when the first worker is configured


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """xdist hook (controller): tell each worker where to write its test -> group map."""
    config = node.config
    if getattr(config, "_formicary_groups_dir", None) is None:
        config._formicary_groups_dir = tempfile.mkdtemp(prefix="fm-xdist-groups-")
    node.workerinput[WORKERINPUT_KEY] = str(Path(config._formicary_groups_dir) / "groups.json")


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = getattr(config, "_formicary_groups_dir", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """xdist hook (controller): xdist's own group scheduler, its scopes taken from the workers' map."""
    if not _loadgroup(config) or getattr(config, "_formicary_groups_dir", None) is None:
        return None
    from xdist.scheduler import LoadGroupScheduling

    groups_file = Path(config._formicary_groups_dir) / "groups.json"

    class FileGroupScheduling(LoadGroupScheduling):
        _groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self._groups is None:  # first called once every worker has finished collecting
                self._groups = json.loads(groups_file.read_text()) if groups_file.is_file() else {}
            group = self._groups.get(nodeid)
            return group if group is not None else super()._split_scope(nodeid)

    return FileGroupScheduling(config, log)


# ---------------------------------------------------------------------------------------------- worker side
@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Before xdist sends the collected ids to the controller: write {node id: group} (same on every worker)."""
    config = session.config
    target = getattr(config, "workerinput", {}).get(WORKERINPUT_KEY)
    if not target or not _loadgroup(config):
        return
    groups = {item.nodeid: g for item in session.items if (g := _group_of(item)) is not None}
    tmp = f"{target}.{os.getpid()}.tmp"
    Path(tmp).write_text(json.dumps(groups))
    os.replace(tmp, target)
