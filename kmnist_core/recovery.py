"""Rebuilding the index from the run folders: the database is an index, the folders the
record. A mixin of ``RunStore``; ``RunStore.recover`` is the CLI's ``recover``."""

import os
import sqlite3
import time
from pathlib import Path

from .database import Connections
from .folders import RunFolders, read_history, read_manifest
from .records import EpochRecord
from .schema import has_row, insert, row_values
from .status import Status


class FolderIndex(Connections, RunFolders):
    """What ``RunStore`` writes to its run folders so they can rebuild it, and the rebuilding."""

    def _save_manifest(self, db, run_id, deleted=False) -> None:
        """Mirror the run's row (with its study and sweep) to its folder, inside the writing
        transaction, so manifests are written in the order the changes commit."""
        row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            return
        values = row_values(row)
        values.pop("progress", None)
        values.pop("stop_requested", None)
        linked = {}
        for table, key in (("studies", "study_id"), ("sweeps", "sweep_id")):
            found = values.get(key) and db.execute(f"SELECT * FROM {table} WHERE id = ?", (values[key],)).fetchone()
            linked[table] = row_values(found) if found else None
        self.write_manifest(run_id, {"run": values, "study": linked["studies"], "sweep": linked["sweeps"],
                                     "deleted": deleted})

    def index_folders(self) -> list:
        """Bring the index up to date with the run folders: runs whose folder has a manifest
        but no row (the database was moved aside, emptied, damaged and rebuilt, or an older
        copy put back) are indexed again with their history, study and sweep; rows whose
        folder has no manifest yet (written by an older release) get one. A run that was
        training when its row was lost is interrupted: no trainer can report to it. New ids
        always come after every folder's, so no run ever lands in another's folder.
        Returns the ids indexed."""
        folders = self.folder_ids()
        with self._read() as db:
            known = {row[0] for row in db.execute("SELECT id FROM runs")}
        unlisted = {run_id: folder for run_id, folder in folders.items() if run_id not in known}
        unrecorded = [run_id for run_id in known if not (self.run_dir(run_id) / "run.json").exists()]
        if not unlisted and not unrecorded and self._next_id_clear(folders):
            return []
        indexed = []
        with self._write() as db:
            for run_id, folder in sorted(unlisted.items()):
                record = read_manifest(folder)
                if record and not record.get("deleted") and not has_row(db, "runs", run_id):
                    self._index_one(db, run_id, folder, record)
                    indexed.append(run_id)
            for run_id in unrecorded:
                self._save_manifest(db, run_id)
            if folders:
                _raise_sequence(db, "runs", max(folders))
        return indexed

    def _next_id_clear(self, folders) -> bool:
        with self._read() as db:
            row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'runs'").fetchone()
        return not folders or (row is not None and row["seq"] >= max(folders))

    def _index_one(self, db, run_id, folder, record) -> None:
        for table, key in (("sweeps", "sweep"), ("studies", "study")):
            linked = record.get(key)
            if isinstance(linked, dict) and linked.get("id") and not has_row(db, table, linked["id"]):
                insert(db, table, linked)
        values = dict(record["run"], id=run_id)
        history = read_history(folder)
        if values.get("status") == Status.RUNNING:
            values.update(status=str(Status.INTERRUPTED), finished_at=time.time(),
                          interruption={"last_epoch": max((h["epoch"] for h in history), default=0), "waiting": []})
        columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
        insert(db, "runs", {k: v for k, v in values.items() if k in columns})
        for epoch in history:
            insert(db, "epochs", {"run_id": run_id} | EpochRecord.from_dict(epoch).to_dict())
        self._save_manifest(db, run_id)


def move_damaged_aside(db_path: Path) -> Path | None:
    """A database that does not read is moved aside (with its -wal and -shm), never
    deleted: ``runs.sqlite.damaged-<time>``. Returns where it went, or None when it reads."""
    if not db_path.exists() or _readable_database(db_path):
        return None
    moved = db_path.with_name(f"runs.sqlite.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{db_path}{suffix}").exists():
            os.replace(f"{db_path}{suffix}", f"{moved}{suffix}")
    return moved


def _readable_database(db_path: Path) -> bool:
    try:
        with sqlite3.connect(f"{db_path.as_uri()}?mode=ro", uri=True, timeout=30) as db:
            return db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    except sqlite3.DatabaseError:
        return False


def _raise_sequence(db, table, at_least) -> None:
    """AUTOINCREMENT's counter to at least ``at_least``: the next id goes past every folder."""
    row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).fetchone()
    if row is None:
        db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, at_least))
    elif row["seq"] < at_least:
        db.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = ?", (at_least, table))
