"""Train page: the form sends what the user set to the core, refuses what the core
refuses, queues runs that the background worker trains, and Stop stops them."""

import pytest
from streamlit.testing.v1 import AppTest

from kmnist_core.config import PARAMETERS, STUDY_ORDER, VARIANTS, config_from_dict, make_config, preset
from kmnist_core.verdict import verdict_line

from app_support import (  # noqa: F401
    app,
    app_home,
    app_runs,
    last_id,
    newest_run,
    no_worker,
    texts,
    trained_home,
    training_home,
    training_store,
    wait_finished,
    wait_for,
)
from browser import ROOT
from conftest import write_tiled_folder

KEY = "train_{}".format


def test_empty_store_shows_preset_and_next_step(app_home):
    page = app("pages/train.py")
    assert "No runs yet" in texts(page.info)
    assert page.selectbox(key="train_variant").value == "combined"
    values = preset("combined")
    assert page.number_input(key=KEY("dropout")).value == values["dropout"]
    assert page.number_input(key=KEY("l2")).value == values["l2"]
    assert page.text_input(key=KEY("hidden_units")).value == "512, 512"
    assert "All settings are the preset's." in texts(page.caption)


def test_a_setting_whose_zero_switches_it_off_says_so_in_its_label(app_home):
    """A learner read "Training images 0" as no training images at all."""
    page = app("pages/train.py")
    assert page.number_input(key=KEY("train_size")).value == 0
    assert page.number_input(key=KEY("train_size")).label == "Training images (0 = all)"
    assert page.number_input(key=KEY("patience")).label.endswith("(0 = off)")
    assert page.number_input(key=KEY("epochs")).label == PARAMETERS["epochs"].label
    page.number_input(key=KEY("train_size")).set_value(1000).run()
    assert "Training images all → 1,000" in texts(page.caption)


def test_variant_change_and_reset_return_to_the_presets_values(app_home):
    page = app("pages/train.py")
    page.selectbox(key="train_variant").select("underfit").run()
    assert page.text_input(key=KEY("hidden_units")).value == "8"
    assert page.number_input(key=KEY("epochs")).value == preset("underfit")["epochs"]
    page.number_input(key=KEY("dropout")).set_value(0.3).run()
    assert "Dropout (hidden layers) 0 → 0.3" in texts(page.caption)
    page.button(key="reset_form").click().run()
    assert page.number_input(key=KEY("dropout")).value == 0.0
    assert "All settings are the preset's." in texts(page.caption)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_preset_starts_from_the_form_as_the_core_defines_it(app_home, monkeypatch, variant):
    no_worker(monkeypatch)
    page = app("pages/train.py")
    page.selectbox(key="train_variant").select(variant).run()
    assert not page.error and not page.button(key="start_training").disabled
    page.button(key="start_training").click().run()
    [run] = app_home.list_runs()
    assert config_from_dict(run.config) == make_config(variant)


def test_no_hidden_layer_is_refused_for_dense_only(app_home):
    page = app("pages/train.py")
    page.text_input(key=KEY("hidden_units")).input("").run()
    assert "Hidden layer sizes must hold at least one layer size for family 'dense'" in page.error[0].value
    page.selectbox(key=KEY("family")).select("cnn").run()
    assert not page.error and not page.button(key="start_training").disabled


def test_an_out_of_range_number_reaches_the_core_and_is_named(app_home):
    """A number box with limits in the browser keeps showing 100000 while it sends the last
    good value (seen in Chromium: 2 epochs queued, no message). No box declares limits; the
    core's check names the setting and its range, and Start waits."""
    page = app("pages/train.py")
    assert not any(box.proto.has_min or box.proto.has_max for box in page.number_input)
    page.number_input(key=KEY("epochs")).set_value(100000).run()
    assert "Epochs must be in [1, 1000], got 100000" in page.error[0].value
    assert page.button(key="start_training").disabled
    page.number_input(key=KEY("epochs")).set_value(20)
    page.number_input(key=KEY("train_size")).set_value(10000).run()  # kmnist-mini keeps 5,400 after validation
    assert "Training images must be at most 5400 for this data" in page.error[0].value
    assert page.button(key="start_training").disabled and not app_home.list_runs()


