"""A run's life through the store: queue order, stop, failure, interruption, the
background worker process, and two workers started at once."""

import itertools
import threading

import numpy as np
import pytest

from kmnist_core import worker
from kmnist_core.config import make_config
from kmnist_core.data import Dataset
from kmnist_core.inference import load_model
from kmnist_core.models import build_model
from kmnist_core.runner import VERDICT_SAMPLE, score
from kmnist_core.store import RunStore
from kmnist_core.verdict import VERDICTS
from kmnist_core.worker import drain_queue, ensure_worker

from conftest import synthetic_arrays, tiny_config, wait_until
from killing import wait_gone


def test_the_queue_is_trained_oldest_first(home, synthetic_dir):
    store = RunStore(home)
    ids = [store.create_run(tiny_config(seed=i, epochs=3), data_dir=synthetic_dir) for i in range(3)]
    assert drain_queue(store) is True
    runs = [store.get(i) for i in ids]
    assert [r.status for r in runs] == ["completed"] * 3
    for earlier, later in itertools.pairwise(runs):
        assert earlier.finished_at <= later.started_at  # in id order
    assert all(store.model_path(i).is_file() and store.load_array(i, "test_proba").shape == (50, 10) for i in ids)
    metrics = runs[0].metrics
    assert {"test", "val", "train", "fit", "train_seconds", "epochs_done"} <= set(metrics)
    assert metrics["fit"]["verdict"] in VERDICTS


def test_a_run_trained_on_every_image_records_a_test_curve_for_its_verdict(home, synthetic_dir):
    """`final` had no held-out curve and was judged by another rule than every other run."""
    store = RunStore(home)
    run = store.get(store.create_run(tiny_config(full_train=True, epochs=3), data_dir=synthetic_dir))
    drain_queue(store)
    run = store.get(run.id)
    assert [record.val_loss is not None for record in run.history] == [True] * 3
    fit = run.metrics["fit"]
    assert "val" not in run.metrics and fit["heldout"] == fit["curve"] == "test"
    assert fit["last_epoch"] == 3 and fit["rise"] is not None


def test_stop_keeps_partial_history_and_a_loadable_model(home, synthetic_dir):
    store = RunStore(home)
    run_id = store.create_run(tiny_config(epochs=400), data_dir=synthetic_dir)
    worker = threading.Thread(target=drain_queue, args=(store,))
    worker.start()
    assert wait_until(lambda: len(store.get(run_id).history) >= 2)
    store.request_stop(run_id)
    worker.join(timeout=30)
    run = store.get(run_id)
    assert run.status == "stopped" and 2 <= len(run.history) < 400
    assert run.metrics["epochs_done"] == len(run.history)
    assert load_model(store.model_path(run_id)).output_shape == (None, 10)


def test_a_failing_run_is_recorded_and_the_queue_goes_on(home, synthetic_dir, tmp_path):
    store = RunStore(home)
    broken = store.create_run(tiny_config(epochs=3), data_dir=tmp_path / "no-such-folder")
    fine = store.create_run(tiny_config(epochs=3), data_dir=synthetic_dir)
    drain_queue(store)
    assert store.get(broken).status == "failed" and "does not exist" in store.get(broken).error
    assert store.get(fine).status == "completed"


def test_runs_left_running_by_a_dead_process_are_marked_interrupted(home, synthetic_dir):
    store = RunStore(home)
    orphan = store.create_run(tiny_config(epochs=3), data_dir=synthetic_dir)
    store.claim_next()  # "running", but nobody holds the training lock
    drain_queue(store)
    assert store.get(orphan).status == "interrupted" and store.get(orphan).error is None


@pytest.mark.process  # starts real processes
def test_background_worker_process_trains_the_queue(home, synthetic_dir, monkeypatch):
    """``python -m kmnist_core.worker`` trains the queue and exits when idle; its log says
    what it did, without TensorFlow's C++ start-up notes ("failed call to cuInit" reads
    like an error there)."""
    monkeypatch.delenv("KMNIST_NATIVE_LOGS", raising=False)
    store = RunStore(home)
    run_id = store.create_run(tiny_config(epochs=3), data_dir=synthetic_dir)
    assert ensure_worker(RunStore(home), idle_exit=1.0) is True
    assert wait_until(lambda: store.get(run_id).finished, timeout=120), (home / "worker.log").read_text()
    assert store.get(run_id).status == "completed"
    assert wait_until(lambda: not store.trainer_active(), timeout=30)  # it exits when idle
    assert ensure_worker(RunStore(home)) is False  # nothing queued: nothing started
    log = (home / "worker.log").read_text()
    assert f"run {run_id} completed" in log and "cuda" not in log.lower() and "onednn" not in log.lower(), log


