"""The run store: one SQLite database plus one folder per run, under ``$KMNIST_HOME``.

SQLite in WAL mode gives atomic, crash-safe writes and lets readers in other processes
(the app, the CLI, the background worker) see a consistent state while one process
writes. Files (models, prediction arrays) are written to a temporary name and renamed,
so a crash mid-write leaves the previous file. Folder names come only from integer run
ids, never from user text.
"""

import fcntl
import json
import os
import shutil
import sqlite3
import time
import unicodedata
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from .checks import ParameterError

HOME_ENV = "KMNIST_HOME"
STATUSES = ("queued", "running", "completed", "stopped", "failed", "cancelled")
FINISHED = ("completed", "stopped", "failed", "cancelled")
MAX_NAME = 80
INTERRUPTED = "interrupted"  # how a run's error starts when its training process died

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
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
    stop_requested INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS epochs (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    loss REAL, accuracy REAL, val_loss REAL, val_accuracy REAL, elapsed REAL,
    PRIMARY KEY (run_id, epoch)
);
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
    status: str
    config: dict
    created_at: float
    started_at: Optional[float] = None
    finished_at: Optional[float] = None
    data_dir: Optional[str] = None
    data_source: Optional[str] = None
    params: Optional[int] = None
    metrics: Optional[dict] = None
    progress: Optional[dict] = None
    error: Optional[str] = None
    stop_requested: bool = False
    history: list = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def duration(self) -> Optional[float]:
        if self.started_at is None:
            return None
        return (self.finished_at or time.time()) - self.started_at


def default_home() -> Path:
    return Path(os.environ.get(HOME_ENV) or "runs")


def check_run_id(run_id) -> int:
    """Run ids are positive integers; anything else is refused before it reaches a path."""
    if isinstance(run_id, str) and run_id.strip().isdigit():
        run_id = int(run_id.strip())
    if isinstance(run_id, bool) or not isinstance(run_id, (int, np.integer)) or run_id < 1:
        raise ParameterError(f"run_id must be a positive integer, got {run_id!r}")
    return int(run_id)


def check_name(name) -> str:
    """Names are labels only: printable text, 1..80 characters, stored in the database."""
    if not isinstance(name, str):
        raise ParameterError(f"name must be text, got {type(name).__name__}")
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME:
        raise ParameterError(f"name must be 1 to {MAX_NAME} characters, got {len(name)}")
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise ParameterError("name must not contain control characters")
    return name


