"""The trainer that owns the queue: takes queued runs oldest first, one at a time.

Whoever trains holds the store's training lock, so there is never more than one
training on the machine's two cores. The app starts this as a detached process
(``python -m kmnist_core worker``) so trainings outlive page switches, browser tabs and
server restarts; the CLI's ``train`` runs the same loop in the foreground.
"""

import subprocess
import sys
import time
from pathlib import Path

from .status import ACTIVE, Status
from .store import RunStore


def drain_queue(store: RunStore, until_run=None, idle_exit=0.0, datasets=None, on_progress=None, log=None) -> bool:
    """Train queued runs while holding the lock. Returns False at once if another process
    holds it. Stops when run ``until_run`` has finished, or when the queue has been empty
    for ``idle_exit`` seconds. ``datasets`` caches loaded data by folder across runs."""
    datasets = {} if datasets is None else datasets
    with store.training_lock(blocking=False) as acquired:
        if not acquired:
            return False
        # Orphans first: the app shows a dead worker's run as interrupted within moments
        # of the new worker taking the lock, not after TensorFlow's import.
        for run_id in store.mark_interrupted():
            _log(log, f"run {run_id} was left running by a process that died; marked interrupted")
        for path in store.remove_leftovers():
            _log(log, f"removed {path.name}, left behind by a process that died")
        # TensorFlow only once the lock is ours: a worker started while another trains
        # exits in a fraction of a second instead of spending seconds importing it.
        from .runner import execute_run
        idle_since = time.monotonic()
        while until_run is None or not store.get(until_run).finished:
            run = store.claim_next()
            if run is None:
                if time.monotonic() - idle_since >= idle_exit:
                    break
                time.sleep(0.3)
                continue
            _log(log, f"training run {run.id} ({run.name})")
            try:
                status = execute_run(store, run.id, datasets=datasets,
                                     on_progress=on_progress if run.id == until_run else None)
                _log(log, f"run {run.id} {status}")
            except Exception as error:  # already recorded on the run; the queue goes on
                _log(log, f"run {run.id} failed: {error}")
            idle_since = time.monotonic()
    return True


def _log(log, message):
    if log:
        log(message)


def ensure_worker(home, idle_exit=30.0) -> bool:
    """Start a detached background worker unless a trainer already holds the lock.
    Returns True when a new worker process was started."""
    store = RunStore(home)
    if store.trainer_active() or not store.list_runs(statuses=ACTIVE):
        return False
    log_path = Path(store.home) / "worker.log"
    with open(log_path, "a") as log_file:
        subprocess.Popen(
            [sys.executable, "-m", "kmnist_core", "--home", str(store.home), "worker",
             "--idle-exit", str(idle_exit)],
            stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=Path(__file__).resolve().parent.parent,
        )
    return True


def run_worker(home, idle_exit=30.0) -> None:
    """Entry point of the background process."""
    store = RunStore(home)
    log = lambda message: print(time.strftime("%H:%M:%S"), message, flush=True)  # noqa: E731
    while drain_queue(store, idle_exit=idle_exit, log=log):
        if not store.list_runs(statuses=(Status.QUEUED,)):
            break  # nothing was queued between our last look and releasing the lock
