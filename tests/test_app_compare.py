"""Compare page: side-by-side scores, curves, confusion matrices, per-class F1, verdicts
and the most confident mistakes; an empty store offers a quick training instead."""

import numpy as np

from explorer.compare import loss_gap_summary
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
    # underfit has 8 units, combined 512: the caption counts what the picture shows
    assert sorted(c for c in captions if "first-layer units" in c) == [
        "16 strongest first-layer units, as 28×28 pixel weights", "8 strongest first-layer units, as 28×28 pixel weights"]
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


def test_the_top_two_are_ranked_only_when_the_gap_is_unlikely_to_be_the_test_images_luck():
    from explorer.compare import ranking_sentence
    from kmnist_core.status import Status
    from kmnist_core.store import Run

    y = np.repeat(np.arange(10), 20)
    def run(run_id, right):  # right: how many of the 200 images it reads correctly
        proba = np.full((200, 10), 0.01)
        predicted = np.where(np.arange(200) < right, y, (y + 1) % 10)
        proba[np.arange(200), predicted] = 0.91
        return Run(run_id, f"r{run_id}", "overfit", Status.COMPLETED, {}, 0.0,
                   metrics={"test": {"accuracy": right / 200}}), proba
    (a, pa), (b, pb), (c, pc) = run(1, 180), run(2, 178), run(3, 120)
    arrays = {1: pa, 2: pb, 3: pc}
    assert "within noise: 1.0 points apart" in ranking_sentence(y, [a, b], arrays.get)
    assert ranking_sentence(y, [a, c], arrays.get).startswith("Most accurate: #1 r1, 30.0 points above #3 r3")
    a.config.update(variant="overfit", seed=1)  # the same settings as c but the seed
    c.config.update(variant="overfit", seed=2)
    seeds_only = ranking_sentence(y, [a, c], arrays.get)
    assert "differ only in their seed: that gap is the luck of training" in seeds_only
    assert "unlikely to be" not in seeds_only
    b.config.update(variant="overfit", seed=3)  # a gap within noise stays "within noise", never "most accurate"
    assert "within noise: 1.0 points apart" in ranking_sentence(y, [a, b], arrays.get)


def _run(run_id, variant, gap=0.3, verdict="good fit", study=None, sweep=None, name=None, accuracy=0.9,
         test_loss=0.4, train=(0.01, 1.0), **changes):
    """A finished run as the store returns it, no training: its variant's preset with
    ``changes``, and the figures the conclusions read."""
    from kmnist_core.config import make_config
    from kmnist_core.status import Status
    from kmnist_core.store import Run

    run = Run(run_id, name or variant, variant, Status.COMPLETED, make_config(variant, **changes).to_dict(), 0.0,
              data_source="kmnist-mini", sweep_id=sweep,
              metrics={"test": {"accuracy": accuracy, "log_loss": test_loss},
                       "train": {"log_loss": train[0], "accuracy": train[1]},
                       "fit": {"loss_gap": gap, "verdict": verdict}})
    run.study_id = study  # a field of Run once studies are stored; set here so this reads on any version
    return run


QUICK = dict(train_size=3000, epochs=30)


def test_the_gap_summary_credits_regularization_and_describes_underfitting_by_its_train_loss():
    """Underfit was left out ("a small gap from fitting nothing well") while its gap (0.44)
    equalled dropout's, which was credited with a cut: it is described like the others,
    its small gap explained by its high train loss."""
    runs = [_run(1, "underfit", 0.44, "underfitting", train=(0.952, 0.72), **QUICK),
            _run(2, "overfit", 0.76, "overfitting", **QUICK), _run(3, "dropout", 0.46, **QUICK)]
    summary = loss_gap_summary(runs)
    assert summary.startswith("Held-out − train loss gap (smaller = less memorising): overfit 0.76; dropout cut it "
                              "to 0.46; underfit 0.44, small only because it underfits: it fits even its training "
                              "images badly (train loss 0.95, train accuracy 72.0%)")
    assert "Not counted" not in summary
    regularized = [_run(8, "l1l2", 0.56, **QUICK), _run(9, "dropout", 0.46, **QUICK)]
    assert loss_gap_summary(regularized) == (
        "Held-out − train loss gap (smaller = less memorising): dropout 0.46, l1l2 0.56. None of these runs is "
        "unregularized, so none is a baseline to measure a cut from.")


def test_conclusions_are_drawn_only_across_comparable_runs():
    """Seen in Chromium: a sweep's 10-epoch overfit stood in for the study's 30-epoch one, and
    the gap sentence read "dropout … kept it at 0.46; l1l2 … raised it to 0.56": the
    opposite of the study's lesson."""
    from explorer.compare import comparable_groups, not_comparable_reason, set_apart_sentence

    study = [_run(2, "overfit", 0.76, "overfitting", study=1, **QUICK), _run(3, "dropout", 0.46, study=1, **QUICK),
             _run(4, "l1l2", 0.56, study=1, **QUICK)]
    sweep = _run(11, "overfit", 0.40, study=2, sweep=1, name="overfit · epochs 10 · dropout 0", epochs=10)
    small = _run(12, "overfit", 0.9, "overfitting", train_size=1000, epochs=30)
    picked = study + [sweep, small]
    assert [[run.id for run in group] for group in comparable_groups(picked)] == [[2, 3, 4], [12], [11]]
    summary = loss_gap_summary(picked)
    assert summary == ("Held-out − train loss gap (smaller = less memorising): overfit 0.76; dropout cut it to 0.46; "
                       "l1l2 cut it to 0.56.")
    assert not_comparable_reason(sweep, study[0]) == "all training images vs 3,000, 10 epochs vs 30, another study"
    assert not_comparable_reason(small, study[0]) == "1,000 training images vs 3,000, another study"
    assert set_apart_sentence(picked) == (
        "Left out of these conclusions, not comparable with #2 overfit: #12 overfit (1,000 training images vs 3,000, "
        "another study); #11 overfit · epochs 10 · dropout 0 (all training images vs 3,000, 10 epochs vs 30, another "
        "study). They stay in the "
        "tables and charts below.")
    assert set_apart_sentence(study) == ""
    # runs stored before studies: their settings decide; a study's own runs may differ by design
    assert not_comparable_reason(_run(5, "overfit", epochs=10), _run(6, "overfit")) == "10 epochs vs 30"
    assert not_comparable_reason(_run(7, "underfit", study=3), _run(8, "overfit", study=3)) == ""


