"""The run store: one SQLite database plus one folder per run, under ``$KMNIST_HOME``.

SQLite in WAL mode gives atomic, crash-safe writes and lets readers in other processes
(the app, the CLI, the background worker) see a consistent state while one process
writes. Files (models, prediction arrays) are written to a temporary name and renamed,
so a crash mid-write leaves the previous file. Folder names come only from integer run
ids, never from user text, and no write or delete follows a link out of the home.

Up to ``KMNIST_WORKERS`` trainers train side by side, each holding one training slot (a lock
file the OS releases when its holder dies) and recording it on the runs it claims. Every
entry point (the CLI's commands, the app's listing, the worker) reconciles runs left
"running" by a trainer that died: if nobody holds a run's slot, nobody trains it.
A store whose folder this user cannot write opens read-only: it lists and reads, and a
change says "read-only".
"""

import fcntl
import json
import os
import shutil
import sqlite3
import stat
import time
import unicodedata
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .checks import ParameterError, check_int
from .hardware import worker_count
from .records import EpochRecord, Progress
from .status import FINISHED, Status, can_move

HOME_ENV = "KMNIST_HOME"
MAX_NAME = 80
STALL_FLOOR = 60.0  # seconds without progress before any running run is called stalled
STALL_PACE = 10  # ... or this many times its own mean time between progress writes, if longer
STALL_START = 600.0  # seconds a run may take to load its data before its first progress write, or to be
# scored and saved after its last batch (full-scale `best` on a loaded 2-core host: minutes; benchmarks/full_scale.py)
SCHEMA_VERSION = 4  # PRAGMA user_version; 0 is the unversioned schema of the first release

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
# and several seeds each). ``_SCHEMA`` above stays the version-2 schema: a new database is
# created as version 2 and then upgraded like an old one, so the two cannot differ.
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


class StoreError(RuntimeError):
    """The store cannot do what was asked; the message says why and what to do."""


class RunNotFoundError(StoreError):
    pass


@dataclass
class Run:
    id: int
    name: str
    variant: str
    status: Status
    config: dict
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    data_dir: str | None = None
    data_source: str | None = None
    params: int | None = None
    metrics: dict | None = None
    progress: Progress | None = None
    error: str | None = None
    stop_requested: bool = False
    runtime: dict | None = None  # how it was trained: precision, threads, CPU
    interruption: dict | None = None  # {"last_epoch", "waiting": [run ids queued then]}
    sweep_id: int | None = None  # the sweep it belongs to (kmnist_core.sweep), if any
    slot: int | None = None  # the training slot whose trainer claimed it (None: slot 0)
    owner: str | None = None  # the app session that queued it (None: the CLI)
    history: list = field(default_factory=list)  # EpochRecord per finished epoch (``get`` only)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def duration(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.finished_at or time.time()) - self.started_at


def default_home() -> Path:
    return Path(os.environ.get(HOME_ENV) or "runs")


def check_run_id(run_id) -> int:
    """Run ids are positive integers written in ASCII digits ("١" or "²" are refused, not
    read as 1 or 2); anything else is refused before it reaches a path."""
    if isinstance(run_id, str) and run_id.strip().isascii() and run_id.strip().isdigit() and len(run_id.strip()) <= 12:
        run_id = int(run_id.strip())
    if isinstance(run_id, bool) or not isinstance(run_id, (int, np.integer)) or run_id < 1:
        raise ParameterError([("run_id", f"must be a positive integer in ASCII digits, got {run_id!r}")])
    return int(run_id)


def check_name(name) -> str:
    """Names are labels only: printable text, 1..80 characters, stored in the database."""
    if not isinstance(name, str):
        raise ParameterError([("name", f"must be text, got {type(name).__name__}")])
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME:
        raise ParameterError([("name", f"must be 1 to {MAX_NAME} characters, got {len(name)}")])
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise ParameterError([("name", "must not contain control characters")])
    if name.isdigit():  # "12" must always mean run 12, never a run named "12"
        raise ParameterError([("name", f"must not be only digits (it would read as a run id), got {name!r}")])
    return name


