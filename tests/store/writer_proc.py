"""A bench-like writer process for the crash and concurrency tests (run as a script, not collected).

usage: writer_proc.py STORE NAME N [START_AT_EPOCH]
Begins one run for board NAME, then appends N samples one transaction each (value = 1000 + i), printing
"wrote i" after each commit so the parent knows what is durable; every 25 samples it also appends a layer
timing and an output. Finishes the run complete at the end.
"""
from __future__ import annotations

import sys
import time

from formicary.store import ResultStore


def main() -> None:
    path, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if len(sys.argv) > 4:  # start together with the other writer, to collide as much as possible
        while time.time() < float(sys.argv[4]):
            time.sleep(0.001)
    store = ResultStore(path)
    run_id = store.begin_run({"board": name, "latency": {"unit": "instructions", "method": "qemu-icount-systick"},
                              "model": {"name": "writer", "sha256": "ab" * 32}})
    print(f"run {run_id}", flush=True)
    for i in range(n):
        store.add_samples(run_id, [1000 + i])
        if i % 25 == 0:
            store.add_layer_timings(run_id, [{"index": 0, "op": "CONV_2D", "unit": "instructions",
                                              "samples": [i]}])
            store.add_outputs(run_id, [{"input": f"{i}.bin", "label": 1, "predicted": 1, "match_reference": True}])
        print(f"wrote {i}", flush=True)
    store.finish_run(run_id, True)
    store.close()
    print("done", flush=True)


if __name__ == "__main__":
    main()
