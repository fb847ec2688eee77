#!/usr/bin/env python3
"""The virtual SBC: time to build it from nothing (with --rebuild), time to boot it to SSH, and a model's latency
inside it with each TFLite runtime the image has.

usage: benchmarks/virtual_sbc.py [--rebuild] [--boots N] [--runs N] [--warmup N] [--threads N] [--model M.tflite]
Prints one JSON document (progress on stderr).

- build_seconds: `build_image(force=True)` after deleting the cached wheels (Debian packages come from the
  mirror, wheels from PyPI); without --rebuild, the figure recorded in the image's manifest when it was built.
- boot_to_ssh_seconds: from starting qemu-system-aarch64 to the first successful `ssh ... true` (each boot fresh:
  the disk is opened snapshot=on).
- latency: one invoke timed with time.perf_counter inside the guest, after warm-up, on random int8/float input,
  per runtime (tflite-runtime in /opt/tflite-runtime, ai-edge-litert in /opt/litert). The guest is a TCG-emulated
  Cortex-A72 on this host: EMULATED time, not what a Raspberry Pi measures.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host"))

from formicary.target import virtual_sbc as vsbc

DEFAULT_MODEL = ROOT.parent / "shared" / "models" / "kws_ref_model.tflite"
GUEST_MODEL = "/tmp/model.tflite"

# runs inside the guest: stdlib + numpy + the runtime
GUEST_SCRIPT = r"""
import json, sys, time
import numpy as np
try:
    from tflite_runtime.interpreter import Interpreter
    import tflite_runtime as rt; name = "tflite_runtime"
except ImportError:
    from ai_edge_litert.interpreter import Interpreter
    import ai_edge_litert as rt; name = "ai_edge_litert"
runs, warmup, threads = RUNS, WARMUP, THREADS
t0 = time.perf_counter()
interp = Interpreter(model_path=MODEL, num_threads=threads)
interp.allocate_tensors()
load_ms = (time.perf_counter() - t0) * 1e3
rng = np.random.default_rng(0)
for d in interp.get_input_details():
    if np.issubdtype(d["dtype"], np.integer):
        info = np.iinfo(d["dtype"])
        x = rng.integers(info.min, info.max + 1, size=d["shape"]).astype(d["dtype"])
    else:
        x = rng.standard_normal(d["shape"]).astype(d["dtype"])
    interp.set_tensor(d["index"], x)
for _ in range(warmup):
    interp.invoke()
times = []
for _ in range(runs):
    t = time.perf_counter(); interp.invoke(); times.append((time.perf_counter() - t) * 1e3)
print(json.dumps({"runtime": name, "version": getattr(rt, "__version__", None), "numpy": np.__version__,
                  "load_ms": load_ms, "times_ms": times}))
"""


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _ssh(endpoint: vsbc.SshEndpoint, *remote: str, stdin: bytes | None = None) -> str:
    result = subprocess.run(endpoint.ssh_command(*remote), input=stdin, capture_output=True, timeout=600,
                            check=False)
    if result.returncode != 0:
        raise SystemExit(f"ssh {' '.join(remote)} failed: {result.stderr.decode(errors='replace')}")
    return result.stdout.decode()


def latency(endpoint: vsbc.SshEndpoint, model: Path, runs: int, warmup: int, threads: int) -> dict:
    _ssh(endpoint, "cat", ">", GUEST_MODEL, stdin=model.read_bytes())
    script = (GUEST_SCRIPT.replace("RUNS", str(runs)).replace("WARMUP", str(warmup))
              .replace("THREADS", str(threads)).replace("MODEL", repr(GUEST_MODEL)))
    out = {}
    for python in (vsbc.TFLITE_RUNTIME_PYTHON, vsbc.LITERT_PYTHON):
        _log(f"  {python}: {warmup} warm-up + {runs} timed invokes")
        data = json.loads(_ssh(endpoint, python, "-", stdin=script.encode()).strip().splitlines()[-1])
        times = sorted(data.pop("times_ms"))
        out[data["runtime"]] = {**data, "python": python, "threads": threads, "runs": runs, "warmup": warmup,
                                "median_ms": round(statistics.median(times), 3), "min_ms": round(times[0], 3),
                                "p90_ms": round(times[int(0.9 * (len(times) - 1))], 3),
                                "load_ms": round(data["load_ms"], 1)}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rebuild", action="store_true", help="build from nothing first (root; ~3 min)")
    parser.add_argument("--boots", type=int, default=1, help="boot-to-SSH measurements (default 1)")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    args = parser.parse_args()

    result: dict = {"machine": "qemu-system-aarch64 " + " ".join(vsbc.MACHINE),
                    "method": "time.perf_counter inside the guest; emulated (TCG) time, not a Pi's"}
    if args.rebuild:
        shutil.rmtree(vsbc.image_dir() / "wheels", ignore_errors=True)
        start = time.perf_counter()
        vsbc.build_image(progress=lambda m: _log(f"build: {m} (+{time.perf_counter() - start:.0f} s)"),
                         force=True)
        result["build"] = {"seconds": round(time.perf_counter() - start, 1), "from": "nothing (--rebuild)"}
    status = vsbc.image_status()
    if not status["built"]:
        raise SystemExit(f"the virtual SBC is not built: run `{vsbc.BUILD_COMMAND}` or pass --rebuild")
    result.setdefault("build", {"seconds": status["build_seconds"], "from": f"the manifest ({status['built_at']})"})
    result["image"] = {k: status[k] for k in ("dir", "size_bytes", "disk_bytes", "used_bytes", "versions")}

    boots = []
    for i in range(args.boots):
        vm = vsbc.VirtualSbc()
        with vm as endpoint:
            boots.append(vm.boot_seconds)
            _log(f"boot {i + 1}: SSH up after {vm.boot_seconds:.1f} s")
            if i == args.boots - 1 and args.model.is_file():
                result["latency"] = {"model": str(args.model), **latency(endpoint, args.model, args.runs,
                                                                         args.warmup, args.threads)}
    result["boot_to_ssh_seconds"] = boots
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
