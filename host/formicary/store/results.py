"""The results store: every bench run, recorded incrementally in SQLite so nothing collected is ever lost.

A run row is written the moment a bench starts (complete=0); samples, per-layer timings, outputs' verdicts,
energy and power traces are appended in short transactions as they arrive; `finish_run` marks the end. A writer
killed at any point leaves a run whose rows so far are all committed and which reads back as `interrupted`.

Concurrency: WAL journal (readers never block the writer), `busy_timeout` so a second writer waits instead of
failing, and one short `BEGIN IMMEDIATE` transaction per call so the write lock is held for milliseconds.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from formicary.errors import FormicaryError
from formicary.store.routes import subgraph_usage, summarize_routes
from formicary.store.schema import MIGRATIONS, SCHEMA_VERSION
from formicary.store.stats import summarize

ENV_VAR = "FORMICARY_STORE"
BUSY_TIMEOUT_MS = 30_000
LATENCY_UNITS = ("instructions", "cycles", "ms")  # ms: wall-clock on an SBC (bench/sbc.py)
ENERGY_METHODS = ("measured", "modelled")

# Scalar bench keys -> runs columns. Nested keys are dotted paths into the bench result dict.
_SCALARS: dict[str, str] = {
    "schema": "schema_in", "board": "board", "virtual": "virtual", "started_at": "started_at",
    "model.path": "model_path", "model.sha256": "model_sha256", "model.name": "model_name",
    "model.variant.quantization": "quantization", "model.variant.sparsity": "sparsity",
    "model.variant.clusters": "clusters", "model.variant.qat": "qat", "model.variant.label": "variant_label",
    "firmware.runtime_version": "runtime_version", "firmware.protocol_version": "protocol_version",
    "firmware.kernels": "kernels", "firmware.optimize": "firmware_optimize",
    "model.variant.prune_structure": "prune_structure", "effective_macs": "effective_macs",
    "latency.unit": "latency_unit", "latency.method": "latency_method",
    "latency.estimate_ms": "latency_estimate_ms",
    "bit_exact": "bit_exact", "mismatches": "mismatches", "inputs": "inputs", "accuracy": "accuracy",
    "flash_bytes": "flash_bytes", "ram_bytes": "ram_bytes", "arena_bytes": "arena_bytes", "macs": "macs",
    "model_bytes": "model_bytes",
    "lab.place": "place", "lab.host": "lab_host", "lab.coordinator": "lab_coordinator",
}
_JSON_COLS = {"settings": "settings_json", "host": "host_json", "energy_floor_uj": "energy_floor_json",
              "model.variant.training": "training_json"}
# Keys handled elsewhere (arrays, derived statistics, finish state); anything else lands in extra_json.
_KNOWN_TOP = {k.split(".")[0] for k in _SCALARS} | set(_JSON_COLS) | {
    "energy", "layers", "outputs", "power_samples", "complete", "incomplete_reason", "finished_at", "id", "uid",
    "status", "store", "subgraphs", "routes"}  # routes: derived from the samples' routes, like latency statistics
_LATENCY_STATS = {"samples", "min", "median", "p90", "p99", "max", "mean", "count", "unit", "method", "estimate_ms",
                  "routes"}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def default_store_path() -> Path:
    """$FORMICARY_STORE if set, else results.sqlite in the user's data directory (platformdirs)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("formicary", appauthor=False)) / "results.sqlite"


def _get(d: dict, dotted: str) -> tuple[bool, Any]:
    cur: Any = d
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return False, None
        cur = cur[part]
    return True, cur


