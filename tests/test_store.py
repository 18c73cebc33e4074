import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from kmnist_core.checks import ParameterError
from kmnist_core.config import make_config
from kmnist_core.records import EpochRecord
from kmnist_core.status import Status
from kmnist_core.store import SCHEMA_VERSION, RunNotFoundError, RunStore, StoreError, check_run_id

from conftest import PROJECT_ROOT, insert_old_run


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "home")


def test_runs_persist_across_store_instances(store):
    run_id = store.create_run(make_config("dropout", epochs=2), name="my dropout run")
    store.claim_next()
    store.append_epoch(run_id, EpochRecord(epoch=1, fit_loss=1.0, fit_accuracy=0.5, val_loss=1.1, val_accuracy=0.4, elapsed=1.0))
    store.finish(run_id, "completed", metrics={"test": {"accuracy": 0.9}})
    reopened = RunStore(store.home).get(run_id)
    assert reopened.name == "my dropout run" and reopened.status == "completed"
    assert reopened.config["epochs"] == 2 and reopened.metrics["test"]["accuracy"] == 0.9
    assert reopened.history == [EpochRecord(epoch=1, fit_loss=1.0, fit_accuracy=0.5, val_loss=1.1, val_accuracy=0.4,
                                            elapsed=1.0)]


def test_queue_is_claimed_oldest_first(store):
    ids = [store.create_run(make_config(v)) for v in ("underfit", "overfit", "dropout")]
    store.request_stop(ids[1])  # cancel the middle one
    assert store.claim_next().id == ids[0]
    assert store.claim_next().id == ids[2]
    assert store.claim_next() is None
    assert [store.get(i).status for i in ids] == ["running", "cancelled", "running"]


def test_stop_request_reaches_a_running_run(store):
    run_id = store.create_run(make_config("overfit"))
    store.claim_next()
    assert not store.stop_requested(run_id)
    assert store.request_stop(run_id) == "stopping"
    assert store.stop_requested(run_id)


def test_rename_and_delete(store):
    run_id = store.create_run(make_config("l1l2"))
    store.save_array(run_id, "test_proba", np.ones((2, 10)))
    store.rename(run_id, "  renamed  ")
    assert store.get(run_id).name == "renamed"
    assert store.resolve("renamed") == run_id
    store.delete(run_id)
    assert not store.run_dir(run_id).exists()
    with pytest.raises(RunNotFoundError):
        store.get(run_id)


def test_a_running_run_cannot_be_deleted(store):
    run_id = store.create_run(make_config("l1l2"))
    store.claim_next()
    with pytest.raises(StoreError, match="stop it before deleting"):
        store.delete(run_id)


@pytest.mark.parametrize("name", ["../../etc/passwd", "a/b", "é" * 80, "run 12", "  padded  "])
def test_names_are_labels_never_paths(store, name):
    run_id = store.create_run(make_config("underfit"))
    store.rename(run_id, name)
    assert store.get(run_id).name == name.strip()
    assert store.run_dir(run_id).name == f"run-{run_id:06d}"


@pytest.mark.parametrize("name, message", [
    ("x\0y", "must not contain control characters"), ("tab\there", "must not contain control characters"),
    ("é" * 81, "must be 1 to 80 characters, got 81"), ("", "must be 1 to 80 characters, got 0"),
    ("   ", "must be 1 to 80 characters, got 0"), ("12", "must not be only digits"), ("١٢", "must not be only digits"),
])
def test_bad_names_are_refused_with_the_reason(store, name, message):
    run_id = store.create_run(make_config("underfit"))
    with pytest.raises(ParameterError, match=f"name {message}"):
        store.rename(run_id, name)
    assert store.get(run_id).name == "underfit"


