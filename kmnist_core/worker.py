"""The trainers that work through the queue: each takes queued runs oldest first, one at a time.

Whoever trains holds one of the store's training slots, so there are never more than
``KMNIST_WORKERS`` trainings at once (default 1: one training on a small machine; on a
bigger one, N trainings with the cores split between them). The app and the CLI start
these as detached processes (``python -m kmnist_core.worker``: this module's own entry
point, not the user-facing CLI), one per free slot while runs wait,
so trainings outlive page switches, browser tabs and server restarts; the CLI's ``train``
trains its own run in the foreground in a free slot when it is next in the queue, and
otherwise leaves the queue to the workers and follows its run.

SIGINT, SIGTERM and SIGHUP stop the run being trained as the Stop button does (status
stopped, epochs and model kept) and leave the rest of the queue for the next worker; a
second signal leaves at once (the run is then interrupted, its history kept).

With ``KMNIST_RAY_ADDRESS`` set, the process started is a dispatcher instead
(``kmnist_core.dispatcher``): the runs train on that Ray cluster. Ray is imported only then.
"""

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager, suppress
from functools import partial
from pathlib import Path

from .checks import check_int
from .diskspace import DiskFullError
from .errors import KmnistError, one_line
from .hardware import worker_count
from .status import ACTIVE, Status
from .store import RunStore

MODULE = "kmnist_core.worker"  # what the detached process runs: ``python -m kmnist_core.worker``
RAY_ADDRESS_ENV = "KMNIST_RAY_ADDRESS"  # a Ray cluster to train on (e.g. "auto", "10.0.0.5:6379"); unset: here
RAY_CPUS_ENV = "KMNIST_RAY_CPUS"  # cores each run reserves on its Ray node (default 1: one training per core)
MAX_RAY_CPUS = 64
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
WORKER_NICENESS = 10  # added to the background trainer's nice value: the app's pages come first
SPAWN_GRACE = 5.0  # seconds a started worker has to take its training slot before another is started
LOCK_PATIENCE = 2.0  # seconds a new worker retries the slots: listings and checks take them for a moment


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
    """Train queued runs while holding a free training slot. Returns False if every slot is
    held by another process (after retrying for ``patience`` seconds). With ``until_run``,
    trains that run only, and only once it is the oldest queued run; otherwise stops when
    the queue has been empty for ``idle_exit`` seconds, or once ``stop`` (an Event) is set.
    ``datasets`` caches loaded data by folder across runs."""
    datasets = {} if datasets is None else datasets
    with store.free_slot(patience=patience) as slot:
        if slot is None:
            return False
        take_over(store, slot, log)
        idle_since = time.monotonic()
        while until_run is None or not store.get(until_run).finished:
            if stop is not None and stop.is_set():
                _log(log, f"{getattr(stop, 'signal_name', None) or 'stop'}: leaving; queued runs wait for the next worker")
                break
            run = store.claim_next(only=until_run, slot=slot)
            if run is None:
                if until_run is not None or time.monotonic() - idle_since >= idle_exit:
                    break
                time.sleep(0.3)
                continue
            # TensorFlow only once a run is ours: a worker started while another trains
            # exits in a moment instead of spending seconds importing it.
            from .runner import execute_run

            _log(log, f"training run {run.id} ({run.name}) in slot {slot}")
            try:
                status = execute_run(store, run.id, datasets=datasets, stop=stop,
                                     on_progress=on_progress if run.id == until_run else None)
                _log(log, f"run {run.id} {status}")
            except DiskFullError:  # the next run would fail the same way: the queue waits for space
                raise
            except Exception as error:  # already recorded on the run; the queue goes on
                _log(log, f"run {run.id} failed: {error}")
            idle_since = time.monotonic()
    return True


def dispatch_queue(store: RunStore, address, idle_exit=30.0, log=None, stop=None, patience=0.0) -> bool:
    """``drain_queue`` for a Ray cluster at ``address``: train queued runs there while
    holding the dispatcher's slot (slot 0 only: one dispatcher per store). Returns False
    if it is held (after ``patience`` seconds)."""
    with store.free_slot(slots=1, patience=patience) as slot:
        if slot is None:
            return False
        take_over(store, slot, log)
        # Ray only once the slot is ours: a surplus dispatcher, started while the first
        # was still importing it, exits at once instead of sending runs out too.
        from .dispatcher import dispatch

        dispatch(store, address, idle_exit=idle_exit, log=log, stop=stop)
    return True


