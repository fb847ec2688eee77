"""Where formicary's non-Python parts live: the firmware sources (`firmware/`) and the board definitions with the
PlatformIO dev-platform (`boards/`).

Looked up in this order: $FORMICARY_HOME (a checkout or an unpacked copy), the source checkout this package was
imported from (editable installs, running from the repository), and the copies packed into the wheel under
`formicary/_resources/` (a plain `pip install`). One lookup for every module that needs them.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from formicary.errors import FormicaryError

_PACKAGE_DIR = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE_DIR.parents[1]  # host/formicary -> the repository root
_PACKED = _PACKAGE_DIR / "_resources"


def _is_home(root: Path) -> bool:
    return (root / "firmware" / "runtime").is_dir() and (root / "boards" / "platform").is_dir()


@lru_cache(maxsize=1)
def resource_root() -> Path:
    """The folder holding `firmware/` and `boards/`."""
    given = os.environ.get("FORMICARY_HOME")
    if given:
        if not _is_home(Path(given)):
            raise FormicaryError(f"FORMICARY_HOME={given} holds no firmware/ and boards/platform/.",
                                 "point it at a formicary checkout, or unset it.")
        return Path(given).resolve()
    for root in (_CHECKOUT, _PACKED):
        if _is_home(root):
            return root
    raise FormicaryError("formicary's firmware sources and board definitions were not found "
                         f"(looked in {_CHECKOUT} and {_PACKED}).",
                         "reinstall formicary (`pip install formicary`), or set FORMICARY_HOME to a checkout.")


def firmware_dir() -> Path:
    return resource_root() / "firmware"


def boards_dir() -> Path:
    return resource_root() / "boards"


def platform_dir() -> Path:
    """The project-local PlatformIO dev-platform."""
    return boards_dir() / "platform"


__all__ = ["boards_dir", "firmware_dir", "platform_dir", "resource_root"]
