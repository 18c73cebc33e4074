import json
import os
import sqlite3
import subprocess
import sys
import time

import pytest
from PIL import Image

from kmnist_core import cli
from kmnist_core.cli import main
from kmnist_core.data import load_local
from kmnist_core.store import RunStore
from kmnist_core.worker import main as worker_main

from conftest import PROJECT_ROOT

TINY = ["--variant", "overfit", "--hidden-units", "32", "--epochs", "8", "--learning-rate", "0.003"]


def _cli(*args, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "kmnist_core", *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def trained(home, synthetic_dir, capsys):
    assert main(["--data-dir", str(synthetic_dir), "train", *TINY, "--name", "tiny", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_train_json_reports_the_finished_run(trained, home):
    assert trained["status"] == "completed" and trained["name"] == "tiny"
    assert trained["test"]["accuracy"] > 0.9 and trained["val"]["accuracy"] > 0.9
    assert trained["config"]["hidden_units"] == [32]
    assert os.path.isfile(trained["model_path"])
    assert RunStore(home).get(trained["id"]).history[-1].epoch == 8


def test_evaluate_on_tfds_offline_says_what_to_do(trained, home, synthetic_dir, capsys, tmp_path, monkeypatch):
    from kmnist_core import data

    monkeypatch.setenv("KMNIST_TFDS_DIR", str(tmp_path / "empty-tfds"))
    monkeypatch.setattr(data, "_host_reachable", lambda *args: False)
    assert main(["evaluate", "tiny", "--tfds"]) != 0
    error = capsys.readouterr().err.strip()
    assert "KMNIST is not available" in error and "KMNIST_DATA_DIR" in error and len(error.splitlines()) == 1
    assert main(["--data-dir", str(synthetic_dir), "evaluate", "tiny", "--tfds"]) != 0
    assert "either --data-dir or --tfds" in capsys.readouterr().err


def test_runs_evaluate_predict_rename_delete(trained, home, synthetic_dir, capsys, tmp_path):
    listing = _cli("runs", env={**os.environ, "KMNIST_HOME": str(home)})
    assert listing.returncode == 0 and "tiny" in listing.stdout and "completed" in listing.stdout

    assert main(["--data-dir", str(synthetic_dir), "evaluate", "tiny", "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["accuracy"] == pytest.approx(trained["test"]["accuracy"])

    sample = load_local(synthetic_dir).x_test[0]  # white on black, 28x28: upscale and invert it
    picture = tmp_path / "drawing.png"
    Image.fromarray(255 - sample).resize((200, 200)).save(picture)
    assert main(["predict", str(trained["id"]), str(picture), "--json"]) == 0
    top3 = json.loads(capsys.readouterr().out)["top3"]
    assert len(top3) == 3 and top3[0]["probability"] >= top3[1]["probability"]

    assert main(["rename", "tiny", "renamed"]) == 0
    assert main(["delete", "renamed"]) == 0
    assert RunStore(home).list_runs() == []


@pytest.mark.parametrize("args, message", [
    (["train", "--dropout", "1.5"], "dropout must be in [0, 1), got 1.5"),
    (["train", "--l2", "-1"], "l2 must be in [0, 0.1], got -1"),
    (["train", "--epochs", "0"], "epochs must be in [1, 1000], got 0"),
    (["train", "--variant", "nope"], "variant must be one of"),
    (["train", "--epochs", "many"], "argument --epochs: invalid int value"),
    (["train", "--kfold", "1"], "kfold must be 0 (off) or [2, 20], got 1"),
    (["train", "--hidden-units", "512,x"], "hidden_units must be layer sizes separated by commas"),
    (["train", "--dropout", "1.5", "--l2", "-1"], "dropout must be in [0, 1), got 1.5; l2 must be in [0, 0.1], got -1"),
    (["evaluate", "42"], "no run with id 42"),
    (["predict", "1", "missing.png"], "no run with id 1"),
    (["rename", "1", "x"], "no run with id 1"),
])
def test_bad_input_exits_nonzero_with_one_line_and_stores_nothing(args, message, home, synthetic_dir, capsys):
    assert main(["--data-dir", str(synthetic_dir), *args]) != 0
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1
    assert not (home / "runs.sqlite").exists() or RunStore(home).list_runs() == []


def test_missing_data_fails_fast_in_a_new_process_and_stores_nothing(tmp_path):
    env = dict(os.environ, KMNIST_DATA_DIR="")  # empty: no local folder, not even kmnist-mini beside the project
    env.update(KMNIST_HOME=str(tmp_path / "home"), KMNIST_TFDS_DIR=str(tmp_path / "tfds"))
    start = time.monotonic()
    result = _cli("train", "--variant", "underfit", env=env)
    assert time.monotonic() - start < 10
    assert result.returncode != 0
    assert "KMNIST_DATA_DIR" in result.stderr and "go online once" in result.stderr
    assert not (tmp_path / "home" / "runs.sqlite").exists()


def test_data_command_counts_per_class(synthetic_dir, capsys):
    assert main(["--data-dir", str(synthetic_dir), "data", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["counts"]["train"] == [20] * 10 and "npz" in report["source"]


def test_every_command_has_help():
    for command in ("train", "evaluate", "runs", "predict", "data", "stop", "delete", "rename"):
        assert main([command, "--help"]) == 0


def test_the_background_worker_is_not_a_cli_command(capsys):
    """The app and the CLI start ``python -m kmnist_core.worker``; the user-facing CLI has
    no ``worker`` command to keep in step with it."""
    assert main(["worker"]) == 2 and "invalid choice: 'worker'" in capsys.readouterr().err


def test_kfold_run_reports_mean_and_std(home, synthetic_dir, capsys):
    assert main(["--data-dir", str(synthetic_dir), "train", *TINY, "--kfold", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["cv"]) == {"accuracy", "macro_f1", "kappa"}
    assert 0.5 < result["cv"]["accuracy"]["mean"] <= 1 and result["cv"]["accuracy"]["std"] >= 0
    run = RunStore(home).get(result["id"])
    assert len(run.metrics["folds"]) == 3 and len(run.history) == 3 * 8


def test_export_writes_everything_a_run_needs_to_travel(trained, home, tmp_path, capsys):
    target = tmp_path / "out"
    assert main(["export", "tiny", "--to", str(target)]) == 0
    names = sorted(p.name for p in target.iterdir())
    assert names == ["history.csv", "history.json", "metrics.json", "model.keras", "tensorboard", "train_run.py"]
    history = RunStore(home).get(trained["id"]).history
    rows = (target / "history.csv").read_text().splitlines()
    assert len(rows) == 1 + len(history) and rows[0].startswith("epoch,")
    assert "kmnist_core" not in (target / "train_run.py").read_text()
    compile((target / "train_run.py").read_text(), "train_run.py", "exec")
    losses = [value for _, value in _tensorboard_scalars(target / "tensorboard" / "validation", "epoch_loss")]
    assert losses == pytest.approx([record.val_loss for record in history], rel=1e-6)


def test_every_finished_run_writes_tensorboard_events_in_its_folder(trained, home):
    store = RunStore(home)
    scalars = _tensorboard_scalars(store.run_dir(trained["id"]) / "tensorboard" / "train", "epoch_loss")
    history = store.get(trained["id"]).history
    assert [step for step, _ in scalars] == [r.epoch for r in history]
    assert [value for _, value in scalars] == pytest.approx([r.train_loss for r in history], rel=1e-6)


def _tensorboard_scalars(folder, tag):
    """(step, value) pairs as TensorBoard's own reader sees them."""
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    events.Reload()
    return [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in events.Tensors(tag)]


def test_runs_csv_lists_settings_and_scores(trained, capsys):
    assert main(["runs", "--csv"]) == 0
    header, row = capsys.readouterr().out.strip().splitlines()
    assert "name" in header and "config_dropout" in header and "test_accuracy" in header
    assert ",tiny," in f",{row},"


@pytest.mark.process  # starts real processes
def test_the_console_keeps_tensorflow_start_up_noise_off_stderr(trained, home, tmp_path):
    Image.fromarray(255 - load_local_sample()).save(tmp_path / "drawing.png")
    env = dict(os.environ, KMNIST_HOME=str(home))
    env.pop("KMNIST_NATIVE_LOGS", None)
    result = _cli("predict", "tiny", str(tmp_path / "drawing.png"), env=env)
    assert result.returncode == 0 and len(result.stdout.strip().splitlines()) == 3
    assert "oneDNN" not in result.stderr and "cuda" not in result.stderr.lower(), result.stderr
    failed = _cli("predict", "999", str(tmp_path / "drawing.png"), env=env)
    assert failed.returncode != 0 and failed.stderr.strip() == "error: no run with id 999"


def load_local_sample():
    from conftest import synthetic_arrays

    return synthetic_arrays(1)[0][0]


def test_kmnist_workers_out_of_range_is_one_line_naming_it_and_its_range(home, synthetic_dir, capsys, monkeypatch):
    from kmnist_core.hardware import usable_cores

    cores = usable_cores()
    for value in ("0", str(cores + 1), "two", "1.5"):
        monkeypatch.setenv("KMNIST_WORKERS", value)
        for start in (lambda: main(["--data-dir", str(synthetic_dir), "train", *TINY]),
                      lambda: worker_main(["--home", str(home), "--idle-exit", "0"])):  # the background worker
            assert start() == 2
            error = capsys.readouterr().err.strip()
            assert error == f"error: KMNIST_WORKERS must be an integer in [1, {cores}] (at most one training " \
                            f"per usable core), got {value!r}", error
    assert RunStore(home).list_runs() == []  # refused before anything was queued
    monkeypatch.setenv("KMNIST_WORKERS", str(cores))
    from kmnist_core.hardware import training_threads

    assert training_threads() == 1  # every core its own training


def test_a_train_size_larger_than_the_data_is_refused_before_anything_is_stored(tmp_path, mini_dir):
    """kmnist-mini has 5,400 training images left after the validation split: 5401 is one
    line and a non-zero exit, and no run (not even a failed one) is stored."""
    env = dict(os.environ, KMNIST_HOME=str(tmp_path / "home"))
    result = _cli("--data-dir", str(mini_dir), "train", "--variant", "underfit", "--train-size", "5401", env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: train_size must be at most 5400 for this data (the training images left "
                                     "after the validation split), got 5401")
    assert not (tmp_path / "home" / "runs.sqlite").exists() or RunStore(tmp_path / "home").list_runs() == []


def test_runs_into_a_reader_that_leaves_exits_quietly(home):
    """`runs --json | head -1`: the reader takes one line and closes the pipe; the rest of
    a listing larger than a pipe holds then has nowhere to go. A Unix tool leaves quietly."""
    from kmnist_core.config import make_config

    store = RunStore(home)
    for _ in range(300):  # ~1.5 KB of JSON each: far more than the 64 KB a pipe buffers and the reader reads ahead
        store.create_run(make_config("underfit"))
    process = subprocess.Popen([sys.executable, "-m", "kmnist_core", "runs", "--json"], cwd=PROJECT_ROOT,
                               env={**os.environ, "KMNIST_HOME": str(home)}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    assert process.stdout.readline().strip() == b"["
    process.stdout.close()
    _, error = process.communicate(timeout=120)
    assert error.decode() == "" and process.returncode == 141  # 128 + SIGPIPE, as a shell reports `head`'s writer


def test_a_runs_time_is_the_same_in_the_cli_on_the_train_page_and_in_compare(home, capsys):
    """One run, one time: its training seconds and its seconds in all, said the same way
    by `runs`, the Train page's results and the Compare table (run #1 showed 9 s, 8.8 s and
    16 s, three figures without a word on what they counted)."""
    from explorer import compare, results
    from kmnist_core.config import make_config
    from kmnist_core.study import run_time_text, run_times

    store = RunStore(home)
    run_id = store.create_run(make_config("underfit", epochs=1), status="running")
    metrics = {"test": {"accuracy": 0.5, "macro_f1": 0.5, "kappa": 0.4, "log_loss": 1.5},
               "fit": {"verdict": "underfitting", "loss_gap": 0.1}, "train_seconds": 8.8, "epochs_done": 1}
    store.finish(run_id, "completed", metrics=metrics)
    with sqlite3.connect(home / "runs.sqlite") as db:  # queued to finished in 16.2 s: data, training, scoring
        db.execute("UPDATE runs SET started_at = finished_at - 16.2 WHERE id = ?", (run_id,))
    run = store.get(run_id)
    assert run_times(run) == (8.8, pytest.approx(16.2))
    text = run_time_text(run)
    assert text == "9 s training, 16 s in all"

    assert main(["runs"]) == 0
    header, line = capsys.readouterr().out.splitlines()[:2]
    assert "training" in header and "in all" in header and "9 s 16 s" in " ".join(line.split())
    assert compare.table_rows([run])[0]["training (s)"] == 9
    assert text in results.results_caption(run)


def test_every_error_a_user_can_fix_is_a_kmnist_error_and_keeps_its_old_base():
    """The CLI says a KmnistError in one line (and the store's errors, and the operating
    system's); anything else is a bug and keeps its traceback. Callers that catch
    ValueError or RuntimeError still catch these."""
    from kmnist_core.checks import ModelLoadError, ParameterError
    from kmnist_core.data import DataFileError, DataMismatchError, DataUnavailableError
    from kmnist_core.errors import KmnistError
    from kmnist_core.export import ExportError
    from kmnist_core.preprocess import ImageError

    for error, old_base in ((ParameterError, ValueError), (DataFileError, ValueError), (DataMismatchError, ValueError),
                            (ImageError, ValueError), (DataUnavailableError, RuntimeError),
                            (ModelLoadError, RuntimeError), (ExportError, FileExistsError)):
        assert issubclass(error, KmnistError) and issubclass(error, old_base), error
    assert ValueError not in cli.EXPECTED_ERRORS and KmnistError in cli.EXPECTED_ERRORS