def test_invalid_settings_are_refused_with_the_cores_message(app_home):
    page = app("pages/train.py")
    page.number_input(key=KEY("dropout")).set_value(1.0).run()
    assert "Dropout (hidden layers) must be in [0, 1), got 1" in page.error[0].value
    assert page.button(key="start_training").disabled
    page.number_input(key=KEY("dropout")).set_value(0.5)
    page.text_input(key=KEY("hidden_units")).input("512, lots").run()
    assert "Hidden layer sizes must be layer sizes separated by commas" in page.error[0].value
    page.number_input(key=KEY("l2")).set_value(0.1)
    page.number_input(key=KEY("input_dropout")).set_value(1.0).run()  # every problem at once
    assert "Hidden layer sizes must be" in page.error[0].value and "Input dropout (pixels) must be in" in page.error[0].value
    page.number_input(key=KEY("input_dropout")).set_value(0.2)
    page.text_input(key=KEY("hidden_units")).input("64").run()
    assert not page.error and not page.button(key="start_training").disabled
    assert not app_home.list_runs()


def test_start_sends_the_form_to_the_core_and_the_run_completes(training_home):
    home = training_home
    before = last_id(home)
    page = app("pages/train.py")
    page.selectbox(key="train_variant").select("underfit").run()
    page.number_input(key=KEY("epochs")).set_value(2)
    page.number_input(key=KEY("dropout")).set_value(0.1)
    page.number_input(key=KEY("l2")).set_value(1e-4)
    page.number_input(key=KEY("batch_size")).set_value(128)
    page.text_input(key=KEY("hidden_units")).input("16")
    page.button(key="start_training").click().run()
    run = newest_run(home, before)
    assert run.variant == "underfit"
    assert {k: run.config[k] for k in ("epochs", "dropout", "l2", "batch_size", "hidden_units")} == \
        {"epochs": 2, "dropout": 0.1, "l2": 1e-4, "batch_size": 128, "hidden_units": [16]}
    finished = wait_finished(home, run.id)
    assert finished.status == "completed" and len(finished.history) == 2
    page.run()
    assert not page.exception
    assert page.selectbox(key="train_view").value == run.id
    metrics = {m.label: m.value for m in page.metric}
    assert metrics["Test accuracy"] == f"{finished.metrics['test']['accuracy']:.1%}"
    assert len(page.get("plotly_chart")) == 2  # curves and confusion matrix


def test_stop_keeps_partial_history_and_model(training_home):
    home = training_home
    before = last_id(home)
    page = app("pages/train.py")
    page.selectbox(key="train_variant").select("underfit").run()
    page.number_input(key=KEY("epochs")).set_value(200)
    page.button(key="start_training").click().run()
    run = newest_run(home, before)
    wait_for(lambda: len(home.get(run.id).history) >= 1, "the first epoch")
    page.run()
    assert "epoch" in page.get("progress")[0].proto.text and "left" in page.get("progress")[0].proto.text
    page.button(key=f"stop_{run.id}").click().run()
    stopped = wait_finished(home, run.id)
    assert stopped.status == "stopped"
    assert 1 <= len(stopped.history) < 200
    assert home.model_path(run.id).is_file() and stopped.metrics["test"]["accuracy"] > 0
    page.run()
    assert "Stopped by request" in texts(page.warning)


def test_kfold_toggle_sets_kfold_and_results_show_mean_and_std(training_home):
    home = training_home
    before = last_id(home)
    page = app("pages/train.py")
    page.selectbox(key="train_variant").select("underfit").run()
    page.number_input(key=KEY("epochs")).set_value(1)
    page.toggle(key=KEY("use_kfold")).set_value(True).run()
    page.number_input(key=KEY("kfold")).set_value(2)  # clicked with the change, no rerun between
    page.button(key="start_training").click().run()
    run = newest_run(home, before)
    assert run.config["kfold"] == 2
    finished = wait_finished(home, run.id)
    assert finished.status == "completed"
    page.run()
    metrics = {m.label: m.value for m in page.metric}
    cv = finished.metrics["cv"]["accuracy"]
    assert metrics["CV accuracy"] == f"{cv['mean']:.1%} ± {cv['std']:.1%}"


