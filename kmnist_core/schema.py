"""The run database's tables, and the migrations that bring an older release's database up
to date. Adding a column or a table: write one ``_MIGRATE_FROM_N`` script, append it to
``MIGRATIONS`` and bump ``SCHEMA_VERSION``; a new database is created at version 2 and
upgraded like an old one, so the two can never differ. Also here: how a row reads back
as a record, and how a record is written as a row (the run folders' manifests hold the
same row values, so a database can be rebuilt from them)."""

import json

from .records import EpochRecord, Progress, Run, Study, Sweep
from .status import Status

SCHEMA_VERSION = 5  # PRAGMA user_version; 0 is the unversioned schema of the first release

_SCHEMA = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    variant TEXT NOT NULL,
    status TEXT NOT NULL,
    config TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    data_dir TEXT,
    data_source TEXT,
    params INTEGER,
    metrics TEXT,
    progress TEXT,
    error TEXT,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    runtime TEXT,
    interruption TEXT
);
CREATE TABLE epochs (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    fit_loss REAL, fit_accuracy REAL, val_loss REAL, val_accuracy REAL, elapsed REAL,
    train_loss REAL, train_accuracy REAL, weights TEXT,
    PRIMARY KEY (run_id, epoch)
);
"""
EPOCH_COLUMNS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                 "fit_loss", "fit_accuracy", "elapsed", "weights")
JSON_COLUMNS = ("config", "metrics", "progress", "runtime", "interruption", "values_json", "overrides", "weights")

# Version 0 -> 2: Keras' running training figures were stored as loss/accuracy (they are
# fit_loss/fit_accuracy now, beside the clean train_* scores); an interrupted run was a
# failed one whose error began with "interrupted".
_MIGRATE_FROM_0 = """
ALTER TABLE runs ADD COLUMN runtime TEXT;
ALTER TABLE runs ADD COLUMN interruption TEXT;
UPDATE runs SET status = 'interrupted' WHERE status = 'failed' AND error LIKE 'interrupted%';
ALTER TABLE epochs RENAME COLUMN loss TO fit_loss;
ALTER TABLE epochs RENAME COLUMN accuracy TO fit_accuracy;
ALTER TABLE epochs ADD COLUMN train_loss REAL;
ALTER TABLE epochs ADD COLUMN train_accuracy REAL;
ALTER TABLE epochs ADD COLUMN weights TEXT;
"""

# Version 2 -> 3: sweeps (one configuration trained for several values of one parameter,
# and several seeds each).
_MIGRATE_FROM_2 = """
CREATE TABLE sweeps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    param TEXT NOT NULL,
    values_json TEXT NOT NULL,
    seeds INTEGER NOT NULL,
    variant TEXT NOT NULL,
    overrides TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL
);
ALTER TABLE runs ADD COLUMN sweep_id INTEGER REFERENCES sweeps(id) ON DELETE SET NULL;
CREATE INDEX runs_by_sweep ON runs(sweep_id);
"""

# Version 3 -> 4: several trainers at once (KMNIST_WORKERS) and shared servers. ``slot`` is
# the training slot (lock) of the trainer that claimed the run, so a run is an orphan only
# when *its* slot's lock is free; ``owner`` is the app session that queued it (NULL: CLI or
# an older release), so a shared server lets a session change only its own runs.
_MIGRATE_FROM_3 = """
ALTER TABLE runs ADD COLUMN slot INTEGER;
ALTER TABLE runs ADD COLUMN owner TEXT;
"""

# Version 4 -> 5: studies, the runs queued together and compared as one. Every existing
# sweep becomes a study of its own, so each of its runs knows its study.
_MIGRATE_FROM_4 = """
CREATE TABLE studies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    purpose TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    lab TEXT,
    prediction TEXT,
    owner TEXT,
    sweep_id INTEGER REFERENCES sweeps(id) ON DELETE SET NULL
);
ALTER TABLE runs ADD COLUMN study_id INTEGER REFERENCES studies(id) ON DELETE SET NULL;
CREATE INDEX runs_by_study ON runs(study_id);
INSERT INTO studies (kind, name, purpose, created_at, sweep_id)
    SELECT 'sweep', 'Sweep of ' || param, 'How ' || param || ' changes the fit', created_at, id FROM sweeps;
UPDATE runs SET study_id = (SELECT id FROM studies WHERE studies.sweep_id = runs.sweep_id) WHERE sweep_id IS NOT NULL;
"""

MIGRATIONS = ((3, _MIGRATE_FROM_2), (4, _MIGRATE_FROM_3), (5, _MIGRATE_FROM_4))  # (version reached, script)


def create_or_migrate(db, newest=None) -> bool:
    """Inside the caller's transaction: create the tables, or upgrade an older release's
    ones (a crash mid-way leaves the old version intact). Returns True when the database
    was new. A database written by a newer release raises ValueError with the versions."""
    newest = SCHEMA_VERSION if newest is None else newest
    version = db.execute("PRAGMA user_version").fetchone()[0]
    new = not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'runs'").fetchone()
    if new:
        execute_script(db, _SCHEMA)
        version = 2
    elif version == 0:
        execute_script(db, _MIGRATE_FROM_0)
    elif version > newest:
        raise ValueError(f"schema {version}, this release reads {newest}")
    for target, script in MIGRATIONS:
        if version < target <= newest:
            execute_script(db, script)
    db.execute(f"PRAGMA user_version = {newest}")
    return new


def execute_script(db, script) -> None:
    """Run ``;``-separated statements inside the caller's transaction (``executescript``
    would commit first)."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def insert(db, table, values: dict, replace=False) -> int:
    """The one way a row enters a table: ``values`` by column, JSON columns as Python
    objects; with ``replace``, over a row of the same key. Returns the row's id."""
    row = {k: json.dumps(v) if k in JSON_COLUMNS and v is not None else v for k, v in values.items()}
    columns = ", ".join(row)
    return int(db.execute(f"INSERT {'OR REPLACE ' if replace else ''}INTO {table} ({columns}) VALUES ({', '.join('?' * len(row))})",
                          tuple(row.values())).lastrowid)


def row_values(row) -> dict:
    """A row as {column: value} with its JSON columns decoded: what a manifest stores."""
    return {k: json.loads(v) if k in JSON_COLUMNS and v else v for k, v in dict(row).items()}


def to_run(row) -> Run:
    values = row_values(row)
    values.pop("progress", None)
    run = Run(**{k: v for k, v in values.items() if k in Run.__dataclass_fields__})
    run.status = Status(run.status)
    run.stop_requested = bool(run.stop_requested)
    run.progress = Progress.from_dict(json.loads(row["progress"])) if row["progress"] else None
    return run


def to_epoch(row) -> EpochRecord:
    return EpochRecord.from_dict(row_values(row))


def to_sweep(row) -> Sweep:
    values = row_values(row)
    values["values"] = values.pop("values_json")
    return Sweep.from_dict(values)


def to_study(row) -> Study:
    return Study.from_dict(row_values(row))


def has_row(db, table, row_id) -> bool:
    return db.execute(f"SELECT 1 FROM {table} WHERE id = ?", (row_id,)).fetchone() is not None
