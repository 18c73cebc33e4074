"""What the Compare page shows, as plain data: which runs it opens on, their scores and
settings side by side (what differs highlighted), and the most confident mistakes. The
conclusions drawn from them are ``kmnist_core.conclusions``."""

import numpy as np

from kmnist_core.classes import CLASSES, NUM_CLASSES
from kmnist_core.conclusions import only_seed_differs, regularization, run_label, settings_groups
from kmnist_core.config import LABELS, STUDY_ORDER, config_from_dict, differences
from kmnist_core.labs import first_layer_stats  # noqa: F401 (the pages read it from here)
from kmnist_core.study import run_times, whole_seconds

MAX_RUNS = 6
SURE_AND_WRONG = 0.95  # a mistake made with at least this confidence gets a note
SETTINGS = ("family", "hidden_units", "dropout", "input_dropout", "l1", "l2", "epochs", "batch_size",
            "learning_rate", "train_size", "patience", "augment", "optimizer", "schedule", "label_smoothing",
            "ema", "full_train", "seed")


def scored(run) -> bool:
    """A run with test scores: completed, or stopped after at least one epoch."""
    return bool(run.metrics and "test" in run.metrics)


def most_accurate(runs):
    """The run a newcomer should ask first on Draw: the best test accuracy (newest on a tie),
    not simply the newest, which may be an underfit or a stopped run."""
    return max(runs, key=lambda run: ((run.metrics or {}).get("test", {}).get("accuracy", -1.0), run.id))


def default_selection(runs, limit=MAX_RUNS) -> list:
    """The runs Compare opens on, from every stored run (any status): the newest complete
    study (all its runs finished, two or more scored), in study order; without studies,
    one scored run per variant, the one closest to its preset (fewest changed settings, the
    seed aside), the newest among equals. A sweep's runs stay on the Sweep page: a 10-epoch
    sweep run once replaced the study's 30-epoch overfit and turned the gap sentence upside down."""
    runs = list(runs)
    study = newest_complete_study(runs)
    if study:
        return [run.id for run in sorted(study, key=_study_position)][:limit]
    candidates = [run for run in runs if scored(run) and run.sweep_id is None]
    if len(candidates) < 2:
        candidates = list(filter(scored, runs))
    closest = {}
    for run in candidates:
        changed = sum(name != "seed" for name, _, _ in differences(config_from_dict(run.config)))
        if run.variant not in closest or (changed, -run.id) < closest[run.variant][0]:
            closest[run.variant] = ((changed, -run.id), run)
    return [run.id for _, run in sorted(closest.values(), key=lambda pair: _study_position(pair[1]))][:limit]


def newest_complete_study(runs) -> list:
    """The scored runs of the newest study (not a sweep) whose runs have all finished, or []
    (runs stored before studies have no ``study_id``)."""
    studies = {}
    for run in runs:
        study = run.study_id
        if study is not None and run.sweep_id is None:
            studies.setdefault(study, []).append(run)
    for study in sorted(studies, reverse=True):
        members = studies[study]
        done = [run for run in members if scored(run)]
        if all(run.finished for run in members) and len(done) >= 2:
            return done
    return []


def _study_position(run) -> tuple:
    """underfit → final, then the other variants, each by id."""
    order = STUDY_ORDER.index(run.variant) if run.variant in STUDY_ORDER else len(STUDY_ORDER)
    return order, run.variant, run.id


def table_rows(runs) -> list:
    """One row per run for the side-by-side scores table (kept narrow: settings are apart)."""
    rows = []
    for run in runs:
        metrics, test = run.metrics, run.metrics["test"]
        row = {
            "run": run_label(run), "test acc %": 100 * test["accuracy"], "macro F1": test["macro_f1"],
            "kappa": test["kappa"], "test loss": test["log_loss"],
            "held-out − train loss": metrics["fit"]["loss_gap"],
            "epochs": metrics.get("epochs_done"), "training (s)": whole_seconds(run_times(run)[0]),
            "verdict": metrics["fit"]["verdict"],
        }
        if "cv" in metrics:
            row["k-fold accuracy"] = cv_text(metrics["cv"]["accuracy"])
        rows.append(row)
    return rows


def settings_rows(runs) -> tuple:
    """(rows, differing): one row per run with its settings, and the labels of the
    columns whose values differ between the runs (the page highlights those)."""
    rows = []
    for run in runs:
        config = config_from_dict(run.config).to_dict()
        row = {"run": run_label(run), "variant": run.variant}
        for name in SETTINGS:
            value = config[name]
            row[LABELS[name]] = ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else value
        row["precision"] = (run.runtime or {}).get("precision", "—")
        rows.append(row)
    columns = [column for column in rows[0] if column != "run"] if rows else []
    differing = [column for column in columns if len({str(row[column]) for row in rows}) > 1]
    return rows, differing


def cv_text(summary, percent=True) -> str:
    """'91.2% ± 0.8%' from a {"mean", "std"} summary."""
    if percent:
        return f"{summary['mean']:.1%} ± {summary['std']:.1%}"
    return f"{summary['mean']:.3f} ± {summary['std']:.3f}"


