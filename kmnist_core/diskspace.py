"""Telling a full disk from a damaged run database.

SQLite reports a write that finds no space as SQLITE_FULL ("database or disk is full"),
but in WAL mode every connection first maps the database's ``-shm`` file, and on a full
disk growing it fails as a bare SQLITE_IOERR ("disk I/O error"). The store used to call
that a damaged database and advise moving a healthy one aside; on a 20 MB tmpfs filled to
100% its integrity check said "ok" as soon as space was freed. So an I/O error counts as
a full disk when the folder has (almost) no free space left, and the message says to free
space, never to move the store.
"""

import errno
import shutil
import sqlite3
from contextlib import contextmanager
from pathlib import Path

from .errors import StoreError

FREE_MARGIN = 1024 * 1024  # bytes free below which an I/O error in the folder is taken for a full disk
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class DiskFullError(StoreError):
    """No space left where the store writes. Nothing is damaged: freeing space is the cure."""


def free_bytes(path) -> int | None:
    """Free bytes on the file system holding ``path`` (or its nearest existing parent);
    None when that cannot be known."""
    for folder in (Path(path), *Path(path).parents):
        try:
            return shutil.disk_usage(folder).free
        except OSError:
            continue
    return None


def disk_full(error, path) -> bool:
    """True when ``error`` (an OSError or sqlite3 error, or one with such a cause) means the
    disk holding ``path`` has no space left: ENOSPC or EDQUOT, SQLITE_FULL, or an I/O error
    while less than FREE_MARGIN bytes are free there."""
    seen = set()
    while error is not None and id(error) not in seen:  # Keras and h5py wrap the OSError they got
        seen.add(id(error))
        if isinstance(error, DiskFullError) or _says_full(error, path):
            return True
        error = getattr(error, "__cause__", None) or getattr(error, "__context__", None)  # (or a verdict text)
    return False


def _says_full(error, path) -> bool:
    if isinstance(error, OSError):
        if error.errno in FULL_ERRNOS:
            return True
        return error.errno == errno.EIO and _nearly_full(path)
    if isinstance(error, sqlite3.Error):
        code = (getattr(error, "sqlite_errorcode", None) or 0) & 0xFF  # the primary code of an extended one
        if code == sqlite3.SQLITE_FULL or "database or disk is full" in str(error):
            return True
        return (code == sqlite3.SQLITE_IOERR or "disk I/O error" in str(error)) and _nearly_full(path)
    return False


def _nearly_full(path) -> bool:
    free = free_bytes(path)
    return free is not None and free < FREE_MARGIN


def translate(error, path) -> DiskFullError | None:
    """The one-line DiskFullError to raise instead of ``error`` when it means a full disk
    (``error`` itself when it is one already); else None. The store calls this before it
    calls a database damaged, so a healthy store is never said to need moving aside."""
    if isinstance(error, DiskFullError):
        return error
    if not disk_full(error, path):
        return None
    free = free_bytes(path)
    left = "" if free is None else f" ({free / 1e6:.1f} MB free)"
    return DiskFullError(f"disk full: no space left in {path}{left}; free some space and try again "
                         f"(the run database is not damaged: keep it where it is)")


@contextmanager
def raising_disk_full(path):
    """Re-raise an OSError or sqlite3 error inside as DiskFullError when it means a full
    disk at ``path``; any other error passes unchanged."""
    try:
        yield
    except (OSError, sqlite3.Error) as error:
        full = translate(error, path)
        if full is None:
            raise
        raise full from error
