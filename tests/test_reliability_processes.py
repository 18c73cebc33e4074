"""Trainers that end or pause without finishing their run, and processes started from
another folder: a killed, terminated or hung-up CLI `train`, a signalled worker, Ctrl-C on
a CLI waiting in the queue, a paused training, a relative KMNIST_HOME. Afterwards no run
shows "running" without a trainer, a stopped run keeps its epochs and model, and the
queue waits for the next worker."""

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest

from kmnist_core import cli
from kmnist_core.inference import load_model
from kmnist_core.records import Progress
from kmnist_core.store import RunStore
from kmnist_core.worker import ensure_worker

from conftest import PROJECT_ROOT, tiny_config, wait_until
from killing import catches, wait_gone

pytestmark = pytest.mark.process

LONG = 400  # epochs: still training when the test signals, stops or kills its trainer


def _cli_train(home, data_dir, name, epochs=LONG):
    """A foreground `python -m kmnist_core train`, as a user starts it in a terminal."""
    return subprocess.Popen(
        [sys.executable, "-m", "kmnist_core", "--home", str(home), "--data-dir", str(data_dir), "train",
         "--variant", "overfit", "--hidden-units", "16", "--epochs", str(epochs), "--batch-size", "50",
         "--name", name],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _run_named(store, name):
    return next((run for run in store.list_runs() if run.name == name), None)


def _stop_everything(store, *processes):
    """Leave no training behind: kill what the test started, stop what a worker trains."""
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.communicate()
    for run in store.list_runs(statuses=("queued", "running")):
        store.request_stop(run.id)
    assert wait_until(lambda: not store.trainer_active()), "a trainer is still running"


# -- row 1: a CLI `train` killed, terminated or hung up ---------------------------------------
def test_a_killed_cli_train_is_reconciled_by_the_next_command_of_any_kind(home, synthetic_dir, capsys):
    store = RunStore(home)
    process = _cli_train(home, synthetic_dir, "killed")
    try:
        assert wait_until(lambda: (run := _run_named(store, "killed")) and len(store.get(run.id).history) >= 1)
        run_id = _run_named(store, "killed").id
        process.kill()  # SIGKILL: no handler runs, nothing is written
        process.communicate()
        assert store.get(run_id).status == "running"  # what the kill left; no worker will come

        assert cli.main(["--home", str(home), "runs"]) == 0
        listing = capsys.readouterr().out
        assert "interrupted" in listing and "running" not in listing
        run = store.get(run_id)
        assert run.status == "interrupted" and run.interruption["last_epoch"] == len(run.history) >= 1
        assert cli.main(["--home", str(home), "stop", str(run_id)]) == 0
        assert capsys.readouterr().out.strip() == f"run {run_id}: interrupted"
        assert cli.main(["--home", str(home), "delete", str(run_id)]) == 0
        assert store.list_runs() == []
    finally:
        _stop_everything(store, process)


def test_the_store_listing_reconciles_orphans_only_when_no_trainer_holds_the_lock(tmp_path):
    """The app lists runs through the store: the same reconciliation, and never of a run a
    live trainer (here: another open of the lock, as another process has) is training."""
    store = RunStore(tmp_path / "home")
    run_id = store.create_run(tiny_config(epochs=LONG))
    store.claim_next()
    with store.training_lock() as held:
        assert held and [r.status for r in RunStore(store.home).list_runs()] == ["running"]
    [run] = RunStore(store.home).list_runs()
    assert run.id == run_id and run.status == "interrupted"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_or_sighup_stops_a_cli_train_like_ctrl_c(home, synthetic_dir, signum):
    store = RunStore(home)
    process = _cli_train(home, synthetic_dir, "signalled")
    try:
        assert wait_until(lambda: (run := _run_named(store, "signalled")) and len(store.get(run.id).history) >= 2)
        process.send_signal(signum)
        out, err = process.communicate(timeout=60)
        run = _run_named(store, "signalled")
        assert run.status == "stopped" and run.error is None, (run.status, run.error, err)
        history = store.get(run.id).history
        assert len(history) >= 2 and run.metrics["epochs_done"] == len(history)
        assert load_model(store.model_path(run.id)).output_shape == (None, 10)
        assert process.returncode == 0 and out.startswith(f"run {run.id} stopped: test accuracy")
        assert "Traceback" not in err
    finally:
        _stop_everything(store, process)


# -- row 8: the background worker signalled ----------------------------------------------------
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_signalled_worker_stops_its_run_cleanly_and_leaves_the_queue(zygote, home, synthetic_dir, signum):
    store = RunStore(home)
    running = store.create_run(tiny_config(epochs=LONG), name="training", data_dir=synthetic_dir)
    waiting = store.create_run(tiny_config(epochs=1), name="waiting", data_dir=synthetic_dir)
    pid = zygote.worker(home, idle_exit=0.0)
    assert wait_until(lambda: len(store.get(running).history) >= 2)
    os.kill(pid, signum)
    assert wait_gone(pid, timeout=60)
    run = store.get(running)
    log = (home / "worker.log").read_text()
    assert run.status == "stopped" and run.error is None, (run.status, run.error, log)
    assert len(run.history) >= 2 and run.metrics["epochs_done"] == len(run.history)
    assert load_model(store.model_path(running)).output_shape == (None, 10)
    assert store.get(waiting).status == "queued" and store.get(waiting).started_at is None
    assert "Traceback" not in log and f"run {running} stopped" in log
    assert not store.trainer_active()


# -- row 9: Ctrl-C on a CLI whose run waits in the queue -----------------------------------------
def test_ctrl_c_on_a_cli_waiting_behind_a_worker_cancels_its_run_at_once(zygote, home, synthetic_dir):
    store = RunStore(home)
    ahead = store.create_run(tiny_config(epochs=LONG), name="ahead", data_dir=synthetic_dir)
    pid = zygote.worker(home, idle_exit=0.0)
    assert wait_until(lambda: store.get(ahead).status == "running")
    process = _cli_train(home, synthetic_dir, "mine")
    try:
        assert wait_until(lambda: _run_named(store, "mine") is not None)
        assert wait_until(lambda: catches(process.pid, signal.SIGHUP))  # the CLI is following its queued run
        mine = _run_named(store, "mine")
        assert mine.status == "queued"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
        assert out.strip() == f"run {mine.id} cancelled before it started", (out, err)
        assert store.get(mine.id).status == "cancelled" and store.get(mine.id).started_at is None
        assert store.get(ahead).status == "running" and not store.get(ahead).stop_requested  # not the CLI's run
    finally:
        _stop_everything(store, process)
        assert wait_gone(pid)


def test_ctrl_c_on_a_cli_whose_run_waits_behind_untrained_runs_cancels_it_at_once(home, synthetic_dir):
    """Runs queued before the CLI's own (from the app) are the background worker's: the CLI
    does not train them in its foreground, so Ctrl-C never has to wait for them (it used to
    train on for a minute, then print that its run was cancelled)."""
    store = RunStore(home)
    ahead = store.create_run(tiny_config(epochs=LONG), name="queued from the app", data_dir=synthetic_dir)
    process = _cli_train(home, synthetic_dir, "mine")
    try:
        assert wait_until(lambda: store.get(ahead).status == "running" and _run_named(store, "mine") is not None)
        assert wait_until(lambda: catches(process.pid, signal.SIGHUP))
        mine = _run_named(store, "mine")
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
        assert out.strip() == f"run {mine.id} cancelled before it started", (out, err)
        assert store.get(mine.id).status == "cancelled"
        assert store.get(ahead).status == "running" and store.trainer_active()  # trained on by the worker
    finally:
        _stop_everything(store, process)


def test_the_second_signal_leaves_at_once():
    from kmnist_core.worker import stop_on_signals

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with stop_on_signals() as stop:
        assert not stop.is_set()
        os.kill(os.getpid(), signal.SIGINT)
        assert wait_until(stop.is_set, timeout=5)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # not a wait: the handler raises here, at once, and ends it
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before  # put back


# -- row 2: a relative KMNIST_HOME from another folder ---------------------------------------------
def test_a_relative_home_from_another_folder_is_the_store_the_worker_trains(tmp_path, synthetic_dir, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    relative = f"home-{uuid.uuid4().hex[:8]}"
    stray = PROJECT_ROOT / relative  # where a worker started in the project folder would look
    try:
        store = RunStore(relative)
        assert store.home == elsewhere / relative  # resolved once, at construction
        run_id = store.create_run(tiny_config(epochs=1), data_dir=synthetic_dir)
        assert ensure_worker(store, idle_exit=0.5)
        assert wait_until(lambda: store.get(run_id).finished), (elsewhere / relative / "worker.log").read_text()
        assert store.get(run_id).status == "completed"
        assert wait_until(lambda: not store.trainer_active())
        assert not stray.exists()
    finally:
        shutil.rmtree(stray, ignore_errors=True)


# -- row 12: a training paused (Ctrl-Z) or hung ------------------------------------------------------
def _progress(updated_ago, writes, elapsed, now):
    return Progress(epoch=2, epochs=200, step=3, steps=10, elapsed=elapsed, updated_at=now - updated_ago,
                    writes=writes)


def test_stalled_is_judged_from_the_runs_own_pace_with_a_floor(tmp_path):
    from kmnist_core.status import stalled

    store = RunStore(tmp_path / "home")
    run_id = store.create_run(tiny_config(epochs=LONG))
    store.claim_next()
    now = time.time()
    store.update(run_id, progress=_progress(30, writes=100, elapsed=50.0, now=now))  # 0.5 s a write
    assert stalled(store.get(run_id), now) is None  # under the 60 s floor
    store.update(run_id, progress=_progress(90, writes=100, elapsed=50.0, now=now))
    assert stalled(store.get(run_id), now) == pytest.approx(90)
    store.update(run_id, progress=_progress(90, writes=10, elapsed=100.0, now=now))  # 10 s a write
    assert stalled(store.get(run_id), now) is None  # 10 x its pace is 100 s
    assert stalled(store.get(run_id), now + 20) == pytest.approx(110)
    last_batch = Progress(epoch=200, epochs=200, step=10, steps=10, elapsed=50.0, updated_at=now - 300, writes=100)
    store.update(run_id, progress=last_batch)  # scoring and saving after it: minutes at full scale on a busy host
    assert stalled(store.get(run_id), now) is None
    assert stalled(store.get(run_id), now + 400) == pytest.approx(700)
    store.finish(run_id, "stopped")
    assert stalled(store.get(run_id), now + 1000) is None  # only a running run stalls


def test_a_paused_training_is_listed_as_stalled(home, capsys):
    store = RunStore(home)
    run_id = store.create_run(tiny_config(epochs=LONG), name="paused")
    store.claim_next()
    store.update(run_id, progress=_progress(300, writes=100, elapsed=50.0, now=time.time()))
    with store.training_lock():  # its trainer is alive (paused with Ctrl-Z), so it is no orphan
        assert cli.main(["runs"]) == 0
    listing = capsys.readouterr().out
    assert "stalled" in listing and f"run {run_id} stalled: no progress for 5 min (paused or hung?)" in listing


def test_progress_records_when_it_was_written_and_how_often(home, synthetic_dir):
    from kmnist_core.worker import drain_queue

    store = RunStore(home)
    run_id = store.create_run(tiny_config(epochs=2), data_dir=synthetic_dir)
    before = time.time()
    drain_queue(store)
    progress = store.get(run_id).progress
    assert before < progress.updated_at <= time.time() and progress.writes >= 2
