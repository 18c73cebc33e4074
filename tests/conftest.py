"""Shared fixtures: tiny synthetic KMNIST-shaped folders for speed, the real kmnist-mini
set for the figures that matter, and a fresh run store per test."""

import os
import time
from pathlib import Path

import numpy as np
import pytest

from kmnist_core.config import make_config
from kmnist_core.data import SIBLING_DATA_DIR

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MINI_DIR = Path(os.environ.get("KMNIST_DATA_DIR") or SIBLING_DATA_DIR)  # the same fallback as the app's


def synthetic_arrays(per_class=20, seed=0):
    """Learnable stand-ins: class k is a bright bar at row 2+2k over dim noise."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10, dtype=np.uint8), per_class)
    images = rng.integers(0, 40, size=(len(labels), 28, 28)).astype(np.uint8)
    for i, label in enumerate(labels):
        row = 2 + 2 * int(label)
        images[i, row: row + 3, 4:24] = 255 - rng.integers(0, 40)
    order = rng.permutation(len(labels))
    return images[order], labels[order]


def tiny_config(epochs=1, hidden_units=(32,), **overrides):
    """The run tests train: the overfit preset cut to one small hidden layer, which fits the
    synthetic folders (``synthetic_arrays``) in about a second. ``epochs`` says how long the
    run lasts: 1 to finish at once, hundreds to still be training when a test stops, signals
    or kills it."""
    return make_config("overfit", **{"hidden_units": hidden_units, "epochs": epochs, "batch_size": 50, **overrides})


def write_npz_folder(folder, per_class_train=20, per_class_test=5, seed=0):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    x_train, y_train = synthetic_arrays(per_class_train, seed)
    x_test, y_test = synthetic_arrays(per_class_test, seed + 1)
    for name, array in (("train-imgs", x_train), ("train-labels", y_train),
                        ("test-imgs", x_test), ("test-labels", y_test)):
        np.savez_compressed(folder / f"kmnist-{name}.npz", arr_0=array)
    return folder


def write_tiled_folder(folder, source=MINI_DIR, train=60_000, test=10_000):
    """kmnist-mini repeated to full KMNIST's counts, as the official npz files: what a
    full-scale run costs in time and memory, for TIMING ONLY (every image is there ten
    times, so an accuracy measured on it means nothing)."""
    from kmnist_core.data import NPZ_FILES, load_local

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    mini = load_local(source)
    arrays = {"train_images": mini.x_train, "train_labels": mini.y_train,
              "test_images": mini.x_test, "test_labels": mini.y_test}
    for key, array in arrays.items():
        count = train if key.startswith("train") else test
        np.savez(folder / NPZ_FILES[key], np.resize(array, (count, *array.shape[1:])))
    return folder


@pytest.fixture
def synthetic_dir(tmp_path):
    return write_npz_folder(tmp_path / "data")


@pytest.fixture(scope="session")
def mini_dir():
    if not (MINI_DIR / "kmnist-train-imgs.npz").is_file():
        raise FileNotFoundError(
            f"kmnist-mini not found at {MINI_DIR}; set KMNIST_DATA_DIR to the real data folder"
        )
    return MINI_DIR


@pytest.fixture
def home(tmp_path, monkeypatch):
    path = tmp_path / "home"
    monkeypatch.setenv("KMNIST_HOME", str(path))
    return path


def wait_until(predicate, timeout=120.0, poll=0.05) -> bool:
    """Poll ``predicate`` until it is true (True) or ``timeout`` seconds pass (False):
    tests wait for what the other process does, never for a guessed duration."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return False


@pytest.fixture(scope="module")
def zygote():
    """A pre-imported process that forks trainers and workers in milliseconds (tests/killing.py)."""
    from killing import Zygote

    forker = Zygote()
    yield forker
    forker.close()


def insert_old_run(db_path, config, name) -> int:
    """A queued run as an older release's ``create_run`` wrote it (only the base schema's
    columns), for the upgrade tests: today's ``create_run`` writes columns they lack."""
    import json
    import sqlite3

    with sqlite3.connect(db_path) as db:
        return db.execute("INSERT INTO runs (name, variant, status, config, created_at) VALUES (?, ?, ?, ?, ?)",
                          (name, config.variant, "queued", json.dumps(config.to_dict()), time.time())).lastrowid
