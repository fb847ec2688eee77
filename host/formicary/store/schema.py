"""The results store's SQLite schema as an ordered list of migrations.

`PRAGMA user_version` holds how many migrations a database has had. Migrations are append-only: never edit a
released one, add the next. Each runs inside the caller's write transaction, so a store is migrated whole or
not at all (DDL is transactional in SQLite).
"""
from __future__ import annotations

# v1: the first store. Runs, per-inference samples and per-layer timings.
_V1 = """
CREATE TABLE runs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    uid             TEXT NOT NULL UNIQUE,
    board           TEXT NOT NULL,
    started_at      TEXT NOT NULL,
    finished_at     TEXT,
    complete        INTEGER NOT NULL DEFAULT 0,
    incomplete_reason TEXT,
    model_path      TEXT,
    model_sha256    TEXT,
    runtime_version TEXT,
    latency_unit    TEXT,
    latency_method  TEXT,
    settings_json   TEXT,
    host_json       TEXT,
    bit_exact       INTEGER,
    mismatches      INTEGER,
    inputs          INTEGER,
    accuracy        REAL,
    flash_bytes     INTEGER,
    ram_bytes       INTEGER
);
CREATE TABLE samples (
    run_id  INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    value   INTEGER NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE TABLE layers (
    run_id  INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    idx     INTEGER NOT NULL,
    op      TEXT,
    name    TEXT,
    macs    INTEGER,
    unit    TEXT,
    PRIMARY KEY (run_id, idx)
) WITHOUT ROWID;
CREATE TABLE layer_samples (
    run_id  INTEGER NOT NULL,
    idx     INTEGER NOT NULL,
    seq     INTEGER NOT NULL,
    value   INTEGER NOT NULL,
    PRIMARY KEY (run_id, idx, seq),
    FOREIGN KEY (run_id, idx) REFERENCES layers(run_id, idx) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX runs_board ON runs(board);
CREATE INDEX runs_model ON runs(model_sha256);
"""

# v2: model variants, firmware protocol, sizes, outputs' verdicts, energy and power traces, and who is writing
# (so a run whose writer died can be told apart from one still running).
_V2 = """
ALTER TABLE runs ADD COLUMN schema_in       INTEGER;
ALTER TABLE runs ADD COLUMN virtual         INTEGER;
ALTER TABLE runs ADD COLUMN model_name      TEXT;
ALTER TABLE runs ADD COLUMN quantization    TEXT;
ALTER TABLE runs ADD COLUMN sparsity        REAL;
ALTER TABLE runs ADD COLUMN clusters        INTEGER;
ALTER TABLE runs ADD COLUMN qat             INTEGER;
ALTER TABLE runs ADD COLUMN variant_label   TEXT;
ALTER TABLE runs ADD COLUMN protocol_version INTEGER;
ALTER TABLE runs ADD COLUMN latency_estimate_ms REAL;
ALTER TABLE runs ADD COLUMN arena_bytes     INTEGER;
ALTER TABLE runs ADD COLUMN macs            INTEGER;
ALTER TABLE runs ADD COLUMN model_bytes     INTEGER;
ALTER TABLE runs ADD COLUMN energy_uj       REAL;
ALTER TABLE runs ADD COLUMN energy_method   TEXT;
ALTER TABLE runs ADD COLUMN energy_source   TEXT;
ALTER TABLE runs ADD COLUMN energy_floor_json TEXT;
ALTER TABLE runs ADD COLUMN extra_json      TEXT;
ALTER TABLE runs ADD COLUMN writer_host     TEXT;
ALTER TABLE runs ADD COLUMN writer_pid      INTEGER;
ALTER TABLE runs ADD COLUMN updated_at      TEXT;
UPDATE runs SET model_name = model_path WHERE model_name IS NULL;
ALTER TABLE layers ADD COLUMN median REAL;
CREATE TABLE outputs (
    run_id  INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    input   TEXT,
    label   INTEGER,
    predicted INTEGER,
    match_reference INTEGER,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE TABLE power_samples (
    run_id  INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    t_s     REAL NOT NULL,
    watts   REAL NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE INDEX runs_model_name ON runs(model_name);
CREATE INDEX runs_started ON runs(started_at);
"""

# v3: what the firmware was built with beyond the model: the kernel set and optimisation level (an A/B of kernel
# sets is otherwise two identical-looking runs), the pruning structure of the variant, and effective MACs (MACs with
# a non-zero weight). Runs stored before v3 have NULL here: their firmware predates kernel sets (reference).
_V3 = """
ALTER TABLE runs ADD COLUMN kernels         TEXT;
ALTER TABLE runs ADD COLUMN firmware_optimize TEXT;
ALTER TABLE runs ADD COLUMN prune_structure TEXT;
ALTER TABLE runs ADD COLUMN effective_macs  INTEGER;
CREATE INDEX runs_kernels ON runs(kernels);
"""

# v4: how the variant's Keras model was trained before conversion (distilled from a teacher, adapted to new
# classes, LoRA-tuned): the `model.variant.training` stages as JSON. NULL for runs stored before v4.
_V4 = """
ALTER TABLE runs ADD COLUMN training_json   TEXT;
"""

# v5: routes, for models with several subgraphs (mixtures of experts): the route (bitmask of the subgraphs that
# ran, fm_model_route()) of every sample and of every output's input, each layer's subgraph, and the model's
# subgraphs (index, name, ops) as JSON. NULL for runs stored before v5 and for firmware that reports no routes.
_V5 = """
ALTER TABLE samples ADD COLUMN route        INTEGER;
ALTER TABLE outputs ADD COLUMN route        INTEGER;
ALTER TABLE layers ADD COLUMN subgraph      INTEGER;
ALTER TABLE runs ADD COLUMN subgraphs_json  TEXT;
"""

# v6: boards in a labgrid lab: the place a run was made on, its lab host (the exporter that serves the board)
# and the coordinator. NULL for runs on local boards and for runs stored before v6.
_V6 = """
ALTER TABLE runs ADD COLUMN place           TEXT;
ALTER TABLE runs ADD COLUMN lab_host        TEXT;
ALTER TABLE runs ADD COLUMN lab_coordinator TEXT;
CREATE INDEX runs_place ON runs(place);
"""

MIGRATIONS: list[str] = [_V1, _V2, _V3, _V4, _V5, _V6]
SCHEMA_VERSION = len(MIGRATIONS)