def test_path_like_names_stay_inside_the_store(store, tmp_path):
    run_id = store.create_run(make_config("underfit"), name="../../escape")
    store.save_array(run_id, "test_proba", np.zeros((1, 10)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]
    assert {p.parent.name for p in store.home.rglob("*.npy")} == {f"run-{run_id:06d}"}


@pytest.mark.parametrize("bad", ["../1", "1/..", -1, 0, "abc", 1.5, None, True, "1; DROP TABLE runs",
                                 "١", "²", "9" * 20])
def test_run_ids_must_be_positive_integers(bad):
    with pytest.raises(ParameterError, match="run_id must be a positive integer"):
        check_run_id(bad)


def test_array_names_are_a_fixed_set(store):
    with pytest.raises(ParameterError):
        store.save_array(1, "../../x", np.zeros(1))
    assert store.load_array(1, "../../x") is None


def test_interrupted_write_leaves_the_previous_file(store, monkeypatch):
    store.save_array(1, "test_proba", np.full((2, 10), 0.1))

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", crash)
    with pytest.raises(OSError):
        store.save_array(1, "test_proba", np.zeros((2, 10)))
    np.testing.assert_array_equal(store.load_array(1, "test_proba"), np.full((2, 10), 0.1))


def test_a_garbage_database_gets_a_clear_error(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "runs.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=r"not a usable run database.*Move it aside"):
        RunStore(home)


def test_an_empty_database_file_is_initialised(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "runs.sqlite").write_bytes(b"")
    assert RunStore(home).list_runs() == []


def test_interrupted_runs_keep_their_history_and_what_was_waiting(store):
    run_id = store.create_run(make_config("overfit"))
    store.claim_next()
    waiting = [store.create_run(make_config("dropout")), store.create_run(make_config("l1l2"))]
    store.append_epoch(run_id, EpochRecord(epoch=1, fit_loss=0.5))
    assert store.mark_interrupted() == [run_id]
    run = store.get(run_id)
    assert run.status == Status.INTERRUPTED and len(run.history) == 1
    assert run.interruption == {"last_epoch": 1, "waiting": waiting}
    with pytest.raises(StoreError, match="cannot move from interrupted to completed"):
        store.finish(run_id, Status.COMPLETED)


def test_training_lock_is_exclusive_across_processes(store):
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            sys.path.insert(0, {str(PROJECT_ROOT)!r})
            from kmnist_core.store import RunStore
            with RunStore({str(store.home)!r}).training_lock() as got:
                print(got, flush=True)
                time.sleep(30)  # holds the lock until the test kills it: not a wait
        """)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "True"
        assert store.trainer_active()
        with store.training_lock(blocking=False) as acquired:
            assert acquired is False
    finally:
        holder.kill()
        holder.wait()
    assert not store.trainer_active()  # the OS released the dead holder's lock


def test_readers_see_consistent_data_while_another_process_writes(store):
    run_id = store.create_run(make_config("overfit"))
    writer = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            sys.path.insert(0, {str(PROJECT_ROOT)!r})
            from kmnist_core.records import EpochRecord, Progress
            from kmnist_core.store import RunStore
            store = RunStore({str(store.home)!r})
            for epoch in range(1, 201):
                store.append_epoch({run_id}, EpochRecord(epoch=epoch, fit_loss=1.0 / epoch))
                store.update({run_id}, progress=Progress(epoch=epoch, epochs=200, step=1, steps=1))
        """)],
    )
    seen = []
    while writer.poll() is None:
        run = store.get(run_id)
        epochs = [record.epoch for record in run.history]
        assert epochs == list(range(1, len(epochs) + 1))  # never a gap or a half-written row
        seen.append(len(epochs))
    assert writer.returncode == 0
    assert len(store.get(run_id).history) == 200
    assert seen == sorted(seen)


