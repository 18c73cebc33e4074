"""A full disk (issue 20, item 2) is said to be a full disk, in one line: never a damaged
database to move aside, never a traceback. A run that meets it ends with its finished
epochs kept. On a real 20 MB tmpfs when this process may mount one (root), else skipped;
the classification itself is tested on real SQLite and OS errors."""

import errno
import os
import sqlite3
import subprocess
import sys
from collections import namedtuple

import keras
import pytest

from kmnist_core import cli, diskspace
from kmnist_core.diskspace import DiskFullError, disk_full, raising_disk_full, translate
from kmnist_core.store import RunStore, StoreError
from kmnist_core.worker import drain_queue

from conftest import PROJECT_ROOT, tiny_config, wait_until

# Needs the store to call kmnist_core.diskspace: ``raising_disk_full(self.home)`` around ``_write`` and ``_read``,
# ``translate(error, self.home) or StoreError(...)`` in ``_unusable``, ``__init__``'s OSError and ``_open_lock``.
# Strict: once store.py does, these pass and the marker must go.
Usage = namedtuple("Usage", "total used free")


# -- telling a full disk from damage -------------------------------------------------------------
def _sqlite_full(tmp_path):
    """A real SQLITE_FULL: a database allowed no more pages than it has."""
    db = sqlite3.connect(tmp_path / "capped.sqlite")
    db.execute("CREATE TABLE t (x BLOB)")
    db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
    with pytest.raises(sqlite3.OperationalError) as caught:
        db.execute("INSERT INTO t VALUES (zeroblob(100000))")
    return caught.value


def _sqlite_damaged(tmp_path):
    (tmp_path / "garbage.sqlite").write_bytes(b"this is no database" * 100)
    with pytest.raises(sqlite3.DatabaseError) as caught:
        sqlite3.connect(tmp_path / "garbage.sqlite").execute("SELECT * FROM sqlite_master")
    return caught.value


@pytest.mark.parametrize("free", [0, 10**9])
def test_what_counts_as_a_full_disk(tmp_path, monkeypatch, free):
    monkeypatch.setattr(diskspace.shutil, "disk_usage", lambda path: Usage(10**10, 10**10 - free, free))
    nearly_full = free < diskspace.FREE_MARGIN
    io_error = sqlite3.OperationalError("disk I/O error")
    io_error.sqlite_errorcode = 4874  # SQLITE_IOERR_SHMSIZE: what a full tmpfs gave when the store opened
    wrapped = RuntimeError("saving the model failed")
    wrapped.__cause__ = OSError(errno.ENOSPC, "No space left on device")
    assert disk_full(_sqlite_full(tmp_path), tmp_path)  # SQLITE_FULL, whatever is free
    assert disk_full(OSError(errno.ENOSPC, "No space left on device"), tmp_path)
    assert disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"), tmp_path)
    assert disk_full(wrapped, tmp_path)
    assert disk_full(io_error, tmp_path) == nearly_full  # an I/O error is a full disk only when it is full
    assert disk_full(OSError(errno.EIO, "Input/output error"), tmp_path) == nearly_full
    assert not disk_full(_sqlite_damaged(tmp_path), tmp_path)  # damage stays damage, full disk or not
    assert not disk_full(OSError(errno.EROFS, "Read-only file system"), tmp_path)
    assert not disk_full(ValueError("no"), tmp_path)
    assert not disk_full("*** in database main ***", tmp_path)  # quick_check's verdict, which _unusable also gets


def test_a_full_disk_becomes_one_line_that_never_says_move_it_aside(tmp_path):
    full = translate(OSError(errno.ENOSPC, "No space left on device"), tmp_path)
    assert isinstance(full, DiskFullError) and isinstance(full, StoreError)
    text = str(full)
    assert text.startswith("disk full: ") and str(tmp_path) in text and "\n" not in text
    assert "move it aside" not in text.lower() and "not damaged" in text
    assert translate(full, tmp_path) is full
    assert translate(OSError(errno.EROFS, "Read-only file system"), tmp_path) is None
    with pytest.raises(DiskFullError), raising_disk_full(tmp_path):
        raise _sqlite_full(tmp_path)
    with pytest.raises(sqlite3.DatabaseError), raising_disk_full(tmp_path):  # damage passes unchanged
        raise _sqlite_damaged(tmp_path)