@pytest.mark.process  # starts real processes
def test_two_workers_started_together_never_train_at_once(home, synthetic_dir, zygote):
    """Two apps (or an app and the CLI) may each start a worker on the same store at the
    same moment. The training lock must let one train the queue while the other gives up:
    no two trainings overlap, and each queued run is trained once, to the end."""
    store = RunStore(home)
    ids = [store.create_run(tiny_config(seed=i, epochs=3), data_dir=synthetic_dir) for i in range(3)]
    workers = [zygote.worker(home), zygote.worker(home)]  # forked back to back
    assert all(wait_gone(pid, timeout=600) for pid in workers), (home / "worker.log").read_text()
    runs = [store.get(i) for i in ids]
    assert [r.status for r in runs] == ["completed"] * 3, [(r.id, r.status, r.error) for r in runs]
    runs.sort(key=lambda run: run.started_at)
    for earlier, later in itertools.pairwise(runs):
        assert earlier.finished_at <= later.started_at, "two trainings overlapped"
    log = (home / "worker.log").read_text()
    assert [log.count(f"training run {i} (") for i in ids] == [1, 1, 1], log
    assert all([r.epoch for r in run.history] == [1, 2, 3] for run in runs)


def test_ensure_worker_starts_one_worker_per_free_slot_while_runs_outnumber_idle_ones(home, monkeypatch):
    """KMNIST_WORKERS=2: as many workers as runs wait, up to the free slots; none for a run
    an idle worker (a slot held, nothing running in it) is about to take."""
    from kmnist_core import worker

    monkeypatch.setenv("KMNIST_WORKERS", "2")
    started = []
    monkeypatch.setattr(worker, "_spawn", lambda home, idle_exit: started.append(home))
    store = RunStore(home)
    for seed in range(3):
        store.create_run(tiny_config(seed=seed, epochs=3))

    def spawned():
        started.clear()
        ensure_worker(store)
        return len(started)

    assert spawned() == 2  # 3 runs wait, 2 slots free
    with store.training_lock(slot=0):
        store.claim_next(slot=0)  # a worker trains the first
        assert spawned() == 1  # the other slot is free and 2 runs wait
        with store.training_lock(slot=1):
            assert spawned() == 0  # every slot held
    with store.training_lock(slot=1):  # the first run's trainer is gone; an idle worker: it takes one of the 2 waiting runs itself
        assert spawned() == 1
    monkeypatch.setenv("KMNIST_WORKERS", "1")
    assert spawned() == 1  # one slot: one worker, however many runs wait


def test_the_fit_verdict_scores_a_sample_of_a_full_size_training_set():
    """After the last epoch, full KMNIST's 60,000 training images are not all scored again
    (minutes for `best` on a busy 2-core host): a stratified sample of them is."""
    x, y = synthetic_arrays(per_class=VERDICT_SAMPLE // 10 + 200)
    dataset = Dataset(x, y, x[:50], y[:50], source="synthetic")
    metrics = score(build_model(make_config("underfit")), dataset, x, y)
    assert len(y) > VERDICT_SAMPLE and metrics["train"]["n"] == VERDICT_SAMPLE
    assert np.isfinite(metrics["fit"]["loss_gap"])


def test_the_background_worker_trains_at_a_lower_priority_than_the_app(home, monkeypatch):
    """Page switches slowed 2x beside a full-scale training on two cores; niced, the
    trainer yields the CPU to the app's server and browser when they need it."""
    asked = []
    monkeypatch.setattr(worker.os, "nice", asked.append)
    worker.run_worker(home, idle_exit=0.5)
    assert asked == [worker.WORKER_NICENESS] and worker.WORKER_NICENESS > 0


def test_a_runs_record_keeps_the_engine_constants_it_trained_with():
    """What training.engine_constants returns reaches the run's runtime, beside its host."""
    from kmnist_core.runner import Outcome
    from kmnist_core.status import Status
    from kmnist_core.training import TrainResult

    engine = {"bn_cnn_blocks": ((16, 2), (64, 2), (128, 2))}
    result = TrainResult(model=build_model(tiny_config()), precision="float32", threads=2, engine=engine)
    runtime = Outcome(Status.COMPLETED, {}, result).facts()["runtime"]
    assert runtime["bn_cnn_blocks"] == engine["bn_cnn_blocks"] and runtime["precision"] == "float32"
