"""Write seed inputs for the fuzzer: one valid frame per command (plus a few sequences), built with the host
codec, so libFuzzer starts past the CRC check. Usage: python tests/fuzz/make_corpus.py [DIR]"""
from __future__ import annotations

import struct
import sys
from pathlib import Path

from formicary.device.frames import Msg, encode

FAKE_IN = 40  # the fuzz build's fake model input size (-DFM_FAKE_IN_BYTES=40)


def seeds() -> dict[str, bytes]:
    load = encode(Msg.LOAD_INPUT, 2, struct.pack("<BI", 0, 0) + bytes(range(FAKE_IN)))
    run = encode(Msg.RUN, 3, struct.pack("<IIB", 2, 1, 1))
    return {
        "hello": encode(Msg.HELLO, 1),
        "load": load,
        "load_half": encode(Msg.LOAD_INPUT, 2, struct.pack("<BI", 0, 20) + bytes(20)),
        "run": run,
        "read_output": encode(Msg.READ_OUTPUT, 4, struct.pack("<BIH", 0, 0, 12)),
        "read_timings": encode(Msg.READ_TIMINGS, 5, struct.pack("<IH", 0, 2)),
        "read_layers": encode(Msg.READ_LAYER_TIMINGS, 6, struct.pack("<HH", 0, 2)),
        "read_routes": encode(Msg.READ_ROUTES, 8, struct.pack("<IH", 0, 2)),
        "reset": encode(Msg.RESET, 7),
        "session": encode(Msg.HELLO, 1) + load + run + run
        + encode(Msg.READ_OUTPUT, 4, struct.pack("<BIH", 0, 0, 12))
        + encode(Msg.READ_LAYER_TIMINGS, 6, struct.pack("<HH", 0, 2))
        + encode(Msg.READ_TIMINGS, 5, struct.pack("<IH", 0, 2))
        + encode(Msg.READ_ROUTES, 8, struct.pack("<IH", 0, 2)),
    }


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("corpus")
    out.mkdir(parents=True, exist_ok=True)
    for name, data in seeds().items():
        (out / name).write_bytes(data)
    print(out)


if __name__ == "__main__":
    main()
