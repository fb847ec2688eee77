"""Numbers for docs/lab.md: the overhead of a board reached through a labgrid place over the same virtual board
started here, and a fleet of 4 boards on 2 lab hosts in parallel vs one after another. Everything on loopback:
a coordinator and two `formicary lab export` hosts are started and stopped by this script.

    python scripts/lab_benchmark.py MODEL.tflite [--repeat 5] [--runs 20] [--inputs 5] [--json]

Needs formicary[lab], qemu-system-arm and the ARM toolchain.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HOSTS = {"host-a": ("a1", "a2"), "host-b": ("b1", "b2")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_lab(root: Path) -> tuple[str, list[subprocess.Popen]]:
    exe = shutil.which("labgrid-coordinator", path=os.path.dirname(sys.executable)) or "labgrid-coordinator"
    port = _free_port()
    coordinator = f"127.0.0.1:{port}"
    procs = [subprocess.Popen([exe, "-l", coordinator], cwd=root, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)]
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    for name, boards in HOSTS.items():
        cfg = root / f"{name}.toml"
        cfg.write_text(f'name = "{name}"\ncoordinator = "{coordinator}"\n'
                       + "".join(f'[[board]]\nname = "{b}"\nboard = "qemu-m4"\n' for b in boards))
        p = subprocess.Popen([sys.executable, "-c", "from formicary.cli import main; main()", "lab", "export",
                              str(cfg), "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                             start_new_session=True)
        json.loads(p.stdout.readline())
        procs.append(p)
    return coordinator, procs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--inputs", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from formicary.bench.fleet import run_fleet
    from formicary.boards import load_board
    from formicary.lab.admin import apply_places
    from formicary.lab.client import LabClient
    from formicary.lab.placeref import place_port
    from formicary.target.bringup import LinkOptions, bring_up
    from formicary.target.firmware import prepare_firmware

    root = Path(tempfile.mkdtemp(prefix="formicary-lab-bench-"))
    coordinator, procs = _start_lab(root)
    out: dict = {"coordinator": coordinator, "repeat": args.repeat}
    try:
        with LabClient(coordinator) as client:
            deadline = time.monotonic() + 30
            while sum(1 for _ in client.resources()) < 8 and time.monotonic() < deadline:
                client.sync()
                time.sleep(0.1)
            apply_places(client, [{"name": f"lab/{b}", "tags": {"board": "qemu-m4"}, "matches": [f"{h}/{b}/*"],
                                   "comment": None} for h, bs in HOSTS.items() for b in bs])
        board = load_board("qemu-m4")
        fw = prepare_firmware(args.model, board)

        def timed(port: str | None) -> float:
            t = time.perf_counter()
            link = bring_up(board, fw, port=port, options=LinkOptions())
            link.close()
            return time.perf_counter() - t

        remote_port = place_port("lab/a1", coordinator)
        first_remote = timed(remote_port)  # includes sending the image to the lab host (its QEMU restarts)
        local = [timed(None) for _ in range(args.repeat)]
        remote = [timed(remote_port) for _ in range(args.repeat)]
        out["bring_up_s"] = {"local_qemu_median": round(statistics.median(local), 3),
                             "remote_place_median": round(statistics.median(remote), 3),
                             "remote_first_with_flash": round(first_remote, 3),
                             "overhead_median": round(statistics.median(remote) - statistics.median(local), 3),
                             "local_all": [round(x, 3) for x in local], "remote_all": [round(x, 3) for x in remote]}
        steps = {"connect": [], "acquire": [], "release": []}
        for _ in range(args.repeat):  # the labgrid part alone: a session, AcquirePlace, ReleasePlace
            t = time.perf_counter()
            c = LabClient(coordinator)
            steps["connect"].append(time.perf_counter() - t)
            t = time.perf_counter()
            c.acquire("lab/a2")
            steps["acquire"].append(time.perf_counter() - t)
            t = time.perf_counter()
            c.release("lab/a2")
            steps["release"].append(time.perf_counter() - t)
            c.close()
        out["labgrid_s"] = {k: round(statistics.median(v), 4) for k, v in steps.items()}
        inv = root / "fleet.toml"
        inv.write_text(f'[lab]\ncoordinator = "{coordinator}"\n'
                       + "".join(f'[[device]]\nname = "{b}"\nplace = "lab/{b}"\n' for bs in HOSTS.values()
                                 for b in bs))
        fleet = {}
        for label, jobs in (("parallel_4", None), ("sequential", 1)):
            t = time.perf_counter()
            r = run_fleet(inv, [args.model], inputs=args.inputs, runs=args.runs, jobs=jobs,
                          store=root / "runs.db")
            fleet[label] = {"seconds": round(time.perf_counter() - t, 2), "failed": r["failed"],
                            "medians": sorted({x["latency"]["median"] for x in r["results"] if x["latency"]})}
        out["fleet_4_boards_2_hosts"] = {**fleet, "runs": args.runs, "inputs": args.inputs,
                                         "speedup": round(fleet["sequential"]["seconds"]
                                                          / fleet["parallel_4"]["seconds"], 2)}
    finally:
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(out, indent=None if not args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
