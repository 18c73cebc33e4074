"""Run folders: everything a run leaves on disk, and the durable record of the run itself.

Each run has a folder ``run-NNNNNN`` (named from its integer id only, never from user
text) holding its model, prediction arrays and TensorBoard events, and two files that
make the database an index rather than the only record:

- ``run.json``: the run's row (settings, status, metrics, owner, runtime) with its study
  and sweep, rewritten whole (temporary file + rename) whenever the row changes;
- ``history.jsonl``: one line per finished epoch, appended.

A store whose database was lost, emptied or damaged is rebuilt from them
(``RunStore.recover``). Nothing here deletes a folder unless its manifest says the run
was deleted: a folder the database does not list is a run to recover, not litter.
Files are written to a temporary name and renamed, so a crash mid-write leaves the
previous file; no write or delete follows a link out of the home.
"""

import json
import os
import shutil
from contextlib import suppress
from pathlib import Path

import numpy as np

from .checks import ParameterError, check_run_id
from .errors import StoreError

MANIFEST = "run.json"
HISTORY = "history.jsonl"
MANIFEST_FORMAT = 1
ARRAYS = ("test_proba", "val_proba", "test_index")


class RunFolders:
    """A mixin of ``RunStore`` for the files of its runs; it needs ``home``."""
    home: Path


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
        return replace_atomically(target, target.with_name(f".model-{os.getpid()}.tmp.keras"), model.save)

    def save_array(self, run_id, name, array) -> Path:
        if name not in ARRAYS:
            raise ParameterError(f"name must be one of {', '.join(ARRAYS)}, got {name!r}")
        target = self.writable_run_dir(run_id) / f"{name}.npy"
        temporary = target.with_name(f".{name}-{os.getpid()}.tmp.npy")
        return replace_atomically(target, temporary, lambda path: np.save(path, np.asarray(array)))

    def load_array(self, run_id, name) -> np.ndarray | None:
        path = self.run_dir(run_id) / f"{name}.npy"
        if name not in ARRAYS or not path.is_file():
            return None
        try:
            return np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError):
            return None

    # -- the durable record ----------------------------------------------------------------
    def write_manifest(self, run_id, record: dict) -> bool:
        """``record``: {"run": row values, "study": ..., "sweep": ..., "deleted": bool}. Best
        effort: a folder that cannot take it (a file or a link out of the home in its place,
        a full disk) must not stop the run's status from changing; the next write of that run
        catches up, and ``index_folders`` writes the missing ones. Returns whether it was written."""
        try:
            folder = self.writable_run_dir(run_id)
            text = json.dumps({"format": MANIFEST_FORMAT, **record}, sort_keys=True)
            replace_atomically(folder / MANIFEST, folder / f".manifest-{os.getpid()}.tmp.json",
                               lambda path: path.write_text(text))
        except (StoreError, OSError):
            return False
        return True

    def append_history(self, run_id, values: dict) -> None:
        """One epoch, one line. A torn last line (a kill mid-write) is skipped on reading;
        an epoch written twice (k-fold, a retry) reads as its last line."""
        try:
            path = self.writable_run_dir(run_id) / HISTORY
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            with os.fdopen(handle, "a") as file:
                file.write(json.dumps(values) + "\n")
        except (StoreError, OSError):  # as for the manifest: the database has the epoch
            pass

    def folder_ids(self) -> dict:
        """{run id: folder} for every real run folder in the home (links and odd names aside)."""
        found = {}
        for folder in self.home.glob("run-*"):
            digits = folder.name[4:]
            if len(digits) == 6 and digits.isascii() and digits.isdigit() and int(digits) > 0 \
                    and folder.is_dir() and not folder.is_symlink():
                found[int(digits)] = folder
        return found


def read_manifest(folder: Path) -> dict | None:
    """A folder's manifest, or None when it has none or it does not read (too damaged to
    trust: the folder is then left alone, neither recovered nor deleted)."""
    path = folder / MANIFEST
    if path.is_symlink() or not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("run"), dict):
        return None
    return record


def read_history(folder: Path) -> list:
    """The epochs in ``history.jsonl`` as dicts, in epoch order, the last line of each epoch winning."""
    path = folder / HISTORY
    if path.is_symlink() or not path.is_file():
        return []
    epochs = {}
    for line in path.read_text(errors="replace").splitlines():
        with suppress(ValueError):
            values = json.loads(line)
            if isinstance(values, dict) and isinstance(values.get("epoch"), int):
                epochs[values["epoch"]] = values
    return [epochs[epoch] for epoch in sorted(epochs)]


def remove(path: Path) -> None:
    """A run folder, or a link in its place: the link itself goes, never what it points to
    (``rmtree`` refuses a link, so it used to stay)."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def replace_atomically(target: Path, temporary: Path, write) -> Path:
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
