"""Files the app must not trust: damaged or hostile models, a truncated dataset, broken
databases, and a disk that is full or read-only. Each gives a clear message, and every
other run still loads."""

import errno
import json
import sqlite3
import zipfile

import keras
import numpy as np
import pytest

from kmnist_core import cli
from kmnist_core.config import make_config
from kmnist_core.inference import ModelLoadError, load_model
from kmnist_core.records import EpochRecord
from kmnist_core.store import RunStore, StoreError
from kmnist_core.worker import drain_queue


def _tiny(**overrides):
    return make_config("overfit", hidden_units=(16,), epochs=1, batch_size=50, **overrides)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A store with one real, loadable model: the run that must keep working."""
    from conftest import write_npz_folder

    base = tmp_path_factory.mktemp("trained")
    store = RunStore(base / "home")
    run_id = store.create_run(_tiny(), data_dir=write_npz_folder(base / "data"))
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
    bad = store.create_run(_tiny(), data_dir=broken)
    good = store.create_run(_tiny(), data_dir=synthetic_dir)
    drain_queue(store)
    assert store.get(bad).status == "failed"
    assert store.get(bad).error.startswith("DataFileError: kmnist-train-imgs.npz: not a readable npz file")
    assert store.get(good).status == "completed"
    _assert_healthy(store, good)


def _truncated_database(path):
    store = RunStore(path.parent)
    for _ in range(200):
        run_id = store.create_run(_tiny())
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
    with pytest.raises(StoreError, match="runs.sqlite"):
        RunStore(home).list_runs()
    assert cli.main(["--home", str(home), "runs"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1 and "runs.sqlite" in error


def test_an_empty_database_file_is_initialised_and_usable(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "runs.sqlite").write_bytes(b"")
    store = RunStore(home)
    run_id = store.create_run(_tiny())
    assert [r.id for r in RunStore(home).list_runs()] == [run_id]


# -- disk full and read-only -------------------------------------------------------------
def _fail_with(code):
    def fail(*args, **kwargs):
        raise OSError(code, f"{errno.errorcode[code]} (injected)")
    return fail


@pytest.mark.parametrize("target, code", [("model", errno.ENOSPC), ("predictions", errno.EROFS)])
def test_a_full_or_read_only_disk_fails_the_run_and_keeps_the_store_consistent(
        home, synthetic_dir, monkeypatch, target, code):
    store = RunStore(home)
    done = store.create_run(_tiny(), name="done before", data_dir=synthetic_dir)
    drain_queue(store)
    with monkeypatch.context() as patch:
        if target == "model":
            patch.setattr(keras.Model, "save", _fail_with(code))
        else:
            patch.setattr(np, "save", _fail_with(code))
        victim = store.create_run(_tiny(), data_dir=synthetic_dir)
        drain_queue(store)
    run = store.get(victim)
    assert run.status == "failed" and f"[Errno {code}]" in run.error and "(injected)" in run.error
    assert not list(home.glob("run-*/.*.tmp.*"))  # no half-written file left behind
    after = store.create_run(_tiny(), data_dir=synthetic_dir)  # space is back: the queue works
    drain_queue(store)
    assert store.get(after).status == "completed" and store.get(done).status == "completed"
    _assert_healthy(store, done)


def test_a_run_folder_that_cannot_be_created_fails_only_that_run(home, synthetic_dir):
    store = RunStore(home)
    blocked = store.create_run(_tiny(), data_dir=synthetic_dir)
    store.run_dir(blocked).write_text("a file where the run's folder should be")
    fine = store.create_run(_tiny(), data_dir=synthetic_dir)
    drain_queue(store)
    assert store.get(blocked).status == "failed" and "Errno" in store.get(blocked).error
    assert store.get(fine).status == "completed"


def test_a_home_that_cannot_be_a_folder_is_refused_before_anything_is_written(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="cannot use .* as KMNIST_HOME"):
        RunStore(tmp_path / "file" / "home")
    assert cli.main(["--home", str(tmp_path / "file" / "home"), "runs"]) == 1
    assert "cannot use" in capsys.readouterr().err