def stalled(run, now=None) -> float | None:
    """Seconds a running run has gone without a progress write, when that is longer than
    max(STALL_FLOOR, STALL_PACE x its own mean time between writes); else None.

    A trainer paused with Ctrl-Z, or hung, still holds the training lock, so its run is no
    orphan, yet nothing moves and the queue waits behind it. The rule follows the run's own
    pace (a large model's batch may take seconds) with a floor for the fast ones; before
    the first write (data loading, graph tracing) and after the last batch (scoring on the
    test split, saving the model) it allows ``STALL_START`` seconds."""
    if run.status != Status.RUNNING:
        return None
    now = time.time() if now is None else now
    progress = run.progress
    if progress is None:
        silent = now - (run.started_at or now)
        return silent if silent > STALL_START else None
    if progress.updated_at is None:  # written by a release that did not record the time
        return None
    silent = now - progress.updated_at
    if progress.epoch >= progress.epochs and progress.step >= progress.steps:  # scored and saved after the last batch
        return silent if silent > STALL_START else None
    pace = progress.elapsed / max(1, progress.writes)
    return silent if silent > max(STALL_FLOOR, STALL_PACE * pace) else None


def stall_note(seconds) -> str:
    """How a stalled run is described, the same in the CLI and the app."""
    return f"stalled: no progress for {int(seconds // 60)} min (paused or hung?)"


