"""Compare page: side-by-side scores, curves, confusion matrices, per-class F1, verdicts
and the most confident mistakes; an empty store offers a quick training instead."""

import numpy as np
from test_conclusions import QUICK, finished_run

from explorer.jobs import QUICK_NAME, QUICK_RUN

from app_support import app, app_home, app_runs, no_worker, texts, trained_home  # noqa: F401


def test_without_runs_it_offers_a_quick_training(app_home, monkeypatch):
    no_worker(monkeypatch)
    page = app("pages/compare.py")
    assert "at least two trained runs" in page.info[0].value
    page.button(key="quick_train").click().run()
    [run] = app_home.list_runs()
    assert run.name == QUICK_NAME and run.status == "queued"
    assert run.variant == QUICK_RUN["variant"] and run.config["epochs"] == QUICK_RUN["epochs"]
    assert not page.exception and "Queued, next in line" in texts(page.info)
    # seen in Chromium: "there is 1 so far … start a quick one here" while a run trained
    page.run()
    assert "1 more is training or waiting (below): this page fills in as they finish." in texts(page.info)
    with app_home.training_lock():  # a worker takes it: one Stop, beside its progress bar
        assert app_home.claim_next().id == run.id
        page.run()
        assert [b.key for b in page.button if "stop" in b.key] == [f"stop_{run.id}"]


def test_two_runs_side_by_side(app_runs):
    page = app("pages/compare.py")
    runs = sorted(app_runs.list_runs(), key=lambda r: r.id)  # underfit, combined
    assert page.multiselect[0].value == [r.id for r in runs]
    table = page.dataframe[0].value
    assert list(table["run"]) == [f"#{r.id} {r.name}" for r in runs]
    assert np.allclose(table["test acc %"], [100 * r.metrics["test"]["accuracy"] for r in runs])
    assert list(table["epochs"]) == [1, 2]
    settings = page.dataframe[1].value
    assert list(settings["variant"]) == ["underfit", "combined"] and list(settings["Epochs"]) == [1, 2]
    assert "Highlighted: the settings that differ between these runs — variant, Hidden layer sizes, " \
           "Dropout (hidden layers)" in texts(page.caption)
    assert "cut it to" not in texts(page.text)  # an underfitting run is never credited with a smaller gap
    verdicts = texts(page.warning) + texts(page.success) + texts(page.info)
    assert runs[0].metrics["fit"]["reason"].startswith("Underfitting: train loss")
    assert runs[0].metrics["fit"]["reason"] in verdicts
    # 1 epoch vs 2: no conclusion is drawn across them, and the page says why
    assert "not comparable with" in texts(page.info) and "(1 epoch vs 2)" in texts(page.info)
    # B − A matrix, curves, two confusion matrices, per-class F1, weight curves and histogram, published rows
    assert len(page.get("plotly_chart")) == 8
    captions = [caption for block in page.image for caption in block.captions if "→" in caption]
    assert len(captions) == 2 * 8  # the eight most confident mistakes of each run
    assert all(caption.removesuffix(" (sure, wrong)").endswith("%") for caption in captions)


def test_fewer_than_two_picked_asks_for_more(app_runs):
    page = app("pages/compare.py")
    page.multiselect[0].set_value([app_runs.list_runs()[0].id]).run()
    assert "Pick at least two runs." in texts(page.info)
    assert not page.dataframe


def test_is_the_difference_real_counts_the_images_where_the_runs_disagree(app_runs):
    from kmnist_core.data import load_kmnist

    runs = sorted(app_runs.list_runs(), key=lambda r: r.id)
    y = load_kmnist().y_test
    right = [app_runs.load_array(r.id, "test_proba").argmax(axis=1) == y for r in runs]
    only_0, only_1 = int(np.sum(right[0] & ~right[1])), int(np.sum(right[1] & ~right[0]))
    page = app("pages/compare.py")
    page.selectbox(key="paired_a").set_value(runs[0].id)
    page.selectbox(key="paired_b").set_value(runs[1].id).run()
    sentence = next(t for t in texts(page.text).splitlines() if " is right on " in t)
    assert sentence.startswith(f"#{runs[0].id} {runs[0].name} is right on {only_0:,} image")
    assert f"and wrong on {only_1:,} it gets right: p" in sentence
    assert f"A right and B wrong: {only_0}, B right and A wrong: {only_1}" in texts(page.caption)