def mistakes(y_test, test_proba, count=8):
    """The most confident wrong test predictions with class names, or None when the stored
    predictions do not belong to this test split (a run trained on other data) or are not
    a probability table at all (a damaged file that still parses)."""
    from kmnist_core.metrics import confident_mistakes  # scikit-learn: not needed to open the Home page

    if test_proba is None or test_proba.shape != (len(y_test), NUM_CLASSES):
        return None
    return [
        dict(m, true_label=CLASSES[m["true"]].label, predicted_label=CLASSES[m["predicted"]].label,
             sure=m["confidence"] >= SURE_AND_WRONG)
        for m in confident_mistakes(y_test, test_proba, count)
    ]


def unregularized(runs):
    """The run to set the others' weights beside: the newest with no dropout and no
    penalty that fits its data (not underfit), or None."""
    plain = [run for run in runs if regularization(run) == 0 and run.variant != "underfit"]
    return max(plain, key=lambda run: run.id) if plain else None


def test_set_label(run) -> str:
    """What a run's test accuracy was measured on, in words."""
    n = run.metrics["test"].get("n") or sum(map(sum, run.metrics["test"]["confusion"]))
    source = run.data_source or "unknown data"
    name = "kmnist-mini" if "kmnist-mini" in source else "tensorflow-datasets KMNIST" if "tensorflow" in source else source
    return f"{name} test split, {n:,} images"


def fixed_and_broken(y_test, proba_a, proba_b, count=8) -> tuple:
    """(fixed, broken): test images A gets wrong and B right, and the reverse, most
    confident first, as dicts with both predictions. B's gains and losses, image by image."""
    predicted_a, predicted_b = proba_a.argmax(axis=1), proba_b.argmax(axis=1)
    right_a, right_b = predicted_a == y_test, predicted_b == y_test

    def pick(mask, proba, predicted):
        indices = np.flatnonzero(mask)
        order = indices[np.argsort(-proba[indices, predicted[indices]], kind="stable")][:count]
        return [{"index": int(i), "true": CLASSES[y_test[i]].label, "a": CLASSES[predicted_a[i]].label,
                 "b": CLASSES[predicted_b[i]].label} for i in order]

    return pick(~right_a & right_b, proba_b, predicted_b), pick(right_a & ~right_b, proba_a, predicted_a)


def seed_groups(runs) -> dict:
    """{label: [runs]} for runs whose settings differ only by their seed (two or more)."""
    return {f"{group[0].variant} ×{len(group)} seeds ({', '.join(f'#{r.id}' for r in group)})": group
            for group in settings_groups(runs) if len(group) >= 2}


def training_luck_note(run_a, run_b, seeds_shown: bool) -> str:
    """What McNemar's test leaves out, for this pair: the luck of training. Two runs that
    differ only in their seed can be told apart at p < 0.05 although no setting differs.
    ``seeds_shown``: the page shows a Seeds section (only runs that differ by seed alone
    make one), so the note points to it or says how to get it."""
    if only_seed_differs(run_a, run_b):
        return ("These two runs differ only in their seed: the same settings, trained twice, with other starting "
                "weights, batch order and dropout. Whatever the p-value, their gap is the luck of training, not "
                "a setting; a gap this size between two settings proves nothing until several seeds of each agree.")
    where = ("the Seeds section below shows the spread of the seeds picked here" if seeds_shown else
             "pick them here with the runs they repeat, and a Seeds section appears below with their spread "
             "(the Train page's seed is under More; a sweep trains several seeds per value)")
    return ("The test covers the luck of the test images, not of training: another seed of either run would land "
            f"somewhat elsewhere. Before crediting a setting with the gap, train a few seeds of each; {where}.")


def l1_spike_note(runs) -> str:
    """Why the curves of a run with an L1 penalty trained by Adam jump now and then (README:
    over 3 seeds; stronger penalties did not remove it), or "" when no such run is shown:
    said where the curves are drawn, so a learner does not read a jump as a fault."""
    shown = [f"#{run.id}" for run in runs if run.config.get("l1") and run.config.get("optimizer") in ("adam", "adamw")]
    if not shown:
        return ""
    who = f"{', '.join(shown)} {'has' if len(shown) == 1 else 'have'}"
    return (f"{who} an L1 penalty and the Adam optimizer: expect the curves to jump for an epoch or two now and "
            "then (the near-zero share collapses and regrows, ‖w‖ and the validation loss bump). Adam divides each "
            "weight's step by the size of its recent gradients, so the L1 pull — tiny, but the same however small "
            "the weight — can move a weight by up to the learning rate in one step, about the width of the "
            "near-zero band. Weights held near zero jitter across it instead of resting at zero, and now and then "
            "many are thrown out together before the penalty pulls them back. It is the optimizer, not a fault or "
            "overfitting: read the curves over several epochs, not at one point.")
