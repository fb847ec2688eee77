"""`python -m formicary.oracle.tflm_probe MODEL ARENA_BYTES`: does TFLM allocate and invoke MODEL with that arena?

Exit 0 when it runs, 1 when it does not; a crash of the TFLM constructor (it segfaults for some too-small arenas)
ends this process by a signal, which the caller (`tflm.measure_arena`) also reads as "does not run".
"""
from __future__ import annotations

import faulthandler
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or not args[1].isdigit():
        print("usage: python -m formicary.oracle.tflm_probe MODEL ARENA_BYTES", file=sys.stderr)
        return 2
    faulthandler.disable()  # an expected crash must not print a traceback dump
    from formicary.oracle.tflm import _runs_with_arena, capture_c_stderr

    with capture_c_stderr():  # TFLM's allocation failures are expected here; the caller only needs the verdict
        return 0 if _runs_with_arena(Path(args[0]).read_bytes(), int(args[1])) else 1


if __name__ == "__main__":
    sys.exit(main())
