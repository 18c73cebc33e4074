"""Sweep page: the form queues a sweep (or names every problem at once), and the picked
sweep's curve and table fill in as its runs finish."""

import json

from kmnist_core.status import Status

from app_support import app, app_home, no_worker, texts, use_home  # noqa: F401


def _finish(store, run, train_accuracy, val_loss):
    """What the worker stores for a finished run, without training one."""
    assert store.claim_next().id == run.id
    store.finish(run.id, Status.COMPLETED, metrics={
        "train": {"accuracy": train_accuracy, "log_loss": val_loss / 4, "n": 1000},
        "val": {"accuracy": train_accuracy - 0.1, "log_loss": val_loss},
        "test": {"accuracy": train_accuracy - 0.1, "log_loss": val_loss},
    })


def test_a_sweep_is_queued_from_the_form_and_its_curve_fills_in(app_home, monkeypatch):
    no_worker(monkeypatch)
    page = app("pages/sweep.py")
    assert "No sweeps yet" in texts(page.info)
    assert page.text_input(key="sweep_values").value == "0, 0.2, 0.4, 0.6"  # the example of the default parameter
    page.selectbox(key="sweep_param").set_value("l2").run()
    assert page.text_input(key="sweep_values").value == "0, 1e-4, 1e-3, 1e-2"  # follows the parameter
    page.selectbox(key="sweep_param").set_value("dropout").run()
    page.text_input(key="sweep_values").set_value("0, 0.5")
    page.number_input(key="sweep_epochs").set_value(3).run()
    assert "4 runs of overfit, 3 epochs each: 2 values × 2 seeds" in texts(page.caption)
    page.button(key="start_sweep").click().run()
    assert not page.exception

    [sweep] = app_home.list_sweeps()
    assert (sweep.param, sweep.values, sweep.seeds, sweep.overrides) == ("dropout", [0.0, 0.5], 2, {"epochs": 3})
    runs = app_home.sweep_runs(sweep.id)
    assert [(r.config["dropout"], r.config["seed"], r.status) for r in runs] == \
        [(0.0, 0, "queued"), (0.5, 0, "queued"), (0.0, 1, "queued"), (0.5, 1, "queued")]
    assert runs[1].name == "overfit · epochs 3 · dropout 0.5 · seed 0"
    assert page.selectbox(key="sweep_pick").value == sweep.id
    assert "0 of 4 runs finished · 4 queued" in texts(page.text)
    assert "The curve appears as the runs finish" in texts(page.info) and not page.get("plotly_chart")

    _finish(app_home, runs[0], 0.99, 0.60)
    _finish(app_home, runs[1], 0.95, 0.40)
    _finish(app_home, runs[2], 0.97, 0.70)
    page.run()
    assert not page.exception
    assert "3 of 4 runs finished · 1 queued" in texts(page.text)
    [chart] = page.get("plotly_chart")
    figure = json.loads(chart.proto.spec)
    lines = [(trace["name"], trace["xaxis"], trace["y"]) for trace in figure["data"] if trace.get("mode") == "lines+markers"]
    assert [(name, axis) for name, axis, _ in lines] == [("train", "x"), ("validation", "x"), ("train", "x2"), ("validation", "x2")]
    assert [round(y, 6) for y in lines[1][2]] == [0.65, 0.4]  # validation loss: the mean over the finished seeds
    assert [round(y, 6) for y in lines[2][2]] == [0.98, 0.95]  # train accuracy
    assert sum(trace.get("fill") == "toself" for trace in figure["data"]) == 4  # ± std around each line (value 0 has two seeds)
    table = page.dataframe[0].value
    assert list(table["Dropout (hidden layers)"]) == ["0", "0.5 ★"]
    assert list(table["seeds finished"]) == ["2 of 2", "1 of 2"]
    assert list(table["validation loss"]) == ["0.650 ± 0.071", "0.400"]
    assert "Lowest mean validation loss at Dropout (hidden layers) 0.5: 0.400 (one seed)." in texts(page.text)
    # the star sits on the less accurate value: the page says why loss and accuracy disagree
    assert ("Dropout (hidden layers) 0.5 has the lowest validation loss (0.400 vs 0.650) but Dropout (hidden layers) "
            "0 is the more accurate (88.0% vs 85.0%)") in texts(page.text)
    # 3 epochs: the form warned before the sweep, and so does the result it is read from
    assert "Read this curve with care: 3 epochs are too few for this lesson" in texts(page.caption)

    assert page.button(key=f"cancel_sweep_{sweep.id}").label == "Cancel the queued run of this sweep"  # one, not "1 … runs"
    page.button(key=f"cancel_sweep_{sweep.id}").click().run()
    assert app_home.get(runs[3].id).status == Status.CANCELLED


def test_the_new_sweep_form_survives_a_page_switch(app_home, monkeypatch):
    """Seen in Chromium: after a look at another page the form was back to its defaults."""
    no_worker(monkeypatch)
    page = app("pages/sweep.py")
    page.selectbox(key="sweep_param").set_value("l2").run()
    page.number_input(key="sweep_epochs").set_value(3).run()
    page.switch_page("pages/compare.py")
    page.run()
    page.switch_page("pages/sweep.py")
    page.run()
    assert page.selectbox(key="sweep_param").value == "l2" and page.number_input(key="sweep_epochs").value == 3
    assert page.text_input(key="sweep_values").value == "0, 1e-4, 1e-3, 1e-2"


def test_bad_settings_are_named_together_and_nothing_is_queued(app_home, monkeypatch):
    no_worker(monkeypatch)
    page = app("pages/sweep.py")
    page.text_input(key="sweep_values").set_value("0, 1.5, x, 2").run()
    [error] = page.error
    assert error.value.startswith("Cannot start this sweep: Values must be numbers separated by commas, "
                                  "e.g. 0, 0.2, 0.4, 0.6; got 'x'; Dropout (hidden layers) must be in [0, 1), got 1.5, 2")
    assert page.button(key="start_sweep").disabled
    page.number_input(key="sweep_seeds").set_value(10)
    page.text_input(key="sweep_values").set_value("0, 0.1, 0.2, 0.3, 0.4").run()
    assert "a sweep queues at most 40 runs: 5 values × 10 seeds make 50" in page.error[0].value
    page.selectbox(key="sweep_param").set_value("train_size").run()  # its example values replace the dropout ones
    page.text_input(key="sweep_values").set_value("1000, 9000").run()  # kmnist-mini keeps 5,400 after validation
    assert "Training images must be at most 5400 for this data" in page.error[0].value
    assert not any(box.proto.has_min or box.proto.has_max for box in page.number_input)  # the core names limits
    page.number_input(key="sweep_seeds").set_value(0).run()
    assert "must be" in page.error[0].value and page.button(key="start_sweep").disabled
    assert app_home.list_sweeps() == [] and app_home.list_runs() == []


def test_a_garbage_database_gives_one_message_and_no_form(tmp_path, monkeypatch):
    home = tmp_path / "home"
    use_home(monkeypatch, home, idle_exit=1)
    home.mkdir()
    (home / "runs.sqlite").write_bytes(b"this is not a database, " * 200)
    page = app("pages/sweep.py")
    assert not page.exception
    assert page.error[0].value.startswith("The run store cannot be used:") and "is not a usable run database" in page.error[0].value
    assert not page.button and not page.get("plotly_chart")
