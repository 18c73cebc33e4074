"""Killed trainings (SIGKILL at random points and at every write boundary) and server
restarts: afterwards no run stays "running", the history up to the last finished epoch
is intact, the database opens without repair, and every other run is untouched."""

import hashlib
import itertools
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kmnist_core import cli
from kmnist_core.hardware import usable_cores
from kmnist_core.inference import load_model
from kmnist_core.records import EpochRecord
from kmnist_core.status import FINISHED, Status
from kmnist_core.store import RunStore
from kmnist_core.worker import MODULE, ensure_worker

from conftest import PROJECT_ROOT, tiny_config, wait_until
from killing import kill, wait_gone

pytestmark = pytest.mark.process

KILLS = 20
KILLED_EPOCHS = 10  # long enough that most random kills land mid-run


def snapshot(store, exclude=()):
    """Everything a user could see of the runs: rows, history, files (by content)."""
    state = {}
    for run in store.list_runs():
        if run.id in exclude:
            continue
        full = store.get(run.id)
        folder = store.run_dir(run.id)
        files = {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
                 for p in sorted(folder.rglob("*")) if p.is_file()} if folder.is_dir() else {}
        state[run.id] = (full.name, full.status, full.error, full.metrics, full.history,
                         full.started_at, full.finished_at, files)
    return state


def temporaries(store):
    return sorted(p.name for p in store.home.glob("run-*/.*.tmp.*"))


def assert_recovered(store, run_id, epochs_seen, others_before, trained_since=()):
    """The guarantees after a kill and the next start (``trained_since``: runs the next
    start trained, which are checked separately)."""
    with sqlite3.connect(store.db_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    run = RunStore(store.home).get(run_id)
    assert run.status in FINISHED, run.status
    assert run.status in (Status.COMPLETED, Status.INTERRUPTED), (run.status, run.error)
    if run.status == Status.INTERRUPTED:
        assert run.interruption["last_epoch"] == len(run.history), run.interruption
    epochs = [record.epoch for record in run.history]
    assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) >= epochs_seen
    assert all(r.train_loss is not None and r.fit_loss is not None and r.val_accuracy is not None for r in run.history)
    if run.status == "completed":
        assert run.metrics["epochs_done"] == len(epochs) and store.load_array(run_id, "test_proba") is not None
    if store.model_path(run_id).exists():
        assert load_model(store.model_path(run_id)).output_shape == (None, 10)
    assert temporaries(store) == []
    assert snapshot(store, exclude={run_id, *trained_since}) == others_before


def _recover(zygote, store):
    """'The next start': a fresh worker on the same store, with nothing else queued."""
    assert wait_gone(zygote.worker(store.home, idle_exit=0.0))


def test_sigkill_at_random_points_never_loses_a_run(zygote, home, synthetic_dir):
    store = RunStore(home)
    bystander = store.create_run(tiny_config(epochs=KILLED_EPOCHS), name="bystander", data_dir=synthetic_dir)
    start = time.monotonic()
    assert wait_gone(zygote.worker(home, checkpoint_every=0.0))  # checkpoint after every epoch
    duration = time.monotonic() - start
    assert store.get(bystander).status == "completed"

    rng = random.Random(20)
    outcomes = []
    for kill_number in range(KILLS):
        run_id = store.create_run(tiny_config(epochs=KILLED_EPOCHS, seed=kill_number), data_dir=synthetic_dir)
        others = snapshot(store, exclude={run_id})
        pid = zygote.worker(home, checkpoint_every=0.0)
        time.sleep(rng.uniform(0.0, 1.1 * duration))  # a random kill time: this sleep is what is tested
        epochs_seen = len(store.get(run_id).history)
        kill(pid)
        outcomes.append((store.get(run_id).status, epochs_seen, bool(temporaries(store))))
        _recover(zygote, store)
        assert_recovered(store, run_id, epochs_seen, others)
    mid_checkpoint = sum(temporary for _, _, temporary in outcomes)
    mid_run = sum(status == "running" for status, _, _ in outcomes) - mid_checkpoint
    print(f"\n{KILLS}/{KILLS} random SIGKILLs recovered: {mid_run} mid-epoch or mid-write of the "
          f"database, {mid_checkpoint} mid-checkpoint, {KILLS - mid_run - mid_checkpoint} after "
          f"the run had finished; epochs done at the kill: {[epochs for _, epochs, _ in outcomes]}")
    assert sum(status == "running" for status, _, _ in outcomes) >= KILLS // 2  # most land mid-run


# Every write a run makes, and a kill just before or just after it.
BOUNDARIES = [
    pytest.param({"method": "append_epoch", "call": 3}, id="before-epoch-3-is-recorded"),
    pytest.param({"method": "keras_save", "call": 2}, id="mid-write-of-a-checkpoint"),
    pytest.param({"method": "save_model", "call": 2, "after": True}, id="after-a-checkpoint"),
    pytest.param({"method": "save_array", "call": 1}, id="after-final-model-before-predictions"),
    pytest.param({"method": "finish", "call": 1}, id="files-written-before-finish"),
    pytest.param({"method": "finish", "call": 1, "after": True}, id="right-after-finish"),
]


