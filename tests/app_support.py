"""Fixtures and helpers for the app's AppTest tests: a temporary run store per test, one
shared store with two small finished runs, and waits that poll the store (never sleeps
that assume a speed)."""

import shutil
import time

import pytest
from streamlit.testing.v1 import AppTest

from kmnist_core.config import make_config
from kmnist_core.store import RunStore
from kmnist_core.worker import drain_queue

from browser import ROOT, data_dir

WAIT = 240.0  # seconds; generous because the machine may be busy, never expected to elapse


def app(page=None) -> AppTest:
    """The app opened on ``page`` (e.g. "pages/train.py"), after its first run."""
    test = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    test.run()
    if page:
        test.switch_page(page)
        test.run()
    assert not test.exception, [e.value for e in test.exception]
    return test


def wait_for(condition, what, timeout=WAIT, poll=0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(poll)


def wait_finished(store, run_id):
    return wait_for(lambda: store.get(run_id).finished and store.get(run_id), f"run {run_id} to finish")


def texts(elements) -> str:
    return "\n".join(str(element.value) for element in elements)


def use_home(monkeypatch, path, idle_exit):
    monkeypatch.setenv("KMNIST_HOME", str(path))
    monkeypatch.setenv("KMNIST_DATA_DIR", data_dir())
    monkeypatch.setenv("KMNIST_WORKER_IDLE_EXIT", str(idle_exit))


def stop_all_and_wait(store):
    """Leave no training and no worker process behind."""
    for run in store.list_runs(statuses=("queued", "running")):
        store.request_stop(run.id)
    wait_for(lambda: not store.trainer_active(), "the background worker to exit")


@pytest.fixture
def app_home(tmp_path, monkeypatch):
    """An empty run store for this test, the mini data set, and a worker that exits 1 s
    after its queue empties."""
    store = RunStore(tmp_path / "home")
    use_home(monkeypatch, store.home, idle_exit=1)
    yield store
    stop_all_and_wait(store)


@pytest.fixture(scope="module")
def training_store(tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("training"))
    yield store
    stop_all_and_wait(store)


@pytest.fixture
def training_home(training_store, monkeypatch):
    """One store for a module's training tests: its worker waits 5 s for the next test's
    run, so TensorFlow is imported once per module instead of once per test."""
    use_home(monkeypatch, training_store.home, idle_exit=5)
    return training_store


def last_id(store) -> int:
    runs = store.list_runs()
    return runs[0].id if runs else 0


def newest_run(store, after=0):
    run = store.list_runs()[0]
    assert run.id > after, "no new run was created"
    return run


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory):
    """A store with two finished runs (underfit, combined), trained once in this process."""
    path = tmp_path_factory.mktemp("trained")
    store = RunStore(path)
    store.create_run(make_config("underfit", epochs=1), data_dir=data_dir())
    store.create_run(make_config("combined", epochs=2), data_dir=data_dir())
    drain_queue(store)
    assert [run.status for run in store.list_runs()] == ["completed", "completed"]
    return path


@pytest.fixture
def app_runs(trained_home, tmp_path, monkeypatch):
    """A copy of the trained store for this test (tests may change it)."""
    path = tmp_path / "home"
    shutil.copytree(trained_home, path, ignore=shutil.ignore_patterns("training.lock"))
    store = RunStore(path)
    use_home(monkeypatch, path, idle_exit=1)
    yield store
    stop_all_and_wait(store)


def no_worker(monkeypatch):
    """Queue without training: for tests about the queue itself."""
    from explorer import jobs

    monkeypatch.setattr(jobs, "wake_worker", lambda store: False)