def test_the_ranking_is_drawn_only_across_comparable_runs():
    from explorer.compare import ranking_sentence

    y = np.repeat(np.arange(10), 20)
    proba = {1: np.eye(10)[y], 2: np.eye(10)[(y + (np.arange(200) >= 150)) % 10]}
    study, other = _run(1, "overfit", accuracy=1.0, study=1), _run(2, "dropout", accuracy=0.75, study=1)
    sweep = _run(3, "overfit", accuracy=1.0, study=2, sweep=1, epochs=10)
    assert ranking_sentence(y, [study, other, sweep], proba.get).startswith("Most accurate: #1 overfit, 25.0 points "
                                                                            "above #2 dropout")


def test_with_seeds_each_conclusion_shows_its_spread_and_says_when_seeds_cannot_tell():
    from explorer.compare import ranking_sentence

    overfit = [_run(i, "overfit", gap, "overfitting", name=f"overfit · seed {i}", seed=i, accuracy=acc)
               for i, gap, acc in ((1, 0.60, 0.895), (2, 0.66, 0.892))]
    dropout = [_run(i, "dropout", gap, name=f"dropout · seed {i}", seed=i, accuracy=acc)
               for i, gap, acc in ((3, 0.34, 0.906), (4, 0.38, 0.904))]
    l1l2 = [_run(i, "l1l2", gap, name=f"l1l2 · seed {i}", seed=i, accuracy=acc)
            for i, gap, acc in ((5, 0.58, 0.880), (6, 0.70, 0.920))]
    summary = loss_gap_summary(overfit + dropout + l1l2)
    assert summary == ("Held-out − train loss gap (smaller = less memorising): overfit ×2 seeds 0.63 ± 0.04; "
                       "dropout ×2 seeds cut it to 0.36 ± 0.03; l1l2 ×2 seeds 0.64 ± 0.08, within the seeds' spread "
                       "of overfit ×2 seeds: these seeds cannot tell the two apart.")
    never_asked = {}.get  # two settings with seeds are ranked on their means, not on one pair of runs
    assert ranking_sentence(None, overfit + dropout, never_asked) == (
        "Most accurate: dropout ×2 seeds 90.5 ± 0.1% and overfit ×2 seeds 89.3 ± 0.2% (test accuracy, mean ± std "
        "over seeds): 1.2 points apart, more than their seeds' spread (0.2).")
    assert ranking_sentence(None, dropout + l1l2, never_asked) == (
        "dropout ×2 seeds 90.5 ± 0.1% and l1l2 ×2 seeds 90.0 ± 2.8% (test accuracy, mean ± std over seeds) are 0.5 "
        "points apart, less than their seeds' spread (2.8): these seeds cannot tell the two apart. Do not rank "
        "them; more seeds would tell.")


def test_a_lowest_loss_that_is_not_the_most_accurate_is_explained():
    from explorer.compare import loss_accuracy_sentence

    overfit = _run(1, "overfit", accuracy=0.896, test_loss=0.62)
    dropout = _run(2, "dropout", accuracy=0.889, test_loss=0.41)
    text = loss_accuracy_sentence([overfit, dropout])
    assert text.startswith("dropout has the lowest test loss (0.410 vs 0.620) but overfit is the more accurate "
                           "(89.6% vs 88.9%).")
    assert "over-confident" in text
    assert loss_accuracy_sentence([overfit, _run(3, "dropout", accuracy=0.91, test_loss=0.41)]) == ""


def test_the_default_picks_each_variants_run_closest_to_its_preset():
    """Seen in Chromium: the newest "dropout" run was a learning-rate-1e-9 experiment and the
    newest "overfit" a 3-epoch sweep run; each pushed the variant's plain run out."""
    from explorer.compare import default_selection

    runs = [_run(1, "overfit"), _run(2, "dropout"), _run(3, "dropout", learning_rate=1e-9, epochs=2),
            _run(4, "overfit", dropout=0.5, epochs=3, train_size=3000), _run(5, "overfit", seed=7)]
    assert default_selection(runs) == [5, 2]  # overfit: the newest plain one (another seed is no change)


def test_the_default_picks_are_the_newest_complete_study_never_a_sweeps_runs():
    """Seen in Chromium: after a Quick study and a sweep, the sweep's 10-epoch overfit (#11)
    replaced the study's 30-epoch overfit (#2) in the default picks."""
    from explorer.compare import default_selection
    from kmnist_core.status import Status

    quick = [_run(i, variant, study=1, **QUICK) for i, variant in
             enumerate(("final", "underfit", "overfit", "dropout", "l1l2", "combined"), start=1)]
    sweep = [_run(i, "overfit", study=2, sweep=1, epochs=10, dropout=d) for i, d in ((11, 0.0), (12, 0.3))]
    assert default_selection(quick + sweep) == [2, 3, 4, 5, 6, 1]
    unfinished = [_run(21, "overfit", study=3), _run(22, "dropout", study=3)]
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
