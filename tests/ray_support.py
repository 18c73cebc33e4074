"""Helpers for the Ray tests: tiny runs, the dispatcher as the app starts it (a process of
its own, talking to the cluster at an address), and cleaning up every process started."""

import os
import signal
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from kmnist_core.config import make_config
from kmnist_core.status import ACTIVE
from kmnist_core.worker import MODULE, RAY_ADDRESS_ENV, worker_command

from conftest import PROJECT_ROOT, wait_until

OBJECT_STORE = 200 * 1024**2  # bytes per node: enough for kmnist-mini, small beside the trainings
# A private test cluster: no token written to ~/.ray, and no Ray memory monitor killing its
# workers when the shared host's memory runs high (the tests are about our guarantees, not Ray's).
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_memory_monitor_refresh_ms": "0"}


LONG = 1000  # epochs of a run that trains until the test stops it or kills what trains it


@contextmanager
def ray_environment():
    """``RAY_ENV`` set for this process and the Ray processes it starts, restored after."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in RAY_ENV.items():
            patch.setenv(name, value)
        yield


def tiny(epochs=2, **overrides):
    """A run of a few seconds: the 8-unit underfit network on 500 images."""
    return make_config("underfit", epochs=epochs, train_size=500, **overrides)


def long(**overrides):
    """A run that trains for many minutes even on an idle host (the 512-512 network, 1000
    epochs of 625 batches): until the test stops it, or kills what trains it. (The 8-unit
    network's 63 batches an epoch ended within seconds once training ran its steps in
    compiled calls, and a "long" run finished before the test could stop it.)"""
    return make_config("overfit", epochs=LONG, batch_size=8, train_size=5000, **overrides)


def dispatcher_env(home, address, data_dir) -> dict:
    return {**os.environ, **RAY_ENV, "KMNIST_HOME": str(home), "KMNIST_DATA_DIR": str(data_dir),
            RAY_ADDRESS_ENV: address, "PYTHONPATH": str(PROJECT_ROOT)}


def start_dispatcher(home, address, data_dir, idle_exit=1.0) -> subprocess.Popen:
    """The dispatcher ``ensure_worker`` starts (``worker_command`` with ``--ray ADDRESS``),
    logging where it does (``home/worker.log``)."""
    with open(Path(home) / "worker.log", "a") as log:
        return subprocess.Popen(
            worker_command(home, idle_exit, address),
            env=dispatcher_env(home, address, data_dir), cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def dispatcher_log(home) -> str:
    return (Path(home) / "worker.log").read_text()


def workers_of(home) -> list:
    """Pids of the `python -m kmnist_core.worker` processes of this store (started by ensure_worker)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if MODULE.encode() in words and str(home).encode() in words:
            pids.append(int(cmdline.parent.name))
    return pids


def end_dispatchers(store, *processes) -> None:
    """Leave nothing training: stop the store's active runs, give the dispatchers a moment
    to save them, then kill what is left of the processes this test started."""
    for run in store.list_runs(statuses=ACTIVE):
        store.request_stop(run.id)
    wait_until(lambda: not store.list_runs(statuses=ACTIVE), timeout=60)
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait()
    for pid in workers_of(store.home):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