def test_train_all_queues_the_study_in_order_and_a_queued_run_can_be_cancelled(app_home, monkeypatch):
    no_worker(monkeypatch)
    page = app("pages/train.py")
    page.number_input(key=KEY("epochs")).set_value(3)  # the form's epochs: not the study's
    page.button(key="train_all").click().run()
    queued = sorted(app_home.list_runs(), key=lambda r: r.id)
    assert [r.variant for r in queued] == list(STUDY_ORDER)
    assert [config_from_dict(r.config) for r in queued] == [make_config(v) for v in STUDY_ORDER]  # each its own
    assert all(r.status == "queued" and r.name == r.variant for r in queued)
    assert [(study.kind, study.name) for study in app_home.list_studies()] == [("variants", "All variants")]
    assert {r.study_id for r in queued} == {app_home.list_studies()[0].id}
    page.toggle(key="study_shared").set_value(True).run()  # on purpose: the form's epochs for all
    page.button(key="train_all").click().run()
    shared = sorted(app_home.list_runs(), key=lambda r: r.id)[len(queued):]
    assert [r.config["epochs"] for r in shared] == [3] * 6 and shared[0].config["hidden_units"] == [8]
    for run in shared:
        app_home.request_stop(run.id)
    assert "Queue" in texts(page.markdown)
    page.button(key=f"cancel_{queued[-1].id}").click().run()
    assert app_home.get(queued[-1].id).status == "cancelled"
    assert f"cancel_{queued[-1].id}" not in [b.key for b in page.button]

    with app_home.training_lock():  # a worker takes the first run; the picker shows another
        assert app_home.claim_next().id == queued[0].id
        page.selectbox(key="train_view").set_value(queued[0].id).run()
        assert f"queue_stop_{queued[0].id}" not in [b.key for b in page.button]  # one Stop, beside its curves
        assert f"stop_{queued[0].id}" in [b.key for b in page.button]
        page.selectbox(key="train_view").set_value(queued[-1].id).run()
        page.button(key=f"queue_stop_{queued[0].id}").click().run()  # stopped from the queue itself
        assert app_home.get(queued[0].id).stop_requested
        assert "stopping…" in texts(page.caption)
        assert f"queue_stop_{queued[0].id}" not in [b.key for b in page.button]


def test_a_finished_run_from_elsewhere_shows_its_results(app_runs):
    """A run trained by another process: the page shows that run's stored scores and
    its stored verdict and reason (green for a good fit, amber otherwise), not any verdict."""
    page = app("pages/train.py")
    newest = app_runs.list_runs()[0]
    assert page.selectbox(key="train_view").value == newest.id
    test, fit = newest.metrics["test"], newest.metrics["fit"]
    assert {m.label: m.value for m in page.metric} == {
        "Test accuracy": f"{test['accuracy']:.1%}", "Macro F1": f"{test['macro_f1']:.3f}",
        "Cohen's kappa": f"{test['kappa']:.3f}", "Test loss": f"{test['log_loss']:.3f}"}
    kind = {"good fit": "success", "starting to overfit": "info"}.get(fit["verdict"], "warning")
    assert verdict_line(fit) in [box.value for box in getattr(page, kind)]
    assert not any(fit["reason"] in box.value for other in {"success", "info", "warning"} - {kind}
                   for box in getattr(page, other))


def test_the_jumps_of_an_l1_run_are_explained_beside_its_curves_and_only_there(app_runs):
    """Issue 22: L1/L2's curves jump (Adam + L1) with no word of why."""
    page = app("pages/train.py")
    for run in app_runs.list_runs():  # combined (L1 1e-5, Adam) and underfit (no L1)
        page.selectbox(key="train_view").set_value(run.id).run()
        said = f"#{run.id} has an L1 penalty and the Adam optimizer: expect the curves to jump" in texts(page.caption)
        assert said == (run.config["l1"] > 0)


