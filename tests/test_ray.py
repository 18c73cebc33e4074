"""The queue trained on a local Ray (``ray.init(num_cpus=2)``) as the local workers train
it: every queued run exactly once, saved as a local run is, Stop and Cancel working. Without
KMNIST_RAY_ADDRESS nothing imports Ray. (Lost nodes and a killed dispatcher: test_ray_cluster.)"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from kmnist_core.hardware import WORKERS_ENV, usable_cores
from kmnist_core.inference import load_model
from kmnist_core.status import Status
from kmnist_core.store import RunStore
from kmnist_core.worker import RAY_ADDRESS_ENV, ensure_worker

from conftest import PROJECT_ROOT, wait_until
from ray_support import LONG, OBJECT_STORE, end_dispatchers, long, ray_environment, start_dispatcher, tiny, workers_of

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_address():
    """A local Ray of 2 CPUs, started in this process and shut down after the module."""
    ray = pytest.importorskip("ray")
    with ray_environment():
        try:
            info = ray.init(num_cpus=2, object_store_memory=OBJECT_STORE, include_dashboard=False, log_to_driver=False)
            yield info.address_info["gcs_address"]
        finally:
            ray.shutdown()


def test_queued_runs_train_once_each_on_ray_and_stop_and_cancel_reach_them(ray_address, home, mini_dir, monkeypatch):
    """Through the app's path (``ensure_worker`` with the address set starts a dispatcher):
    runs saved as a local worker saves them, each trained once; Stop ends a run on the
    cluster with its epochs and model; Cancel keeps a queued run from ever starting. A
    second dispatcher started at the same moment (several worker slots free) leaves at once."""
    store = RunStore(home)
    stopped = [store.create_run(long(seed=seed), data_dir=mini_dir) for seed in (0, 1)]  # 2 CPUs: these two train,
    cancelled = store.create_run(tiny(seed=2), data_dir=mini_dir)  # the rest wait until they are stopped
    completed = [store.create_run(tiny(seed=seed), data_dir=mini_dir) for seed in (3, 4)]
    monkeypatch.setenv(RAY_ADDRESS_ENV, ray_address)
    monkeypatch.setenv(WORKERS_ENV, str(min(2, usable_cores())))
    assert ensure_worker(store, idle_exit=1.0)
    surplus = start_dispatcher(home, ray_address, mini_dir)
    try:
        # Whichever dispatcher takes the store's dispatcher slot first stays (ensure_worker's or
        # this one: they race); every other leaves at once, sending nothing out.
        assert wait_until(lambda: len(workers_of(store.home)) == 1, timeout=120), _log(home)
        assert wait_until(lambda: all(store.get(run_id).history for run_id in stopped), timeout=240), _log(home)
        assert store.get(cancelled).status == Status.QUEUED, _log(home)
        assert store.request_stop(cancelled) == "cancelled"
        for run_id in stopped:
            assert store.request_stop(run_id) == "stopping"
        assert wait_until(lambda: all(store.get(run_id).finished for run_id in [*stopped, *completed]), timeout=180), \
            _log(home)
        log = _log(home)
        for run_id in stopped:
            run = store.get(run_id)
            assert run.status == Status.STOPPED and 1 <= len(run.history) < LONG and store.model_path(run_id).is_file()
        for run_id in completed:
            run = store.get(run_id)
            assert run.status == Status.COMPLETED, run.error
            assert [record.epoch for record in run.history] == [1, 2]
            assert run.runtime["executor"] == "ray" and run.runtime["node_id"] and run.runtime["cpus"] == 1
            assert run.runtime["precision"] in ("float32", "bfloat16") and run.params > 0
            assert run.progress.step == run.progress.steps  # per-batch progress reached the store
            assert load_model(store.model_path(run_id)).predict(np.zeros((1, 28, 28)), verbose=0).shape == (1, 10)
            assert store.load_array(run_id, "test_proba").shape[1] == 10
            assert (store.run_dir(run_id) / "tensorboard").is_dir()
        for run_id in [*stopped, *completed]:
            assert log.count(f"run {run_id} (") == 1 and log.count(f"run {run_id} training on node") == 1
        run = store.get(cancelled)
        assert run.status == Status.CANCELLED and run.started_at is None and f"run {cancelled} (" not in log
        assert log.count("sent to the cluster's object store") == 1  # one dispatcher, one data source: put once
        assert wait_until(lambda: not workers_of(store.home), timeout=60)  # it leaves once the queue is empty
    finally:
        end_dispatchers(store, surplus)


def _log(home):
    return (home / "worker.log").read_text()


def test_without_a_ray_address_nothing_imports_ray(home, synthetic_dir):
    """A CLI training, the app's queueing module and a worker wake-up, in a fresh process
    with KMNIST_RAY_ADDRESS unset: Ray never enters sys.modules."""
    script = (
        "import json, sys\n"
        "from kmnist_core.cli import main\n"
        f"code = main(['--home', {str(home)!r}, '--data-dir', {str(synthetic_dir)!r}, 'train', '--variant', 'underfit',"
        " '--epochs', '1'])\n"
        "from explorer import jobs\n"
        "from kmnist_core.store import RunStore\n"
        f"jobs.wake_worker(RunStore({str(home)!r}))\n"
        "print(json.dumps({'code': code, 'ray': sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.'))}))\n"
    )
    env = {key: value for key, value in os.environ.items() if key != RAY_ADDRESS_ENV}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=300)
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer == {"code": 0, "ray": []}, done.stderr[-2000:]
