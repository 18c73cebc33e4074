"""Sweeps: their validation, grouping in the store (and the schema-3 migration), the
per-value summary with mean ± std over seeds, the figure, and the CLI end to end."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys

import pytest

from kmnist_core import store as store_module
from kmnist_core.checks import ParameterError
from kmnist_core.cli import main
from kmnist_core.config import check_against_data, make_config
from kmnist_core.records import EpochRecord
from kmnist_core.significance import seed_summary
from kmnist_core.status import Status
from kmnist_core.store import SCHEMA_VERSION, Run, RunStore
from kmnist_core.sweep import (
    MAX_RUNS,
    best_sentence,
    enqueue_sweep,
    loss_accuracy_sentence,
    parse_values,
    run_name,
    summarise,
    sweep_configs,
    title,
)

from conftest import PROJECT_ROOT, insert_old_run, wait_until


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "home")


# -- building and validating a sweep ---------------------------------------------------------
def test_runs_are_queued_seed_by_seed_and_named_from_what_they_change():
    configs = sweep_configs("overfit", "dropout", "0.4, 0, 0.2", seeds=2, epochs=10)
    assert [(c.dropout, c.seed) for c in configs] == [(0.0, 0), (0.2, 0), (0.4, 0), (0.0, 1), (0.2, 1), (0.4, 1)]
    assert {c.epochs for c in configs} == {10} and {c.hidden_units for c in configs} == {(512, 512)}
    assert run_name(configs[2], "dropout", 2) == "overfit · epochs 10 · dropout 0.4 · seed 0"
    assert run_name(configs[3], "dropout", 2) == "overfit · epochs 10 · dropout 0 · seed 1"  # the preset's 0 is named too
    single = sweep_configs("combined", "l2", "0, 1e-4", seeds=1)
    assert [run_name(c, "l2", 1) for c in single] == ["combined · l2 0", "combined · l2 0.0001"]
    later = sweep_configs("overfit", "epochs", "5, 10", seeds=2, seed=7)
    assert [c.seed for c in later] == [7, 7, 8, 8]


def test_hidden_units_values_are_whole_networks_separated_by_semicolons():
    assert parse_values("hidden_units", "64; 256, 256;1024") == [(64,), (256, 256), (1024,)]
    configs = sweep_configs("overfit", "hidden_units", "64; 256, 256", seeds=1)
    assert [c.hidden_units for c in configs] == [(64,), (256, 256)]
    assert run_name(configs[1], "hidden_units", 1) == "overfit · hidden units 256-256"
    with pytest.raises(ParameterError, match="values of hidden_units are separated by semicolons"):
        sweep_configs("overfit", "hidden_units", "64, 256, 1024")


def test_a_parameter_that_cannot_be_swept_is_named_with_the_ones_that_can():
    with pytest.raises(ParameterError) as caught:
        sweep_configs("overfit", "learning_rate", "0.1, 0.01")
    assert str(caught.value).startswith("param must be one of 'dropout', 'input_dropout', 'l1', 'l2', 'train_size', "
                                        "'hidden_units', 'epochs'; got 'learning_rate'")


@pytest.mark.parametrize("param, values, message", [
    ("dropout", "0, 1.5", "dropout must be in [0, 1), got 1.5"),
    ("l2", "0, -1, 0.2", "l2 must be in [0, 0.1], got -1, 0.2"),  # the parameter's own range, every bad value once
    ("epochs", "5, 2.5", "epochs must be an integer, got 2.5"),
    ("hidden_units", "64; 0", "hidden_units must be in [1, 4096], got 0"),
    ("train_size", "0, 1000", "train_size must be a number of images in a sweep"),
    ("dropout", "0, x", "values must be numbers separated by commas, e.g. 0, 0.2, 0.4, 0.6; got 'x'"),
    ("dropout", "", "values must be numbers separated by commas, e.g. 0, 0.2, 0.4, 0.6; got nothing"),
    ("dropout", "0.2, 0.20", "values must differ from each other; repeated: 0.2"),
    ("dropout", "0.2", "values must hold at least 2 values to draw a curve, got 1"),
])
def test_bad_values_are_refused_with_the_parameters_range(param, values, message):
    with pytest.raises(ParameterError) as caught:
        sweep_configs("overfit", param, values)
    assert message in str(caught.value)


def test_every_problem_is_named_at_once():
    with pytest.raises(ParameterError) as caught:
        sweep_configs("overfit", "dropout", "0, 1.5, x", seeds=0, epochs=0, kfold=3)
    names = [name for name, _ in caught.value.problems]
    assert names == ["values", "dropout", "seeds", "kfold", "epochs"], caught.value.problems
    with pytest.raises(ParameterError, match="dropout is the swept parameter"):
        sweep_configs("overfit", "dropout", "0, 0.5", dropout=0.3)


def test_a_sweep_is_capped_at_forty_runs():
    assert len(sweep_configs("overfit", "epochs", ",".join(str(e) for e in range(1, 11)), seeds=4)) == MAX_RUNS == 40
    with pytest.raises(ParameterError, match="a sweep queues at most 40 runs: 11 values × 4 seeds make 44"):
        sweep_configs("overfit", "epochs", ",".join(str(e) for e in range(1, 12)), seeds=4)
    with pytest.raises(ParameterError, match=r"seeds must be in \[1, 10\], got 11"):
        sweep_configs("overfit", "dropout", "0, 0.5", seeds=11)


def test_training_sizes_are_checked_against_the_data():
    configs = sweep_configs("overfit", "train_size", "1000, 5000")
    check_against_data(configs, 6000)  # 5400 left after the 10% validation split
    with pytest.raises(ParameterError, match=r"train_size must be at most 1800 for this data .* got 5000"):
        check_against_data(configs, 2000)


# -- the store -------------------------------------------------------------------------------
def test_sweeps_group_their_runs_in_the_store(store):
    plain = store.create_run(make_config("underfit"))
    first = enqueue_sweep(store, "overfit", "dropout", "0, 0.5", seeds=2, epochs=3)
    second = enqueue_sweep(store, "combined", "hidden_units", "64; 128, 128", seeds=1, data_dir="/data")
    assert [s.id for s in store.list_sweeps()] == [second, first]
    sweep = store.get_sweep(first)
    assert (sweep.param, sweep.values, sweep.seeds, sweep.variant, sweep.overrides) == \
        ("dropout", [0.0, 0.5], 2, "overfit", {"epochs": 3})
    assert store.get_sweep(second).values == [[64], [128, 128]]
    assert title(sweep) == "overfit, epochs 3: dropout 0, 0.5 × 2 seeds"
    runs = store.sweep_runs(first)
    assert [(r.config["dropout"], r.config["seed"], r.status) for r in runs] == \
        [(0.0, 0, "queued"), (0.5, 0, "queued"), (0.0, 1, "queued"), (0.5, 1, "queued")]
    assert runs[1].name == "overfit · epochs 3 · dropout 0.5 · seed 0"
    assert {r.id: r.sweep_id for r in store.list_runs()} == {
        plain: None, **{r.id: first for r in runs}, **{r.id: second for r in store.sweep_runs(second)}}
    assert store.get(runs[0].id).sweep_id == first
    assert [store.claim_next().id for _ in range(3)] == [plain, runs[0].id, runs[1].id]  # queued like any others
    store.delete(runs[3].id)  # a deleted run leaves its sweep
    assert [r.id for r in store.sweep_runs(first)] == [r.id for r in runs[:3]]


def test_a_sweep_is_stored_whole_or_not_at_all(store):
    config = make_config("overfit")
    with pytest.raises(ParameterError, match="must not be only digits"):
        store.create_sweep("dropout", [0.0], 1, "overfit", [(config, "fine"), (config, "12")])
    assert store.list_sweeps() == [] and store.list_runs() == []


def _columns(path) -> dict:
    with sqlite3.connect(path) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                               "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        return {table: sorted(row[1] for row in db.execute(f"PRAGMA table_info({table})")) for table in tables}


def test_a_version_2_database_is_upgraded_with_its_runs_intact(tmp_path, monkeypatch):
    """Written by this code as it was at schema 2 (the same base schema, no later steps),
    then opened by the current store."""
    home = tmp_path / "home"
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 2)
    old = RunStore(home)
    done = insert_old_run(old.db_path, make_config("overfit", epochs=2), "finished one")
    waiting = insert_old_run(old.db_path, make_config("dropout"), "dropout")
    cancelled = insert_old_run(old.db_path, make_config("l1l2"), "l1l2")
    old.request_stop(cancelled)
    for epoch in (1, 2):
        old.append_epoch(done, EpochRecord(epoch=epoch, train_loss=1.0 / epoch, val_loss=1.5 / epoch, elapsed=epoch))
    old.update(done, params=123, metrics={"test": {"accuracy": 0.9}})
    with sqlite3.connect(old.db_path) as db:  # running -> completed, as the trainer did
        db.execute("UPDATE runs SET status = 'completed', started_at = 1, finished_at = 2 WHERE id = ?", (done,))
    assert "sweep_id" not in _columns(old.db_path)["runs"] and "sweeps" not in _columns(old.db_path)
    monkeypatch.undo()

    store = RunStore(home)
    with sqlite3.connect(store.db_path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
    runs = {run.id: run for run in store.list_runs()}
    assert {i: (r.name, r.status, r.sweep_id) for i, r in runs.items()} == {
        done: ("finished one", Status.COMPLETED, None), waiting: ("dropout", Status.QUEUED, None),
        cancelled: ("l1l2", Status.CANCELLED, None)}
    finished = store.get(done)
    assert [(r.epoch, r.train_loss, r.val_loss) for r in finished.history] == [(1, 1.0, 1.5), (2, 0.5, 0.75)]
    assert finished.params == 123 and finished.metrics == {"test": {"accuracy": 0.9}}
    sweep_id = enqueue_sweep(store, "overfit", "dropout", "0, 0.5")  # the new table works on the old file
    assert store.claim_next().id == waiting  # and the old queue goes first
    assert [r.sweep_id for r in store.sweep_runs(sweep_id)] == [sweep_id, sweep_id]
    assert RunStore(home).get(done).history == finished.history  # opening again changes nothing


def test_new_and_upgraded_databases_have_the_same_tables_and_columns(tmp_path):
    fresh = RunStore(tmp_path / "fresh")
    first_release = tmp_path / "first"
    first_release.mkdir()
    shutil.copy(PROJECT_ROOT / "tests" / "data" / "runs-5e61095.sqlite", first_release / "runs.sqlite")
    upgraded = RunStore(first_release)  # 0 -> 2 -> 3
    assert _columns(upgraded.db_path) == _columns(fresh.db_path)
    assert "sweep_id" in _columns(fresh.db_path)["runs"] and "values_json" in _columns(fresh.db_path)["sweeps"]
    assert {run.sweep_id for run in upgraded.list_runs()} == {None}


# -- the summary -----------------------------------------------------------------------------
def _run(run_id, dropout, train, heldout, status=Status.COMPLETED, split="val"):
    """A finished run as the store returns it: (accuracy, log loss) on train and held-out."""
    metrics = None if train is None else {
        "train": {"accuracy": train[0], "log_loss": train[1], "n": 100},
        split: {"accuracy": heldout[0], "log_loss": heldout[1]},
        **({"test": {"accuracy": 0.5, "log_loss": 9.0}} if split == "val" else {}),
    }
    return Run(id=run_id, name=f"run {run_id}", variant="overfit", status=status, created_at=0.0,
               config={"dropout": dropout, "hidden_units": [512, 512]}, metrics=metrics)


def test_summarise_gives_mean_and_std_over_seeds_and_marks_the_lowest_held_out_loss():
    runs = [
        _run(1, 0.0, (1.00, 0.01), (0.88, 0.60)), _run(2, 0.0, (0.98, 0.03), (0.86, 0.70)),
        # the highest held-out accuracy, but not the lowest held-out loss: not the best
        _run(3, 0.5, (0.95, 0.20), (0.91, 0.40)), _run(4, 0.5, (0.93, 0.22), (0.90, 0.36)),
        _run(5, 0.2, (0.99, 0.05), (0.93, 0.45)), _run(6, 0.2, None, None, status=Status.QUEUED),
        _run(7, 0.5, (0.50, 2.0), (0.40, 0.01), status=Status.STOPPED),  # partly trained: left out
        _run(8, 0.5, None, None, status=Status.FAILED),
    ]
    rows = summarise(runs, "dropout", values=[0.0, 0.2, 0.5, 0.8])
    assert [row["label"] for row in rows] == ["0", "0.2", "0.5", "0.8"]
    assert [(row["runs"], row["finished"], row["active"]) for row in rows] == [(2, 2, 0), (2, 1, 1), (4, 2, 0), (0, 0, 0)]
    zero = rows[0]
    assert zero["heldout"] == "val"
    assert zero["train_accuracy"] == seed_summary([1.00, 0.98])
    assert zero["heldout_loss"]["mean"] == pytest.approx(0.65) and zero["heldout_loss"]["std"] == pytest.approx(0.0707107)
    assert rows[1]["heldout_accuracy"] == {"mean": 0.93, "std": None, "n": 1}  # one seed: no spread
    assert rows[2]["heldout_loss"]["mean"] == pytest.approx(0.38) and rows[2]["heldout_accuracy"]["n"] == 2
    assert rows[3]["train_loss"] is None and rows[3]["heldout_loss"] is None
    assert [row["best"] for row in rows] == [False, False, True, False]
    assert [row["label"] for row in summarise(runs, "dropout")] == ["0", "0.2", "0.5"]  # ascending without values


def test_the_lowest_loss_is_not_crowned_alone_when_seeds_cannot_tell_it_from_the_next():
    """Seen in Chromium: a ★ and "Lowest … at Dropout 0: 0.560" against 0.564, one seed each."""
    one_seed = summarise([_run(1, 0.0, (1.0, 0.1), (0.85, 0.560)), _run(2, 0.5, (0.9, 0.2), (0.86, 0.564))], "dropout")
    assert best_sentence(one_seed, "dropout") == (
        "Lowest mean validation loss at Dropout (hidden layers) 0: 0.560 (one seed). One seed per value does not "
        "measure the luck of a seed, which can move this loss more than the gap to the next value (Dropout "
        "(hidden layers) 0.5: 0.564): sweep 2–3 seeds per value before keeping it.")
    close = [_run(1, 0.0, (1.0, 0.1), (0.85, 0.50)), _run(2, 0.0, (1.0, 0.1), (0.85, 0.60)),
             _run(3, 0.5, (0.9, 0.2), (0.86, 0.52)), _run(4, 0.5, (0.9, 0.2), (0.86, 0.62))]
    assert best_sentence(summarise(close, "dropout"), "dropout") == (
        "Lowest mean validation loss at Dropout (hidden layers) 0: 0.550 ± 0.071 over 2 seeds, but Dropout "
        "(hidden layers) 0.5 (0.570 ± 0.071) is within the seeds' spread of it: these seeds cannot tell the two apart.")
    apart = [*close[:2], _run(3, 0.5, (0.9, 0.2), (0.86, 0.80)), _run(4, 0.5, (0.9, 0.2), (0.86, 0.82))]
    assert best_sentence(summarise(apart, "dropout"), "dropout") == (
        "Lowest mean validation loss at Dropout (hidden layers) 0: 0.550 ± 0.071 over 2 seeds.")


def test_a_star_on_the_least_accurate_value_is_explained():
    """Seen in Chromium: a dropout sweep at 10 epochs starred 0.6 ("lowest validation loss")
    where validation accuracy was lowest (87.3% vs 88.9% at 0), and nothing said why."""
    runs = [_run(1, 0.0, (1.0, 0.02), (0.889, 0.452)), _run(2, 0.3, (0.99, 0.05), (0.880, 0.420)),
            _run(3, 0.6, (0.95, 0.15), (0.873, 0.401))]
    rows = summarise(runs, "dropout")
    assert [row["best"] for row in rows] == [False, False, True]
    sentence = loss_accuracy_sentence(rows, "dropout")
    assert sentence.startswith("Dropout (hidden layers) 0.6 has the lowest validation loss (0.401 vs 0.452) but "
                               "Dropout (hidden layers) 0 is the more accurate (88.9% vs 87.3%).")
    assert "over-confident" in sentence
    agreeing = summarise([*runs[:2], _run(3, 0.6, (0.95, 0.15), (0.895, 0.401))], "dropout")
    assert loss_accuracy_sentence(agreeing, "dropout") is None


def test_runs_trained_on_every_image_are_judged_on_test():
    runs = [_run(1, 0.0, (1.0, 0.01), (0.8, 0.9), split="test"), _run(2, 0.3, (0.9, 0.2), (0.85, 0.5), split="test")]
    rows = summarise(runs, "dropout")
    assert [row["heldout"] for row in rows] == ["test", "test"] and rows[1]["best"]
    assert summarise([], "dropout", values=[0.0, 0.5])[0]["best"] is False  # nothing finished, nothing best


def test_the_figure_shows_bands_the_best_value_and_a_log_axis_for_penalties():
    from explorer.charts import sweep_figure

    penalties = (0.0, 0.0, 1e-4, 1e-4, 1e-2, 1e-2)  # two seeds each, spanning two decades and a 0
    runs = [_run(i, d, (0.99 - i / 1000, 0.05 + d + i / 200), (0.9 - i / 500, 0.4 + d + i / 100)) for i, d in enumerate(penalties)]
    for run in runs:
        run.config["l2"] = run.config.pop("dropout")
    figure = sweep_figure(summarise(runs, "l2"), "l2")
    assert figure.layout.xaxis.type == "log" and list(figure.layout.xaxis.ticktext) == ["0", "0.0001", "0.01"]
    assert figure.layout.xaxis.tickvals[0] == pytest.approx(1e-5)  # 0 drawn a decade left of 1e-4
    bands = [trace for trace in figure.data if trace.fill == "toself"]
    assert len(bands) == 4  # train and validation, loss and accuracy
    [star_loss, star_accuracy] = [trace for trace in figure.data if trace.marker.symbol == "star"]
    assert star_loss.x[0] == pytest.approx(1e-5) and star_loss.y[0] == pytest.approx(0.405)
    assert star_accuracy.x[0] == star_loss.x[0] and star_accuracy.y[0] == pytest.approx(0.899)  # the same value, both panels
    networks = [_run(1, 0, (0.9, 0.3), (0.8, 0.5)), _run(2, 0, (0.9, 0.3), (0.8, 0.6))]
    networks[0].config["hidden_units"], networks[1].config["hidden_units"] = [64], [256, 256]
    figure = sweep_figure(summarise(networks, "hidden_units", [[64], [256, 256]]), "hidden_units")
    assert figure.layout.xaxis.type == "category" and list(figure.data[0].x) == ["64", "256, 256"]
    sizes = [_run(1, 0, (1.0, 0.1), (0.7, 1.2)), _run(2, 0, (1.0, 0.05), (0.8, 0.8))]
    sizes[0].config["train_size"], sizes[1].config["train_size"] = 500, 4000
    figure = sweep_figure(summarise(sizes, "train_size"), "train_size")
    assert figure.layout.title.text.startswith("Learning curve") and figure.layout.xaxis.type is None  # 8x: linear
    assert figure.layout.xaxis.title.text == "Training images" and list(figure.layout.xaxis.tickvals) == [500, 4000]


# -- the CLI ---------------------------------------------------------------------------------
TINY = ["--hidden-units", "32", "--epochs", "2", "--learning-rate", "0.003"]


def test_cli_sweep_trains_every_run_and_prints_the_curve(home, synthetic_dir, capsys):
    assert main(["--data-dir", str(synthetic_dir), "sweep", "--variant", "overfit", "--param", "dropout",
                 "--values", "0,0.3", "--seeds", "2", *TINY, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["sweep"] == 1 and result["param"] == "dropout" and result["values"] == [0.0, 0.3]
    assert [(r["config"]["dropout"], r["config"]["seed"], r["status"]) for r in result["runs"]] == \
        [(0.0, 0, "completed"), (0.3, 0, "completed"), (0.0, 1, "completed"), (0.3, 1, "completed")]
    assert {r["sweep_id"] for r in result["runs"]} == {1}
    # 81 characters in full: the shared settings give way, never the value or the seed
    assert result["runs"][3]["name"] == "overfit · hidden units 32 · epochs 2 · … · dropout 0.3 · seed 1"
    rows = result["rows"]
    assert [(row["label"], row["finished"]) for row in rows] == [("0", 2), ("0.3", 2)]
    assert all(row["heldout_accuracy"]["n"] == 2 and row["heldout_accuracy"]["std"] is not None for row in rows)
    assert sum(row["best"] for row in rows) == 1
    store = RunStore(home)
    assert store.get(result["runs"][0]["id"]).history[-1].epoch == 2

    assert main(["--data-dir", str(synthetic_dir), "train", "--variant", "underfit", "--epochs", "1"]) == 0
    capsys.readouterr()
    assert main(["runs"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split()[:2] == ["id", "sweep"]
    assert [line.split()[1] for line in listing[1:5]] == ["underfit", "1", "1", "1"]  # newest first; no sweep: blank
    assert main(["sweeps", "1"]) == 0
    table = capsys.readouterr().out
    assert "sweep 1: overfit, hidden units 32, epochs 2, learning rate 0.003: dropout 0, 0.3 × 2 seeds" in table
    assert "validation acc" in table and " 2/2 " in table and "Lowest mean validation loss at Dropout" in table
    assert main(["sweeps"]) == 0
    assert " 4/4 " in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--param", "dropout", "--values", "0,1.5", "--seeds", "2"], "dropout must be in [0, 1), got 1.5"),
    (["--param", "nope", "--values", "1,2"], "param must be one of"),
    (["--param", "dropout", "--values", "0,0.5", "--dropout", "0.1"], "dropout is the swept parameter"),
    (["--param", "train_size", "--values", "100,5000"], "train_size must be at most 180 for this data"),
    (["--param", "epochs", "--values", "1,2,3,4,5", "--seeds", "9"], "a sweep queues at most 40 runs"),
])
def test_cli_sweep_validates_everything_before_queueing_anything(args, message, home, synthetic_dir, capsys):
    assert main(["--data-dir", str(synthetic_dir), "sweep", *args]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1
    assert not (home / "runs.sqlite").exists() or (RunStore(home).list_runs() == [] and RunStore(home).list_sweeps() == [])


@pytest.mark.process  # starts real processes
def test_ctrl_c_stops_the_run_in_progress_and_cancels_the_rest(tmp_path, synthetic_dir):
    home = tmp_path / "home"
    sweep = subprocess.Popen(
        [sys.executable, "-m", "kmnist_core", "--home", str(home), "--data-dir", str(synthetic_dir), "sweep",
         "--param", "dropout", "--values", "0,0.3", "--seeds", "2", "--hidden-units", "32", "--epochs", "1000"],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "KMNIST_WORKER_IDLE_EXIT": "0.5"},
    )
    try:
        def training_or_ended():
            return sweep.poll() is not None or (
                (home / "runs.sqlite").exists() and any(run.history for run in _with_history(home)))

        assert wait_until(training_or_ended, timeout=180) and sweep.poll() is None, \
            "the sweep ended or never started training"
        sweep.send_signal(signal.SIGINT)
        out, _ = sweep.communicate(timeout=120)
    finally:
        sweep.kill()
        if (home / "runs.sqlite").exists():  # on failure, leave no worker training the rest
            for run in RunStore(home).list_runs(statuses=(Status.QUEUED, Status.RUNNING)):
                RunStore(home).request_stop(run.id)
    assert sweep.returncode == 1
    assert [run.status for run in RunStore(home).sweep_runs(1)] == ["stopped", "cancelled", "cancelled", "cancelled"]
    assert "No run has finished yet." in out


def _with_history(home):
    store = RunStore(home)
    return [store.get(run.id) for run in store.list_runs(statuses=(Status.RUNNING,))]