def take_over(store: RunStore, slot, log=None) -> None:
    """What a trainer does first on taking training slot ``slot``: orphans marked
    interrupted, so the app shows a dead worker's run as such within moments, not after
    TensorFlow's import (ours are known orphans: we hold their slot; those of other slots
    if their slot is free), and the leftovers of dead processes removed."""
    for run_id in store.mark_interrupted(slot) + store.reconcile():
        _log(log, f"run {run_id} was left running by a process that died; marked interrupted")
    for path in store.remove_leftovers():
        _log(log, f"removed {path.name}, left behind by a process that died")


def train_until_done(store: RunStore, run_id, datasets, bar=None) -> None:
    """The CLI's and a notebook's training: train our run in this process when it is next in the queue and nobody else trains.
    Otherwise follow it while the background worker trains the queue in order: runs queued
    before ours are the worker's, since training them here would hold this terminal, and a
    Ctrl-C, hostage to them. The first SIGINT, SIGTERM or SIGHUP cancels our run if it is
    still queued, or stops it after the current batch (epochs and model kept); a second
    raises KeyboardInterrupt to leave at once. ``bar``: a ``progress.ProgressBar`` (default:
    tqdm's, on stderr)."""
    from .progress import ProgressBar

    bar = bar or ProgressBar()
    asked, worker_started = False, float("-inf")
    with stop_on_signals() as stop:
        try:
            while not (run := store.get(run_id)).finished:
                if stop.is_set() and not asked:  # here, not in the handler: this loop writes the store
                    asked = True
                    store.request_stop(run_id)  # cancelled if still queued, else stopped after its batch
                elif run.status == Status.RUNNING:
                    store.reconcile()  # the worker training it may die too
                elif ray_address():  # the cluster trains it: a dispatcher sends it there
                    if time.monotonic() - worker_started > SPAWN_GRACE:
                        ensure_worker(store, idle_exit=1.0)
                        worker_started = time.monotonic()
                elif not stop.is_set():
                    held = drain_queue(store, until_run=run_id, datasets=datasets, on_progress=bar.show,
                                       stop=stop, log=bar.write)
                    if held and store.get(run_id).finished:
                        break
                    if held and time.monotonic() - worker_started > SPAWN_GRACE:  # not our turn
                        ensure_worker(store, idle_exit=1.0)  # runs queued before ours are the worker's
                        worker_started = time.monotonic()
                bar.show_state(store.get(run_id))
                time.sleep(0.5)
        finally:
            bar.close()
    # A worker started while we held the last free training slot gave up at once, so runs queued
    # meanwhile (from the app) would wait for the next page load: hand them on now.
    ensure_worker(store, idle_exit=1.0)


def train_each(store: RunStore, run_ids, datasets, on_finished=None, bar=None) -> None:
    """``train_until_done`` for several runs in turn (a sweep), calling ``on_finished(run)``
    after each. A run that ends stopped or cancelled (Ctrl-C, SIGTERM, a Stop in the app)
    cancels those still queued: the learner asked the sweep to end."""
    for position, run_id in enumerate(run_ids):
        train_until_done(store, run_id, datasets, bar)
        run = store.get(run_id)
        if on_finished:
            on_finished(run)
        if run.status in (Status.STOPPED, Status.CANCELLED):
            for later in run_ids[position + 1:]:
                store.request_stop(later)
            break


def _log(log, message):
    if log:
        log(message)


