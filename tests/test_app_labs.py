"""Labs page: no lab starts without the learner's prediction; the prediction is stored with
the lab's study; the answer, read from the learner's runs, shows once they finish, on this
page and (as progress) on Home, in a new session too."""

import json

import pytest

from explorer import labs, report, sessions
from kmnist_core.checks import ParameterError
from kmnist_core.labs import LABS
from kmnist_core.records import EpochRecord
from kmnist_core.status import Status

from app_support import app, app_home, no_worker, texts  # noqa: F401  (app_home is a fixture)


def _finish(store, run_id, train_accuracy, val_losses):
    """What the worker stores for a finished run, without training one."""
    assert store.claim_next().id == run_id
    for epoch, loss in enumerate(val_losses, start=1):
        store.append_epoch(run_id, EpochRecord(epoch=epoch, train_loss=loss / 4, train_accuracy=train_accuracy,
                                               val_loss=loss, val_accuracy=0.8))
    store.finish(run_id, Status.COMPLETED, metrics={
        "train": {"accuracy": train_accuracy, "log_loss": 0.05, "n": 900},
        "val": {"accuracy": 0.8, "log_loss": val_losses[-1]},
        "test": {"accuracy": 0.8, "macro_f1": 0.79, "kappa": 0.78, "log_loss": val_losses[-1],
                 "confusion": [[0] * 10 for _ in range(10)],
                 "per_class": [{"class": k, "label": str(k), "f1": 0.8} for k in range(10)]},
        "fit": {"verdict": "good fit", "reason": "", "heldout": "val", "loss_gap": val_losses[-1] - 0.05},
        "epochs_done": len(val_losses), "train_seconds": 1.0})


def test_a_lab_needs_a_prediction_stores_it_and_answers_from_the_runs(app_home, monkeypatch):
    no_worker(monkeypatch)
    lab = LABS["capacity"]
    page = app("pages/labs.py")
    page.selectbox(key="lab_pick").set_value("capacity").run()
    assert lab.question in texts(page.markdown)
    assert page.button(key="start_lab_capacity").disabled  # no prediction yet: nothing can start
    assert app_home.list_studies() == []

    page.radio(key="lab_prediction_capacity").set_value(lab.choices[2]).run()
    assert not page.button(key="start_lab_capacity").disabled
    page.button(key="start_lab_capacity").click().run()
    assert not page.exception
    [study] = app_home.list_studies()
    assert (study.kind, study.lab, study.prediction) == ("lab", "capacity", lab.choices[2])
    runs = app_home.study_runs(study.id)
    assert [run.name for run in runs] == ["8 units", "64 units", "2 × 512 units"]
    assert f"Your prediction, chosen before the runs started: {lab.choices[2]}" in texts(page.text)
    assert "0 of 3 runs finished · 3 queued" in texts(page.text)
    assert "Waiting for a finished run of: 8 units, 64 units, 2 × 512 units." in texts(page.caption)

    for run, train_accuracy, losses in zip(runs, (0.82, 1.0, 1.0), ((0.9, 0.8, 0.78), (0.6, 0.45, 0.44),
                                                                     (0.6, 0.5, 0.7))):
        _finish(app_home, run.id, train_accuracy, losses)
    page.run()
    assert not page.exception
    [answer] = page.success
    assert "8 units fits 82.0% of its own training images, 2 × 512 units 100.0%" in answer.value
    assert "Lowest: 64 units" in answer.value
    assert (f"Your runs support: {lab.choices[1]}. Your prediction was: {lab.choices[2]}. Your runs show "
            f"otherwise.") in texts(page.text)
    assert [button.label for button in page.get("download_button")] == [
        "Download the report (HTML, opens offline)", "Download the report (Markdown)"]
    # Made with the page, one link per report across redraws: a deferred download made at
    # the click lost its link when the page redrew first (a Markdown click failed in Chromium).
    links = [button.proto.url for button in page.get("download_button")]
    page.run()
    assert all(links) and links == [button.proto.url for button in page.get("download_button")]
    # a folder of hand-ins says which lab each is (the lab's id, never typed text)
    assert report.file_name(app_home, study.id, ".md") == f"kmnist-capacity-lab-study-{study.id}-report.md"

    home = app()  # a new session: the lab is stored, not kept in the old session's state
    assert "· Capacity: underfit vs overfit: answered — 3 of 3 runs finished" in texts(home.text)
    assert "· Dropout: not tried yet" in texts(home.text)
    compare = app("pages/compare.py")  # the study's runs: its report downloads there too
    assert f"Download study #{study.id}'s report (HTML, opens offline)" in [
        button.label for button in compare.get("download_button")]
    again = app("pages/labs.py")
    again.selectbox(key="lab_pick").set_value("capacity").run()
    assert f"Your prediction, chosen before the runs started: {lab.choices[2]}" in texts(again.text)