class RunStore:
    def __init__(self, home=None):
        self.home = Path(home) if home is not None else default_home()
        self.db_path = self.home / "runs.sqlite"
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as error:
            raise self._unusable(error) from None
        except OSError as error:
            raise StoreError(f"cannot use {self.home} as KMNIST_HOME ({error.strerror})") from None

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
        db = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA busy_timeout = 30000")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
        return db

    @contextmanager
    def _write(self):
        """One IMMEDIATE transaction: writers queue on SQLite's lock instead of failing."""
        with self._damage_as_store_error():
            db = self._connect()
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

    @contextmanager
    def _read(self):
        with self._damage_as_store_error():
            db = self._connect()
            try:
                yield db
            finally:
                db.close()

    # -- runs ----------------------------------------------------------------------------
    def create_run(self, config, name=None, data_dir=None, status="queued") -> int:
        if status not in ("queued", "running"):
            raise ParameterError(f"status must be 'queued' or 'running', got {status!r}")
        values = config.to_dict() if hasattr(config, "to_dict") else dict(config)
        now = time.time()
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO runs (name, variant, status, config, data_dir, created_at, started_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (check_name(name) if name else values["variant"], values["variant"], status,
                 json.dumps(values), None if data_dir is None else str(data_dir), now,
                 now if status == "running" else None),
            )
            return int(cursor.lastrowid)

    def get(self, run_id) -> Run:
        run_id = check_run_id(run_id)
        with self._read() as db:
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise RunNotFoundError(f"no run with id {run_id}")
            history = db.execute(
                "SELECT epoch, loss, accuracy, val_loss, val_accuracy, elapsed FROM epochs "
                "WHERE run_id = ? ORDER BY epoch", (run_id,)
            ).fetchall()
        run = _to_run(row)
        run.history = [dict(h) for h in history]
        return run

    def list_runs(self, statuses=None) -> list:
        """All runs, newest first, without their per-epoch history."""
        with self._read() as db:
            rows = db.execute("SELECT * FROM runs ORDER BY id DESC").fetchall()
        runs = [_to_run(row) for row in rows]
        return [r for r in runs if statuses is None or r.status in statuses]

    def resolve(self, reference) -> int:
        """A run id, or the exact name of exactly one run (for the CLI)."""
        text = str(reference).strip()
        if text.isdigit():
            return self.get(int(text)).id
        with self._read() as db:
            rows = db.execute("SELECT id FROM runs WHERE name = ?", (text,)).fetchall()
        if len(rows) != 1:
            what = "no run" if not rows else f"{len(rows)} runs"
            raise RunNotFoundError(f"{what} named {text!r}; use the run id from `runs`")
        return int(rows[0]["id"])

    def claim_next(self) -> Optional[Run]:
        """Atomically move the oldest queued run to running (queue order = id order)."""
        with self._write() as db:
            row = db.execute(
                "SELECT id FROM runs WHERE status = 'queued' ORDER BY id LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE runs SET status = 'running', started_at = ? WHERE id = ?",
                (time.time(), row["id"]),
            )
        return self.get(row["id"])

    def append_epoch(self, run_id, record: dict) -> None:
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO epochs (run_id, epoch, loss, accuracy, val_loss, "
                "val_accuracy, elapsed) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (check_run_id(run_id), record["epoch"], record.get("loss"), record.get("accuracy"),
                 record.get("val_loss"), record.get("val_accuracy"), record.get("elapsed")),
            )

    def update(self, run_id, **fields) -> None:
        allowed = {"progress", "data_source", "params", "metrics", "error"}
        unknown = set(fields) - allowed
        if unknown:
            raise ParameterError(f"cannot update {sorted(unknown)}; allowed: {sorted(allowed)}")
        values = {k: json.dumps(v) if k in ("progress", "metrics") else v for k, v in fields.items()}
        with self._write() as db:
            sets = ", ".join(f"{k} = ?" for k in values)
            db.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*values.values(), check_run_id(run_id)))

    def finish(self, run_id, status, metrics=None, error=None) -> None:
        if status not in FINISHED:
            raise ParameterError(f"status must be one of {FINISHED}, got {status!r}")
        with self._write() as db:
            db.execute(
                "UPDATE runs SET status = ?, finished_at = ?, metrics = COALESCE(?, metrics), "
                "error = ? WHERE id = ?",
                (status, time.time(), None if metrics is None else json.dumps(metrics), error,
                 check_run_id(run_id)),
            )

    def request_stop(self, run_id) -> str:
        """Cancel a queued run at once; ask a running one to stop after its current batch."""
        run_id = check_run_id(run_id)
        with self._write() as db:
            row = db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise RunNotFoundError(f"no run with id {run_id}")
            if row["status"] == "queued":
                db.execute("UPDATE runs SET status = 'cancelled', finished_at = ? WHERE id = ?",
                           (time.time(), run_id))
                return "cancelled"
            if row["status"] == "running":
                db.execute("UPDATE runs SET stop_requested = 1 WHERE id = ?", (run_id,))
                return "stopping"
            return row["status"]

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
            row = db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise RunNotFoundError(f"no run with id {run_id}")
            if row["status"] == "running":
                raise StoreError(f"run {run_id} is training; stop it before deleting it")
            db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        shutil.rmtree(self.run_dir(run_id), ignore_errors=True)

    def mark_interrupted(self) -> list:
        """Runs left 'running' by a process that died. Call only while holding the training
        lock: then no live process can be training them."""
        with self._write() as db:
            rows = db.execute(
                "SELECT id, (SELECT MAX(epoch) FROM epochs WHERE run_id = runs.id) AS last "
                "FROM runs WHERE status = 'running'"
            ).fetchall()
            for row in rows:
                kept = f"history kept up to epoch {row['last']}" if row["last"] else "no epoch had finished"
                db.execute(
                    "UPDATE runs SET status = 'failed', finished_at = ?, error = ? WHERE id = ?",
                    (time.time(), f"{INTERRUPTED}: the training process ended before the run "
                                  f"finished ({kept}); the queue went on", row["id"]),
                )
        return [int(r["id"]) for r in rows]

    def remove_leftovers(self) -> list:
        """Delete what a killed process can leave behind: half-written temporary files
        (a kill mid-checkpoint) and folders of runs already deleted from the database (a
        kill between the delete and the folder's removal). Call only while holding the
        training lock: only the trainer writes run files."""
        with self._read() as db:
            known = {self.run_dir(row["id"]) for row in db.execute("SELECT id FROM runs")}
        removed = []
        for folder in self.home.glob("run-*"):
            if folder.is_dir() and folder not in known:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
            elif folder.is_dir():
                for temporary in folder.glob(".*.tmp.*"):
                    temporary.unlink(missing_ok=True)
                    removed.append(temporary)
        return removed

    # -- files -----------------------------------------------------------------------------
    def run_dir(self, run_id) -> Path:
        return self.home / f"run-{check_run_id(run_id):06d}"

    def model_path(self, run_id) -> Path:
        return self.run_dir(run_id) / "model.keras"

    def save_model(self, run_id, model) -> Path:
        target = self.model_path(run_id)
        return _replace_atomically(target, target.with_name(f".model-{os.getpid()}.tmp.keras"), model.save)

    def save_array(self, run_id, name, array) -> Path:
        if name not in ("test_proba", "val_proba", "test_index"):
            raise ParameterError(f"name must be test_proba, val_proba or test_index, got {name!r}")
        target = self.run_dir(run_id) / f"{name}.npy"
        temporary = target.with_name(f".{name}-{os.getpid()}.tmp.npy")
        return _replace_atomically(target, temporary, lambda path: np.save(path, np.asarray(array)))

    def load_array(self, run_id, name) -> Optional[np.ndarray]:
        path = self.run_dir(run_id) / f"{name}.npy"
        if name not in ("test_proba", "val_proba", "test_index") or not path.is_file():
            return None
        try:
            return np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError):
            return None

    # -- the one-training-at-a-time lock ----------------------------------------------------------
    @contextmanager
    def training_lock(self, blocking=True):
        """Held by whoever trains. The OS drops it when that process dies, even by SIGKILL,
        so 'running' runs found while holding it are known to be orphans.
        Yields True when acquired, False when ``blocking=False`` and someone else has it."""
        handle = open(self.home / "training.lock", "a+")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            handle.close()

    def trainer_active(self) -> bool:
        with self.training_lock(blocking=False) as acquired:
            return not acquired


def _replace_atomically(target: Path, temporary: Path, write) -> Path:
    """``write(temporary)`` then rename over ``target``: readers see the old file or the new
    one, never half of one. A failed write (disk full, read-only folder) removes its
    temporary file; one left by a killed process is removed by ``remove_leftovers``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        write(temporary)
        os.replace(temporary, target)
    except BaseException:
        with suppress(OSError):
            temporary.unlink()
        raise
    return target


def _to_run(row) -> Run:
    return Run(
        id=row["id"], name=row["name"], variant=row["variant"], status=row["status"],
        config=json.loads(row["config"]), created_at=row["created_at"],
        started_at=row["started_at"], finished_at=row["finished_at"],
        data_dir=row["data_dir"], data_source=row["data_source"], params=row["params"],
        metrics=json.loads(row["metrics"]) if row["metrics"] else None,
        progress=json.loads(row["progress"]) if row["progress"] else None,
        error=row["error"], stop_requested=bool(row["stop_requested"]),
    )