def ensure_worker(store: RunStore, idle_exit=30.0) -> bool:
    """Start detached background workers, one per free training slot, while queued runs
    outnumber the idle trainers (those holding a slot without a running run). Returns True
    when any was started. They get the store's absolute home and the project folder as
    their working folder, so they open this same store whatever folder the caller runs in."""
    if store.read_only:
        return False
    active = store.list_runs(statuses=ACTIVE)  # one read, orphans reconciled first
    queued = sum(run.status == Status.QUEUED for run in active)
    if not queued:
        return False
    slots = worker_count()
    held = store.held_slots(slots)
    address = ray_address()
    if address:  # one dispatcher sends the whole queue to the cluster
        cpus_per_run()  # a bad KMNIST_RAY_CPUS is said here, not only in the dispatcher's log
        wanted = 0 if held else 1
    else:
        idle = max(0, len(held) - (len(active) - queued))
        wanted = min(slots - len(held), queued - idle)
    for _ in range(wanted):
        _spawn(store.home, idle_exit)
    return wanted > 0


def ray_address():
    """The Ray cluster runs are trained on (``KMNIST_RAY_ADDRESS``), or None: on this machine."""
    return os.environ.get(RAY_ADDRESS_ENV, "").strip() or None


def cpus_per_run(value=None) -> int:
    """``KMNIST_RAY_CPUS``: an integer from 1 to 64."""
    text = str(os.environ.get(RAY_CPUS_ENV, "1") if value is None else value).strip()
    return check_int(RAY_CPUS_ENV, int(text) if text.isascii() and text.isdigit() else text, 1, MAX_RAY_CPUS)


def worker_command(home, idle_exit, address=None) -> list:
    """The background process's command line: this module run as a program (a Ray
    dispatcher with ``address``)."""
    ray = ["--ray", address] if address else []
    return [sys.executable, "-m", MODULE, "--home", str(home), "--idle-exit", str(idle_exit), *ray]


def _spawn(home, idle_exit) -> None:
    """One worker, detached: it outlives the app and the CLI (a dispatcher when
    KMNIST_RAY_ADDRESS is set)."""
    with open(home / "worker.log", "a") as log_file:
        subprocess.Popen(
            worker_command(home, idle_exit, ray_address()),
            stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=Path(__file__).resolve().parent.parent,
        )


def run_worker(home, idle_exit=30.0, address=None) -> None:
    """Entry point of the background process. It trains at a lower CPU priority than the
    app: on two cores a full-scale `best` run slowed page switches 2x (benchmarks/
    app_under_load.py), while the idle cores still all go to the training. With a Ray
    ``address`` it dispatches the queue to that cluster instead, at the normal priority:
    it trains nothing, and the progress it relays must not wait behind trainings."""
    store = RunStore(home)
    log = lambda message: print(time.strftime("%H:%M:%S"), message, flush=True)  # noqa: E731
    trainer = drain_queue
    if address:
        trainer = partial(dispatch_queue, address=address)
    else:
        with suppress(OSError):  # not permitted somewhere: train at the normal priority
            os.nice(WORKER_NICENESS)
    with stop_on_signals() as stop:
        try:
            while trainer(store, idle_exit=idle_exit, log=log, stop=stop, patience=LOCK_PATIENCE):
                if stop.is_set() or not store.list_runs(statuses=(Status.QUEUED,)):
                    break  # asked to stop, or nothing was queued between our last look and releasing the lock
        except KeyboardInterrupt:
            log(f"{stop.signal_name} again: left at once; the run in training is marked interrupted")


def main(argv=None) -> int:
    """``python -m kmnist_core.worker --home HOME``: what ``ensure_worker`` starts. Its
    output goes to ``HOME/worker.log``; a setting it cannot work with (``KMNIST_WORKERS``,
    ``KMNIST_RAY_CPUS``, an unusable store) is one line there and a non-zero exit."""
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True, help="the run store whose queue to train")
    parser.add_argument("--idle-exit", type=float, default=30.0, help="seconds to wait for new runs before exiting")
    parser.add_argument("--ray", metavar="ADDRESS", help="dispatch the queue to the Ray cluster at ADDRESS "
                                                         "(default: $KMNIST_RAY_ADDRESS, else train here)")
    args = parser.parse_args(argv)
    try:
        run_worker(args.home, idle_exit=args.idle_exit, address=args.ray or ray_address())
    except (KmnistError, OSError) as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    from kmnist_core import native_logs

    native_logs.silence_for_this_process()  # worker.log: TensorFlow's start-up notes read like errors there
    sys.exit(main())