def test_weights_section_shows_the_first_layer_per_run(app_runs):
    page = app("pages/compare.py")
    assert not page.exception
    assert "What regularization did to the weights" in texts(page.header)
    captions = [caption for block in page.image for caption in block.captions]
    # underfit has 8 units, combined 512: eight each, four a row, large enough to compare
    assert [c for c in captions if "first-layer units" in c] == ["8 strongest first-layer units, as 28×28 pixel weights"] * 2
    assert sum("of the first layer's" in c.value and "weights have |w| < 0.001" in c.value for c in page.caption) == 2


def test_run_against_run_shows_what_b_fixed_and_broke(app_runs):
    from kmnist_core.data import load_kmnist

    a, b = sorted(app_runs.list_runs(), key=lambda r: r.id)  # underfit, combined
    y = load_kmnist().y_test
    pred_a, pred_b = (app_runs.load_array(r.id, "test_proba").argmax(axis=1) for r in (a, b))
    page = app("pages/compare.py")
    page.selectbox(key="paired_a").set_value(a.id)
    page.selectbox(key="paired_b").set_value(b.id).run()
    fixed, broken = int(np.sum((pred_a != y) & (pred_b == y))), int(np.sum((pred_a == y) & (pred_b != y)))
    headings = texts(page.markdown)
    assert f"Fixed by B: A wrong, B right ({fixed} in all)" in headings
    assert f"Broken by B: A right, B wrong ({broken} in all)" in headings
    difference = next(c for c in page.get("plotly_chart") if c.proto.id and "confusion_difference" in c.proto.id)
    assert difference is not None


def test_the_weight_curves_jumps_are_explained_for_the_l1_runs_only(app_runs):
    """Issue 22: L1/L2's near-zero share fell from 26% to 7% at epoch 20 and came back, with
    no word of why (Adam + L1), beside the curves."""
    page = app("pages/compare.py")
    runs = app_runs.list_runs()
    [with_l1] = [run for run in runs if run.config["l1"]]  # combined; underfit has no L1 penalty
    [note] = [c.value for c in page.caption if "an L1 penalty and the Adam optimizer" in c.value]
    assert note.startswith(f"#{with_l1.id} has an L1 penalty")  # the run without one is not named


def test_published_results_are_labelled_with_their_test_set(app_runs):
    page = app("pages/compare.py")
    assert "full KMNIST test set (10,000 images)" in texts(page.caption)
    assert "never read one as the other's score" in texts(page.caption)


def test_embedding_maps_say_how_tight_each_run_is(app_runs):
    page = app("pages/compare.py")
    page.toggle(key="embedding_on").set_value(True).run()
    assert not page.exception
    assert sum("Silhouette" in c.value for c in page.caption) == 2


def test_runs_that_differ_only_by_seed_are_drawn_as_a_band(app_runs):
    from kmnist_core.config import make_config
    from kmnist_core.worker import drain_queue

    from app_support import data_dir

    for seed in (1, 2):
        app_runs.create_run(make_config("underfit", epochs=1, seed=seed), data_dir=data_dir())
    drain_queue(app_runs)
    page = app("pages/compare.py")
    page.multiselect[0].set_value([run.id for run in app_runs.list_runs()]).run()
    assert "Seeds: the setting vs the luck of the draw" in texts(page.header)
    line = next(t for t in texts(page.text).splitlines() if "mean ± std over 3 seeds" in t)
    assert line.startswith("underfit ×3 seeds")


def test_two_seeds_of_one_setting_are_never_called_a_real_difference_between_settings(app_runs):
    """McNemar's test covers the test images' luck, not training's: two seeds of one
    configuration can differ at p < 0.05. The page must say the gap is the seed's doing."""
    from kmnist_core.config import make_config
    from kmnist_core.worker import drain_queue

    from app_support import data_dir

    underfit = next(run for run in app_runs.list_runs() if run.variant == "underfit")
    twin = app_runs.create_run(make_config("underfit", epochs=1, seed=underfit.config["seed"] + 1),
                               data_dir=data_dir())
    drain_queue(app_runs)
    combined = next(run for run in app_runs.list_runs() if run.variant == "combined")
    page = app("pages/compare.py")
    page.multiselect[0].set_value([underfit.id, twin, combined.id]).run()
    page.selectbox(key="paired_a").set_value(underfit.id)
    page.selectbox(key="paired_b").set_value(twin).run()
    assert any("differ only in their seed" in info.value and "luck of training" in info.value for info in page.info)
    page.selectbox(key="paired_b").set_value(combined.id).run()
    assert not any("differ only in their seed" in info.value for info in page.info)
    assert "The test covers the luck of the test images, not of training" in texts(page.caption)
    assert "the Seeds section below shows the spread" in texts(page.caption)  # underfit's two seeds
    assert "Seeds: the setting vs the luck of the draw" in texts(page.header)


