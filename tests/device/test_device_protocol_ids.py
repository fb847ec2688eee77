"""The protocol's numbers have one source on each side that must agree: firmware/protocol/fm_protocol_ids.h for the
firmware, formicary.device.frames (used by session.py) for the host. Every #define in the header is compared
with its host counterpart, none may be left unchecked, and the comparison is shown to catch a change of any one
of them."""
from __future__ import annotations

import re
import struct
import subprocess

from tests.support import hostbuild
import pytest
from formicary.device import frames, session

HEADER = hostbuild.FW / "protocol" / "fm_protocol_ids.h"
DEFINE = re.compile(r"^\s*#\s*define\s+(\w+)(.*)$")
INT = re.compile(r"^(0[xX][0-9a-fA-F]+|[0-9]+)[uU]?$")
STR = re.compile(r'^"([^"\\]*)"$')
GUARD = "FM_PROTOCOL_IDS_H"

# layout prefix in C -> name of the struct.Struct in frames
LAYOUTS = {
    "RUN_ARGS": "RUN_ARGS", "RUN_RESP": "RUN_RESP", "PROGRESS": "RUN_PROGRESS", "LOAD_INPUT_HDR": "LOAD_INPUT_HDR",
    "LOAD_INPUT_RESP": "LOAD_INPUT_RESP", "READ_OUTPUT": "READ_OUTPUT", "READ_OUTPUT_RESP_HDR": "READ_OUTPUT_RESP_HDR",
    "READ_TIMINGS": "READ_TIMINGS", "READ_LAYERS": "READ_LAYERS", "READ_POWER": "READ_POWER",
    "POWER_HDR": "POWER_HEADER", "POWER_REC": "POWER_RECORD", "POWER_START": "POWER_START",
    "PROGRESS_ROUTE": "RUN_PROGRESS_ROUTE", "READ_ROUTES": "READ_ROUTES",
}


def parse(text: str) -> dict[str, int | str]:
    """NAME -> int or str for every #define; anything that is not a plain literal is an error, not skipped."""
    values: dict[str, int | str] = {}
    for line in text.splitlines():
        m = DEFINE.match(line)
        if not m:
            continue
        name, rest = m.group(1), re.sub(r"/\*.*?\*/", "", m.group(2)).strip()
        if name == GUARD and rest == "":
            continue
        if name in values:
            raise AssertionError(f"{HEADER.name}: {name} is defined twice")
        if (i := INT.match(rest)) is not None:
            values[name] = int(i.group(1), 0)
        elif (s := STR.match(rest)) is not None:
            values[name] = s.group(1)
        else:
            raise AssertionError(f"{HEADER.name}: {name} is not a plain integer or string literal: {rest!r}")
    return values


def host_values() -> dict[str, int | str]:
    """What the host uses, under the firmware's names."""
    want: dict[str, int | str] = {
        "FM_PROTO_VERSION": frames.PROTO_VERSION, "FM_HDR_BYTES": frames.HDR_BYTES,
        "FM_CRC_BYTES": frames.CRC_BYTES, "FM_MAX_PAYLOAD": frames.MAX_PAYLOAD, "FM_MAX_RUNS": frames.MAX_RUNS,
        "FM_RUN_FLAG_PROFILE": frames.RUN_FLAG_PROFILE, "FM_RUN_FLAG_POWER_LAYERS": frames.RUN_FLAG_POWER_LAYERS,
        "FM_PROGRESS_WARMUP": frames.PROGRESS_WARMUP, "FM_PROGRESS_MEASURED": frames.PROGRESS_MEASURED,
        "FM_PROGRESS_ACCEPTED": frames.PROGRESS_ACCEPTED,
        "FM_CAP_POWER_PRESENT": frames.CAP_POWER_PRESENT, "FM_CAP_POWER_BUILT": frames.CAP_POWER_BUILT,
        "FM_CAP_ROUTES": frames.CAP_ROUTES,
        "FM_TIMER_KIND_SYSTICK": frames.TIMER_KIND_SYSTICK, "FM_TIMER_KIND_DWT": frames.TIMER_KIND_DWT,
        "FM_POWER_KIND_SAMPLES": frames.POWER_KIND_SAMPLES, "FM_POWER_KIND_STARTS": frames.POWER_KIND_STARTS,
    }
    want.update({f"FM_MSG_{m.name}": int(m) for m in frames.Msg})
    want.update({f"FM_E_{e.name}": int(e) for e in frames.ErrorCode})
    for prefix, attr in LAYOUTS.items():
        st = getattr(frames, attr)
        want[f"FM_{prefix}_LAYOUT"] = st.format
        want[f"FM_{prefix}_BYTES"] = st.size
    return want