class RunStore:
    def __init__(self, home=None):
        # Resolved once: a worker started in another folder opens this same store, and links
        # out of it are judged against its real path.
        self.home = Path(default_home() if home is None else home).resolve()
        self.db_path = self.home / "runs.sqlite"
        self.read_only = False
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            self.read_only = not _writable(self.home, self.db_path)
            if self.read_only:
                self._check_read_only()
            else:
                self._create_or_migrate()
        except sqlite3.DatabaseError as error:
            raise self._unusable(error) from None
        except OSError as error:
            raise StoreError(f"cannot use {self.home} as KMNIST_HOME ({error.strerror})") from None

    def _create_or_migrate(self) -> None:
        """A new database gets the current schema; one written by an older release is
        upgraded in one transaction, so a crash mid-way leaves the old version intact."""
        with _immediate(self._connect()) as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            exists = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'runs'").fetchone()
            if not exists:
                _execute_script(db, _SCHEMA)
                version = 2
            elif version == 0:
                _execute_script(db, _MIGRATE_FROM_0)
            elif version > SCHEMA_VERSION:
                raise StoreError(f"{self.db_path} was written by a newer KMNIST Explorer (schema "
                                 f"{version}, this one reads {SCHEMA_VERSION}); update the app")
            for target, script in ((3, _MIGRATE_FROM_2), (4, _MIGRATE_FROM_3)):
                if version < target <= SCHEMA_VERSION:
                    _execute_script(db, script)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _check_read_only(self) -> None:
        """A database this user cannot write is read as it is: it must already hold the
        current schema, since it cannot be created or upgraded."""
        if not self.db_path.is_file():
            raise StoreError(f"cannot use {self.home} as KMNIST_HOME (read-only here, and it holds no run database)")
        with self._read() as db:
            exists = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'runs'").fetchone()
            version = db.execute("PRAGMA user_version").fetchone()[0]
        if not exists or version != SCHEMA_VERSION:
            raise StoreError(f"{self.db_path} is read-only here and needs {'creating' if not exists else 'upgrading'} "
                             f"first; open it once where it can be written, or copy KMNIST_HOME elsewhere")

    def _read_only_error(self) -> StoreError:
        return StoreError(f"{self.db_path} is read-only here (this user cannot write {self.home}): runs can be "
                          f"listed and read, not changed; copy KMNIST_HOME to a folder you can write")

    def _unusable(self, error) -> StoreError:
        return StoreError(
            f"{self.db_path} is not a usable run database ({error}). Move it aside to "
            f"start a fresh store; runs in it cannot be read."
        )

    def check(self) -> None:
        """Raise StoreError unless the whole database reads. A long-lived process (the app)
        opens the store once, so a file damaged or replaced after that, or damaged past the
        pages that opening reads, is noticed here and not in the middle of a page. A few
        milliseconds for hundreds of runs (``quick_check`` reads every page once)."""
        try:
            with self._read() as db:
                verdict = db.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.DatabaseError as error:  # also a folder or a vanished file in its place
            raise self._unusable(error) from None
        if verdict != "ok":
            raise self._unusable(verdict.splitlines()[0])

    @contextmanager
    def _damage_as_store_error(self):
        """A damaged file found mid-query becomes the one-line StoreError that opening it
        gives. Only sqlite3.DatabaseError itself (SQLITE_CORRUPT, SQLITE_NOTADB): its
        subclasses are busy, constraint and misuse errors, which are not damage."""
        try:
            yield
        except sqlite3.DatabaseError as error:
            if type(error) is sqlite3.DatabaseError:
                raise self._unusable(error) from None
            raise

    # -- connections -------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self.read_only:
            return self._connect_read_only()
        db = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA busy_timeout = 30000")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
        return db

    def _connect_read_only(self) -> sqlite3.Connection:
        """``mode=ro``. A WAL database needs its -shm file, which a read-only folder cannot
        get; without a -wal file there is nothing beyond the main file to read, so it is
        opened ``immutable`` (no -shm needed)."""
        uri = f"{self.db_path.as_uri()}?mode=ro"
        if not Path(f"{self.db_path}-wal").exists():
            uri += "&immutable=1"
        db = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        return db

    @contextmanager
    def _write(self):
        """One IMMEDIATE transaction: writers queue on SQLite's lock instead of failing."""
        if self.read_only:
            raise self._read_only_error()
        with self._damage_as_store_error(), _immediate(self._connect()) as db:
            yield db

    @contextmanager
    def _read(self):
        with self._damage_as_store_error():
            db = self._connect()
            try:
                yield db
            finally:
                db.close()

    # -- runs ----------------------------------------------------------------------------
    def create_run(self, config, name=None, data_dir=None, status=Status.QUEUED, data_source=None,
                   owner=None) -> int:
        """Store a validated ``TrainConfig`` as a new run. Without a ``name`` the run is named
        from its settings (``config.describe``), so its label cannot disagree with them.
        ``data_dir`` is stored absolute (the worker runs in another folder; None means
        tensorflow-datasets); ``data_source``, when the caller loaded the data, is what the
        run must be trained on (the runner refuses other data); ``owner``, the app session
        that queued it."""
        from .config import describe

        if status not in (Status.QUEUED, Status.RUNNING):
            raise ParameterError([("status", f"must be 'queued' or 'running', got {status!r}")])
        values = config.to_dict()
        now = time.time()
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO runs (name, variant, status, config, data_dir, data_source, created_at, started_at, owner) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (check_name(name) if name else describe(config)[:MAX_NAME], values["variant"], str(status),
                 json.dumps(values), None if data_dir is None else os.path.abspath(data_dir), data_source, now,
                 now if status == Status.RUNNING else None, owner),
            )
            return int(cursor.lastrowid)

    def get(self, run_id) -> Run:
        run_id = check_run_id(run_id)
        with self._read() as db:
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise RunNotFoundError(f"no run with id {run_id}")
            history = db.execute(
                f"SELECT {', '.join(EPOCH_COLUMNS)} FROM epochs WHERE run_id = ? ORDER BY epoch", (run_id,)
            ).fetchall()
        run = _to_run(row)
        run.history = [_to_epoch(h) for h in history]
        return run

    def list_runs(self, statuses=None) -> list:
        """Runs (all, or those in ``statuses``), newest first, without their history; orphans
        reconciled first, so no listing shows a dead trainer's run as "running"."""
        self.reconcile()
        with self._read() as db:
            if statuses is None:
                rows = db.execute("SELECT * FROM runs ORDER BY id DESC").fetchall()
            else:
                wanted = [str(Status(s)) for s in statuses]
                rows = db.execute(f"SELECT * FROM runs WHERE status IN ({', '.join('?' * len(wanted))}) "
                                  "ORDER BY id DESC", wanted).fetchall()
        return [_to_run(row) for row in rows]

    def resolve(self, reference) -> int:
        """A run id, or the exact name of exactly one run (for the CLI)."""
        text = str(reference).strip()
        if text.isdigit():  # names are never all digits (check_name), so this is an id
            return self.get(check_run_id(text)).id
        with self._read() as db:
            rows = db.execute("SELECT id FROM runs WHERE name = ?", (text,)).fetchall()
        if len(rows) != 1:
            what = "no run" if not rows else f"{len(rows)} runs"
            raise RunNotFoundError(f"{what} named {text!r}; use the run id from `runs`")
        return int(rows[0]["id"])

    def claim_next(self, only=None, slot=0) -> Run | None:
        """Atomically move the oldest queued run to running (queue order = id order), for the
        trainer holding training slot ``slot``; with ``only`` (a run id), only when that run
        is the oldest queued one. The slot is written in the same transaction: two trainers
        never get the same run, and a running run's trainer is always known."""
        with self._write() as db:
            row = db.execute(
                "SELECT id FROM runs WHERE status = ? ORDER BY id LIMIT 1", (Status.QUEUED,)
            ).fetchone()
            if row is None or (only is not None and row["id"] != only):
                return None
            db.execute(
                "UPDATE runs SET status = ?, started_at = ?, slot = ? WHERE id = ?",
                (Status.RUNNING, time.time(), slot, row["id"]),
            )
        return self.get(row["id"])

    def append_epoch(self, run_id, record: EpochRecord) -> None:
        values = record.to_dict()
        values["weights"] = None if record.weights is None else json.dumps(record.weights)
        with self._write() as db:
            db.execute(
                f"INSERT OR REPLACE INTO epochs (run_id, {', '.join(EPOCH_COLUMNS)}) "
                f"VALUES (?, {', '.join('?' * len(EPOCH_COLUMNS))})",
                (check_run_id(run_id), *(values[column] for column in EPOCH_COLUMNS)),
            )

    def update(self, run_id, **fields) -> None:
        """Set a running run's progress (a ``Progress``), data source, parameter count,
        metrics, runtime or error."""
        allowed = {"progress", "data_source", "params", "metrics", "error", "runtime"}
        unknown = set(fields) - allowed
        if unknown:
            raise ParameterError([(sorted(unknown)[0], f"cannot be updated; allowed: {sorted(allowed)}")])
        if isinstance(fields.get("progress"), Progress):
            fields["progress"] = fields["progress"].to_dict()
        values = {k: json.dumps(v) if k in ("progress", "metrics", "runtime") else v for k, v in fields.items()}
        with self._write() as db:
            sets = ", ".join(f"{k} = ?" for k in values)
            db.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*values.values(), check_run_id(run_id)))

    def finish(self, run_id, status, metrics=None, error=None) -> None:
        """Move a running run to its final status (the moves are in ``status.NEXT``)."""
        status = Status(status)
        run_id = check_run_id(run_id)
        with self._write() as db:
            current = _status_of(db, run_id)
            if not can_move(current, status):
                raise StoreError(f"run {run_id} cannot move from {current} to {status}")
            db.execute(
                "UPDATE runs SET status = ?, finished_at = ?, metrics = COALESCE(?, metrics), "
                "error = ? WHERE id = ?",
                (status, time.time(), None if metrics is None else json.dumps(metrics), error, run_id),
            )

    def request_stop(self, run_id) -> str:
        """Cancel a queued run at once; ask a running one to stop after its current batch."""
        run_id = check_run_id(run_id)
        with self._write() as db:
            current = _status_of(db, run_id)
            if current == Status.QUEUED:
                db.execute("UPDATE runs SET status = ?, finished_at = ? WHERE id = ?",
                           (Status.CANCELLED, time.time(), run_id))
                return str(Status.CANCELLED)
            if current == Status.RUNNING:
                db.execute("UPDATE runs SET stop_requested = 1 WHERE id = ?", (run_id,))
                return "stopping"
            return current

    def stop_requested(self, run_id) -> bool:
        with self._read() as db:
            row = db.execute("SELECT stop_requested FROM runs WHERE id = ?",
                             (check_run_id(run_id),)).fetchone()
        return bool(row is None or row["stop_requested"])  # a deleted run stops too

    def rename(self, run_id, name) -> None:
        name = check_name(name)
        with self._write() as db:
            if db.execute("UPDATE runs SET name = ? WHERE id = ?", (name, check_run_id(run_id))).rowcount == 0:
                raise RunNotFoundError(f"no run with id {run_id}")

    def delete(self, run_id) -> None:
        run_id = check_run_id(run_id)
        with self._write() as db:
            if _status_of(db, run_id) == Status.RUNNING:
                raise StoreError(f"run {run_id} is training; stop it before deleting it")
            db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        _remove(self.run_dir(run_id))

    def reconcile(self) -> list:
        """Mark runs left "running" by a trainer that died interrupted: those whose training
        slot nobody holds (then nobody can be training them). A trainer killed by SIGKILL
        cannot say so itself and the next worker may be hours away, so every entry point
        calls this; otherwise such a run shows "running" with its clock counting, stop says
        "stopping" forever and delete is refused. One read when nothing runs; else one lock
        attempt per slot that has a running run."""
        if self.read_only:
            return []
        with self._read() as db:
            slots = [row[0] for row in db.execute("SELECT DISTINCT COALESCE(slot, 0) FROM runs WHERE status = ?",
                                                  (Status.RUNNING,))]
        orphans = []
        for slot in slots:
            try:
                with self.training_lock(blocking=False, slot=slot) as acquired:
                    orphans += self.mark_interrupted(slot) if acquired else []
            except StoreError:  # an unusable lock file: listing still works, training says why
                pass
        return orphans

    def mark_interrupted(self, slot=0) -> list:
        """Runs left running in training slot ``slot`` by a process that died become
        interrupted, with their last finished epoch and the runs that were waiting in the
        queue at that moment (what the queue does next is then a fact, not a guess). Call
        only while holding that slot's lock: then no live process can be training them."""
        with self._write() as db:
            rows = db.execute(
                "SELECT id, (SELECT MAX(epoch) FROM epochs WHERE run_id = runs.id) AS last "
                "FROM runs WHERE status = ? AND COALESCE(slot, 0) = ?", (Status.RUNNING, slot)
            ).fetchall()
            waiting = [r["id"] for r in db.execute("SELECT id FROM runs WHERE status = ? ORDER BY id",
                                                   (Status.QUEUED,))]
            for row in rows:
                record = {"last_epoch": row["last"] or 0, "waiting": waiting}
                db.execute(
                    "UPDATE runs SET status = ?, finished_at = ?, interruption = ? WHERE id = ?",
                    (Status.INTERRUPTED, time.time(), json.dumps(record), row["id"]),
                )
        return [int(r["id"]) for r in rows]

    def remove_leftovers(self) -> list:
        """Delete what a killed process can leave behind: half-written temporary files
        (a kill mid-checkpoint) and folders of runs already deleted from the database (a
        kill between the delete and the folder's removal). Call while holding a training
        slot, after marking its orphans: the folders of runs still running belong to
        trainers alive in other slots and are left alone. The folders are listed before
        the database is read, so a run created and claimed meanwhile is never taken for a
        deleted one (ids are never reused)."""
        folders = list(self.home.glob("run-*"))
        with self._read() as db:
            rows = db.execute("SELECT id, status FROM runs").fetchall()
        known = {self.run_dir(row["id"]) for row in rows}
        training = {self.run_dir(row["id"]) for row in rows if row["status"] == Status.RUNNING}
        removed = []
        for folder in folders:
            if folder not in known and (folder.is_symlink() or folder.is_dir()):
                _remove(folder)  # a link goes itself, never what it points to
                removed.append(folder)
            elif folder not in training and folder.is_dir() and not folder.is_symlink():
                for temporary in folder.glob(".*.tmp.*"):
                    temporary.unlink(missing_ok=True)
                    removed.append(temporary)
        return removed

    # -- files -----------------------------------------------------------------------------
    def run_dir(self, run_id) -> Path:
        return self.home / f"run-{check_run_id(run_id):06d}"

    def model_path(self, run_id) -> Path:
        return self.run_dir(run_id) / "model.keras"

    def writable_run_dir(self, run_id) -> Path:
        """The run's folder, for writing. A link in its place that leads out of KMNIST_HOME is
        refused: writes through it, and the cleanup of "temporary" files there, would land
        outside the home."""
        folder = self.run_dir(run_id)
        real = Path(os.path.realpath(folder))
        if not real.is_relative_to(self.home):
            raise StoreError(f"{folder.name} in KMNIST_HOME is a link to {real}, outside KMNIST_HOME "
                             f"({self.home}); refusing to write there: remove the link")
        return folder

    def save_model(self, run_id, model) -> Path:
        target = self.writable_run_dir(run_id) / "model.keras"
        return _replace_atomically(target, target.with_name(f".model-{os.getpid()}.tmp.keras"), model.save)

    def save_array(self, run_id, name, array) -> Path:
        if name not in ("test_proba", "val_proba", "test_index"):
            raise ParameterError(f"name must be test_proba, val_proba or test_index, got {name!r}")
        target = self.writable_run_dir(run_id) / f"{name}.npy"
        temporary = target.with_name(f".{name}-{os.getpid()}.tmp.npy")
        return _replace_atomically(target, temporary, lambda path: np.save(path, np.asarray(array)))

    def load_array(self, run_id, name) -> np.ndarray | None:
        path = self.run_dir(run_id) / f"{name}.npy"
        if name not in ("test_proba", "val_proba", "test_index") or not path.is_file():
            return None
        try:
            return np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError):
            return None

    # -- training slots: one lock per training that may run at once ------------------------------
    @contextmanager
    def training_lock(self, blocking=True, patience=0.0, slot=0):
        """Held by whoever trains in training slot ``slot``. The OS drops it when that
        process dies, even by SIGKILL, so 'running' runs of that slot found while holding
        it are known to be orphans. Yields True when acquired, False when
        ``blocking=False`` and someone else has it (after retrying for ``patience``
        seconds: others take it for a moment to check)."""
        handle = self._open_lock(slot)
        try:
            if not _flock(handle, blocking, patience):
                yield False
                return
            yield True
        finally:
            os.close(handle)

    @contextmanager
    def free_slot(self, slots=None, patience=0.0):
        """Hold the first free one of training slots 0..``slots``-1 (default
        ``KMNIST_WORKERS``), retrying for ``patience`` seconds; yields its number, or None
        when all are taken."""
        slots = worker_count() if slots is None else slots
        deadline = time.monotonic() + patience
        while True:
            for slot in range(slots):
                with self.training_lock(blocking=False, slot=slot) as acquired:
                    if acquired:
                        yield slot
                        return
            if time.monotonic() >= deadline:
                yield None
                return
            time.sleep(0.05)

    def _open_lock(self, slot=0) -> int:
        """A slot's lock file (slot 0: ``training.lock``, as before there were slots), never
        followed through a link, and only if it is a regular file."""
        path = self.home / ("training.lock" if slot == 0 else f"training-{check_int('slot', slot, 1)}.lock")
        if self.read_only:
            raise self._read_only_error()
        try:
            handle = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
        except OSError as error:
            raise StoreError(f"{path} cannot be used as the training lock ({error.strerror}); move it aside") from None
        if not stat.S_ISREG(os.fstat(handle).st_mode):
            os.close(handle)
            raise StoreError(f"{path} is not a regular file, so it cannot be the training lock; move it aside")
        return handle

    def held_slots(self, slots=None) -> list:
        """The training slots among 0..``slots``-1 (default ``KMNIST_WORKERS``) that a
        trainer holds."""
        held = []
        for slot in range(worker_count() if slots is None else slots):
            with self.training_lock(blocking=False, slot=slot) as acquired:
                if not acquired:
                    held.append(slot)
        return held

    def trainer_active(self, slots=None) -> bool:
        return bool(self.held_slots(slots))

    # -- sweeps (kmnist_core.sweep builds and validates them) ---------------------------------
    def create_sweep(self, param, values, seeds, variant, runs, overrides=None, data_dir=None, data_source=None,
                     owner=None) -> int:
        """Store a sweep and queue its runs, all in one transaction: a sweep is queued whole
        or not at all. ``runs`` is [(validated TrainConfig, name)] in queue order; the rest
        as in ``create_run``."""
        if not runs:
            raise ParameterError([("runs", "must hold at least one (config, name) pair, got none")])
        now = time.time()
        with self._write() as db:
            sweep_id = int(db.execute(
                "INSERT INTO sweeps (param, values_json, seeds, variant, overrides, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (param, json.dumps(list(values)), int(seeds), variant, json.dumps(overrides or {}), now),
            ).lastrowid)
            for config, name in runs:
                values_row = config.to_dict()
                db.execute(
                    "INSERT INTO runs (name, variant, status, config, data_dir, data_source, created_at, sweep_id, "
                    "owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (check_name(name[:MAX_NAME]), values_row["variant"], str(Status.QUEUED), json.dumps(values_row),
                     None if data_dir is None else str(data_dir), data_source, now, sweep_id, owner),
                )
        return sweep_id

    def get_sweep(self, sweep_id) -> "Sweep":
        sweep_id = check_int("sweep_id", sweep_id, 1)
        with self._read() as db:
            row = db.execute("SELECT * FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
        if row is None:
            raise RunNotFoundError(f"no sweep with id {sweep_id}")
        return _to_sweep(row)

    def list_sweeps(self) -> list:
        """Every sweep, newest first."""
        with self._read() as db:
            return [_to_sweep(row) for row in db.execute("SELECT * FROM sweeps ORDER BY id DESC")]

    def sweep_runs(self, sweep_id) -> list:
        """The runs of a sweep in queue order, without their history."""
        with self._read() as db:
            rows = db.execute("SELECT * FROM runs WHERE sweep_id = ? ORDER BY id",
                              (check_int("sweep_id", sweep_id, 1),)).fetchall()
        return [_to_run(row) for row in rows]


def _writable(home: Path, db_path: Path) -> bool:
    return os.access(home, os.W_OK) and (not db_path.exists() or os.access(db_path, os.W_OK))


def _flock(handle, blocking, patience) -> bool:
    deadline = time.monotonic() + patience
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)


