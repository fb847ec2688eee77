"""Places from an inventory file, created or updated idempotently through labgrid's API (docs/lab.md).

    coordinator = "lab-server:20408"   # optional (else --coordinator / LG_COORDINATOR)
    [[place]]
    name = "lab/l4r5-03"
    tags = { board = "nucleo-l4r5zi", lab = "a" }
    matches = ["lab-host-1/l4r5-03/*"]   # exporter/group/class[/name]
    comment = "USB hub 2, port 3"        # optional

Running it twice changes nothing the second time; a place's tags are set to exactly the file's, its matches
are added when missing (never removed: a lab admin may have added more by hand).
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from formicary.errors import FormicaryError

_PLACE_KEYS = {"name", "tags", "matches", "comment"}
_TAG_KEY = re.compile(r"^[a-z][a-z0-9_]+$")


def load_places(path: str | Path) -> tuple[str | None, list[dict[str, Any]]]:
    """(coordinator or None, places) from a places file; every problem names the place."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise FormicaryError(f"cannot read the places file {path}: {exc}.", "see the example in docs/lab.md.") from exc
    extra = sorted(set(data) - {"coordinator", "place"})
    if extra:
        raise FormicaryError(f"{path}: unknown key(s) {', '.join(extra)}.", "use `coordinator` and [[place]] tables.")
    places = []
    for k, p in enumerate(data.get("place") or []):
        where = f"{path}: place #{k + 1}" + (f" ({p.get('name')!r})" if isinstance(p, dict) and p.get("name") else "")
        if not isinstance(p, dict) or not isinstance(p.get("name"), str) or not p["name"]:
            raise FormicaryError(f"{where} needs a `name`.", "e.g. name = \"lab/m4-1\".")
        bad = sorted(set(p) - _PLACE_KEYS)
        if bad:
            raise FormicaryError(f"{where}: unknown key(s) {', '.join(bad)}.", f"use {', '.join(sorted(_PLACE_KEYS))}.")
        tags = p.get("tags", {})
        if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
            raise FormicaryError(f"{where}: `tags` must be a table of strings.", "e.g. tags = { board = \"qemu-m4\" }.")
        for key in tags:
            if not _TAG_KEY.match(key):
                raise FormicaryError(f"{where}: tag key {key!r} is not valid for labgrid.",
                                     "tag keys are lower-case letters, digits and _, starting with a letter.")
        matches = p.get("matches", [])
        if not isinstance(matches, list) or not all(isinstance(m, str) and 2 <= m.count("/") <= 3 for m in matches):
            raise FormicaryError(f"{where}: `matches` must be a list of exporter/group/class[/name] patterns.",
                                 "e.g. matches = [\"lab-host-1/l4r5-03/*\"].")
        places.append({"name": p["name"], "tags": dict(tags), "matches": list(matches), "comment": p.get("comment")})
    if not places:
        raise FormicaryError(f"{path} lists no [[place]].", "add one [[place]] table per board.")
    return data.get("coordinator"), places


def apply_places(client: Any, places: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Create/update every place through CLIENT (a LabClient); one entry per place with what changed."""
    return [client.ensure_place(p["name"], tags=p["tags"], matches=p["matches"], comment=p["comment"])
            for p in places]


__all__ = ["apply_places", "load_places"]
