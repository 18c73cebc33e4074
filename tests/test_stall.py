"""A run paused before its first progress write (issue 20, item 6) is called stalled after
a few times the start-ups measured on its data, not after a fixed ten minutes."""

import time

from kmnist_core import stall
from kmnist_core.config import make_config
from kmnist_core.records import Progress
from kmnist_core.store import Run, RunStore
from kmnist_core.worker import drain_queue


def _run(run_id, started_ago=0.0, status="running", data_dir="/data/kmnist-mini", startup=None, progress=None):
    now = time.time()
    return Run(id=run_id, name=f"run {run_id}", variant="overfit", status=status, config={}, created_at=now,
               started_at=now - started_ago, data_dir=data_dir, progress=progress,
               runtime=None if startup is None else {"startup_seconds": startup, "precision": "float32"})


def test_the_start_up_limit_follows_the_measured_start_ups():
    assert stall.start_limit([]) == stall.UNMEASURED_START_LIMIT == 600.0  # nothing measured: as before
    assert stall.start_limit([8.0, 12.0]) == stall.START_FLOOR  # fast start-ups: the floor
    assert stall.start_limit([25.0, 40.0, 30.0]) == 120.0  # 3 x the slowest


def test_a_worker_paused_while_loading_its_data_is_stalled_within_two_minutes():
    """kmnist-mini starts in ~30 s on a loaded 2-core host: SIGSTOP during "Starting:
    loading data…" was silent for 600 s; now it is called stalled after 90."""
    earlier = [_run(3, startup=30.0), _run(2, startup=24.0), _run(1, startup=28.0)]
    paused = _run(4, started_ago=95.0)
    startups = stall.recent_startups([paused, *earlier], paused)
    assert sorted(startups) == [24.0, 28.0, 30.0]
    assert stall.silent_at_start(paused, startups) > 90
    assert stall.silent_at_start(_run(5, started_ago=80.0), startups) is None  # still within 3 x 30 s
    assert stall.silent_at_start(paused, []) is None  # nothing measured: ten minutes, as before


def test_only_start_ups_on_the_same_data_count_and_only_recent_ones():
    full = [_run(100 + i, data_dir="/data/kmnist-full", startup=200.0) for i in range(3)]
    mini = [_run(50 - i, startup=20.0 + i) for i in range(15)]  # newest first
    paused = _run(200, started_ago=0.0)
    startups = stall.recent_startups([paused, *full, *mini, _run(7)], paused)
    assert startups == [20.0 + i for i in range(stall.RECENT)]


def test_a_run_that_has_written_progress_or_is_not_running_is_left_to_the_pace_rule():
    progress = Progress(epoch=1, epochs=2, step=1, steps=10, updated_at=time.time() - 900)
    assert stall.silent_at_start(_run(1, started_ago=900.0, progress=progress), [10.0]) is None
    assert stall.silent_at_start(_run(2, started_ago=900.0, status="queued"), [10.0]) is None


def test_each_run_records_its_start_up(home, synthetic_dir):
    store = RunStore(home)
    run_id = store.create_run(make_config("overfit", hidden_units=(16,), epochs=1), data_dir=synthetic_dir)
    drain_queue(store)
    run = store.get(run_id)
    assert run.status == "completed"
    assert 0 < run.runtime["startup_seconds"] < run.duration
    assert run.runtime["precision"] in ("float32", "bfloat16")  # what the end of the run adds is kept beside it