def test_the_note_on_training_luck_points_to_a_seeds_section_only_when_there_is_one(app_runs):
    """Bug (issue 22): "the Seeds section then shows their spread", on a page without one
    (it appears only for runs that differ by seed alone)."""
    page = app("pages/compare.py")
    assert "Seeds: the setting vs the luck of the draw" not in texts(page.header)
    note = next(c.value for c in page.caption if c.value.startswith("The test covers the luck of the test images"))
    assert "Seeds section below" not in note and "a Seeds section appears below" in note


def test_the_default_picks_each_variants_run_closest_to_its_preset():
    """Seen in Chromium: the newest "dropout" run was a learning-rate-1e-9 experiment and the
    newest "overfit" a 3-epoch sweep run; each pushed the variant's plain run out."""
    from explorer.compare import default_selection

    runs = [finished_run(1, "overfit"), finished_run(2, "dropout"), finished_run(3, "dropout", learning_rate=1e-9, epochs=2),
            finished_run(4, "overfit", dropout=0.5, epochs=3, train_size=3000), finished_run(5, "overfit", seed=7)]
    assert default_selection(runs) == [5, 2]  # overfit: the newest plain one (another seed is no change)


def test_the_default_picks_are_the_newest_complete_study_never_a_sweeps_runs():
    """Seen in Chromium: after a Quick study and a sweep, the sweep's 10-epoch overfit (#11)
    replaced the study's 30-epoch overfit (#2) in the default picks."""
    from explorer.compare import default_selection
    from kmnist_core.status import Status

    quick = [finished_run(i, variant, study=1, **QUICK) for i, variant in
             enumerate(("final", "underfit", "overfit", "dropout", "l1l2", "combined"), start=1)]
    sweep = [finished_run(i, "overfit", study=2, sweep=1, epochs=10, dropout=d) for i, d in ((11, 0.0), (12, 0.3))]
    assert default_selection(quick + sweep) == [2, 3, 4, 5, 6, 1]
    unfinished = [finished_run(21, "overfit", study=3), finished_run(22, "dropout", study=3)]
    unfinished[1].status = Status.RUNNING
    assert default_selection(quick + sweep + unfinished) == [2, 3, 4, 5, 6, 1]  # study 3 is not complete yet
    for run in quick:
        run.study_id = None  # stored before studies: the closest to its preset, sweeps left out
    assert default_selection(quick + sweep) == [2, 3, 4, 5, 6, 1]


def test_the_chosen_runs_survive_a_new_run_finishing_elsewhere(app_runs):
    from kmnist_core.config import make_config
    from kmnist_core.worker import drain_queue

    from app_support import data_dir

    page = app("pages/compare.py")
    first, second = sorted(run.id for run in app_runs.list_runs())
    page.multiselect[0].set_value([second, first]).run()
    app_runs.create_run(make_config("underfit", epochs=1, seed=5), data_dir=data_dir())
    drain_queue(app_runs)  # a third scored run: the picker's options change
    page.run()
    assert page.multiselect[0].value == [second, first]


def test_the_chosen_runs_survive_a_new_study_finishing_while_on_another_page(app_runs):
    """Seen in Chromium: hand-picked runs, a lab finishing in the background, Draw and back:
    Compare had replaced the picks with the new study's runs."""
    from kmnist_core.config import make_config
    from kmnist_core.study import enqueue_study
    from kmnist_core.worker import drain_queue

    from app_support import data_dir

    page = app("pages/compare.py")
    first, second = sorted(run.id for run in app_runs.list_runs())
    page.multiselect[0].set_value([second, first]).run()
    page.switch_page("pages/draw.py")
    page.run()
    enqueue_study(app_runs, "custom", "Later", "a newer study", [make_config("underfit", epochs=1, seed=s)
                                                                for s in (7, 8)], data_dir=data_dir())
    drain_queue(app_runs)
    page.switch_page("pages/compare.py")
    page.run()
    assert not page.exception
    assert page.multiselect[0].value == [second, first]


def test_every_change_to_the_picked_runs_sticks(app_runs):
    """Seen in Chromium: every second change of the picked runs was undone (the picker's
    default followed the last choice, which gave the widget a new identity each time)."""
    page = app("pages/compare.py")
    first, second = sorted(run.id for run in app_runs.list_runs())
    page.multiselect[0].set_value([second]).run()
    page.multiselect[0].set_value([second, first]).run()
    assert page.multiselect[0].value == [second, first]
    page.multiselect[0].set_value([first]).run()
    assert page.multiselect[0].value == [first] and "Pick at least two runs." in texts(page.info)
