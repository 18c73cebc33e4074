"""A study's report: every number in it is the store's, the HTML opens offline (plotly.js
inside, no CDN), and each run's retrain command rebuilds exactly its settings."""

import json
import re
import shlex

import pytest

from kmnist_core import report
from kmnist_core.checks import ParameterError
from kmnist_core.cli import build_parser
from kmnist_core.config import PARAMETERS, make_config, parse_units
from kmnist_core.labs import LABS, enqueue_lab
from kmnist_core.records import EpochRecord
from kmnist_core.significance import seed_summary
from kmnist_core.status import Status
from kmnist_core.store import RunStore


def finish(store, run_id, accuracy, val_losses, seconds=12.34):
    """What the worker stores for a finished run (scores, curves, host), without training."""
    assert store.claim_next().id == run_id
    for epoch, loss in enumerate(val_losses, start=1):
        first_layer = {"near_zero": 0.0123 * run_id + 0.001 * epoch, "l2_norm": 28.123 / run_id, "mean_abs": 0.0321}
        store.append_epoch(run_id, EpochRecord(epoch=epoch, train_loss=loss / 3, train_accuracy=0.99,
                                               val_loss=loss, val_accuracy=accuracy - 0.01 * epoch,
                                               weights=[first_layer]))
    confusion = [[(7 * row + 3 * column + run_id) % 17 for column in range(10)] for row in range(10)]
    store.update(run_id, runtime={"precision": "float32", "threads": 2, "cpu": "Test CPU", "startup_seconds": run_id + 0.5})
    store.finish(run_id, Status.COMPLETED, metrics={
        "train": {"accuracy": 0.99, "log_loss": 0.0123, "n": 900},
        "val": {"accuracy": accuracy - 0.01, "log_loss": val_losses[-1]},
        "test": {"accuracy": accuracy, "macro_f1": accuracy - 0.004321, "kappa": accuracy - 0.05, "log_loss": 0.61234,
                 "confusion": confusion, "n": 2000},
        "fit": {"verdict": "overfitting", "reason": "Validation loss climbed.", "heldout": "val",
                "loss_gap": val_losses[-1] - 0.0123},
        "epochs_done": len(val_losses), "train_seconds": seconds})


@pytest.fixture
def lab_study(tmp_path):
    store = RunStore(tmp_path / "home")
    lab = LABS["dropout"]
    study_id, run_ids = enqueue_lab(store, lab, lab.choices[0], data_dir=str(tmp_path / "data"), data_source="test data")
    for run_id, accuracy, losses in zip(run_ids, (0.8512, 0.8777, 0.8433, 0.8801),
                                        ((0.6, 0.5, 0.71), (0.6, 0.52, 0.49), (0.62, 0.51, 0.75), (0.61, 0.5, 0.48))):
        finish(store, run_id, accuracy, losses)
    return store, study_id