def mismatches(c: dict[str, int | str]) -> dict[str, tuple]:
    """name -> (firmware, host) for every value that differs or exists on one side only."""
    host = host_values()
    out = {n: (c.get(n), host.get(n)) for n in sorted(set(c) | set(host)) if c.get(n) != host.get(n)}
    for n, v in c.items():  # a layout and its size must agree within the header too
        if n.endswith("_LAYOUT") and isinstance(v, str):
            size = c.get(n[: -len("LAYOUT")] + "BYTES")
            try:
                ok = struct.calcsize(v) == size
            except struct.error:
                ok = False
            if not ok:
                out.setdefault(n, (v, f"calcsize != {size}"))
    return out


def test_every_protocol_constant_matches_the_host():
    c = parse(HEADER.read_text())
    assert len(c) >= 60  # the header was really read
    assert mismatches(c) == {}


def test_session_uses_the_same_tables():
    assert session.POWER_HEADER is frames.POWER_HEADER and session.POWER_RECORD is frames.POWER_RECORD
    assert set(session.TIMER_KINDS) == {frames.TIMER_KIND_SYSTICK, frames.TIMER_KIND_DWT}
    assert session.LOAD_CHUNK == frames.MAX_PAYLOAD - frames.LOAD_INPUT_HDR.size
    assert frames.HEADER.size == frames.HDR_BYTES


def _mutations(text: str):
    """(name, header text with that one define changed) for every define."""
    lines = text.splitlines()
    for k, line in enumerate(lines):
        m = DEFINE.match(line)
        if not m or m.group(1) == GUARD:
            continue
        name = m.group(1)
        if '"' in line:
            changed = re.sub(r'"([^"]*)"', lambda s: '"' + s.group(1) + 'B"', line, count=1)
        else:
            changed = re.sub(r"\b(0[xX][0-9a-fA-F]+|[0-9]+)([uU]?)", lambda i: f"{int(i.group(1), 0) + 1}{i.group(2)}",
                             line[m.start(2):], count=1)
            changed = line[: m.start(2)] + changed
        assert changed != line, name
        yield name, "\n".join(lines[:k] + [changed] + lines[k + 1:])


def test_a_changed_value_on_either_side_is_caught(monkeypatch):
    text = HEADER.read_text()
    seen = 0
    for name, mutated in _mutations(text):
        assert name in mismatches(parse(mutated)), f"changing {name} in the header went unnoticed"
        seen += 1
    assert seen == len(parse(text))
    # a define the host does not know, and a host value changed
    assert "FM_NEW_THING" in mismatches({**parse(text), "FM_NEW_THING": 1})
    monkeypatch.setattr(frames, "RUN_FLAG_POWER_LAYERS", 4)
    assert "FM_RUN_FLAG_POWER_LAYERS" in mismatches(parse(text))
    monkeypatch.setattr(frames, "POWER_RECORD", struct.Struct("<IHhhHH"))
    assert {"FM_POWER_REC_LAYOUT", "FM_POWER_REC_BYTES"} <= set(mismatches(parse(text)))


def test_the_compiler_reads_the_header_as_the_test_does(tmp_path):
    """The literals parsed above are what C code sees (and C code uses the header without redefining it)."""
    cc = hostbuild.compiler()
    if cc is None:
        pytest.skip("no host C compiler")
    values = parse(HEADER.read_text())
    src = tmp_path / "dump.c"
    body = "\n".join(f'    printf("{n}=%s\\n", {n});' if isinstance(v, str)
                     else f'    printf("{n}=%llu\\n", (unsigned long long){n});' for n, v in values.items())
    src.write_text(f'#include <stdio.h>\n#include "fm_protocol_ids.h"\n#include "fm_frame.h"\n#include "fm_app.h"\n'
                   f"int main(void)\n{{\n{body}\n    return 0;\n}}\n")
    exe = tmp_path / "dump"
    subprocess.run([cc, "-std=c11", "-Wall", "-Wextra", "-Werror", *hostbuild.INCLUDES, str(src), "-o", str(exe)],
                   check=True, capture_output=True, text=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.splitlines()
    seen = dict(line.split("=", 1) for line in out)
    assert seen == {n: str(v) for n, v in values.items()}