def test_a_good_fit_after_too_few_epochs_says_so_beside_the_verdict(app_runs):
    """Seen in Chromium: overfit trained 5 epochs read "Good fit." with no caveat on its
    verdict; the too-few-epochs warning stood only by the form, before the run."""
    finished = app_runs.list_runs()[0]
    short = app_runs.create_run(make_config("overfit", epochs=5))
    metrics = dict(finished.metrics, fit=dict(finished.metrics["fit"], verdict="good fit"))
    with app_runs.training_lock():  # finished as a trainer would finish it, no training needed
        assert app_runs.claim_next().id == short
        app_runs.update(short, params=finished.params)
        app_runs.finish(short, "completed", metrics=metrics)
    page = app("pages/train.py")
    assert page.selectbox(key="train_view").value == short
    assert "Read this “good fit” with care: 5 epochs are too few for this lesson" in texts(page.caption)
    assert "Changed: Epochs 30 → 5" in texts(page.caption)  # the form's names, not the code's (epochs)
    page.selectbox(key="train_view").set_value(finished.id).run()  # a 2-epoch combined run judged otherwise
    assert ("Read this “good fit” with care" in texts(page.caption)) == (finished.metrics["fit"]["verdict"] == "good fit")


def test_the_preset_survives_a_page_switch_and_labels_the_run(app_home, monkeypatch):
    """Bug: pick dropout, visit Compare, come back: the box said combined while the fields
    kept dropout's values, and Start stored a dropout run as variant combined."""
    no_worker(monkeypatch)
    page = app("pages/train.py")
    page.selectbox(key="train_variant").select("dropout").run()
    page.switch_page("pages/compare.py")
    page.run()
    page.switch_page("pages/train.py")
    page.run()
    assert page.selectbox(key="train_variant").value == "dropout"
    assert page.number_input(key=KEY("l2")).value == 0.0 and "All settings are the preset's." in texts(page.caption)
    page.button(key="start_training").click().run()
    [run] = app_home.list_runs()
    assert run.variant == "dropout" and config_from_dict(run.config) == make_config("dropout") and run.name == "dropout"


def test_train_all_with_this_forms_settings_survives_a_page_switch(app_home, monkeypatch):
    """Bug (issue 22): Epochs 5, Training images 1000, the toggle on, a look at Compare,
    back, Train all variants: the six runs were stored with their presets' epochs and all
    images, the toggle having silently turned itself off."""
    no_worker(monkeypatch)
    page = app("pages/train.py")
    page.number_input(key=KEY("epochs")).set_value(5)
    page.number_input(key=KEY("train_size")).set_value(1000)
    page.toggle(key="study_shared").set_value(True).run()
    page.switch_page("pages/compare.py")
    page.run()
    page.switch_page("pages/train.py")
    page.run()
    assert page.toggle(key="study_shared").value
    assert "All six with epochs 5, batch size 64, learning rate 0.001, training images 1,000" in texts(page.caption)
    page.button(key="train_all").click().run()
    runs = sorted(app_home.list_runs(), key=lambda r: r.id)
    assert [config_from_dict(r.config) for r in runs] == [make_config(v, epochs=5, train_size=1000)
                                                          for v in STUDY_ORDER]


def test_an_edited_run_is_named_for_what_changed(app_home, monkeypatch):
    no_worker(monkeypatch)
    page = app("pages/train.py")
    page.selectbox(key="train_variant").select("overfit").run()
    page.number_input(key=KEY("dropout")).set_value(0.3)
    page.number_input(key=KEY("epochs")).set_value(40).run()
    page.button(key="start_training").click().run()
    [run] = app_home.list_runs()
    assert run.variant == "overfit" and run.name == "overfit · dropout 0.3 · epochs 40"
    page.run()
    assert "Settings — 2 changed from the overfit preset" in [e.label for e in page.expander]