def _table(markdown, first_header):
    """The rows (lists of cells) of the Markdown table whose header starts with ``first_header``."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header}"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip().replace("\\", "") for cell in line.strip("|").split(" | ")])
    return rows


def _close(text, value, decimals):
    return abs(float(text) - value) <= 0.5 * 10 ** -decimals + 1e-12


def test_every_number_in_the_report_is_the_stores(lab_study):
    store, study_id = lab_study
    markdown = report.markdown(report.build(store, study_id))
    runs = [store.get(run.id) for run in store.study_runs(study_id)]

    scores = _table(markdown, "run | status")
    assert [row[0] for row in scores] == [f"#{run.id} {run.name}" for run in runs]
    for row, run in zip(scores, runs):
        test, fit = run.metrics["test"], run.metrics["fit"]
        assert row[1] == "completed"
        assert _close(row[2].rstrip("%"), 100 * test["accuracy"], 2)
        for cell, value in zip(row[3:7], (test["macro_f1"], test["kappa"], test["log_loss"], fit["loss_gap"])):
            assert _close(cell, value, 4)
        assert int(row[7]) == run.metrics["epochs_done"] and _close(row[8], run.metrics["train_seconds"], 1)

    curves = _table(markdown, "run | epochs")
    for row, run in zip(curves, runs):
        losses = [record.val_loss for record in run.history]
        assert int(row[1]) == len(losses) and _close(row[2], min(losses), 4)
        assert int(row[3]) == losses.index(min(losses)) + 1 and _close(row[4], losses[-1], 4)

    weights = _table(markdown, "run | share with")
    for row, run in zip(weights, runs):
        first = run.history[-1].weights[0]
        assert _close(row[1].rstrip("%"), 100 * first["near_zero"], 2) and _close(row[2], first["l2_norm"], 2)
        assert _close(row[3], first["mean_abs"], 5)

    matrices = [table for table in re.split(r"\| true \\\\ read \|", markdown)[1:]]
    assert len(matrices) == len(runs)
    for text, run in zip(matrices, runs):
        rows = [line.strip("|").split(" | ")[1:] for line in text.splitlines()[2:12]]
        assert [[int(cell) for cell in row] for row in rows] == run.metrics["test"]["confusion"]

    # the lab's answer quotes the same runs: mean gaps over the two seeds of each setting
    gaps = {label: [run.metrics["fit"]["loss_gap"] for run in runs if run.name.startswith(label + " ·")]
            for label in ("no dropout", "dropout")}
    for label, values in gaps.items():
        assert f"{label} {sum(values) / 2:.3f} ± " in markdown
    for label in ("no dropout", "dropout"):  # each setting's spread over its seeds, from the same runs
        group = [run for run in runs if run.name.startswith(label + " ·")]
        accuracy = seed_summary([100 * run.metrics["test"]["accuracy"] for run in group])
        gap = seed_summary([run.metrics["fit"]["loss_gap"] for run in group])
        assert (f"{label} ×2 seeds (\\#{group[0].id}, \\#{group[1].id}): test accuracy {accuracy['mean']:.2f} ± "
                f"{accuracy['std']:.2f} %, held-out − train loss {gap['mean']:.3f} ± {gap['std']:.3f}") in markdown
    assert "Prediction, chosen before the runs started: Yes: a smaller gap" in markdown
    # one host, one line: a run's start-up seconds are not where it trained
    assert "Data: test data." in markdown and "Trained on: CPU Test CPU, threads 2, precision float32." in markdown


def test_the_settings_read_as_the_form_says_them(lab_study):
    store, study_id = lab_study
    shared = dict(_table(report.markdown(report.build(store, study_id)), "setting shared by every run"))
    assert shared["Precision"] == "float32" and shared["Train on train + validation"] == "off"
    assert shared["Training images"] == "3,000" and shared["Early stopping patience"] == "off"
    assert shared["Hidden layer sizes"] == "512, 512"


def test_the_html_report_opens_offline_with_the_stores_curves_and_matrices(lab_study):
    store, study_id = lab_study
    page = report.to_html(report.build(store, study_id))
    bundle = report.plotly_js()
    assert page.count(bundle) == 1  # plotly.js itself, inlined once
    rest = page.replace(bundle, "")
    assert "src=" not in rest and "http" not in rest  # nothing else to fetch: it opens offline
    figures = [json.loads(data) for data in re.findall(r"Plotly\.newPlot\('figure-\d+', (\[.*?\]), \{", page)]
    runs = [store.get(run.id) for run in store.study_runs(study_id)]
    curves, *matrices = figures
    validation = [trace["y"] for trace in curves if trace["name"].endswith("validation") and trace["yaxis"] == "y"]
    assert validation == [[record.val_loss for record in run.history] for run in runs]
    assert [figure[0]["z"] for figure in matrices] == [run.metrics["test"]["confusion"] for run in runs]


def test_user_text_cannot_break_out_of_the_report(lab_study):
    store, study_id = lab_study
    run_id = store.study_runs(study_id)[0].id
    store.rename(run_id, "</script><img src=x onerror=alert(1)> **bold** | cell")
    page = report.to_html(report.build(store, study_id))
    assert "<img src=x" not in page and "</script><img" not in page
    markdown = report.markdown(report.build(store, study_id))
    assert "\\<img src=x onerror=alert(1)\\> \\*\\*bold\\*\\* \\| cell" in markdown
    assert re.search(r"(?<!\\)<", markdown) is None  # every < escaped: no HTML when the Markdown is shown


@pytest.mark.parametrize("overrides", [
    {}, {"epochs": 7, "train_size": 3000, "seed": 2}, {"hidden_units": (64, 32), "augment": True, "l1": 1.5e-05},
    {"family": "cnn", "hidden_units": (), "patience": 3, "learning_rate": 0.000123456789},
])
def test_the_retrain_command_rebuilds_the_runs_settings(tmp_path, overrides):
    store = RunStore(tmp_path / "home")
    config = make_config("overfit", **overrides)
    run = store.get(store.create_run(config, data_dir="/data/kmnist mini"))
    command = report.retrain_command(run)
    words = shlex.split(command)
    assert words[:5] == ["python", "-m", "kmnist_core", "--data-dir", "/data/kmnist mini"]
    args = build_parser().parse_args(words[3:])
    values = {name: getattr(args, name) for name in PARAMETERS if name != "variant"}
    if values["hidden_units"] is not None:
        values["hidden_units"] = parse_units(values["hidden_units"])
    assert make_config(args.variant, **values) == config
    assert len(words) == 8 + 2 * len(overrides) - ("augment" in overrides)  # only what differs from the preset


def test_a_report_is_never_written_over_a_file_or_through_a_link(tmp_path):
    target = tmp_path / "report.md"
    report.write("first", target)
    with pytest.raises(OSError, match="already exists"):
        report.write("second", target)
    assert target.read_text() == "first"
    report.write("second", target, force=True)
    assert target.read_text() == "second"
    outside = tmp_path / "elsewhere.md"
    outside.write_text("keep")
    link = tmp_path / "link.md"
    link.symlink_to(outside)
    with pytest.raises(OSError, match="symbolic link"):
        report.write("x", link, force=True)
    assert outside.read_text() == "keep"
    with pytest.raises(ParameterError, match=r"report file must end in \.html or \.md"):
        report.check_target(tmp_path / "report.pdf", ".pdf")


def test_the_report_concludes_as_compare_does(lab_study):
    from explorer import report as app_report
    from kmnist_core import conclusions

    store, study_id = lab_study
    runs = [store.get(run.id) for run in store.study_runs(study_id)]
    text = app_report.text(store, study_id, None, ".md")
    assert text == report.markdown(report.build(store, study_id))  # the app's and the CLI's are one report
    sentence = conclusions.loss_gap_summary(runs)
    assert sentence.startswith("Held-out − train loss gap (smaller = less memorising): ") and sentence in text


def test_a_run_trained_on_every_image_has_its_held_out_curve_named_test():
    """Seen in a downloaded report: final's curve read "validation" (it has no validation
    split; its held-out curve is the test split's), while Compare said "test"."""
    from kmnist_core.records import Run

    history = [EpochRecord(epoch=1, train_loss=0.5, val_loss=0.6), EpochRecord(epoch=2, train_loss=0.4, val_loss=0.55)]
    final = Run(1, "final", "final", Status.COMPLETED, make_config("final").to_dict(), 0.0, history=history)
    overfit = Run(2, "overfit", "overfit", Status.COMPLETED, make_config("overfit").to_dict(), 0.0, history=history)
    names = [trace["name"] for trace in report.curves_spec([final, overfit])["data"]]
    assert "#1 final test" in names and "#2 overfit validation" in names
    assert not any(name.startswith("#1 final validation") for name in names)