def _pid_alive(pid: int) -> bool | None:
    if os.name != "posix":
        return None  # cannot tell cheaply; callers report "unknown"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ResultStore:
    """One SQLite results store. Cheap to open; use as a context manager or call `close()`."""

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_store_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise FormicaryError(f"cannot open the results store {self.path}: {exc}",
                                 f"pass a writable path with --store PATH or set {ENV_VAR}") from exc
        self._conn.row_factory = sqlite3.Row
        self._conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        self._set_wal()
        # NORMAL in WAL mode: every commit survives a crash or SIGKILL of this process (only an OS crash or power
        # loss can roll back the last commits), at a fraction of FULL's fsync cost per streamed sample.
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._migrate()
        self._host = socket.gethostname()

    # ---- connection plumbing -------------------------------------------------------------------------------
    def _set_wal(self) -> None:
        # Switching the journal mode can report "database is locked" without calling the busy handler when
        # another process is creating the same store; retry for the busy timeout.
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        if str(mode).lower() != "wal":
            raise FormicaryError(f"the results store {self.path} cannot use WAL journaling (got {mode!r})",
                                 "put the store on a local file system (WAL does not work on network shares)")

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction, taking the write lock up front so it never deadlocks mid-way."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _migrate(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise FormicaryError(
                f"the results store {self.path} has schema version {version}, newer than this formicary's "
                f"({SCHEMA_VERSION})", "upgrade formicary, or use another store with --store PATH")
        with self._write() as conn:
            # Re-read under the write lock: another process may have migrated meanwhile.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for script in MIGRATIONS[version:]:
                # executescript() would COMMIT first; run statement by statement inside our transaction.
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def integrity_check(self) -> str:
        return str(self._conn.execute("PRAGMA integrity_check").fetchone()[0])

    # ---- writing -------------------------------------------------------------------------------------------
    def begin_run(self, meta: dict[str, Any]) -> int:
        """Create the run row (complete=0) from whatever of the bench result dict is known; returns run_id.

        `board` is required. Arrays present in `meta` (latency.samples, layers, outputs, power_samples) are
        appended as by the add_* calls.
        """
        if not meta.get("board"):
            raise FormicaryError("a run needs a board name", "pass meta={'board': ..., ...} to begin_run")
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO runs (uid, board, started_at, complete, writer_host, writer_pid, updated_at) "
                "VALUES (?, ?, ?, 0, ?, ?, ?)",
                (uuid.uuid4().hex, meta["board"], meta.get("started_at") or now_iso(), self._host, os.getpid(),
                 now_iso()))
            run_id = int(cur.lastrowid)
            self._ingest(conn, run_id, meta)
        return run_id

    def update_run(self, run_id: int, partial: dict[str, Any]) -> None:
        """Set scalar fields known later (bit_exact, accuracy, sizes, …) from a bench-shaped dict.

        Arrays in `partial` are appended, never replaced.
        """
        with self._write() as conn:
            self._require(conn, run_id)
            self._ingest(conn, run_id, partial)

    def add_samples(self, run_id: int, samples: Iterable[float],
                    routes: Sequence[int | None] | None = None) -> int:
        """Append per-inference latencies (in the run's latency unit) and, when the firmware reports them, each
        inference's route (bitmask of the subgraphs it ran); returns how many samples the run now has."""
        values = [_number(v, "latency sample") for v in samples]
        with self._write() as conn:
            self._require(conn, run_id)
            return self._append_samples(conn, run_id, values, routes)

    def add_layer_timings(self, run_id: int, layers: Sequence[dict[str, Any]]) -> None:
        """Record layers ({index, op, name, macs, unit, median?, samples?}); samples are appended per layer."""
        with self._write() as conn:
            self._require(conn, run_id)
            self._append_layers(conn, run_id, layers)

    def add_outputs(self, run_id: int, outputs: Sequence[dict[str, Any]]) -> None:
        """Append outputs' verdicts ({input, label, predicted, match_reference})."""
        with self._write() as conn:
            self._require(conn, run_id)
            self._append_outputs(conn, run_id, outputs)

    def add_power_samples(self, run_id: int, samples: Iterable[Sequence[float]]) -> None:
        """Append a streamed power trace as (t_s, watts) pairs."""
        with self._write() as conn:
            self._require(conn, run_id)
            self._append_power(conn, run_id, samples)

    def set_energy(self, run_id: int, energy: dict[str, Any] | None,
                   floor_uj: dict[str, float] | None = None) -> None:
        """Set energy per inference ({uj_per_inference, method: measured|modelled, source}) and the floor."""
        data: dict[str, Any] = {"energy": energy}
        if floor_uj is not None:
            data["energy_floor_uj"] = floor_uj
        self.update_run(run_id, data)

    def finish_run(self, run_id: int, complete: bool, reason: str | None = None,
                   finished_at: str | None = None) -> None:
        """Mark the end of a run: complete, or incomplete with the reason (kept with everything collected)."""
        if complete and reason:
            raise ValueError("a complete run has no incomplete reason")
        if not complete and not reason:
            reason = "stopped before the end (no reason given)"
        with self._write() as conn:
            self._require(conn, run_id)
            conn.execute("UPDATE runs SET complete=?, incomplete_reason=?, finished_at=?, updated_at=? WHERE id=?",
                         (int(bool(complete)), reason, finished_at or now_iso(), now_iso(), run_id))

    @contextlib.contextmanager
    def recording(self, meta: dict[str, Any]) -> Iterator[int]:
        """`with store.recording(meta) as run_id:` — finishes the run complete on a normal exit (unless the
        body already called finish_run), incomplete with the reason on any exception including Ctrl-C."""
        run_id = self.begin_run(meta)
        try:
            yield run_id
        except BaseException as exc:
            reason = "interrupted by the user (Ctrl-C)" if isinstance(exc, KeyboardInterrupt) else \
                f"{type(exc).__name__}: {exc}"
            with contextlib.suppress(Exception):  # never mask the original failure
                self.finish_run(run_id, False, reason)
            raise
        row = self._conn.execute("SELECT finished_at FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is not None and row["finished_at"] is None:
            self.finish_run(run_id, True)

    def record_result(self, result: dict[str, Any]) -> int:
        """Store a whole bench result dict at once (e.g. `formicary runs import bench.json`); returns run_id."""
        run_id = self.begin_run(result)
        complete = bool(result.get("complete", True))
        self.finish_run(run_id, complete, None if complete else (result.get("incomplete_reason") or None),
                        result.get("finished_at"))
        return run_id

    def delete_run(self, run_id: int) -> None:
        with self._write() as conn:
            self._require(conn, run_id)
            for table in ("layer_samples", "layers", "samples", "outputs", "power_samples"):
                conn.execute(f"DELETE FROM {table} WHERE run_id=?", (run_id,))
            conn.execute("DELETE FROM runs WHERE id=?", (run_id,))

    # ---- writing internals (inside a transaction) ----------------------------------------------------------
    def _require(self, conn: sqlite3.Connection, run_id: int) -> None:
        if conn.execute("SELECT 1 FROM runs WHERE id=?", (run_id,)).fetchone() is None:
            raise FormicaryError(f"run {run_id} is not in the results store {self.path}",
                                 "list the runs with `formicary runs list`")

    def _ingest(self, conn: sqlite3.Connection, run_id: int, d: dict[str, Any]) -> None:
        sets: dict[str, Any] = {}
        for key, col in _SCALARS.items():
            present, value = _get(d, key)
            if present:
                sets[col] = _db_value(value)
        unit = sets.get("latency_unit")
        if unit is not None and unit not in LATENCY_UNITS:
            raise FormicaryError(f"unknown latency unit {unit!r}", f"use one of {', '.join(LATENCY_UNITS)}")
        for key, col in _JSON_COLS.items():
            present, value = _get(d, key)
            if present:
                sets[col] = None if value is None else json.dumps(value, sort_keys=True)
        if "energy" in d:
            sets.update(_energy_columns(d["energy"]))
        if "subgraphs" in d:  # the model's subgraphs; their usage is recomputed from the samples' routes
            sets["subgraphs_json"] = None if d["subgraphs"] is None else json.dumps(
                [{"index": g.get("index", i), "name": g.get("name"), "ops": g.get("ops")}
                 for i, g in enumerate(d["subgraphs"])])
        extra = {k: v for k, v in d.items() if k not in _KNOWN_TOP}
        latency = d.get("latency")
        if isinstance(latency, dict):
            extra_lat = {k: v for k, v in latency.items() if k not in _LATENCY_STATS}
            if extra_lat:
                extra["latency"] = extra_lat
        if extra:
            row = conn.execute("SELECT extra_json FROM runs WHERE id=?", (run_id,)).fetchone()
            merged = json.loads(row[0]) if row and row[0] else {}
            merged.update(extra)
            sets["extra_json"] = json.dumps(merged, sort_keys=True, default=str)
        sets["updated_at"] = now_iso()
        conn.execute(f"UPDATE runs SET {', '.join(f'{c}=?' for c in sets)} WHERE id=?", (*sets.values(), run_id))
        if isinstance(latency, dict) and latency.get("samples"):
            self._append_samples(conn, run_id, [_number(v, "latency sample") for v in latency["samples"]],
                                 latency.get("routes"))
        if d.get("layers"):
            self._append_layers(conn, run_id, d["layers"])
        if d.get("outputs"):
            self._append_outputs(conn, run_id, d["outputs"])
        if d.get("power_samples"):
            self._append_power(conn, run_id, d["power_samples"])

    @staticmethod
    def _next_seq(conn: sqlite3.Connection, table: str, run_id: int, extra: str = "", args: tuple = ()) -> int:
        row = conn.execute(f"SELECT COALESCE(MAX(seq) + 1, 0) FROM {table} WHERE run_id=?{extra}",
                           (run_id, *args)).fetchone()
        return int(row[0])

    def _append_samples(self, conn: sqlite3.Connection, run_id: int, values: list[float],
                        routes: Sequence[int | None] | None = None) -> int:
        if routes is not None and len(routes) != len(values):
            raise FormicaryError(f"{len(routes)} routes for {len(values)} latency samples",
                                 "pass one route per sample (or none)")
        start = self._next_seq(conn, "samples", run_id)
        conn.executemany("INSERT INTO samples (run_id, seq, value, route) VALUES (?, ?, ?, ?)",
                         [(run_id, start + i, v, _route(routes[i]) if routes is not None else None)
                          for i, v in enumerate(values)])
        conn.execute("UPDATE runs SET updated_at=? WHERE id=?", (now_iso(), run_id))
        return start + len(values)

    def _append_layers(self, conn: sqlite3.Connection, run_id: int, layers: Sequence[dict[str, Any]]) -> None:
        for pos, layer in enumerate(layers):
            idx = int(layer.get("index", pos))
            conn.execute(
                "INSERT INTO layers (run_id, idx, op, name, macs, unit, median, subgraph) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (run_id, idx) DO UPDATE SET op=COALESCE(excluded.op, op), "
                "name=COALESCE(excluded.name, name), macs=COALESCE(excluded.macs, macs), "
                "unit=COALESCE(excluded.unit, unit), median=COALESCE(excluded.median, median), "
                "subgraph=COALESCE(excluded.subgraph, subgraph)",
                (run_id, idx, layer.get("op"), layer.get("name"), layer.get("macs"), layer.get("unit"),
                 layer.get("median"), layer.get("subgraph")))
            samples = layer.get("samples") or []
            if samples:
                start = self._next_seq(conn, "layer_samples", run_id, " AND idx=?", (idx,))
                conn.executemany("INSERT INTO layer_samples (run_id, idx, seq, value) VALUES (?, ?, ?, ?)",
                                 [(run_id, idx, start + i, _number(v, "layer sample"))
                                  for i, v in enumerate(samples)])
        conn.execute("UPDATE runs SET updated_at=? WHERE id=?", (now_iso(), run_id))

    def _append_outputs(self, conn: sqlite3.Connection, run_id: int, outputs: Sequence[dict[str, Any]]) -> None:
        start = self._next_seq(conn, "outputs", run_id)
        conn.executemany(
            "INSERT INTO outputs (run_id, seq, input, label, predicted, match_reference, route) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(run_id, start + i, o.get("input"), o.get("label"), o.get("predicted"),
              _db_value(o.get("match_reference")), _route(o.get("route"))) for i, o in enumerate(outputs)])
        conn.execute("UPDATE runs SET updated_at=? WHERE id=?", (now_iso(), run_id))

    def _append_power(self, conn: sqlite3.Connection, run_id: int, samples: Iterable[Sequence[float]]) -> None:
        start = self._next_seq(conn, "power_samples", run_id)
        conn.executemany("INSERT INTO power_samples (run_id, seq, t_s, watts) VALUES (?, ?, ?, ?)",
                         [(run_id, start + i, float(t), float(w)) for i, (t, w) in enumerate(samples)])
        conn.execute("UPDATE runs SET updated_at=? WHERE id=?", (now_iso(), run_id))

    # ---- reading -------------------------------------------------------------------------------------------
    def resolve(self, ref: int | str) -> int:
        """A run id from an id (`12`), or a uid or uid prefix (at least 6 hex digits) from an export."""
        text = str(ref).strip()
        if text.isdigit() and self._conn.execute("SELECT 1 FROM runs WHERE id=?", (int(text),)).fetchone():
            return int(text)
        if len(text) >= 6 and all(c in "0123456789abcdefABCDEF" for c in text):  # uids may be all digits too
            rows = self._conn.execute("SELECT id FROM runs WHERE uid LIKE ?", (text.lower() + "%",)).fetchall()
            if len(rows) == 1:
                return int(rows[0][0])
            if len(rows) > 1:
                raise FormicaryError(f"run {text!r} is ambiguous ({len(rows)} runs match)",
                                     "give more digits of the run uid, or its numeric id")
        raise FormicaryError(f"run {text!r} is not in the results store {self.path}",
                             "list the runs with `formicary runs list` (or pass the right store with --store)")

    def get_run(self, run_id: int | str) -> dict[str, Any]:
        """A run in the bench result shape (docs/bench-json.md), statistics recomputed from the stored samples,
        plus id, uid, status (complete|incomplete|interrupted|running) and `store` bookkeeping."""
        run_id = self.resolve(run_id)
        row = self._conn.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        rows = self._conn.execute("SELECT value, route FROM samples WHERE run_id=? ORDER BY seq", (run_id,)).fetchall()
        routes = [r[1] for r in rows]
        return self._assemble(row, [r[0] for r in rows], full=True,
                              routes=routes if any(r is not None for r in routes) else None)

    def list_runs(self, *, board: str | None = None, model: str | None = None, label: str | None = None,
                  status: str | None = None, since: str | None = None, until: str | None = None,
                  limit: int | None = None) -> list[dict[str, Any]]:
        """Run summaries, newest first. `model` matches the model name or a sha256 prefix; `since`/`until` are
        ISO dates compared with started_at; `status` is complete|incomplete|interrupted|running."""
        where, args = [], []
        if board:
            where.append("board = ?")
            args.append(board)
        if model:
            where.append("(model_name = ? OR model_sha256 LIKE ? OR model_path = ?)")
            args += [model, model.lower() + "%", model]
        if label:
            where.append("variant_label = ?")
            args.append(label)
        if since:
            where.append("started_at >= ?")
            args.append(since)
        if until:
            where.append("started_at <= ?")
            args.append(until)
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC"
        out = []
        for row in self._conn.execute(sql, args).fetchall():
            samples = [r[0] for r in self._conn.execute(
                "SELECT value FROM samples WHERE run_id=? ORDER BY seq", (row["id"],))]
            run = self._assemble(row, samples, full=False)
            if status and run["status"] != status:
                continue
            out.append(run)
            if limit and len(out) >= limit:
                break
        return out

    def _status(self, row: sqlite3.Row) -> tuple[str, str | None]:
        if row["complete"]:
            return "complete", None
        if row["finished_at"] is not None or row["incomplete_reason"]:
            return "incomplete", row["incomplete_reason"]
        # Never finished: either still being written, or the writer died (SIGKILL, crash, power cut).
        alive = _pid_alive(row["writer_pid"]) if row["writer_host"] == socket.gethostname() and row["writer_pid"] \
            else None
        if alive:
            return "running", None
        who = f"writer process {row['writer_pid']} on {row['writer_host']}"
        if alive is None:
            return "interrupted", (f"never finished; {who} cannot be checked from here "
                                   f"(last write {row['updated_at']})")
        return "interrupted", (f"{who} ended without finishing the run (killed, crashed or lost power); "
                               f"last write {row['updated_at']}")

    def _assemble(self, row: sqlite3.Row, samples: list[float], *, full: bool,
                  routes: list[int | None] | None = None) -> dict[str, Any]:
        status, reason = self._status(row)
        run_id = int(row["id"])
        stats = summarize(samples)
        latency: dict[str, Any] = {"unit": row["latency_unit"], "method": row["latency_method"],
                                   "estimate_ms": row["latency_estimate_ms"], **stats}
        energy = None
        if row["energy_uj"] is not None:
            energy = {"uj_per_inference": row["energy_uj"], "method": row["energy_method"],
                      "source": row["energy_source"]}
        run: dict[str, Any] = {
            "id": run_id, "uid": row["uid"], "status": status, "schema": row["schema_in"],
            "board": row["board"], "virtual": _bool(row["virtual"]),
            "started_at": row["started_at"], "finished_at": row["finished_at"],
            "complete": bool(row["complete"]), "incomplete_reason": reason if status != "complete" else None,
            "model": {"path": row["model_path"], "sha256": row["model_sha256"], "name": row["model_name"],
                      "variant": {"quantization": row["quantization"], "sparsity": row["sparsity"],
                                  "clusters": row["clusters"], "qat": _bool(row["qat"]),
                                  "label": row["variant_label"], "prune_structure": row["prune_structure"],
                                  "training": json.loads(row["training_json"]) if row["training_json"] else []}},
            "firmware": {"runtime_version": row["runtime_version"], "protocol_version": row["protocol_version"],
                         "kernels": row["kernels"], "optimize": row["firmware_optimize"]},
            "latency": latency,
            "bit_exact": _bool(row["bit_exact"]), "mismatches": row["mismatches"], "inputs": row["inputs"],
            "accuracy": row["accuracy"],
            "flash_bytes": row["flash_bytes"], "ram_bytes": row["ram_bytes"], "arena_bytes": row["arena_bytes"],
            "macs": row["macs"], "effective_macs": row["effective_macs"], "model_bytes": row["model_bytes"],
            "energy": energy,
            "energy_floor_uj": json.loads(row["energy_floor_json"]) if row["energy_floor_json"] else None,
            "lab": ({"place": row["place"], "host": row["lab_host"], "coordinator": row["lab_coordinator"]}
                    if row["place"] is not None else None),
        }
        if not full:
            return run
        run["latency"]["samples"] = samples
        run["latency"]["routes"] = routes
        run["settings"] = json.loads(row["settings_json"]) if row["settings_json"] else None
        run["host"] = json.loads(row["host_json"]) if row["host_json"] else None
        run["layers"] = self._layers(run_id)
        run["outputs"] = [
            {"input": r["input"], "label": r["label"], "predicted": r["predicted"],
             "match_reference": _bool(r["match_reference"]), "route": r["route"]}
            for r in self._conn.execute("SELECT * FROM outputs WHERE run_id=? ORDER BY seq", (run_id,))]
        graphs = json.loads(row["subgraphs_json"]) if row["subgraphs_json"] else None
        names = [g["name"] for g in graphs] if graphs else None
        run["subgraphs"] = subgraph_usage(routes, names, [g.get("ops") for g in graphs] if graphs else None)
        run["routes"] = summarize_routes(samples, routes, names=names, outputs=run["outputs"],
                                         unit=row["latency_unit"], method=row["latency_method"])
        power = [[r[0], r[1]] for r in self._conn.execute(
            "SELECT t_s, watts FROM power_samples WHERE run_id=? ORDER BY seq", (run_id,))]
        run["power_samples"] = power or None
        run["extra"] = json.loads(row["extra_json"]) if row["extra_json"] else {}
        run["store"] = {"path": str(self.path), "schema_version": self.schema_version,
                        "writer_host": row["writer_host"], "writer_pid": row["writer_pid"],
                        "updated_at": row["updated_at"]}
        return run

    def _layers(self, run_id: int) -> list[dict[str, Any]]:
        layers = []
        for r in self._conn.execute("SELECT * FROM layers WHERE run_id=? ORDER BY idx", (run_id,)).fetchall():
            samples = [s[0] for s in self._conn.execute(
                "SELECT value FROM layer_samples WHERE run_id=? AND idx=? ORDER BY seq", (run_id, r["idx"]))]
            median = summarize(samples)["median"] if samples else r["median"]
            layers.append({"index": r["idx"], "op": r["op"], "name": r["name"], "macs": r["macs"],
                           "unit": r["unit"], "median": median, "samples": samples, "subgraph": r["subgraph"]})
        return layers

    # ---- export --------------------------------------------------------------------------------------------
    def export(self, run_ids: Sequence[int | str] | None = None, fmt: str = "json", table: str = "runs") -> str:
        """The runs (all when `run_ids` is None) as JSON (full runs) or CSV (`table`: runs|samples|layers|outputs)."""
        from formicary.store.export import export_runs

        ids = [self.resolve(r) for r in run_ids] if run_ids else [r["id"] for r in self.list_runs()][::-1]
        return export_runs([self.get_run(i) for i in ids], fmt, table, SCHEMA_VERSION)