@pytest.mark.parametrize("kill_at", BOUNDARIES)
def test_sigkill_at_each_write_boundary(zygote, home, synthetic_dir, kill_at):
    store = RunStore(home)
    earlier = store.create_run(tiny_config(), name="earlier", data_dir=synthetic_dir)
    store.claim_next()
    store.append_epoch(earlier, EpochRecord(epoch=1, fit_loss=0.5, val_accuracy=0.5))
    store.save_array(earlier, "test_proba", [[0.1] * 10])
    store.finish(earlier, "completed", metrics={"test": {"accuracy": 0.5}})
    run_id = store.create_run(tiny_config(epochs=4), data_dir=synthetic_dir)
    queued = store.create_run(tiny_config(epochs=1), name="queued behind", data_dir=synthetic_dir)
    others = snapshot(store, exclude={run_id, queued})
    assert wait_gone(zygote.worker(home, checkpoint_every=0.0, kill_at=kill_at))
    assert store.get(run_id).status in ("running", "completed")  # what the crash left
    assert store.get(queued).status == "queued"
    if kill_at["method"] == "keras_save":
        assert [name.startswith(".model-") for name in temporaries(store)] == [True]

    assert wait_gone(zygote.worker(home, idle_exit=0.0))  # the next start trains the queue on
    assert store.get(queued).status == "completed"
    assert_recovered(store, run_id, 0, others, trained_since={queued})
    run = store.get(run_id)
    if kill_at["method"] == "append_epoch":
        assert len(run.history) == 2 and run.interruption["last_epoch"] == 2
    if kill_at["method"] in ("keras_save", "save_model"):
        assert run.status == Status.INTERRUPTED and store.model_path(run_id).is_file()  # the checkpoint before
    if kill_at["method"] == "finish" and not kill_at.get("after"):
        assert run.status == Status.INTERRUPTED and run.interruption["last_epoch"] == 4


def _worker_pids(home):
    """Live `python -m kmnist_core.worker` processes serving ``home``."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if MODULE.encode() in argv and str(home).encode() in argv:
            pids.append(int(entry))
    return pids


def _assert_one_at_a_time_in_id_order(runs):
    trained = sorted((r for r in runs if r.started_at), key=lambda r: r.started_at)
    assert [r.id for r in trained] == sorted(r.id for r in trained)
    for earlier, later in itertools.pairwise(trained):
        assert earlier.finished_at <= later.started_at


def test_server_restart_neither_kills_nor_wedges_the_queue(home, synthetic_dir):
    """A server killed with its whole process group leaves the detached worker training;
    a worker killed too: the next ensure_worker marks the orphan interrupted and starts a
    worker that resumes the queue in order."""
    store = RunStore(home)
    first = [store.create_run(tiny_config(epochs=3, seed=i), data_dir=synthetic_dir) for i in range(2)]
    server = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(PROJECT_ROOT)!r})
        from kmnist_core.store import RunStore
        from kmnist_core.worker import ensure_worker
        assert ensure_worker(RunStore({str(home)!r}), idle_exit=60.0)
        time.sleep(600)  # the server lives until the test kills its process group
    """)], start_new_session=True)
    assert wait_until(lambda: store.get(first[0]).status == "running")
    os.killpg(server.pid, signal.SIGKILL)  # the server and everything in its session
    server.wait()
    assert wait_until(lambda: all(store.get(i).finished for i in first)), (home / "worker.log").read_text()
    assert [store.get(i).status for i in first] == ["completed", "completed"]

    second = [store.create_run(tiny_config(epochs=40 if i == 0 else 2, seed=i), data_dir=synthetic_dir)
              for i in range(3)]  # the surviving worker (idle, 60 s) picks these up
    assert wait_until(lambda: len(store.get(second[0]).history) >= 1)
    for pid in _worker_pids(home):
        os.kill(pid, signal.SIGKILL)  # the machine or the worker dies too
    assert wait_until(lambda: not _worker_pids(home) and not store.trainer_active())
    assert store.get(second[0]).status == "running"  # until anyone looks
    assert ensure_worker(RunStore(home), idle_exit=0.5) is True  # what the restarted app does on its first page
    assert store.get(second[0]).status == "interrupted"  # its listing reconciled before the worker started
    assert wait_until(lambda: all(store.get(i).finished for i in second)), (home / "worker.log").read_text()
    runs = [store.get(i) for i in first + second]
    assert [r.status for r in runs] == ["completed"] * 2 + ["interrupted", "completed", "completed"]
    assert runs[2].interruption["waiting"] == second[1:]  # recorded when it happened
    _assert_one_at_a_time_in_id_order(runs)
    assert wait_until(lambda: not store.trainer_active())


