"""Files the app must not trust: damaged or hostile models, a truncated dataset, broken
databases, and a disk that is full or read-only. Each gives a clear message, and every
other run still loads."""

import ctypes
import errno
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import zipfile
from contextlib import suppress

import keras
import numpy as np
import pytest
from PIL import Image

from kmnist_core import cli
from kmnist_core.data import load_local
from kmnist_core.diskspace import DiskFullError
from kmnist_core.inference import ModelLoadError, load_model
from kmnist_core.records import EpochRecord
from kmnist_core.store import RunStore, StoreError
from kmnist_core.worker import drain_queue

from conftest import PROJECT_ROOT, tiny_config, wait_until


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A store with one real, loadable model: the run that must keep working."""
    from conftest import write_npz_folder

    base = tmp_path_factory.mktemp("trained")
    store = RunStore(base / "home")
    run_id = store.create_run(tiny_config(), data_dir=write_npz_folder(base / "data"))
    drain_queue(store)
    assert store.get(run_id).status == "completed"
    return store, run_id


def _assert_healthy(store, run_id):
    assert load_model(store.model_path(run_id)).output_shape == (None, 10)
    with sqlite3.connect(store.db_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _small_model(middle=None):
    inputs = keras.Input((28, 28))
    x = keras.layers.Flatten()(inputs)
    if middle is not None:
        x = middle(x)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))


def _rewrite_config(source, target, change):
    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    change(config)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _call_os_system(config, marker):
    dense = config["config"]["layers"][-1]
    dense.update(module="os", class_name="system", registered_name=None, config=f"touch {marker}")


HOSTILE_MODELS = {
    "zero bytes": (lambda good, path: path.write_bytes(b""), "not a Keras model file"),
    "text renamed .keras": (lambda good, path: path.write_text("hello"), "not a Keras model file"),
    "truncated to half": (lambda good, path: path.write_bytes(good.read_bytes()[: good.stat().st_size // 2]),
                          "not a Keras model file"),
    "a zip that is not a model": (lambda good, path: np.savez(path.with_suffix(".npz"), a=np.zeros(3))
                                  or path.with_suffix(".npz").rename(path), "cannot be loaded safely"),
    "weights damaged": (lambda good, path: _damage_weights(good, path), "cannot be loaded safely"),
    "a Lambda layer": (lambda good, path: _small_model(keras.layers.Lambda(lambda t: t * 2)).save(path),
                       "Lambda"),
    "wrong input shape": (lambda good, path: keras.Model(*_io((32, 32))).save(path), "not a KMNIST classifier"),
}


def _io(shape):
    inputs = keras.Input(shape)
    return inputs, keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(inputs))


def _damage_weights(good, path):
    with zipfile.ZipFile(good) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    weights = members["model.weights.h5"]
    members["model.weights.h5"] = weights[:200] + b"\0" * (len(weights) - 200)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


@pytest.mark.parametrize("kind", list(HOSTILE_MODELS))
def test_bad_model_files_are_refused_clearly(trained, tmp_path, kind):
    store, good_run = trained
    make, message = HOSTILE_MODELS[kind]
    path = tmp_path / "model.keras"
    make(store.model_path(good_run), path)
    with pytest.raises(ModelLoadError, match=message):
        load_model(path)
    _assert_healthy(store, good_run)


def test_a_model_whose_config_names_a_dangerous_function_runs_nothing(trained, tmp_path):
    store, good_run = trained
    marker, path = tmp_path / "pwned", tmp_path / "model.keras"
    _rewrite_config(store.model_path(good_run), path, lambda config: _call_os_system(config, marker))
    with pytest.raises(ModelLoadError):
        load_model(path)
    assert not marker.exists()


def test_a_missing_model_or_a_folder_in_its_place(tmp_path):
    with pytest.raises(ModelLoadError, match="missing"):
        load_model(tmp_path / "model.keras")
    (tmp_path / "model.keras").mkdir()
    with pytest.raises(ModelLoadError, match="missing"):
        load_model(tmp_path / "model.keras")


def test_a_truncated_dataset_fails_its_run_clearly_and_the_queue_goes_on(home, synthetic_dir, tmp_path):
    broken = tmp_path / "broken-data"
    broken.mkdir()
    for source in synthetic_dir.iterdir():
        data = source.read_bytes()
        (broken / source.name).write_bytes(data[: len(data) // 3] if "train-imgs" in source.name else data)
    store = RunStore(home)
    bad = store.create_run(tiny_config(), data_dir=broken)
    good = store.create_run(tiny_config(), data_dir=synthetic_dir)
    drain_queue(store)
    assert store.get(bad).status == "failed"
    assert store.get(bad).error.startswith("DataFileError: kmnist-train-imgs.npz: not a readable npz file")
    assert store.get(good).status == "completed"
    _assert_healthy(store, good)


def _truncated_database(path):
    store = RunStore(path.parent)
    for _ in range(200):
        run_id = store.create_run(tiny_config())
        store.append_epoch(run_id, EpochRecord(epoch=1, fit_loss=1.0))
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


BAD_DATABASES = {
    "garbage": lambda path: path.write_bytes(b"not sqlite at all " * 100),
    "truncated": _truncated_database,
    "a folder": lambda path: path.mkdir(),
    "an image": lambda path: path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 5000),
}


@pytest.mark.parametrize("kind", list(BAD_DATABASES))
def test_a_broken_database_gives_one_clear_line(tmp_path, kind, capsys):
    home = tmp_path / "home"
    home.mkdir()
    BAD_DATABASES[kind](home / "runs.sqlite")
    with pytest.raises(StoreError, match=re.escape("runs.sqlite")):
        RunStore(home).list_runs()
    assert cli.main(["--home", str(home), "runs"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1 and "runs.sqlite" in error


def test_an_empty_database_file_is_initialised_and_usable(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "runs.sqlite").write_bytes(b"")
    store = RunStore(home)
    run_id = store.create_run(tiny_config())
    assert [r.id for r in RunStore(home).list_runs()] == [run_id]


# -- disk full and read-only -------------------------------------------------------------
def _fail_with(code):
    def fail(*args, **kwargs):
        raise OSError(code, f"{errno.errorcode[code]} (injected)")
    return fail


@pytest.mark.parametrize("target, code, reason", [("model", errno.ENOSPC, "disk full: "),
                                                  ("predictions", errno.EROFS, "[Errno 30]")])
def test_a_full_or_read_only_disk_fails_the_run_and_keeps_the_store_consistent(
        home, synthetic_dir, monkeypatch, target, code, reason):
    store = RunStore(home)
    done = store.create_run(tiny_config(), name="done before", data_dir=synthetic_dir)
    drain_queue(store)
    with monkeypatch.context() as patch:
        if target == "model":
            patch.setattr(keras.Model, "save", _fail_with(code))
        else:
            patch.setattr(np, "save", _fail_with(code))
        victim = store.create_run(tiny_config(), data_dir=synthetic_dir)
        with suppress(DiskFullError):  # a full disk also ends the trainer (tests/test_reliability_disk_full.py)
            drain_queue(store)
    run = store.get(victim)
    assert run.status == "failed" and reason in run.error
    assert not list(home.glob("run-*/.*.tmp.*"))  # no half-written file left behind
    after = store.create_run(tiny_config(), data_dir=synthetic_dir)  # space is back: the queue works
    drain_queue(store)
    assert store.get(after).status == "completed" and store.get(done).status == "completed"
    _assert_healthy(store, done)


def test_a_run_folder_that_cannot_be_created_fails_only_that_run(home, synthetic_dir):
    store = RunStore(home)
    blocked = store.create_run(tiny_config(), data_dir=synthetic_dir)
    shutil.rmtree(store.run_dir(blocked))  # made with the run (its manifest), then replaced
    store.run_dir(blocked).write_text("a file where the run's folder should be")
    fine = store.create_run(tiny_config(), data_dir=synthetic_dir)
    drain_queue(store)
    assert store.get(blocked).status == "failed" and "Errno" in store.get(blocked).error
    assert store.get(fine).status == "completed"


def test_a_home_that_cannot_be_a_folder_is_refused_before_anything_is_written(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match=r"cannot use .* as KMNIST_HOME"):
        RunStore(tmp_path / "file" / "home")
    assert cli.main(["--home", str(tmp_path / "file" / "home"), "runs"]) == 1
    assert "cannot use" in capsys.readouterr().err


# -- the data a run was queued with ------------------------------------------------------------
def test_a_relative_data_dir_is_stored_as_the_folder_it_names_here(home, synthetic_dir, monkeypatch):
    monkeypatch.chdir(synthetic_dir.parent)  # a worker runs in another folder
    run_id = RunStore(home).create_run(tiny_config(), data_dir=synthetic_dir.name)
    assert RunStore(home).get(run_id).data_dir == str(synthetic_dir)


def test_a_cli_run_queued_behind_a_worker_with_other_data_trains_on_its_own(home, synthetic_dir, tmp_path,
                                                                             monkeypatch):
    """`KMNIST_DATA_DIR=X kc train` queued while a worker started with other data trains."""
    from conftest import write_npz_folder

    other = write_npz_folder(tmp_path / "other", per_class_train=30, seed=7)
    store = RunStore(home)
    with store.training_lock():  # the worker: busy, so the CLI's run waits in the queue
        env = dict(os.environ, KMNIST_HOME=str(home), KMNIST_DATA_DIR=str(synthetic_dir))
        process = subprocess.Popen([sys.executable, "-m", "kmnist_core", "train", "--variant", "overfit",
                                    "--hidden-units", "16", "--epochs", "1", "--batch-size", "50"],
                                   cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert wait_until(store.list_runs)  # the CLI has queued its run
            [queued] = store.list_runs()
        finally:
            process.kill()  # the run stays queued: the worker trains it
            process.communicate()
    assert queued.status == "queued" and queued.data_dir == str(synthetic_dir)
    assert queued.data_source == load_local(synthetic_dir).source  # what it was queued with
    monkeypatch.setenv("KMNIST_DATA_DIR", str(other))  # the worker's own data
    drain_queue(store)
    run = store.get(queued.id)
    assert run.status == "completed" and run.data_source == load_local(synthetic_dir).source
    assert run.metrics["train"]["n"] + run.metrics["val"]["n"] == 200  # synthetic_dir's 200, not other's 300


def test_a_run_queued_for_tensorflow_datasets_never_trains_on_the_workers_folder(home, synthetic_dir, tmp_path,
                                                                                monkeypatch):
    from kmnist_core import data

    store = RunStore(home)
    run_id = store.create_run(tiny_config())  # what `KMNIST_DATA_DIR= kc train` queues: no local folder
    monkeypatch.setenv("KMNIST_DATA_DIR", str(synthetic_dir))  # the worker's own data
    monkeypatch.setenv("KMNIST_TFDS_DIR", str(tmp_path / "no-tfds"))
    monkeypatch.setattr(data, "_host_reachable", lambda *args: False)
    drain_queue(store)
    run = store.get(run_id)
    assert run.status == "failed" and "tensorflow-datasets" in run.error, (run.status, run.error)
    assert run.data_source is None


def test_a_run_whose_data_changed_while_it_waited_is_refused(home, synthetic_dir, tmp_path):
    from conftest import write_npz_folder

    other = write_npz_folder(tmp_path / "other", seed=7)
    current = tmp_path / "current"
    current.symlink_to(synthetic_dir)
    store = RunStore(home)
    queued_with = load_local(current).source
    run_id = store.create_run(tiny_config(), data_dir=current, data_source=queued_with)
    current.unlink()
    current.symlink_to(other)  # the folder now holds other data
    drain_queue(store)
    run = store.get(run_id)
    assert run.status == "failed" and run.error.startswith("DataMismatchError: ")
    assert str(synthetic_dir) in run.error and str(other) in run.error and "queue it again" in run.error
    assert not store.model_path(run_id).exists() and run.data_source == queued_with


# -- a run folder replaced by a link out of the home ---------------------------------------------
def test_a_run_folder_linked_outside_the_home_is_never_written_or_emptied(home, synthetic_dir, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / ".notes.tmp.txt").write_text("looks like a leftover temporary file")
    (outside / "precious.txt").write_text("keep")
    before = sorted(p.name for p in outside.iterdir())
    store = RunStore(home)
    linked = store.create_run(tiny_config(), data_dir=synthetic_dir)
    shutil.rmtree(store.run_dir(linked))  # made with the run (its manifest), then replaced by a link
    store.run_dir(linked).symlink_to(outside, target_is_directory=True)
    (home / "run-000099").symlink_to(outside, target_is_directory=True)  # as if its run was deleted
    fine = store.create_run(tiny_config(), data_dir=synthetic_dir)
    drain_queue(store)
    assert sorted(p.name for p in outside.iterdir()) == before
    run = store.get(linked)
    assert run.status == "failed" and "outside KMNIST_HOME" in run.error and "run-" in run.error
    assert store.get(fine).status == "completed"
    assert not (home / "run-000099").is_symlink()  # the stray link went, not what it points to
    store.delete(linked)
    assert not store.run_dir(linked).is_symlink() and not store.run_dir(linked).exists()
    assert sorted(p.name for p in outside.iterdir()) == before


# -- model paths that are no model file; a training lock that is no file ------------------------------
def _finished_without_training(store, status="completed"):
    run_id = store.create_run(tiny_config(), name="looks trained")
    store.claim_next()
    store.finish(run_id, status)
    return run_id


def _picture(tmp_path):
    path = tmp_path / "drawing.png"
    pixels = np.full((56, 56), 255, np.uint8)
    pixels[10:40, 20:30] = 0
    Image.fromarray(pixels).save(path)
    return path


def _one_line(capsys):
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1, error
    return error


def test_evaluate_or_predict_a_cancelled_run_says_so_before_reading_anything(home, tmp_path, capsys):
    store = RunStore(home)
    run_id = store.create_run(tiny_config())
    store.request_stop(run_id)  # cancelled before it started
    for args in (["evaluate", str(run_id)], ["predict", str(run_id), str(tmp_path / "no-such.png")]):
        assert cli.main(["--data-dir", str(tmp_path / "no-data"), *args]) == 1
        assert f"run {run_id} was cancelled before it started: it has no model" in _one_line(capsys)


SPECIAL_MODEL_PATHS = {
    "a FIFO": (os.mkfifo, "not a regular file (a FIFO)"),
    "a link to /dev/zero": (lambda path: path.symlink_to("/dev/zero"), "not a regular file (a character device)"),
    "a link to /etc/passwd": (lambda path: path.symlink_to("/etc/passwd"), "not a Keras model file"),
    "a folder": (lambda path: path.mkdir(), "is missing (a folder is in its place)"),
    "a sparse 3 GB file": (lambda path: _sparse(path, 3 * 1024**3), "larger than any model"),
}


def _sparse(path, size):
    with open(path, "wb") as file:
        file.truncate(size)


@pytest.mark.parametrize("kind", list(SPECIAL_MODEL_PATHS))
def test_a_model_path_that_is_no_model_file_gets_one_line_naming_the_run_and_file(home, synthetic_dir, tmp_path,
                                                                                   capsys, kind):
    make, message = SPECIAL_MODEL_PATHS[kind]
    store = RunStore(home)
    run_id = _finished_without_training(store)
    store.run_dir(run_id).mkdir(exist_ok=True)
    make(store.model_path(run_id))
    for args in (["evaluate", str(run_id)], ["predict", str(run_id), str(_picture(tmp_path))]):
        start = time.monotonic()
        assert cli.main(["--data-dir", str(synthetic_dir), *args]) == 1
        error = _one_line(capsys)
        assert f"run {run_id}" in error and "model.keras" in error and message in error, error
        assert time.monotonic() - start < 30  # nothing blocked on a FIFO or read a device


def test_a_folder_in_place_of_the_training_lock_gets_one_line(home, synthetic_dir, capsys):
    store = RunStore(home)
    (home / "training.lock").mkdir()
    assert cli.main(["runs"]) == 0  # listing needs no lock
    capsys.readouterr()
    assert cli.main(["--data-dir", str(synthetic_dir), "train", "--variant", "overfit", "--epochs", "1"]) == 1
    error = _one_line(capsys)
    assert "training.lock" in error and "move it aside" in error
    assert store.list_runs() == []  # refused before anything was queued
    store.create_run(tiny_config(), data_dir=synthetic_dir)
    with pytest.raises(StoreError, match=re.escape("training.lock")):
        drain_queue(store)


# -- an intact database in a folder this user cannot write --------------------------------------------
def _as_if_not_root():
    """preexec_fn: root writes anywhere. Without the capabilities that let it ignore
    permissions (dropped from the bounding set before exec) it meets them as their owner."""
    if os.getuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        for capability in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
            if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                raise OSError(ctypes.get_errno(), "cannot drop root's capabilities")


def test_an_intact_database_in_a_read_only_folder_lists_and_says_read_only_on_writes(tmp_path):
    home = tmp_path / "home"
    store = RunStore(home)
    run_id = _finished_without_training(store)
    store.append_epoch(run_id, EpochRecord(epoch=1, fit_loss=0.5))
    before = sorted(p.name for p in home.iterdir())  # runs.sqlite and the run's folder
    os.chmod(home / "runs.sqlite", 0o444)
    os.chmod(home, 0o555)
    try:
        def kc(*args):
            return subprocess.run([sys.executable, "-m", "kmnist_core", "--home", str(home), *args],
                                  cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
                                  preexec_fn=_as_if_not_root)

        listing = kc("runs")
        assert listing.returncode == 0 and "looks trained" in listing.stdout, listing.stderr
        assert kc("runs", "--json").returncode == 0
        for args in (["rename", str(run_id), "new name"], ["delete", str(run_id)]):
            refused = kc(*args)
            assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
            assert "read-only" in refused.stderr and "runs.sqlite" in refused.stderr
        assert sorted(p.name for p in home.iterdir()) == before == ["run-000001", "runs.sqlite"]
    finally:
        os.chmod(home, 0o755)
    assert [r.name for r in RunStore(home).list_runs()] == ["looks trained"]