def _energy_columns(energy: dict[str, Any] | None) -> dict[str, Any]:
    if energy is None:
        return {"energy_uj": None, "energy_method": None, "energy_source": None}
    method = energy.get("method")
    if method not in ENERGY_METHODS:
        raise FormicaryError(f"energy method {method!r} is neither measured nor modelled",
                             "label every energy figure with method 'measured' or 'modelled'")
    return {"energy_uj": _number(energy.get("uj_per_inference"), "energy"), "energy_method": method,
            "energy_source": energy.get("source")}


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise FormicaryError(f"{what} {value!r} is not a number", "pass numeric values to the results store")
    return int(value) if float(value).is_integer() and not isinstance(value, float) else float(value)


def _db_value(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def _route(value: Any) -> int | None:
    """A route mask as stored: a 32-bit unsigned integer, or NULL when unknown."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) and not hasattr(value, "__index__"):
        raise FormicaryError(f"route {value!r} is not an integer bitmask", "pass fm_model_route() masks (0..2**32-1)")
    mask = int(value)
    if not 0 <= mask < 2 ** 32:
        raise FormicaryError(f"route {mask} is outside 0..2**32-1", "pass fm_model_route() masks (32 bits)")
    return mask


def _bool(value: Any) -> bool | None:
    return None if value is None else bool(value)
