"""The database is an index the run folders can rebuild: moving runs.sqlite aside (as the
damaged-database message advises), emptying it or damaging it loses no run, and nothing
the store does not know to be its own litter is ever deleted."""

import os
import sqlite3

import numpy as np
import pytest

from kmnist_core import cli
from kmnist_core.config import make_config
from kmnist_core.records import EpochRecord
from kmnist_core.status import Status
from kmnist_core.store import RunStore, StoreError


def _trained(store, variant="overfit", epochs=3, name=None):
    """A run as a trainer leaves it, without TensorFlow: epochs, metrics, arrays, a status."""
    run_id = store.create_run(make_config(variant, epochs=epochs), name=name, owner="session-a", status="running")
    for epoch in range(1, epochs + 1):
        store.append_epoch(run_id, EpochRecord(epoch=epoch, train_loss=1 / epoch, val_loss=0.5 + epoch / 10,
                                               val_accuracy=0.8, weights=[{"layer": "dense", "norm": epoch}]))
    store.update(run_id, params=123, metrics={"test": {"accuracy": 0.9}}, runtime={"precision": "float32"})
    store.save_array(run_id, "test_proba", np.eye(10)[:4])
    store.finish(run_id, Status.COMPLETED)
    return run_id


def _snapshot(store):
    """Everything a listing, Compare and Draw read, per run."""
    return {run.id: (run.name, run.variant, str(run.status), run.config, run.metrics, run.params, run.owner,
                     run.runtime, run.study_id, run.sweep_id, [h.to_dict() for h in store.get(run.id).history],
                     store.load_array(run.id, "test_proba").tolist() if store.load_array(run.id, "test_proba")
                     is not None else None)
            for run in store.list_runs()}


def _folder_bytes(home):
    return {p.relative_to(home): p.read_bytes() for p in home.glob("run-*/**/*") if p.is_file()}


@pytest.mark.parametrize("loss", ["moved aside", "emptied", "deleted"])
def test_a_lost_database_is_rebuilt_from_the_run_folders_and_nothing_is_deleted(tmp_path, loss):
    store = RunStore(tmp_path / "home")
    study = store.create_study("quick", "Quick study", "Does dropout help?", [(make_config("underfit", epochs=2), None)])
    sweep = store.create_sweep("dropout", [0.0, 0.3], 1, "overfit",
                               [(make_config("overfit", dropout=v, epochs=2), f"overfit dropout {v}") for v in (0.0, 0.3)])
    first = _trained(store)
    _trained(store, "dropout", name="my dropout")
    store.rename(first, "renamed overfit")
    before, files = _snapshot(store), _folder_bytes(store.home)
    database = store.db_path
    if loss == "moved aside":
        os.replace(database, database.with_name("runs.sqlite.bad"))
    elif loss == "emptied":
        database.write_bytes(b"")
    else:
        database.unlink()
    for suffix in ("-wal", "-shm"):
        database.with_name(f"runs.sqlite{suffix}").unlink(missing_ok=True)

    rebuilt = RunStore(store.home)  # what the next `train` or page load does
    assert _snapshot(rebuilt) == before
    assert rebuilt.get_study(study).purpose == "Does dropout help?"
    assert [r.id for r in rebuilt.study_runs(study)] == [1] and rebuilt.get(1).study_id == study
    assert rebuilt.get_sweep(sweep).values == [0.0, 0.3] and len(rebuilt.sweep_runs(sweep)) == 2
    with rebuilt.training_lock():
        assert rebuilt.remove_leftovers() == []
    assert all(_folder_bytes(rebuilt.home)[path] == content for path, content in files.items()
               if path.name not in ("run.json",))  # models, arrays, history: untouched
    newer = rebuilt.create_run(make_config("overfit", epochs=1))
    assert newer > max(before) and rebuilt.get(first).name == "renamed overfit"


def test_the_issue_replay_train_after_moving_the_store_aside_keeps_every_run(tmp_path, synthetic_dir, capsys):
    """#20: train, `mv runs.sqlite runs.sqlite.bad`, train again: every earlier run is listed,
    its model loadable; before, the second train deleted every earlier run folder."""
    home = tmp_path / "home"
    tiny = ["--home", str(home), "--data-dir", str(synthetic_dir), "train", "--variant", "underfit",
            "--epochs", "1", "--hidden-units", "8", "--batch-size", "64"]
    assert cli.main(tiny) == 0 and cli.main(tiny) == 0
    os.replace(home / "runs.sqlite", home / "runs.sqlite.bad")
    assert cli.main(tiny) == 0
    store = RunStore(home)
    runs = store.list_runs()
    assert [r.id for r in runs] == [3, 2, 1] and all(r.status == Status.COMPLETED for r in runs)
    assert all(store.model_path(r.id).is_file() and store.get(r.id).history for r in runs)
    from kmnist_core.inference import load_model

    assert load_model(store.model_path(1)) is not None


