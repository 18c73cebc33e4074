"""The run store: an SQLite index over one folder per run, under ``$KMNIST_HOME``.

SQLite in WAL mode gives atomic, crash-safe writes and lets readers in other processes
(the app, the CLI, the background worker) see a consistent state while one process
writes. The database is an index, not the only record: every run folder carries the
run's row and history (``folders``), written in the same transaction as the row, so a
database moved aside, emptied or damaged is rebuilt from the folders (``recover``, and
on every opening for folders the database does not list). Nothing is deleted that the
store does not know to be its own: a deleted run's folder, a temporary file.

Up to ``KMNIST_WORKERS`` trainers train side by side, each holding one training slot
(``slots``) and recording it on the runs it claims; a run left "running" in a slot that
nobody holds is an orphan (``reconcile``). Every status change goes through ``_move``,
which allows only the moves in ``status.NEXT``. A store whose folder this user cannot
write opens read-only: it lists and reads, and a change says "read-only".
"""

import json
import os
import sqlite3
import time
from pathlib import Path

from . import diskspace
from .checks import MAX_NAME, ParameterError, check_choice, check_int, check_name, check_run_id
from .errors import RunNotFoundError, StoreError
from .folders import read_manifest, remove
from .records import STUDY_KINDS, EpochRecord, Progress, Run, Study, Sweep
from .recovery import FolderIndex, move_damaged_aside
from .schema import EPOCH_COLUMNS, SCHEMA_VERSION, create_or_migrate, has_row, insert, to_epoch, to_run, to_study, to_sweep
from .slots import TrainingSlots
from .status import Status, can_move

__all__ = ["HOME_ENV", "SCHEMA_VERSION", "Run", "RunNotFoundError", "RunStore", "StoreError", "Study", "Sweep",
           "check_run_id", "default_home"]

HOME_ENV = "KMNIST_HOME"


def default_home() -> Path:
    return Path(os.environ.get(HOME_ENV) or "runs")