def _remove(path: Path) -> None:
    """A run folder, or a link in its place: the link itself goes, never what it points to
    (``rmtree`` refuses a link, so it used to stay)."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def _replace_atomically(target: Path, temporary: Path, write) -> Path:
    """``write(temporary)`` then rename over ``target``: readers see the old file or the new
    one, never half of one. A failed write (disk full, read-only folder) removes its
    temporary file; one left by a killed process is removed by ``remove_leftovers``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        temporary.unlink(missing_ok=True)  # a link planted under that name must not be written through
        write(temporary)
        os.replace(temporary, target)
    except BaseException:
        with suppress(OSError):
            temporary.unlink()
        raise
    return target


@contextmanager
def _immediate(db):
    """One IMMEDIATE transaction on ``db``, committed, or rolled back on any error; then closed."""
    try:
        db.execute("BEGIN IMMEDIATE")
        yield db
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    finally:
        db.close()


def _status_of(db, run_id) -> str:
    """A run's status inside the caller's transaction; RunNotFoundError when there is none."""
    row = db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        raise RunNotFoundError(f"no run with id {run_id}")
    return row["status"]


def _execute_script(db, script) -> None:
    """Run ``;``-separated statements inside the caller's transaction (``executescript``
    would commit first)."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _to_epoch(row) -> EpochRecord:
    values = dict(row)
    values["weights"] = json.loads(values["weights"]) if values.get("weights") else None
    return EpochRecord.from_dict(values)


def _to_run(row) -> Run:
    return Run(
        id=row["id"], name=row["name"], variant=row["variant"], status=Status(row["status"]),
        config=json.loads(row["config"]), created_at=row["created_at"],
        started_at=row["started_at"], finished_at=row["finished_at"],
        data_dir=row["data_dir"], data_source=row["data_source"], params=row["params"],
        metrics=json.loads(row["metrics"]) if row["metrics"] else None,
        progress=Progress.from_dict(json.loads(row["progress"])) if row["progress"] else None,
        error=row["error"], stop_requested=bool(row["stop_requested"]),
        runtime=json.loads(row["runtime"]) if row["runtime"] else None,
        interruption=json.loads(row["interruption"]) if row["interruption"] else None,
        sweep_id=row["sweep_id"], slot=row["slot"], owner=row["owner"],
    )


@dataclass
class Sweep:
    """One configuration trained for several ``values`` of ``param``, ``seeds`` seeds each
    (``overrides``: the settings shared by all its runs, on top of ``variant``'s preset)."""

    id: int
    param: str
    values: list
    seeds: int
    variant: str
    overrides: dict
    created_at: float


def _to_sweep(row) -> Sweep:
    return Sweep(id=row["id"], param=row["param"], values=json.loads(row["values_json"]), seeds=row["seeds"],
                 variant=row["variant"], overrides=json.loads(row["overrides"]), created_at=row["created_at"])