def test_a_damaged_database_is_moved_aside_by_recover_and_every_run_comes_back(tmp_path, capsys):
    store = RunStore(tmp_path / "home")
    kept = [_trained(store), _trained(store, "l1l2")]
    store.db_path.write_bytes(b"this is not SQLite" * 500)
    with pytest.raises(StoreError, match="recover"):
        RunStore(store.home)
    assert cli.main(["--home", str(store.home), "recover"]) == 0
    out = capsys.readouterr().out
    assert "moved the damaged database aside: runs.sqlite.damaged-" in out and "recovered 2 run(s)" in out
    assert [r.id for r in RunStore(store.home).list_runs()] == kept[::-1]
    assert len(list(store.home.glob("runs.sqlite.damaged-*"))) == 1  # kept, never deleted
    assert cli.main(["--home", str(store.home), "recover"]) == 0  # healthy now: nothing moved, nothing doubled
    assert "recovered 0 run(s)" in capsys.readouterr().out


def test_a_run_training_when_the_database_was_lost_comes_back_interrupted_with_its_epochs(tmp_path):
    store = RunStore(tmp_path / "home")
    queued_before = store.create_run(make_config("overfit", epochs=5))
    running = store.claim_next()
    assert running.id == queued_before
    waiting = store.create_run(make_config("dropout", epochs=5))
    for epoch in (1, 2):
        store.append_epoch(running.id, EpochRecord(epoch=epoch, val_loss=1.0))
    store.db_path.unlink()
    rebuilt = RunStore(store.home)
    run = rebuilt.get(running.id)
    assert run.status == Status.INTERRUPTED and run.interruption["last_epoch"] == 2 and len(run.history) == 2
    assert rebuilt.get(waiting).status == Status.QUEUED  # still waits to be trained: nothing lost


def test_a_deleted_run_stays_deleted_even_when_killed_before_its_folder_went(tmp_path, monkeypatch):
    store = RunStore(tmp_path / "home")
    gone, kept = _trained(store), _trained(store)
    monkeypatch.setattr("kmnist_core.store.remove", lambda path: None)  # killed between the row and the folder
    store.delete(gone)
    monkeypatch.undo()
    assert store.run_dir(gone).is_dir()
    store.db_path.unlink()
    rebuilt = RunStore(store.home)
    assert [r.id for r in rebuilt.list_runs()] == [kept]  # not resurrected
    with rebuilt.training_lock():
        assert rebuilt.remove_leftovers() == [rebuilt.run_dir(gone)]  # known litter: its manifest says deleted
    assert not rebuilt.run_dir(gone).exists() and rebuilt.run_dir(kept).is_dir()


def test_a_folder_without_a_manifest_is_never_deleted_nor_reused(tmp_path):
    """A folder the store cannot read (an older release's, or damaged) is neither indexed
    nor removed, and a new run never lands in it."""
    home = tmp_path / "home"
    home.mkdir()
    stranger = home / "run-000007"
    stranger.mkdir()
    (stranger / "model.keras").write_bytes(b"someone's model")
    store = RunStore(home)
    new = store.create_run(make_config("overfit"))
    assert new == 8
    with store.training_lock():
        assert store.remove_leftovers() == []
    assert (stranger / "model.keras").read_bytes() == b"someone's model"


def test_an_older_store_gains_manifests_for_its_runs_on_opening(tmp_path, monkeypatch):
    from kmnist_core import store as store_module

    home = tmp_path / "home"
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 4)
    old = RunStore(home)
    with sqlite3.connect(old.db_path) as db:
        db.execute("INSERT INTO runs (name, variant, status, config, created_at) VALUES (?, ?, ?, ?, ?)",
                   ("old one", "overfit", "completed", '{"variant": "overfit"}', 1.0))
    monkeypatch.undo()
    store = RunStore(home)
    assert (store.run_dir(1) / "run.json").is_file()
    store.db_path.unlink()
    assert [r.name for r in RunStore(home).list_runs()] == ["old one"]


def test_a_prediction_is_kept_only_until_the_study_starts(tmp_path):
    store = RunStore(tmp_path / "home")
    study = store.create_study("lab", "Lab: dropout", "Will dropout shrink the gap?",
                               [(make_config("overfit", epochs=2), None), (make_config("dropout", epochs=2), None)],
                               lab="dropout")
    store.set_prediction(study, "it shrinks the gap")
    assert store.get_study(study).prediction == "it shrinks the gap"
    store.claim_next()
    with pytest.raises(StoreError, match="can no longer change"):
        store.set_prediction(study, "changed my mind")
    store.db_path.unlink()
    assert RunStore(store.home).get_study(study).prediction == "it shrinks the gap"