class RunStore(FolderIndex, TrainingSlots):
    def __init__(self, home=None):
        # Resolved once: a worker started in another folder opens this same store, and links
        # out of it are judged against its real path.
        self.home = Path(default_home() if home is None else home).resolve()
        self.db_path = self.home / "runs.sqlite"
        self.read_only = False
        self.indexed_on_opening = []  # runs brought back from their folders when this store opened
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            self.read_only = not _writable(self.home, self.db_path)
            if self.read_only:
                self._check_read_only()
            else:
                with self._write() as db:
                    try:
                        create_or_migrate(db, SCHEMA_VERSION)
                    except ValueError as error:
                        raise StoreError(f"{self.db_path} was written by a newer KMNIST Explorer ({error}); "
                                         f"update the app") from None
                self.indexed_on_opening = self.index_folders()
        except sqlite3.DatabaseError as error:
            raise self._unusable(error) from None
        except OSError as error:
            raise diskspace.translate(error, self.home) or StoreError(
                f"cannot use {self.home} as KMNIST_HOME ({error.strerror})") from None

    # -- runs ----------------------------------------------------------------------------
    def create_run(self, config, name=None, data_dir=None, status=Status.QUEUED, data_source=None,
                   owner=None) -> int:
        """Store a validated ``TrainConfig`` as a new run. Without a ``name`` the run is named
        from its settings (``config.describe``), so its label cannot disagree with them.
        ``data_dir`` is stored absolute (the worker runs in another folder; None means
        tensorflow-datasets); ``data_source``, when the caller loaded the data, is what the
        run must be trained on (the runner refuses other data); ``owner``, the app session
        that queued it; ``status`` running for a run its caller trains at once."""
        check_choice("status", str(status), (Status.QUEUED, Status.RUNNING))
        with self._write() as db:
            (run_id,) = self._queue(db, [(config, name)], data_dir, data_source, owner, status=Status(status))
        return run_id

    def _queue(self, db, runs, data_dir, data_source, owner, status=Status.QUEUED, sweep_id=None,
               study_id=None) -> list:
        """The one way runs enter the store: ``runs`` is [(validated TrainConfig, name or
        None)], inserted in queue order inside the caller's transaction, each with its
        folder's manifest."""
        from .config import describe

        now, ids = time.time(), []
        for config, name in runs:
            values = config.to_dict()
            ids.append(insert(db, "runs", {
                "name": check_name(name) if name else describe(config)[:MAX_NAME], "variant": values["variant"],
                "status": str(status), "config": values, "created_at": now,
                "started_at": now if status == Status.RUNNING else None,
                "data_dir": None if data_dir is None else os.path.abspath(data_dir), "data_source": data_source,
                "owner": owner, "sweep_id": sweep_id, "study_id": study_id,
            }))
            self._save_manifest(db, ids[-1])
        return ids

    def get(self, run_id) -> Run:
        run_id = check_run_id(run_id)
        with self._read() as db:
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise RunNotFoundError(f"no run with id {run_id}")
            history = db.execute(
                f"SELECT {', '.join(EPOCH_COLUMNS)} FROM epochs WHERE run_id = ? ORDER BY epoch", (run_id,)
            ).fetchall()
        run = to_run(row)
        run.history = [to_epoch(h) for h in history]
        return run

    def list_runs(self, statuses=None, reconcile=True) -> list:
        """Runs (all, or those in ``statuses``), newest first, without their history. With
        ``reconcile`` (the default) orphans are marked interrupted first, a write, so that
        no listing shows a dead trainer's run as "running"."""
        if reconcile:
            self.reconcile()
        with self._read() as db:
            if statuses is None:
                rows = db.execute("SELECT * FROM runs ORDER BY id DESC").fetchall()
            else:
                wanted = [str(Status(s)) for s in statuses]
                rows = db.execute(f"SELECT * FROM runs WHERE status IN ({', '.join('?' * len(wanted))}) "
                                  "ORDER BY id DESC", wanted).fetchall()
        return [to_run(row) for row in rows]

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
            row = db.execute("SELECT id FROM runs WHERE status = ? ORDER BY id LIMIT 1", (Status.QUEUED,)).fetchone()
            if row is None or (only is not None and row["id"] != only):
                return None
            self._move(db, row["id"], Status.RUNNING, started_at=time.time(), slot=slot)
        return self.get(row["id"])

    def _move(self, db, run_id, status, **columns) -> None:
        """Every status change: checked against ``status.NEXT`` inside the caller's
        transaction, written with ``columns``, mirrored to the run's manifest."""
        current = _status_of(db, run_id)
        if not can_move(current, status):
            raise StoreError(f"run {run_id} cannot move from {current} to {status}")
        db.execute(f"UPDATE runs SET status = ?{''.join(f', {k} = ?' for k in columns)} WHERE id = ?",
                   (str(status), *columns.values(), run_id))
        self._save_manifest(db, run_id)

    def append_epoch(self, run_id, record: EpochRecord) -> None:
        run_id = check_run_id(run_id)
        with self._write() as db:
            insert(db, "epochs", {"run_id": run_id} | record.to_dict(), replace=True)  # k-fold may write an epoch again
            self.append_history(run_id, record.to_dict())

    def update(self, run_id, **fields) -> None:
        """Set a running run's progress (a ``Progress``), data source, parameter count,
        metrics, runtime or error. Progress, written twice a second, stays in the database
        only; the rest is mirrored to the run's manifest."""
        allowed = {"progress", "data_source", "params", "metrics", "error", "runtime"}
        unknown = set(fields) - allowed
        if unknown:
            raise ParameterError([(sorted(unknown)[0], f"cannot be updated; allowed: {sorted(allowed)}")])
        if isinstance(fields.get("progress"), Progress):
            fields["progress"] = fields["progress"].to_dict()
        values = {k: json.dumps(v) if k in ("progress", "metrics", "runtime") else v for k, v in fields.items()}
        run_id = check_run_id(run_id)
        with self._write() as db:
            db.execute(f"UPDATE runs SET {', '.join(f'{k} = ?' for k in values)} WHERE id = ?",
                       (*values.values(), run_id))
            if set(fields) != {"progress"}:
                self._save_manifest(db, run_id)

    def finish(self, run_id, status, metrics=None, error=None) -> None:
        """Move a running run to its final status (the moves are in ``status.NEXT``)."""
        run_id = check_run_id(run_id)
        with self._write() as db:
            kept = db.execute("SELECT metrics FROM runs WHERE id = ?", (run_id,)).fetchone()
            self._move(db, run_id, Status(status), finished_at=time.time(), error=error,
                       metrics=json.dumps(metrics) if metrics is not None else (kept["metrics"] if kept else None))

    def request_stop(self, run_id) -> str:
        """Cancel a queued run at once; ask a running one to stop after its current batch."""
        run_id = check_run_id(run_id)
        with self._write() as db:
            current = _status_of(db, run_id)
            if current == Status.QUEUED:
                self._move(db, run_id, Status.CANCELLED, finished_at=time.time())
                return str(Status.CANCELLED)
            if current == Status.RUNNING:
                db.execute("UPDATE runs SET stop_requested = 1 WHERE id = ?", (run_id,))
                return "stopping"
            return current

    def stop_requested(self, run_id) -> bool:
        with self._read() as db:
            row = db.execute("SELECT stop_requested FROM runs WHERE id = ?", (check_run_id(run_id),)).fetchone()
        return bool(row is None or row["stop_requested"])  # a deleted run stops too

    def rename(self, run_id, name) -> None:
        name = check_name(name)
        run_id = check_run_id(run_id)
        with self._write() as db:
            if db.execute("UPDATE runs SET name = ? WHERE id = ?", (name, run_id)).rowcount == 0:
                raise RunNotFoundError(f"no run with id {run_id}")
            self._save_manifest(db, run_id)

    def delete(self, run_id) -> None:
        """The database row and the folder. The manifest says "deleted" before the row goes,
        so a kill between the two leaves a folder that is known litter, never a run that
        comes back or a folder nobody may remove."""
        run_id = check_run_id(run_id)
        with self._write() as db:
            if _status_of(db, run_id) == Status.RUNNING:
                raise StoreError(f"run {run_id} is training; stop it before deleting it")
            self._save_manifest(db, run_id, deleted=True)
            db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        remove(self.run_dir(run_id))

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
            waiting = [r["id"] for r in db.execute("SELECT id FROM runs WHERE status = ? ORDER BY id", (Status.QUEUED,))]
            for row in rows:
                self._move(db, row["id"], Status.INTERRUPTED, finished_at=time.time(),
                           interruption=json.dumps({"last_epoch": row["last"] or 0, "waiting": waiting}))
        return [int(r["id"]) for r in rows]

    def remove_leftovers(self) -> list:
        """Delete what a killed process can leave behind, and only that: half-written
        temporary files (a kill mid-checkpoint) in the folders of runs not training, the
        folders of runs whose manifest says they were deleted (a kill between the row's
        delete and the folder's removal), and links in place of a run folder (the link
        itself: never what it points to). A folder the database does not list is a run to
        recover, never litter. Call while holding a training slot, after marking its orphans."""
        folders = list(self.home.glob("run-*"))
        with self._read() as db:
            rows = db.execute("SELECT id, status FROM runs").fetchall()
        known = {self.run_dir(row["id"]) for row in rows}
        training = {self.run_dir(row["id"]) for row in rows if row["status"] == Status.RUNNING}
        removed = []
        for folder in folders:
            if folder not in known and (folder.is_symlink() or (read_manifest(folder) or {}).get("deleted")):
                remove(folder)
                removed.append(folder)
            elif folder not in training and folder.is_dir() and not folder.is_symlink():
                for temporary in folder.glob(".*.tmp.*"):
                    temporary.unlink(missing_ok=True)
                    removed.append(temporary)
        return removed

    @classmethod
    def recover(cls, home=None) -> tuple:
        """Rebuild the index from the run folders: a damaged database is moved aside first
        (kept, never deleted), a healthy one only gains the runs it does not list.
        Returns (store, the ids indexed, where the damaged file went or None)."""
        moved = move_damaged_aside(Path(default_home() if home is None else home).resolve() / "runs.sqlite")
        store = cls(home)
        return store, store.indexed_on_opening + store.index_folders(), moved

    # -- studies and sweeps ------------------------------------------------------------------
    def create_study(self, kind, name, purpose, runs, data_dir=None, data_source=None, owner=None, lab=None,
                     prediction=None) -> int:
        """Store a study and queue its runs in one transaction: all or nothing. ``runs`` is
        [(validated TrainConfig, name or None)] in queue order; the rest as in ``create_run``."""
        check_choice("kind", kind, STUDY_KINDS)
        if not runs:
            raise ParameterError([("runs", "must hold at least one (config, name) pair, got none")])
        with self._write() as db:
            study_id = insert(db, "studies", {"kind": kind, "name": check_name(name), "purpose": str(purpose),
                                              "created_at": time.time(), "lab": lab, "prediction": prediction,
                                              "owner": owner})
            self._queue(db, runs, data_dir, data_source, owner, study_id=study_id)
        return study_id

    def create_sweep(self, param, values, seeds, variant, runs, overrides=None, data_dir=None, data_source=None,
                     owner=None) -> int:
        """Store a sweep, its study and its queued runs, all in one transaction: a sweep is
        queued whole or not at all. ``runs`` is [(validated TrainConfig, name)] in queue
        order; the rest as in ``create_run``."""
        if not runs:
            raise ParameterError([("runs", "must hold at least one (config, name) pair, got none")])
        now = time.time()
        with self._write() as db:
            sweep_id = insert(db, "sweeps", {"param": param, "values_json": list(values), "seeds": int(seeds),
                                             "variant": variant, "overrides": overrides or {}, "created_at": now})
            study_id = insert(db, "studies", {"kind": "sweep", "name": f"Sweep of {param}", "created_at": now,
                                              "purpose": f"How {param} changes the fit", "owner": owner,
                                              "sweep_id": sweep_id})
            self._queue(db, [(config, name[:MAX_NAME]) for config, name in runs], data_dir, data_source, owner,
                        sweep_id=sweep_id, study_id=study_id)
        return sweep_id

    def get_study(self, study_id) -> Study:
        return to_study(self._row("studies", "study_id", study_id))

    def list_studies(self, kind=None) -> list:
        """Every study (or those of ``kind``), newest first."""
        with self._read() as db:
            rows = db.execute("SELECT * FROM studies WHERE ? IS NULL OR kind = ? ORDER BY id DESC", (kind, kind))
            return [to_study(row) for row in rows]

    def study_runs(self, study_id) -> list:
        """The runs of a study in queue order, without their history."""
        return self._runs_where("study_id", study_id)

    def set_prediction(self, study_id, prediction) -> None:
        """The learner's prediction, allowed only while none of the study's runs has started:
        a prediction made after seeing the curves is no prediction."""
        study_id = check_int("study_id", study_id, 1)
        with self._write() as db:
            if not has_row(db, "studies", study_id):
                raise RunNotFoundError(f"no study with id {study_id}")
            ids = [row[0] for row in db.execute("SELECT id FROM runs WHERE study_id = ? AND status != ?",
                                                (study_id, Status.QUEUED))]
            if ids:
                raise StoreError(f"study {study_id} has started (run {ids[0]}): its prediction can no longer change")
            db.execute("UPDATE studies SET prediction = ? WHERE id = ?", (prediction, study_id))
            for (run_id,) in db.execute("SELECT id FROM runs WHERE study_id = ?", (study_id,)).fetchall():
                self._save_manifest(db, run_id)

    def get_sweep(self, sweep_id) -> Sweep:
        return to_sweep(self._row("sweeps", "sweep_id", sweep_id))

    def list_sweeps(self) -> list:
        """Every sweep, newest first."""
        with self._read() as db:
            return [to_sweep(row) for row in db.execute("SELECT * FROM sweeps ORDER BY id DESC")]

    def sweep_runs(self, sweep_id) -> list:
        """The runs of a sweep in queue order, without their history."""
        return self._runs_where("sweep_id", sweep_id)

    def _row(self, table, name, row_id):
        row_id = check_int(name, row_id, 1)
        with self._read() as db:
            row = db.execute(f"SELECT * FROM {table} WHERE id = ?", (row_id,)).fetchone()
        if row is None:
            raise RunNotFoundError(f"no {name.removesuffix('_id')} with id {row_id}")
        return row

    def _runs_where(self, column, value) -> list:
        with self._read() as db:
            rows = db.execute(f"SELECT * FROM runs WHERE {column} = ? ORDER BY id",
                              (check_int(column, value, 1),)).fetchall()
        return [to_run(row) for row in rows]


def _writable(home: Path, db_path: Path) -> bool:
    return os.access(home, os.W_OK) and (not db_path.exists() or os.access(db_path, os.W_OK))


def _status_of(db, run_id) -> str:
    """A run's status inside the caller's transaction; RunNotFoundError when there is none."""
    row = db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        raise RunNotFoundError(f"no run with id {run_id}")
    return row["status"]
