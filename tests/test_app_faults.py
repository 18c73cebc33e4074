"""The app under faults: a training process that died, a worker that is not there, a
damaged model, a damaged upload, a damaged database, lost prediction files. Each gives a
clear message on the page that needs it, and every other run still loads."""

import io
import shutil
import sqlite3
import time

import numpy as np
import pytest
from PIL import Image

from explorer.compare import run_label
from kmnist_core.config import make_config
from kmnist_core.data import load_kmnist
from kmnist_core.hardware import usable_cores
from kmnist_core.records import EpochRecord
from kmnist_core.store import RunStore

from app_support import app, app_home, app_runs, no_worker, texts, trained_home, use_home  # noqa: F401

INTERRUPTED_TEXT = "Interrupted: the training process stopped (server restart or crash)."


def png(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def upload(page, name, data):
    page.button_group(key="draw_source").set_value("Upload").run()
    page.file_uploader[0].set_value((name, data, "image/png")).run()
    assert not page.exception, [e.value for e in page.exception]


def real_scan() -> bytes:
    """A real test character, dark on light and four times larger, like a scanned one."""
    return png(255 - np.kron(load_kmnist().x_test[0], np.ones((4, 4), np.uint8)))


def orphan_with_history(store, epochs_done):
    """A run its training process left 'running' after finishing ``epochs_done`` epochs."""
    run_id = store.create_run(make_config("underfit", epochs=5), name="underfit", status="running")
    for epoch in range(1, epochs_done + 1):
        store.append_epoch(run_id, EpochRecord(epoch=epoch, fit_loss=2.0 / epoch, fit_accuracy=0.3, val_loss=2.1 / epoch,
                                    val_accuracy=0.3, elapsed=float(epoch)))
    return run_id


def test_interrupted_run_says_what_was_kept_and_the_rest_of_the_queue_can_be_cancelled(app_home, monkeypatch):
    no_worker(monkeypatch)
    store = app_home
    orphan = orphan_with_history(store, epochs_done=2)
    waiting = [store.create_run(make_config("underfit", epochs=1)) for _ in range(3)]
    with store.training_lock():  # now the new worker: it marks the orphan and takes the next run
        assert store.mark_interrupted() == [orphan]
        assert store.claim_next().id == waiting[0]
        page = app("pages/train.py")
        [notice] = page.warning  # above the queue, while the picker shows the newest run
        assert notice.value.startswith(f"Run #{orphan} underfit — {INTERRUPTED_TEXT} History kept up to epoch 2.")
        assert notice.value.endswith(f"The queue resumed with run #{waiting[0]}.")
        page.selectbox(key="train_view").set_value(orphan).run()
        assert f"#{orphan} underfit — interrupted" in page.selectbox(key="train_view").options
        assert f"{INTERRUPTED_TEXT} History kept up to epoch 2. The queue resumed with run #{waiting[0]}." \
            in texts(page.warning)
        assert not page.error and len(page.get("plotly_chart")) == 1  # the kept curves

        page.button(key="cancel_queue").click().run()
        assert [store.get(run_id).status for run_id in waiting] == ["running", "cancelled", "cancelled"]
        assert (f"The queue resumed with run #{waiting[0]}. The rest of the queue was cancelled: "
                f"#{waiting[1]}, #{waiting[2]}.") in texts(page.warning)
        assert "cancel_queue" not in [button.key for button in page.button]  # nothing queued is left


def test_interrupted_run_without_a_queue_says_nothing_was_waiting(app_home, monkeypatch):
    no_worker(monkeypatch)
    orphan = orphan_with_history(app_home, epochs_done=0)
    with app_home.training_lock():
        app_home.mark_interrupted()
    page = app("pages/train.py")
    assert page.selectbox(key="train_view").value == orphan
    assert (f"{INTERRUPTED_TEXT} No epoch had finished, so no history was kept. "
            "Nothing else was waiting in the queue.") == page.warning[0].value
    assert "status: interrupted" in texts(page.caption)
    assert "Queue" not in texts(page.markdown)


def test_the_notice_outlives_the_queue_until_something_new_is_queued(app_home, monkeypatch):
    no_worker(monkeypatch)
    orphan = orphan_with_history(app_home, epochs_done=3)
    waiting = app_home.create_run(make_config("underfit", epochs=1))
    with app_home.training_lock():  # the new worker marks the orphan and trains what waited
        app_home.mark_interrupted()
        app_home.claim_next()
        app_home.finish(waiting, "stopped")
    page = app("pages/train.py")
    assert not page.exception
    assert page.selectbox(key="train_view").value == waiting  # the newest run, not the lost one
    assert f"Run #{orphan} underfit — {INTERRUPTED_TEXT} History kept up to epoch 3. " \
           f"The queue resumed with run #{waiting}." in texts(page.warning)
    app_home.create_run(make_config("underfit", epochs=1))  # the user moves on
    page.run()
    assert not page.exception and INTERRUPTED_TEXT not in texts(page.warning)


def test_a_running_run_with_no_trainer_is_shown_interrupted_at_once_not_a_frozen_progress_bar(app_home, monkeypatch):
    """The app's listing reconciles: with nobody holding the training lock, nobody trains
    the run, so it is interrupted at once (it used to say "recovering" until a new worker
    came, and a CLI's orphan stayed "running" until then)."""
    no_worker(monkeypatch)
    run_id = orphan_with_history(app_home, epochs_done=1)
    app_home.update(run_id, progress={"epoch": 2, "epochs": 5, "step": 3, "steps": 10, "fraction": 0.25,
                                      "elapsed": 4.0, "eta": 12.0})
    with app_home.training_lock():  # a live trainer: progress as usual
        page = app("pages/train.py")
        assert page.get("progress") and "recovering" not in texts(page.warning) + texts(page.text)
    page.run()  # its trainer is gone
    assert not page.exception and not page.get("progress")
    assert app_home.get(run_id).status == "interrupted"
    assert f"{INTERRUPTED_TEXT} History kept up to epoch 1." in texts(page.warning)
    assert f"stop_{run_id}" not in [button.key for button in page.button]


def test_a_paused_training_shows_stalled_not_a_frozen_progress_bar(app_home, monkeypatch):
    no_worker(monkeypatch)
    run_id = orphan_with_history(app_home, epochs_done=1)
    app_home.update(run_id, progress={"epoch": 2, "epochs": 200, "step": 3, "steps": 10, "elapsed": 40.0,
                                      "eta": 4000.0, "updated_at": time.time() - 300, "writes": 80})
    with app_home.training_lock():  # its trainer is alive, only paused (Ctrl-Z)
        page = app("pages/train.py")
        assert not page.exception
        note = "stalled: no progress for 5 min (paused or hung?)"
        assert f"Run #{run_id} is {note}." in texts(page.warning)
        assert f"▶ #{run_id} underfit — {note}" in texts(page.text)  # the queue line
        assert page.get("progress") and f"stop_{run_id}" in [button.key for button in page.button]
        app_home.update(run_id, progress={"epoch": 2, "epochs": 200, "step": 4, "steps": 10, "elapsed": 41.0,
                                          "updated_at": time.time(), "writes": 81})  # resumed with `fg`
        page.run()
        assert "stalled" not in texts(page.warning) + texts(page.text)


def test_a_damaged_model_gets_its_message_and_the_other_model_still_reads(app_runs):
    from kmnist_core.inference import ModelLoadError, load_model

    damaged, healthy = sorted(run.id for run in app_runs.list_runs())
    path = app_runs.model_path(damaged)
    original = path.read_bytes()
    page = app("pages/draw.py")
    page.multiselect[0].set_value([damaged, healthy]).run()
    upload(page, "scan.png", real_scan())
    assert len([m for m in page.markdown if m.value.startswith("Reads")]) == 2  # both loaded and cached

    path.write_bytes(original[: len(original) // 2])  # truncated in place
    with pytest.raises(ModelLoadError) as expected:
        load_model(path)
    page.run()
    assert not page.exception
    assert [error.value for error in page.error] == ["This model cannot be used:"]
    assert str(expected.value) in texts(page.text)
    assert len([m for m in page.markdown if m.value.startswith("Reads")]) == 1
    assert len(page.get("plotly_chart")) == 1

    path.write_bytes(original)  # repaired: the failure was not cached
    page.run()
    assert not page.error and len([m for m in page.markdown if m.value.startswith("Reads")]) == 2


def test_a_truncated_upload_gets_a_warning_not_a_traceback(app_runs):
    page = app("pages/draw.py")
    scan = real_scan()
    upload(page, "half.png", scan[: len(scan) // 2])
    assert page.warning[0].value == "Cannot read this file: the image is damaged or truncated (image file is truncated)"
    assert "File: half.png" in texts(page.text)
    assert "Predictions" not in texts(page.subheader)


@pytest.mark.parametrize("page_path", ["pages/train.py", "pages/compare.py", "pages/sweep.py", "pages/draw.py"])
def test_a_garbage_database_gives_one_message_and_what_to_do_on_every_page(tmp_path, monkeypatch, page_path):
    home = tmp_path / "home"
    use_home(monkeypatch, home, idle_exit=1)
    home.mkdir()
    (home / "runs.sqlite").write_bytes(b"this is not a database, " * 200)
    page = app(page_path)
    assert not page.exception
    assert page.error[0].value.startswith(f"The run store cannot be used: {home / 'runs.sqlite'} is not a usable "
                                          "run database (file is not a database)")
    assert f"move the folder `{home}` aside" in page.info[0].value
    assert not page.button and not page.get("plotly_chart")


def test_home_still_shows_the_dataset_with_a_garbage_database(tmp_path, monkeypatch):
    """Home needs no run store: the loader's per-class counts still show."""
    use_home(monkeypatch, tmp_path, idle_exit=1)
    (tmp_path / "runs.sqlite").write_bytes(b"\x00garbage" * 500)
    page = app()
    assert not page.exception and not page.error
    assert list(page.dataframe[0].value["train"]) == load_kmnist().class_counts()["train"]


def replace_with_garbage(database):
    for leftover in (database.with_name("runs.sqlite-wal"), database.with_name("runs.sqlite-shm")):
        leftover.unlink(missing_ok=True)
    database.write_bytes(b"garbage" * 1000)


def truncate(database):
    """Cut in half: the header and schema still read, so opening succeeds; later pages are gone."""
    with sqlite3.connect(database) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    database.write_bytes(database.read_bytes()[: database.stat().st_size // 2])


@pytest.mark.parametrize("damage", [replace_with_garbage, truncate])
def test_a_database_damaged_while_the_app_runs_is_reported_and_a_fresh_one_works(app_runs, damage):
    page = app("pages/train.py")
    assert page.metric  # a finished run's scores: the store is open and cached
    damage(app_runs.db_path)
    page.run()
    assert not page.exception and "is not a usable run database" in page.error[0].value
    shutil.rmtree(app_runs.home)  # what the message says to do: move the folder aside
    page.run()
    assert not page.exception and not page.error and "No runs yet" in texts(page.info)


@pytest.mark.parametrize("damage", ["missing", "garbage", "truncated"])
def test_lost_predictions_keep_the_run_in_the_table_and_say_so_in_the_gallery(app_runs, damage):
    damaged, healthy = sorted(run.id for run in app_runs.list_runs())
    path = app_runs.run_dir(damaged) / "test_proba.npy"
    if damage == "missing":
        path.unlink()
    elif damage == "garbage":
        path.write_bytes(b"not numpy at all")
    else:
        path.write_bytes(path.read_bytes()[:200])
    page = app("pages/compare.py")
    assert not page.exception
    assert list(page.dataframe[0].value["run"]) == [run_label(app_runs.get(i)) for i in (damaged, healthy)]
    assert "This run's stored test predictions (test_proba.npy) are missing or damaged" in texts(page.caption)
    captions = [caption for block in page.image for caption in block.captions if "→" in caption]
    assert len(captions) == 8  # the healthy run's gallery is intact


def test_a_bad_kmnist_workers_is_one_message_not_a_traceback_on_every_poll(tmp_path, monkeypatch):
    """With a run waiting, every poll would start workers and read KMNIST_WORKERS."""
    use_home(monkeypatch, tmp_path / "home", idle_exit=1)
    RunStore(tmp_path / "home").create_run(make_config("overfit", epochs=1))
    monkeypatch.setenv("KMNIST_WORKERS", "lots")
    page = app("pages/train.py")
    assert not page.exception
    cores = usable_cores()
    assert page.error[0].value == (f"The app cannot start trainings: KMNIST_WORKERS must be an integer in [1, {cores}] "
                                   "(at most one training per usable core), got 'lots'. Fix it and restart the app.")


@pytest.mark.parametrize("workers, heading", [("1", "one training at a time"), ("2", "2 trainings at a time")])
def test_the_queue_says_how_many_trainings_run_at_once(tmp_path, monkeypatch, workers, heading):
    use_home(monkeypatch, tmp_path / "home", idle_exit=1)
    no_worker(monkeypatch)
    monkeypatch.setattr("kmnist_core.hardware.usable_cores", lambda: 2)
    monkeypatch.setenv("KMNIST_WORKERS", workers)
    RunStore(tmp_path / "home").create_run(make_config("overfit", epochs=1))
    page = app("pages/train.py")
    assert f"**Queue** — {heading}, oldest first" in texts(page.markdown)


@pytest.mark.parametrize("workers, where", [("1", "1 run ahead of it"), ("2", "next in line")])
def test_a_queued_run_counts_only_the_runs_it_really_waits_for(tmp_path, monkeypatch, workers, where):
    """With two slots and one training, the next queued run starts at once: nothing is
    ahead of it (it used to count the training run as ahead whatever the slots)."""
    use_home(monkeypatch, tmp_path / "home", idle_exit=1)
    no_worker(monkeypatch)
    monkeypatch.setattr("kmnist_core.hardware.usable_cores", lambda: 2)
    monkeypatch.setenv("KMNIST_WORKERS", workers)
    store = RunStore(tmp_path / "home")
    training = store.create_run(make_config("overfit", epochs=1))
    waiting = store.create_run(make_config("dropout", epochs=1))
    with store.training_lock(slot=0):
        assert store.claim_next(slot=0).id == training
        page = app("pages/train.py")
        assert not page.exception and page.selectbox(key="train_view").value == waiting
        assert f"Queued, {where}" in texts(page.info)