def test_a_lab_counts_against_the_sessions_share_of_a_shared_server(app_home, monkeypatch):
    no_worker(monkeypatch)
    monkeypatch.setenv(sessions.SHARED_ENV, "1")
    with pytest.raises(ParameterError, match="prediction must be one of"):
        labs.submit(app_home, "dropout", None, owner="me", data_source=None)
    labs.submit(app_home, "is_it_real", LABS["is_it_real"].choices[1], owner="me", data_source=None)  # 6 runs: the share
    with pytest.raises(sessions.SessionLimitError, match="the Capacity: underfit vs overfit lab would add 3 runs"):
        labs.submit(app_home, "capacity", LABS["capacity"].choices[0], owner="me", data_source=None)
    assert [study.lab for study in app_home.list_studies()] == ["is_it_real"]  # nothing else queued
    labs.submit(app_home, "capacity", LABS["capacity"].choices[0], owner="another session", data_source=None)
    assert len(app_home.list_studies()) == 2


def test_a_reload_opens_on_the_lab_in_progress_and_offers_no_second_start_while_it_runs(app_home, monkeypatch):
    """Seen in Chromium: after a reload Labs opened on the first lab, not the one training, and
    a "Try it again" form with a second Start button showed before the first runs had begun."""
    no_worker(monkeypatch)
    lab = LABS["dropout"]
    page = app("pages/labs.py")
    page.selectbox(key="lab_pick").set_value("dropout").run()
    page.radio(key="lab_prediction_dropout").set_value(lab.choices[0]).run()
    page.button(key="start_lab_dropout").click().run()
    again = app("pages/labs.py")  # a new session, as a reload is
    assert again.selectbox(key="lab_pick").value == "dropout"
    assert "Try it again" not in texts(again.subheader) and not again.radio
    assert "Once these runs finish you can try the lab again" in texts(again.caption)


def test_the_lab_picked_survives_a_page_switch(app_home, monkeypatch):
    """Seen in Chromium: picked "L1 vs L2", looked at Compare, came back to another lab."""
    no_worker(monkeypatch)
    page = app("pages/labs.py")
    picked = list(LABS)[-1]
    assert page.selectbox(key="lab_pick").value != picked
    page.selectbox(key="lab_pick").set_value(picked).run()
    page.switch_page("pages/compare.py")
    page.run()
    page.switch_page("pages/labs.py")
    page.run()
    assert page.selectbox(key="lab_pick").value == picked


def test_the_lab_picker_says_a_lab_is_underway_as_soon_as_it_starts(app_home, monkeypatch):
    """The browser shows the label it was last sent for the picked value: the picker said
    "not tried yet" until the lab's runs had finished (seen in Chromium)."""
    no_worker(monkeypatch)
    page = app("pages/labs.py")
    page.selectbox(key="lab_pick").set_value("dropout").run()
    page.radio(key="lab_prediction_dropout").set_value(LABS["dropout"].choices[0]).run()
    page.button(key="start_lab_dropout").click().run()
    picker = page.selectbox(key="lab_pick")
    assert picker.proto.set_value and picker.proto.raw_value.startswith(LABS["dropout"].title + ": ")
    assert "not tried yet" not in picker.proto.raw_value


def test_a_labs_curves_colour_each_setting_not_each_seed(app_home, monkeypatch):
    """Seen in Chromium: the dropout lab's four runs in four colours, the two settings hard to
    tell apart; a setting's seeds now share its colour."""
    no_worker(monkeypatch)
    page = app("pages/labs.py")
    page.selectbox(key="lab_pick").set_value("dropout").run()
    page.radio(key="lab_prediction_dropout").set_value(LABS["dropout"].choices[0]).run()
    page.button(key="start_lab_dropout").click().run()
    runs = app_home.study_runs(app_home.list_studies()[0].id)
    for run in runs:
        _finish(app_home, run.id, 0.99, (0.6, 0.5))
    page.run()
    figure = json.loads(page.get("plotly_chart")[0].proto.spec)
    colours = {}
    for trace in figure["data"]:
        setting = trace["name"].split(" · seed")[0]
        colours.setdefault(setting, set()).add(trace["line"]["color"])
    assert set(colours) == {"no dropout", "dropout"}
    assert all(len(shades) == 1 for shades in colours.values()) and colours["no dropout"] != colours["dropout"]