def test_a_database_from_the_first_release_is_upgraded_with_every_run_intact(tmp_path):
    """tests/data/runs-5e61095.sqlite was written by the store of commit 5e61095 (schema 0):
    a completed run with three epochs, an interrupted one (then stored as failed with an
    "interrupted:" error), a cancelled, a queued and a failed run."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "tests" / "data" / "runs-5e61095.sqlite", home / "runs.sqlite")
    store = RunStore(home)
    runs = {run.id: run for run in store.list_runs()}
    assert {i: (r.name, r.status) for i, r in runs.items()} == {
        1: ("my overfit", Status.COMPLETED), 2: ("dropout", Status.INTERRUPTED), 3: ("l1l2", Status.CANCELLED),
        4: ("combined", Status.QUEUED), 5: ("final", Status.FAILED)}
    completed = store.get(1)
    assert [r.epoch for r in completed.history] == [1, 2, 3]
    assert completed.history[0] == EpochRecord(epoch=1, fit_loss=1.0, fit_accuracy=0.6, val_loss=1.2,
                                               val_accuracy=0.5, elapsed=2.0)
    assert completed.metrics["test"]["accuracy"] == 0.9 and completed.params == 669706
    assert completed.progress.epoch == 3 and completed.progress.fit_loss is None  # old key "loss" not guessed
    assert store.get(5).error == "ValueError: something broke"
    assert store.claim_next().id == 4  # the queue goes on
    with sqlite3.connect(home / "runs.sqlite") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert RunStore(home).get(1).history == completed.history  # opening again changes nothing


def test_a_database_from_a_newer_release_is_refused_not_damaged(tmp_path):
    store = RunStore(tmp_path / "home")
    with sqlite3.connect(store.db_path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="written by a newer KMNIST Explorer"):
        RunStore(store.home)


def test_a_version_3_database_gains_slot_and_owner_with_its_runs_intact(tmp_path, monkeypatch):
    """Written by this code as it was at schema 3 (no version-4 step), then opened by the
    current store: old runs have no slot (slot 0's trainer) and no owner (the CLI's)."""
    from kmnist_core import store as store_module

    home = tmp_path / "home"
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 3)
    old = RunStore(home)
    queued = insert_old_run(old.db_path, make_config("overfit", epochs=2), "old queued")
    with sqlite3.connect(old.db_path) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    assert "slot" not in columns and "owner" not in columns
    monkeypatch.undo()

    store = RunStore(home)
    with sqlite3.connect(store.db_path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
    run = store.get(queued)
    assert (run.name, run.status, run.slot, run.owner) == ("old queued", Status.QUEUED, None, None)
    mine = store.create_run(make_config("dropout", epochs=2), owner="session-a")
    assert store.get(mine).owner == "session-a"
    assert store.claim_next().id == queued  # the old queue goes first


# -- training slots (KMNIST_WORKERS) -----------------------------------------------------------
def test_a_claim_records_its_slot_and_only_runs_of_a_free_slot_are_orphans(store):
    """Two trainers side by side: the run of the one that died (its slot free) is
    interrupted; the run whose slot is held is no orphan, whichever slot that is."""
    dead, alive = store.create_run(make_config("overfit")), store.create_run(make_config("dropout"))
    assert store.claim_next(slot=1).id == dead
    assert store.claim_next(slot=0).id == alive
    assert [store.get(dead).slot, store.get(alive).slot] == [1, 0]
    with store.training_lock(slot=0) as held:  # the live trainer: another open of its lock, as another process has
        assert held and RunStore(store.home).reconcile() == [dead]
        assert [store.get(i).status for i in (dead, alive)] == ["interrupted", "running"]
    assert RunStore(store.home).reconcile() == [alive]  # now its slot is free too


def test_slots_are_taken_in_turn_and_each_is_its_own_lock(store):
    with store.free_slot(slots=2) as first:
        with RunStore(store.home).free_slot(slots=2) as second:
            assert (first, second) == (0, 1) and store.held_slots(2) == [0, 1] and store.trainer_active(2)
            with RunStore(store.home).free_slot(slots=2, patience=0.2) as third:
                assert third is None  # all taken: a surplus worker gives up
        assert store.held_slots(2) == [0]
    assert store.held_slots(2) == [] and not store.trainer_active(2)
    assert sorted(p.name for p in store.home.glob("training*.lock")) == ["training-1.lock", "training.lock"]


@pytest.mark.parametrize("plant", ["link", "folder"])
def test_a_slot_lock_file_is_never_followed_through_a_link_nor_a_folder(store, tmp_path, plant):
    target = tmp_path / "elsewhere"
    target.write_text("not a lock")
    lock = store.home / "training-1.lock"
    lock.symlink_to(target) if plant == "link" else lock.mkdir()
    with store.training_lock(slot=0), pytest.raises(StoreError, match=re.escape("training-1.lock")):
        with RunStore(store.home).free_slot(slots=2):
            pass
    assert target.read_text() == "not a lock"


def test_leftovers_of_a_run_training_in_another_slot_are_left_alone(store):
    """A new trainer cleans up after a killed one, but a temporary file may be a live
    trainer's checkpoint half-way through: only finished runs' folders are cleaned."""
    training, killed = store.create_run(make_config("overfit")), store.create_run(make_config("dropout"))
    store.claim_next(slot=1)
    store.claim_next(slot=0)
    partial = {i: store.run_dir(i) / ".model-123.tmp.keras" for i in (training, killed)}
    for path in partial.values():
        path.parent.mkdir(parents=True, exist_ok=True)  # made with the run, for its manifest
        path.write_bytes(b"half a model")
    with store.training_lock(slot=1), store.training_lock(slot=0):  # slot 1 alive; we are the new slot 0
        assert store.mark_interrupted(0) == [killed]
        assert store.remove_leftovers() == [partial[killed]]
    assert partial[training].exists() and not partial[killed].exists()