def test_a_double_click_queues_one_run_and_says_so(app_home, monkeypatch):
    no_worker(monkeypatch)
    page = app("pages/train.py")
    page.button(key="start_training").click().run()
    page.button(key="start_training").click().run()
    assert len(app_home.list_runs()) == 1
    assert "Not queued again" in texts(page.info)
    page.number_input(key=KEY("epochs")).set_value(35).run()  # other settings: a new run
    page.button(key="start_training").click().run()
    assert len(app_home.list_runs()) == 2


def test_too_few_epochs_for_the_lesson_are_warned_before_starting(app_home):
    page = app("pages/train.py")
    page.selectbox(key="train_variant").select("overfit").run()
    assert not page.warning
    page.number_input(key=KEY("epochs")).set_value(8).run()
    assert "8 epochs are too few for this lesson" in texts(page.warning)
    page.selectbox(key="train_variant").select("underfit").run()  # underfit underfits at any length
    assert not page.warning


def test_every_setting_has_a_tooltip_from_the_core(app_home):
    page = app("pages/train.py")
    assert page.number_input(key=KEY("dropout")).help.startswith(PARAMETERS["dropout"].help)
    assert page.number_input(key=KEY("l1")).help.startswith(PARAMETERS["l1"].help)
    assert page.number_input(key=KEY("learning_rate")).help.startswith(PARAMETERS["learning_rate"].help)


def test_a_finished_run_can_be_renamed_and_deleted_from_its_view(app_runs):
    newest = app_runs.list_runs()[0]
    page = app("pages/train.py")
    page.text_input(key=f"rename_{newest.id}").input("**bold** ![x](http://127.0.0.1:9/p.png)")
    page.button(key=f"rename_button_{newest.id}").click().run()
    assert app_runs.get(newest.id).name == "**bold** ![x](http://127.0.0.1:9/p.png)"
    assert "**bold** ![x](http://127.0.0.1:9/p.png)" in texts(page.text)  # shown as plain text
    assert not any("bold" in m.value for m in page.markdown)
    page.text_input(key=f"rename_{newest.id}").input("42")
    page.button(key=f"rename_button_{newest.id}").click().run()
    assert "must not be only digits" in texts(page.error) and app_runs.get(newest.id).name.startswith("**bold**")
    assert page.button(key=f"delete_{newest.id}").disabled  # a delete is confirmed first
    page.checkbox(key=f"delete_sure_{newest.id}").check().run()
    page.button(key=f"delete_{newest.id}").click().run()
    assert newest.id not in [run.id for run in app_runs.list_runs()]
    assert not page.exception and page.selectbox(key="train_view").value != newest.id


def test_the_run_picker_is_resent_when_a_runs_label_changes(app_runs):
    """The browser shows the label it was last *sent* as the picked value: when a run's
    status or name changes, the page must send the value again, or the picker keeps
    saying "— running" after the run finished (seen in Chromium) or the old name."""
    older, _newest = sorted(app_runs.list_runs(), key=lambda run: run.id)
    page = app("pages/train.py")
    page.selectbox(key="train_view").set_value(older.id).run()
    app_runs.rename(older.id, "renamed in another tab")
    page.run()
    picker = page.selectbox(key="train_view")
    assert picker.value == older.id
    assert picker.proto.set_value and picker.proto.raw_value == f"#{older.id} renamed in another tab — completed"


def test_the_settings_live_in_the_url_and_a_link_restores_them(app_home):
    page = app("pages/train.py")
    page.selectbox(key="train_variant").select("overfit").run()
    page.number_input(key=KEY("dropout")).set_value(0.3)
    page.number_input(key=KEY("epochs")).set_value(25).run()
    shared = page.query_params
    assert shared["variant"] == "overfit" and shared["dropout"] == "0.3" and shared["epochs"] == "25"
    assert "l2" not in shared  # only what differs from the preset

    fresh = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    fresh.query_params.update({"variant": "overfit", "dropout": "0.3", "epochs": "25"})
    fresh.run()
    fresh.switch_page("pages/train.py")
    fresh.query_params.update({"variant": "overfit", "dropout": "0.3", "epochs": "25"})
    fresh.run()
    assert fresh.selectbox(key="train_variant").value == "overfit"
    assert fresh.number_input(key=KEY("dropout")).value == 0.3 and fresh.number_input(key=KEY("epochs")).value == 25


