"""Per-model symbol prefixes, so that several generated models link into one program (`formicary export`).

`generate` emits one model's API as `fm_invoke()`, `FM_ARENA_BYTES`, ... in fm_model.h / fm_model.c. Two such
models in one program clash at link time (and their headers clash in one translation unit). `prefix_model`
renames the model's external symbols and macros to `<name>_invoke()`, `<NAME>_ARENA_BYTES`, ... in the emitted
text; everything else the model file defines is `static`, and the runtime and kernel functions it calls stay
`fm_*`: they are shared by every model of the program (one copy each).

With `shared_arena`, the model's arena is not its own static array but `fm_shared_arena`, defined once by the
export (fm_shared_arena.c) with the size of the largest model using it: for applications that run one model at a
time (keyword spotting, then a visual wake word...), RAM is the largest arena instead of the sum.

This module only rewrites text the emitter produced; `check_prefixed` refuses output that still defines an
unprefixed external symbol, so a new public symbol added to the emitter fails loudly here instead of at the
user's link step.
"""
from __future__ import annotations

import re

from formicary.errors import FormicaryError

# External functions and objects of fm_model.c (codegen/emitter.py), and the header's macros.
PUBLIC_SYMBOLS = ("fm_input_data", "fm_input_bytes", "fm_output_data", "fm_output_bytes", "fm_invoke",
                  "fm_model_route", "fm_op_info", "fm_input_info", "fm_output_info")
PUBLIC_MACROS = ("FM_ARENA_BYTES", "FM_NUM_INPUTS", "FM_NUM_OUTPUTS", "FM_NUM_OPS", "FM_NUM_SUBGRAPHS",
                 "FM_MODEL_HASH", "FM_PRESERVES_INPUTS")
SHARED_ARENA = "fm_shared_arena"
SHARED_ARENA_HEADER = "fm_shared_arena.h"
SHARED_ARENA_MACRO = "FM_SHARED_ARENA_BYTES"

_NAME = re.compile(r"[a-z][a-z0-9_]{0,30}")
_ARENA_DEF = re.compile(r"^static uint8_t fm_arena\[.*;$", re.MULTILINE)
# a file-scope definition or declaration that is not static: "<type words> fm_xxx[...] / (...) / = ..."
_EXTERNAL = re.compile(r"^(?!static\b|#|/\*|\s|})(?:[A-Za-z_][\w \*]*?\s\**)(fm_\w+)\s*[\[(=;]", re.MULTILINE)


def check_name(name: str) -> str:
    """A model name usable as a C prefix: lower-case identifier, 1-31 characters, not starting with `fm_`."""
    if not _NAME.fullmatch(name) or name.startswith("fm_") or name == "fm":
        raise FormicaryError(f"model name {name!r} cannot prefix C symbols.",
                             "use --name with a lower-case C identifier (letters, digits, _; at most 31 "
                             "characters, not starting with fm_), e.g. --name kws.")
    return name


def default_name(file_stem: str) -> str:
    """A prefix from a model's file name: `kws_ref_model.tflite` -> `kws_ref_model`, `VWW-96.tflite` -> `vww_96`."""
    name = re.sub(r"[^a-z0-9_]+", "_", file_stem.lower()).strip("_")
    if not name or not name[0].isalpha():
        name = "m_" + name
    if name.startswith("fm_"):
        name = "model_" + name
    return name[:31].rstrip("_")


def _rename(text: str, name: str) -> str:
    upper = name.upper()
    for sym in PUBLIC_SYMBOLS:
        text = re.sub(rf"\b{sym}\b", name + sym[2:], text)
    for macro in PUBLIC_MACROS:
        text = re.sub(rf"\b{macro}\b", upper + macro[2:], text)
    return text


def prefix_model(header: str, source: str, name: str, *, shared_arena: bool = False) -> tuple[str, str]:
    """(header, source) of fm_model.h / fm_model.c renamed for model `name` (files `<name>_model.h/.c`)."""
    check_name(name)
    upper = name.upper()
    h = _rename(header, name).replace("#ifndef FM_MODEL_H", f"#ifndef {upper}_MODEL_H") \
        .replace("#define FM_MODEL_H", f"#define {upper}_MODEL_H").replace("/* FM_MODEL_H */", f"/* {upper}_MODEL_H */")
    h = h.replace("formicary-rt model API.", f"formicary-rt model API of model `{name}`.", 1)
    s = _rename(source, name).replace('#include "fm_model.h"', f'#include "{name}_model.h"')
    if shared_arena:
        arena = (f'#include "{SHARED_ARENA_HEADER}"\n'
                 f"/* Shared arena (formicary export --shared-arena): run one model of the program at a time. */\n"
                 f"#define fm_arena {SHARED_ARENA}\n"
                 f"_Static_assert({upper}_ARENA_BYTES <= {SHARED_ARENA_MACRO}, "
                 f"\"the shared arena is smaller than model {name}'s: re-export\");")
        s, n = _ARENA_DEF.subn(arena, s)
        if n != 1:
            raise FormicaryError("the generated model has no single static arena to share.",
                                 "this is a formicary bug (codegen/prefix.py no longer matches the emitter).")
    check_prefixed(s, name)
    return h, s


def check_prefixed(source: str, name: str) -> None:
    """Raise when the prefixed source still defines an external `fm_*` symbol (it would clash between models)."""
    left = sorted({m.group(1) for m in _EXTERNAL.finditer(source)} - {SHARED_ARENA})
    if left:
        raise FormicaryError(f"the generated model {name} still defines unprefixed external symbols: "
                             f"{', '.join(left)}.",
                             "this is a formicary bug: add them to PUBLIC_SYMBOLS in codegen/prefix.py.")