def test_after_a_crash_the_queue_can_be_cancelled_instead(zygote, home, synthetic_dir):
    store = RunStore(home)
    running = store.create_run(tiny_config(epochs=40), data_dir=synthetic_dir)
    waiting = [store.create_run(tiny_config(), data_dir=synthetic_dir) for _ in range(2)]
    pid = zygote.worker(home)
    assert wait_until(lambda: len(store.get(running).history) >= 1)
    kill(pid)
    assert [store.request_stop(i) for i in waiting] == ["cancelled", "cancelled"]
    _recover(zygote, store)
    assert [store.get(i).status for i in [running, *waiting]] == ["interrupted", "cancelled", "cancelled"]
    assert all(store.get(i).started_at is None for i in waiting)  # never trained


# -- two trainers side by side (KMNIST_WORKERS=2) ------------------------------------------------
two_cores = pytest.mark.skipif(usable_cores() < 2, reason="KMNIST_WORKERS=2 needs 2 usable cores")
EPOCHS_SIDE_BY_SIDE = 30  # the survivor's run: short enough to finish within the test
NEVER_DONE = 1000  # the victim's run (the most epochs allowed): still training when the kill comes (30 took 2 s on a quiet host)


def _trained_runs(log):
    """Run ids in the order workers began training them, from their "training run N" lines."""
    return [int(line.split("training run ")[1].split()[0]) for line in log.splitlines() if "training run " in line]


def _overlap(a, b):
    return a.started_at < b.finished_at and b.started_at < a.finished_at


@two_cores
def test_two_workers_started_at_once_train_every_run_exactly_once_in_both_slots(zygote, home, synthetic_dir):
    store = RunStore(home)
    queued = [store.create_run(tiny_config(epochs=3, seed=i), data_dir=synthetic_dir) for i in range(5)]
    pids = [zygote.worker(home, workers=2) for _ in range(2)]  # both race for the same oldest run
    assert all(wait_gone(pid) for pid in pids)
    log = (home / "worker.log").read_text()
    assert sorted(_trained_runs(log)) == queued, log  # each run once: never the same run twice
    runs = [store.get(i) for i in queued]
    assert [r.status for r in runs] == ["completed"] * len(runs), [(r.status, r.error) for r in runs]
    assert all(len(r.history) == 3 for r in runs)  # one trainer's epochs each, none written twice
    assert {r.slot or 0 for r in runs} == {0, 1}, [r.slot for r in runs]  # both slots trained
    assert any(_overlap(a, b) for a in runs for b in runs if a.slot != b.slot)  # side by side
    assert {r.runtime["threads"] for r in runs} == {usable_cores() // 2}  # the cores split between them
    assert not store.trainer_active()


@two_cores
@pytest.mark.parametrize("victim", ["slot-0", "slot-1"])
def test_sigkill_of_one_of_two_trainers_interrupts_only_its_run(zygote, home, synthetic_dir, capsys, victim):
    """The dead trainer's run is an orphan at once (its slot is free: the next listing says
    interrupted, no ghost "running"); the run in the other slot is no orphan (its slot is
    held), trains on untouched and completes."""
    store = RunStore(home)
    epochs = (NEVER_DONE, EPOCHS_SIDE_BY_SIDE) if victim == "slot-0" else (EPOCHS_SIDE_BY_SIDE, NEVER_DONE)
    first = store.create_run(tiny_config(epochs=epochs[0]), name="first", data_dir=synthetic_dir)
    second = store.create_run(tiny_config(epochs=epochs[1], seed=1), name="second", data_dir=synthetic_dir)
    pids = {}
    pids[first] = zygote.worker(home, workers=2, checkpoint_every=0.0)
    assert wait_until(lambda: store.get(first).status == "running")
    pids[second] = zygote.worker(home, workers=2, checkpoint_every=0.0)
    assert wait_until(lambda: all(len(store.get(i).history) >= 1 for i in pids)), (home / "worker.log").read_text()
    assert [store.get(i).slot or 0 for i in (first, second)] == [0, 1]
    killed, survivor = (first, second) if victim == "slot-0" else (second, first)
    kill(pids[killed])

    assert cli.main(["--home", str(home), "runs"]) == 0  # `kc runs` right after the kill
    listing = capsys.readouterr().out
    lines = {i: next(line for line in listing.splitlines() if line.split()[:1] == [str(i)]) for i in pids}
    assert "interrupted" in lines[killed] and "running" not in lines[killed], listing
    assert "running" in lines[survivor], listing  # alive in the other slot: no orphan
    dead = store.get(killed)
    assert dead.status == "interrupted" and dead.interruption["last_epoch"] == len(dead.history) >= 1
    assert wait_until(lambda: store.get(survivor).finished), (home / "worker.log").read_text()
    alive = store.get(survivor)
    assert alive.status == "completed" and alive.error is None and alive.interruption is None, (alive.status, alive.error)
    assert [r.epoch for r in alive.history] == list(range(1, EPOCHS_SIDE_BY_SIDE + 1))  # every epoch, once
    assert load_model(store.model_path(survivor)).output_shape == (None, 10)
    assert wait_gone(pids[survivor])
    _recover(zygote, store)  # the next start removes what the kill left (a half-written checkpoint)
    assert temporaries(store) == []
    with sqlite3.connect(store.db_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
