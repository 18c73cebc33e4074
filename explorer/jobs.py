"""Queueing runs from the app and keeping the background worker awake.

The app never trains inside a Streamlit script run: a page turns its form into a
validated ``TrainConfig``, stores it as a queued run, and makes sure a background worker
(``kmnist_core.worker``) is there to train it. Switching pages, closing the tab or
opening a second one therefore never touches a training. No Streamlit import here.
"""

import os
import time

from kmnist_core.config import make_config
from kmnist_core.data import default_data_dir
from kmnist_core.hardware import worker_count
from kmnist_core.status import ACTIVE
from kmnist_core.store import RunStore
from kmnist_core.study import enqueue_study
from kmnist_core.worker import SPAWN_GRACE, ensure_worker

from . import sessions

IDLE_EXIT_ENV = "KMNIST_WORKER_IDLE_EXIT"  # seconds a worker waits for new runs (tests use ~1)
DEFAULT_IDLE_EXIT = 30.0
QUICK_RUN = dict(variant="combined", epochs=5)  # ~15 s on the mini set, reads drawings decently
QUICK_NAME = "quick model"

_last_spawn = {}  # store home -> time.monotonic() of the last worker this process started


def data_dir():
    """The data folder runs are trained on, as an absolute path (the worker may run from
    another folder), or None for tensorflow-datasets."""
    folder = default_data_dir()
    return None if folder is None else os.path.abspath(folder)


def check_room(store: RunStore, owner, adding: int, what: str) -> None:
    """SessionLimitError when ``owner`` may not queue ``adding`` more runs (shared servers)."""
    problem = sessions.room_problem(store.list_runs(statuses=ACTIVE), owner, adding, what)
    if problem:
        raise sessions.SessionLimitError(problem)


def submit(store: RunStore, configs, owner, data_source, name=None, what="this run", study=None) -> list:
    """Queue ``configs`` in order (named ``name``, or from their settings) for session
    ``owner``, to be trained on the data the app loaded (``data_source``: the runner refuses
    other data), and make sure a worker will train them; returns their run ids. With
    ``study`` (kind, name, purpose) they are queued as one study. SessionLimitError, and
    nothing queued, when that would exceed the session's share."""
    check_room(store, owner, len(configs), what)
    origin = dict(data_dir=data_dir(), data_source=data_source, owner=owner)
    if study is not None:
        ids = enqueue_study(store, *study, configs, **origin)[1]
    else:
        ids = [store.create_run(config, name=name, **origin) for config in configs]
    wake_worker(store)
    return ids


def submit_quick(store: RunStore, owner, data_source) -> int:
    """The empty-state shortcut: a small model good enough to read drawings."""
    return submit(store, [make_config(**QUICK_RUN)], owner, data_source, name=QUICK_NAME, what="a quick model")[0]


def idle_exit() -> float:
    try:
        return max(0.5, float(os.environ.get(IDLE_EXIT_ENV, DEFAULT_IDLE_EXIT)))
    except ValueError:
        return DEFAULT_IDLE_EXIT


def wake_worker(store: RunStore) -> bool:
    """Start a worker when runs wait and nobody trains them; safe to call on every poll.

    A fresh worker needs a moment to start Python before it holds the training lock, so
    this process does not start another one for the same store within ``SPAWN_GRACE``
    seconds (a surplus worker would only find the lock taken and exit). The same call
    revives the queue after a worker died or the app restarted: the new worker marks
    orphaned runs interrupted and goes on.
    """
    key = str(store.home.resolve())
    if time.monotonic() - _last_spawn.get(key, float("-inf")) < SPAWN_GRACE:
        return False
    started = ensure_worker(store, idle_exit=idle_exit())
    if started:
        _last_spawn[key] = time.monotonic()
    return started


def worker_starting(store: RunStore) -> bool:
    """True during the seconds between starting a worker and it taking a training slot
    (Python and TensorFlow loading): the app says so instead of a silent "queued". With
    several slots, one training elsewhere does not mean the new worker has started."""
    key = str(store.home.resolve())
    recent = time.monotonic() - _last_spawn.get(key, float("-inf")) < 4 * SPAWN_GRACE
    return recent and len(store.held_slots()) < worker_count()