# -- the runner: a checkpoint that finds no space ---------------------------------------------------
def test_a_model_save_without_space_fails_the_run_in_one_line_and_stops_the_queue(home, synthetic_dir, monkeypatch):
    """The model's temporary file is removed, so the store can still write: the run is
    failed with "disk full" and its finished epochs; the trainer leaves the queue as it is
    (the next run would meet the same disk) and says so in one line."""
    store = RunStore(home)
    victim = store.create_run(tiny_config(epochs=2), data_dir=synthetic_dir)
    waiting = store.create_run(tiny_config(), data_dir=synthetic_dir)

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(keras.Model, "save", no_space)
    with pytest.raises(DiskFullError, match=r"^disk full: "):
        drain_queue(store)
    run = store.get(victim)
    assert run.status == "failed" and run.error.startswith("disk full: ") and "move it aside" not in run.error
    assert [record.epoch for record in run.history] == [1, 2]
    assert store.get(waiting).status == "queued"  # not failed in turn
    assert not list(home.glob("run-*/.*.tmp.*"))


# -- a real full disk ---------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 20 MB tmpfs (root only; skipped elsewhere), and a way to fill it and free it again."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mount)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip() or result.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(mount):
    """Write a file until the disk is full."""
    with open(mount / "filler", "wb") as filler:
        try:
            while True:
                filler.write(b"\0" * 1024 * 1024)
                filler.flush()
        except OSError as error:
            assert error.errno == errno.ENOSPC
    assert diskspace.free_bytes(mount) < diskspace.FREE_MARGIN


def _free(mount):
    (mount / "filler").unlink()


def _one_error_line(text):
    assert text.startswith("error: ") and text.count("\n") == 1, text
    return text


def test_on_a_full_disk_every_command_says_disk_full_and_the_store_is_intact(small_disk, synthetic_dir, capsys):
    home = small_disk / "home"
    store = RunStore(home)
    kept = store.create_run(tiny_config(), name="kept")
    _fill(small_disk)
    for args in (["runs"], ["rename", str(kept), "renamed"], ["stop", str(kept)],
                 ["--data-dir", str(synthetic_dir), "train", "--variant", "overfit", "--epochs", "1"]):
        assert cli.main(["--home", str(home), *args]) == 1
        error = _one_error_line(capsys.readouterr().err)
        assert error.startswith("error: disk full: ") and "move it aside" not in error.lower(), error
    _free(small_disk)
    store = RunStore(home)
    assert [run.name for run in store.list_runs()] == ["kept"]  # nothing lost, nothing queued meanwhile
    store.check()  # integrity "ok"


def test_a_disk_that_fills_during_training_ends_the_run_in_one_line_with_its_epochs(small_disk, synthetic_dir):
    """The issue's case: the disk fills during epoch 2 of a CLI `train`. The trainer cannot
    write even its final status, so it leaves with one line; once space is back, the run
    is listed interrupted with its finished epochs."""
    home = small_disk / "home"
    env = {**os.environ, "KMNIST_HOME": str(home), "KMNIST_NATIVE_LOGS": ""}
    trainer = subprocess.Popen([sys.executable, "-m", "kmnist_core", "--data-dir", str(synthetic_dir), "train",
                                "--variant", "overfit", "--hidden-units", "16", "--epochs", "1000"],
                               cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: home.joinpath("runs.sqlite").exists() and _epochs(home) >= 1, timeout=180)
        _fill(small_disk)
        _, stderr = trainer.communicate(timeout=120)
    finally:
        trainer.kill()
    assert trainer.returncode == 1
    assert "Traceback" not in stderr
    last = stderr.rstrip("\n").rsplit("\n", 1)[-1]
    assert last.startswith("error: disk full: ") and "move it aside" not in last.lower(), stderr[-2000:]
    _free(small_disk)
    run = RunStore(home).list_runs()[0]
    assert run.status in ("interrupted", "failed") and len(RunStore(home).get(run.id).history) >= 1
    RunStore(home).check()


def _epochs(home) -> int:
    try:
        with sqlite3.connect(f"file:{home / 'runs.sqlite'}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM epochs").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_what_sqlite_says_on_a_real_full_disk_counts_as_one(small_disk):
    """A new WAL database on the full tmpfs: SQLite's error there (a "disk I/O error" when
    its -shm file cannot grow) is classified as a full disk."""
    _fill(small_disk)
    with pytest.raises(sqlite3.Error) as caught:
        db = sqlite3.connect(small_disk / "new.sqlite", isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("CREATE TABLE t (x)")
    assert disk_full(caught.value, small_disk)