@pytest.mark.parametrize("query, message", [
    ({"variant": "<script>"}, "Variant preset must be one of"),
    ({"variant": "overfit", "dropout": "7"}, "Dropout (hidden layers) must be in [0, 1), got 7"),
    ({"variant": "overfit", "epochs": "many"}, "Epochs cannot be 'many'"),
    ({"variant": "overfit", "rm -rf": "1"}, "rm -rf is not a setting of this form"),
    ({"variant": "overfit", "augment": "perhaps"}, "Data augmentation cannot be 'perhaps'"),
])
def test_a_bad_link_gets_one_message_and_the_form_keeps_working(app_home, query, message):
    page = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    page.run()
    page.switch_page("pages/train.py")
    page.query_params.update(query)
    page.run()
    assert not page.exception
    assert message in texts(page.warning) and "Part of the link was not applied" in texts(page.warning)
    assert not page.button(key="start_training").disabled


def test_a_link_with_one_bad_value_keeps_the_good_ones(app_home):
    page = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    page.run()
    page.switch_page("pages/train.py")
    page.query_params.update({"variant": "overfit", "dropout": "7", "epochs": "40", "l2": "-1"})
    page.run()
    assert page.selectbox(key="train_variant").value == "overfit"
    assert page.number_input(key=KEY("epochs")).value == 40  # kept
    assert page.number_input(key=KEY("dropout")).value == 0.0 and page.number_input(key=KEY("l2")).value == 0.0
    warning = texts(page.warning)
    assert "Dropout (hidden layers) must be in [0, 1), got 7" in warning and "L2 penalty must be in [0, 0.1], got -1" in warning


def test_a_finished_run_offers_its_model_history_metrics_and_script(app_runs):
    page = app("pages/train.py")
    labels = sorted(button.proto.label for button in page.get("download_button"))
    assert labels == ["History (CSV)", "History (JSON)", "Metrics (JSON)", "Model (.keras)",
                      "Standalone training script (Python, Keras only)"]


def test_a_download_link_survives_the_redraws_of_a_training_elsewhere(app_runs):
    """While anything trains the run view redraws every second. A link made at click time
    (a deferred download) was revoked by each redraw: in Chromium 3 of 12 clicks downloaded
    nothing. A finished run's files must keep one link from redraw to redraw."""
    page = app("pages/train.py")
    links = {button.proto.label: button.proto.url for button in page.get("download_button")}
    page.run()
    assert all(links.values()) and links == {button.proto.label: button.proto.url
                                             for button in page.get("download_button")}


def test_the_expected_duration_is_said_before_starting_and_long_runs_warned(app_home):
    page = app("pages/train.py")
    assert "Expected training time on this machine: up to about" in texts(page.caption)  # no run yet: errs long
    page.selectbox(key="train_variant").select("best").run()
    page.number_input(key=KEY("epochs")).set_value(400).run()
    assert "This run would take about" in texts(page.warning) and "Training images" in texts(page.warning)


@pytest.fixture(scope="module")
def full_scale_dir(tmp_path_factory):
    return write_tiled_folder(tmp_path_factory.mktemp("kmnist-mini-tiled-x10-timing-only"))


def test_at_full_scale_a_preset_past_ten_minutes_is_warned_before_it_starts(app_home, full_scale_dir, monkeypatch):
    """60,000 training images, as full KMNIST from tensorflow-datasets: the study's presets
    take minutes here (benchmarks/full_scale.py), `best` past ten, and says so."""
    monkeypatch.setenv("KMNIST_DATA_DIR", str(full_scale_dir))
    page = app("pages/train.py")
    assert "Expected training time on this machine: up to about" in texts(page.caption)
    assert "This run would take" not in texts(page.warning)
    page.selectbox(key="train_variant").select("best").run()
    warning = texts(page.warning)
    assert "This run would take about" in warning and "under 10 minutes" in warning
    assert "**Training images** to" in warning and "(from 60,000)" in warning and "**Epochs** to" in warning


