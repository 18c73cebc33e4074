"""The trainer that owns the queue: takes queued runs oldest first, one at a time.

Whoever trains holds the store's training lock, so there is never more than one
training on the machine's two cores. The app starts this as a detached process
(``python -m kmnist_core worker``) so trainings outlive page switches, browser tabs and
server restarts; the CLI's ``train`` trains its own run in the foreground when it is next
in the queue, and otherwise leaves the queue to this worker and follows its run.

SIGINT, SIGTERM and SIGHUP stop the run being trained as the Stop button does (status
stopped, epochs and model kept) and leave the rest of the queue for the next worker; a
second signal leaves at once (the run is then interrupted, its history kept).
"""

import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager, suppress
from pathlib import Path

from .status import ACTIVE, Status
from .store import RunStore

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
WORKER_NICENESS = 10  # added to the background trainer's nice value: the app's pages come first
LOCK_PATIENCE = 2.0  # seconds a new worker retries the lock: listings and checks take it for a moment


@contextmanager
def stop_on_signals():
    """Yields a ``threading.Event`` that the first SIGINT, SIGTERM or SIGHUP sets (its
    ``signal_name`` says which); a second raises KeyboardInterrupt to leave at once. The
    handler only sets a flag: a store write from inside it could wait on a transaction the
    interrupted code holds. Outside the main thread (where Python allows no handlers)
    the Event is never set."""
    stop = threading.Event()
    stop.signal_name = None

    def handle(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.signal_name = signal.Signals(signum).name
        stop.set()

    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {signum: signal.signal(signum, handle) for signum in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def drain_queue(store: RunStore, until_run=None, idle_exit=0.0, datasets=None, on_progress=None, log=None,
                stop=None, patience=0.0) -> bool:
    """Train queued runs while holding the lock. Returns False if another process holds it
    (after retrying for ``patience`` seconds). With ``until_run``, trains that run only, and
    only once it is the oldest queued run; otherwise stops when the queue has been empty
    for ``idle_exit`` seconds, or once ``stop`` (an Event) is set. ``datasets`` caches
    loaded data by folder across runs."""
    datasets = {} if datasets is None else datasets
    with store.training_lock(blocking=False, patience=patience) as acquired:
        if not acquired:
            return False
        # Orphans first: the app shows a dead worker's run as interrupted within moments
        # of the new worker taking the lock, not after TensorFlow's import.
        for run_id in store.mark_interrupted():
            _log(log, f"run {run_id} was left running by a process that died; marked interrupted")
        for path in store.remove_leftovers():
            _log(log, f"removed {path.name}, left behind by a process that died")
        idle_since = time.monotonic()
        while until_run is None or not store.get(until_run).finished:
            if stop is not None and stop.is_set():
                _log(log, f"{getattr(stop, 'signal_name', None) or 'stop'}: leaving; queued runs wait for the next worker")
                break
            run = store.claim_next(only=until_run)
            if run is None:
                if until_run is not None or time.monotonic() - idle_since >= idle_exit:
                    break
                time.sleep(0.3)
                continue
            # TensorFlow only once a run is ours: a worker started while another trains
            # exits in a moment instead of spending seconds importing it.
            from .runner import execute_run

            _log(log, f"training run {run.id} ({run.name})")
            try:
                status = execute_run(store, run.id, datasets=datasets, stop=stop,
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
    Returns True when a new worker process was started. It gets the store's absolute
    home and the project folder as its working folder, so it opens this same store
    whatever folder the caller runs in."""
    store = RunStore(home)
    if store.read_only or store.trainer_active() or not store.list_runs(statuses=ACTIVE):
        return False
    log_path = store.home / "worker.log"
    with open(log_path, "a") as log_file:
        subprocess.Popen(
            [sys.executable, "-m", "kmnist_core", "--home", str(store.home), "worker",
             "--idle-exit", str(idle_exit)],
            stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=Path(__file__).resolve().parent.parent,
        )
    return True


def run_worker(home, idle_exit=30.0) -> None:
    """Entry point of the background process. It trains at a lower CPU priority than the
    app: on two cores a full-scale `best` run slowed page switches 2x (benchmarks/
    app_under_load.py), while the idle cores still all go to the training."""
    with suppress(OSError):  # not permitted somewhere: train at the normal priority
        os.nice(WORKER_NICENESS)
    store = RunStore(home)
    log = lambda message: print(time.strftime("%H:%M:%S"), message, flush=True)  # noqa: E731
    with stop_on_signals() as stop:
        try:
            while drain_queue(store, idle_exit=idle_exit, log=log, stop=stop, patience=LOCK_PATIENCE):
                if stop.is_set() or not store.list_runs(statuses=(Status.QUEUED,)):
                    break  # asked to stop, or nothing was queued between our last look and releasing the lock
        except KeyboardInterrupt:
            log(f"{stop.signal_name} again: left at once; the run in training is marked interrupted")
