#!/usr/bin/env python3
"""Flash and RAM of a user PlatformIO application with zero, one and two models from `formicary export`.

usage: benchmarks/export_app_sizes.py [--board qemu-m4] [--json out.json]
The application (tests/support/exportapps.py) writes a fixed input into each model, invokes it and prints the
outputs on the UART. Configurations: no model (the application alone), KWS (../shared/models/kws_ref_model.tflite),
KWS + a VWW-style MobileNetV1 (48x48x3 int8, random weights: tests/support/netmodels.py) with separate arenas, and
the same two with one shared arena (--shared-arena). Each is exported into the project's lib/, built with
PlatformIO offline (-O2) and run on the virtual board, outputs checked bit-exact with TFLM. Flash = .text +
.data + .ARM.exidx + init arrays; RAM = .data + .bss + .stack (the platform's 8 KB stack included).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
KWS = ROOT.parent / "shared" / "models" / "kws_ref_model.tflite"


def main() -> int:
    import numpy as np
    from formicary.build import elf_sizes
    from formicary.export import export_model
    from formicary.oracle.tflm import run_tflm
    from formicary.toolchain import run_pio

    from tests.support.exportapps import (
        app_main,
        parse_outputs,
        platformio_project,
        run_on_virtual_board,
    )
    from tests.support.netmodels import mobilenet_v1

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--board", default="qemu-m4")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not KWS.is_file():
        print(f"needs {KWS}", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        vww = Path(tmp) / "vww.tflite"
        vww.write_bytes(mobilenet_v1())
        configs = {"no model": [], "kws": [("kws", KWS, False)],
                   "kws + vww, separate arenas": [("kws", KWS, False), ("vww", vww, False)],
                   "kws + vww, shared arena": [("kws", KWS, True), ("vww", vww, True)]}
        for label, models in configs.items():
            project = platformio_project(Path(tmp) / label.replace(" ", "_").replace(",", "").replace("+", "and"),
                                         args.board)
            rng = np.random.default_rng(0)
            runs, arenas = [], {}
            for name, path, shared in models:
                r = export_model(path, args.board, "platformio", project / "lib" / "models", name=name,
                                 shared_arena=shared)
                entry = next(m for m in r["models"] if m["name"] == name)
                arenas[name] = entry["arena_bytes"]
                runs.append((name, [rng.integers(-128, 128, size=t["shape"], dtype=np.int8)
                                    for t in entry["inputs"]], path))
            (project / "src" / "main.c").write_text(app_main([(n, x) for n, x, _ in runs]))
            proc = run_pio(["run"], cwd=project)
            if proc.returncode != 0:
                print(proc.stdout[-3000:] + proc.stderr[-3000:], file=sys.stderr)
                return 1
            elf = project / ".pio" / "build" / "app" / "program.elf"
            flash, ram = elf_sizes(elf)
            got = parse_outputs(run_on_virtual_board(elf, args.board))
            exact = all(got[n][0] == 0 and [o.tobytes() for o in run_tflm(p, [x])[0]] == got[n][1]
                        for n, x, p in runs)
            rows.append({"config": label, "flash_bytes": flash, "ram_bytes": ram, "arenas": arenas,
                         "bit_exact_with_tflm": exact})
    print(f"{'application':<30} {'flash B':>9} {'RAM B':>9}  arenas  bit-exact")
    for r in rows:
        print(f"{r['config']:<30} {r['flash_bytes']:>9,} {r['ram_bytes']:>9,}  {r['arenas']}  {r['bit_exact_with_tflm']}")
    if args.json:
        args.json.write_text(json.dumps({"board": args.board, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