def test_the_quick_study_queues_the_six_variants_on_fewer_images(app_home, monkeypatch):
    from kmnist_core.study import QUICK_STUDY

    no_worker(monkeypatch)
    page = app("pages/train.py")
    page.button(key="quick_study").click().run()
    queued = sorted(app_home.list_runs(), key=lambda r: r.id)
    assert [r.variant for r in queued] == list(STUDY_ORDER)
    assert all(r.config["train_size"] == QUICK_STUDY["train_size"] and r.config["epochs"] == QUICK_STUDY["epochs"]
               for r in queued)
    assert queued[1].config["hidden_units"] == [512, 512] and queued[0].config["hidden_units"] == [8]
    [study] = app_home.list_studies()  # one stored study, owned by this session: Compare and the report read it
    assert (study.kind, study.name, study.owner) == ("quick", "Quick study", queued[0].owner)
    assert [run.id for run in app_home.study_runs(study.id)] == [run.id for run in queued]


def test_a_start_that_races_a_preset_change_queues_nothing_and_loads_the_preset(app_home, monkeypatch):
    """Bug: pick overfit, then dropout, and press Start before the page redrew: the click
    carried overfit's values under dropout's name, and a 'dropout' run trained with none."""
    no_worker(monkeypatch)
    page = app("pages/train.py")
    page.selectbox(key="train_variant").select("overfit").run()
    # What the browser sends when Start is clicked before the redraw: the new preset with the
    # values the old form still shows (Start's callback belongs to the overfit form on screen).
    page.session_state["train_variant"] = "dropout"
    page.button(key="start_training").click().run()
    assert app_home.list_runs() == []
    assert "the form was still switching presets" in texts(page.info)
    assert page.selectbox(key="train_variant").value == "dropout"
    assert page.number_input(key=KEY("dropout")).value == preset("dropout")["dropout"]
    page.button(key="start_training").click().run()
    [run] = app_home.list_runs()
    assert run.variant == "dropout" and config_from_dict(run.config) == make_config("dropout")


def test_the_study_with_too_many_training_images_queues_nothing(app_home, monkeypatch):
    """"Train all variants" with this form's training images: a size the data cannot give
    is refused at the click, before any run is stored (it used to store six failed runs)."""
    no_worker(monkeypatch)
    page = app("pages/train.py")
    page.number_input(key=KEY("train_size")).set_value(5401).run()  # kmnist-mini: 5,400 after the split
    page.toggle(key="study_shared").set_value(True).run()
    page.button(key="train_all").click().run()
    assert app_home.list_runs() == []
    assert "Not queued: Training images must be at most 5400 for this data" in texts(page.info)


def test_the_picker_follows_the_run_in_training_until_a_run_is_picked_by_hand(app_runs, monkeypatch):
    """Seen in Chromium: a Quick study's first run finished and the panel stayed on it while
    #2 trained; after a sweep it showed the sweep's first run, queued, five runs ahead. What
    the learner queued is followed to the run in training, until they pick a run themselves."""
    from explorer import jobs, state

    monkeypatch.setattr(jobs, "wake_worker", lambda store: False)
    finished = app_runs.list_runs()[-1].id
    with app_runs.training_lock(slot=0):  # a live trainer holds its slot: the run is no orphan
        live = app_runs.create_run(make_config("underfit", epochs=400), status="running")
        page = app("pages/train.py")
        page.session_state[state.VIEW_KEY] = finished
        page.session_state[state.FOLLOW_KEY] = True  # as queueing from this page leaves it
        page.run()
        assert page.selectbox(key=state.VIEW_KEY).value == live
        page.selectbox(key=state.VIEW_KEY).set_value(finished).run()  # picked by hand: kept
        page.run()
        assert page.selectbox(key=state.VIEW_KEY).value == finished
        app_runs.request_stop(live)
