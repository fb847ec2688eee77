"""Wall time of `formicary inspect` on the MLPerf Tiny KWS model, as a user runs it (a fresh subprocess).

Prints JSON. Baselines measured in the same run on the same machine: `python -c pass` (interpreter start-up)
and `python -c "import formicary.cli"` (CLI import), so ratios stay meaningful on a loaded machine.
Usage: python benchmarks/inspect_speed.py [MODEL] [--repeat N]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO.parent / "shared" / "models" / "kws_ref_model.tflite"


def _time(cmd: list[str], repeat: int) -> dict:
    walls = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        walls.append(time.perf_counter() - t0)
        if res.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr[-500:]}")
    return {"median_s": round(statistics.median(walls), 4), "min_s": round(min(walls), 4),
            "runs": [round(w, 4) for w in walls]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default=str(DEFAULT_MODEL))
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    if not Path(args.model).is_file():
        raise SystemExit(f"model {args.model} not found (the KWS model lives in ../shared/models)")
    formicary = str(Path(sys.executable).parent / "formicary")
    py = sys.executable
    results = {
        "baseline_python_startup": _time([py, "-c", "pass"], args.repeat),
        "baseline_cli_import": _time([py, "-c", "import formicary.cli"], args.repeat),
        "inspect": _time([formicary, "inspect", args.model, "--board", "nucleo-l4r5zi"], args.repeat),
        "inspect_no_arena": _time([formicary, "inspect", args.model, "--no-arena"], args.repeat),
    }
    inspect = results["inspect"]["median_s"]
    print(json.dumps({
        "benchmark": "inspect_speed",
        "model": args.model,
        "unit": "s (wall, median of runs, fresh subprocess each)",
        "results": results,
        "ratio_vs_python_startup": round(inspect / results["baseline_python_startup"]["median_s"], 2),
        "ratio_vs_cli_import": round(inspect / results["baseline_cli_import"]["median_s"], 2),
        "target_s": 2.0,
        "meets_target": inspect < 2.0,
    }, indent=2))


if __name__ == "__main__":
    main()
