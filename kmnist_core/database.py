"""The run database's connections: WAL mode for writers, read-only opening for a store this
user cannot write, and one-line errors for a damaged file. A mixin of ``RunStore``: it
needs ``home``, ``db_path`` and ``read_only``."""

import sqlite3
from contextlib import contextmanager
from pathlib import Path

from . import diskspace
from .errors import StoreError
from .schema import SCHEMA_VERSION


class Connections:
    home: Path
    db_path: Path
    read_only: bool

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
        """What to say of a database that does not read: a full disk is said as such (a
        healthy store must never be moved aside), anything else points at ``recover``."""
        return diskspace.translate(error, self.home) or StoreError(
            f"{self.db_path} is not a usable run database ({error}). Move it aside, or run "
            f"`python -m kmnist_core recover` (it does that): the runs are re-read from their folders, nothing is lost."
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

    @contextmanager
    def _write(self):
        """One IMMEDIATE transaction, committed, or rolled back on any error: writers queue on
        SQLite's lock instead of failing, and the run folders' manifests written inside it
        are written in the order the transactions commit."""
        if self.read_only:
            raise self._read_only_error()
        with diskspace.raising_disk_full(self.home), self._damage_as_store_error():
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
        with diskspace.raising_disk_full(self.home), self._damage_as_store_error():
            db = self._connect()
            try:
                yield db
            finally:
                db.close()
