"""Guided labs: a question, the learner's prediction, a few runs that answer it, and the
answer computed from those runs, with their numbers.

A lab is data (``LABS``): its question and the predictions a learner picks from before
anything trains, its *arms* (the settings compared, each a variant preset plus changes,
trained with ``seeds`` seeds on ``SHARED`` images and epochs), the one view that answers
(``view``, drawn by the app) and a function that reads the finished runs. That function
never assumes the textbook outcome: it says which prediction the runs support, whether
the expected effect showed, and when it did not, why that can happen.

Sizes were measured on kmnist-mini with 2 cores (benchmarks/labs.py, click to last run, on a
host shared with other work: load average 8-27): capacity 48 s, dropout 109 s, L1 vs L2 115 s,
more data 109 s, early stopping 105 s, is it real 162 s. One overfit run of the shared size
(3,000 images, 30 epochs) takes 13 s on the idle host.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .checks import check_choice
from .config import config_from_dict, make_config
from .significance import ALPHA, format_p, mcnemar, seed_summary
from .status import Status
from .sweep import mean_std_text
from .verdict import UNDERFIT_TRAIN_ACCURACY, curve_rise, loss_accuracy_disagreement

SHARED = dict(train_size=3000, epochs=30)  # the quick study's size: over- and underfitting both show
CLEAR_CHANGE = 0.10  # a mean that moved less than 10% (with one seed) is not called a change
ACCURACY_POINT = 0.005  # half a point of accuracy: less is "barely moved"
WAITING, SHOWN, NOT_SHOWN = "waiting", "shown", "not shown"


@dataclass(frozen=True)
class Arm:
    """One setting a lab compares: a preset and what the lab changes in it."""

    label: str
    variant: str
    overrides: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    """What the learner's runs say. ``status``: WAITING (an arm has no finished run yet),
    SHOWN (the expected effect is there) or NOT_SHOWN. ``supported``: the prediction the
    runs support (one of the lab's ``choices``), or None while waiting. ``caveat``: why
    the expected effect can fail to show, when it did not."""

    status: str
    text: str
    supported: str | None = None
    caveat: str | None = None


@dataclass(frozen=True)
class Lab:
    id: str
    title: str
    question: str
    choices: tuple  # the predictions offered, plain sentences
    arms: tuple
    read: Callable  # (lab, {arm label: [finished runs]}, evidence) -> Answer
    view: str  # the chart that answers: "curves", "weights", "learning_curve", "seeds"
    next_steps: str
    seeds: int = 1
    shared: dict = field(default_factory=lambda: dict(SHARED))

    def configs(self) -> list:
        """[(validated config, run name)] in queue order: every arm with the first seed, then
        every arm with the next, so the comparison shows before the spread fills in."""
        return [(self.config(arm, seed), arm.label if self.seeds == 1 else f"{arm.label} · seed {seed}")
                for seed in range(self.seeds) for arm in self.arms]

    def config(self, arm: Arm, seed=0):
        return make_config(arm.variant, **{**self.shared, **arm.overrides, "seed": seed})


def check_prediction(lab: Lab, prediction) -> str:
    """The learner's prediction, which must be one of the lab's choices (asked before any run starts)."""
    return check_choice("prediction", prediction, lab.choices)


def study_name(lab: Lab) -> str:
    return f"Lab: {lab.title}"


def enqueue_lab(store, lab: Lab, prediction, data_dir=None, data_source=None, owner=None) -> tuple:
    """Store the lab as a study with the learner's prediction and queue its runs (named by
    arm and seed), in one transaction; (study id, run ids)."""
    study_id = store.create_study("lab", study_name(lab), lab.question, lab.configs(), data_dir=data_dir,
                                  data_source=data_source, owner=owner, lab=lab.id,
                                  prediction=check_prediction(lab, prediction))
    return study_id, [run.id for run in store.study_runs(study_id)]


def _settings_key(config: dict) -> str:
    values = config_from_dict(config).to_dict()
    values.pop("seed")
    return json.dumps(values, sort_keys=True)


def group_runs(lab: Lab, runs) -> dict:
    """{arm label: [its completed, scored runs]}, matched by settings (not by name, which
    the learner may change); runs of no arm are left out."""
    arms = {_settings_key(lab.config(arm).to_dict()): arm.label for arm in lab.arms}
    groups: dict[str, list] = {arm.label: [] for arm in lab.arms}
    for run in runs:
        if run.status == Status.COMPLETED and "test" in (run.metrics or {}):
            label = arms.get(_settings_key(run.config))
            if label is not None:
                groups[label].append(run)
    return groups


def answer(lab: Lab, runs, evidence=None) -> Answer:
    """The lab's answer from ``runs`` (its study's runs). ``evidence``: (test labels, a
    function run id -> stored test probabilities or None), for labs that pair predictions
    image by image (McNemar); without it they answer from the scores alone."""
    groups = group_runs(lab, runs)
    missing = [label for label, done in groups.items() if not done]
    if missing and runs and all(run.finished for run in runs):
        return Answer(WAITING, f"No completed run of: {', '.join(missing)} (stopped, cancelled or failed), so the "
                               f"question stays open. Start the lab again to answer it.")
    if missing:
        return Answer(WAITING, f"Waiting for a finished run of: {', '.join(missing)}.")
    return lab.read(lab, groups, evidence)


# -- reading runs ------------------------------------------------------------------------------
def rise(run) -> tuple:
    """(how far validation loss ended above its lowest, as a fraction; the epoch of the
    lowest; the lowest); (0, None, None) for a run without validation curves."""
    losses = [record.val_loss for record in run.history]
    grown, lowest_epoch, _ = curve_rise(losses)
    if grown is None:
        return 0.0, None, None
    return grown, lowest_epoch, losses[lowest_epoch - 1]


def _summary(runs, value) -> dict:
    return seed_summary([value(run) for run in runs])


def _spread(summary, spec=".3f") -> str:
    seeds = f" over {summary['n']} seeds" if summary["n"] > 1 else " (one seed)"
    return mean_std_text(summary, spec) + seeds


def _percent(summary) -> str:
    """ "85.4% ± 1.3 points over 2 seeds", "85.4% (one seed)"."""
    if summary["std"] is None:
        return f"{summary['mean']:.1%} (one seed)"
    return f"{summary['mean']:.1%} ± {100 * summary['std']:.1f} points over {summary['n']} seeds"


def separated(lower, higher) -> bool:
    """True when every run of ``lower`` is below every run of ``higher`` and the means are
    at least CLEAR_CHANGE apart (relative): the seeds agree and the gap is not a rounding."""
    clear = (min(higher) - max(lower)) > 0
    return clear and (np.mean(higher) - np.mean(lower)) >= CLEAR_CHANGE * abs(np.mean(higher))


def compare_means(a, b) -> str:
    """"lower", "higher" or "same": where ``a``'s values sit against ``b``'s."""
    if separated(a, b):
        return "lower"
    if separated(b, a):
        return "higher"
    return "same"


def _gap(run) -> float:
    return run.metrics["fit"]["loss_gap"]


def _train_accuracy(run) -> float:
    return run.metrics["train"]["accuracy"]


def _val_loss(run) -> float:
    return run.metrics["val"]["log_loss"]


def _val_accuracy(run) -> float:
    return run.metrics["val"]["accuracy"]


def first_layer_stats(run):
    """The last epoch's first-layer weight statistics (``weights.layer_stats``), or None for
    runs trained before they were recorded."""
    recorded = [record.weights for record in run.history if record.weights]
    return recorded[-1][0] if recorded else None


# -- the labs' readings -----------------------------------------------------------------------
def read_capacity(lab, groups, evidence=None) -> Answer:
    small, _, large = (groups[arm.label] for arm in lab.arms)
    names = [arm.label for arm in lab.arms]
    losses = {label: _summary(groups[label], _val_loss)["mean"] for label in names}
    accuracies = {label: _summary(groups[label], _val_accuracy)["mean"] for label in names}
    lowest, runner_up = sorted(names, key=lambda label: losses[label])[:2]
    most_accurate = max(names, key=lambda label: accuracies[label])
    small_fit, large_fit = _summary(small, _train_accuracy), _summary(large, _train_accuracy)
    large_rise, large_best, large_min = rise(large[0])
    underfits = small_fit["mean"] < UNDERFIT_TRAIN_ACCURACY
    memorises = large_fit["mean"] >= UNDERFIT_TRAIN_ACCURACY and large_rise >= CLEAR_CHANGE
    text = (f"{names[0]} fits {small_fit['mean']:.1%} of its own training images, {names[2]} {large_fit['mean']:.1%}. "
            f"The validation loss of {names[2]} ended {large_rise:+.0%} from its best ({large_min:.3f} at epoch "
            f"{large_best}). Validation loss at the end: "
            + ", ".join(f"{label} {losses[label]:.3f}" for label in names)
            + "; validation accuracy: " + ", ".join(f"{label} {accuracies[label]:.1%}" for label in names) + ".")
    # Two final losses this close are one seed's luck: naming a winner would teach noise.
    tied = losses[runner_up] - losses[lowest] < CLEAR_CHANGE * losses[lowest]
    if tied:
        text += (f" {lowest} and {runner_up} end within {CLEAR_CHANGE:.0%} of each other's loss: one seed cannot "
                 f"tell them apart, so no prediction is confirmed.")
    else:
        text += f" Lowest: {lowest}."
    if most_accurate != lowest:
        text += " " + loss_accuracy_disagreement((lowest, losses[lowest], accuracies[lowest]),
                                                 (most_accurate, losses[most_accurate], accuracies[most_accurate]))
    supported = None if tied else lab.choices[names.index(lowest)]
    if underfits and memorises:
        return Answer(SHOWN, text + f" Too little capacity underfits ({names[0]} cannot even fit its training "
                                    f"images); too much memorises ({names[2]}: validation loss turns back up "
                                    f"while it fits every training image).", supported)
    missed = []
    if not underfits:
        missed.append(f"{names[0]} fitted its training images well (at least {UNDERFIT_TRAIN_ACCURACY:.0%}): on "
                      f"{lab.shared['train_size']:,} images and {lab.shared['epochs']} epochs even 8 units can "
                      f"get there, since fewer images are easier to fit")
    if not memorises:
        missed.append(f"the validation loss of {names[2]} rose less than {CLEAR_CHANGE:.0%} from its best: it had not "
                      f"started memorising yet (too few epochs, or a seed that learnt slowly)")
    return Answer(NOT_SHOWN, text, supported, caveat="The expected effect did not show here: " + "; ".join(missed)
                  + ". Train it again with another seed, or more epochs, to see whether it holds.")


def read_dropout(lab, groups, evidence=None) -> Answer:
    plain, dropped = (arm.label for arm in lab.arms)
    base, treated = _summary(groups[plain], _gap), _summary(groups[dropped], _gap)
    where = compare_means([_gap(run) for run in groups[dropped]], [_gap(run) for run in groups[plain]])
    base_acc, treated_acc = (_summary(groups[label], lambda r: r.metrics["val"]["accuracy"]) for label in (plain, dropped))
    text = (f"Held-out − train loss gap: {plain} {_spread(base)}, {dropped} {_spread(treated)}. Validation accuracy: "
            f"{plain} {_percent(base_acc)}, {dropped} {_percent(treated_acc)}.")
    supported = {"lower": lab.choices[0], "same": lab.choices[1], "higher": lab.choices[2]}[where]
    if where == "lower":
        return Answer(SHOWN, text + f" Every {dropped} seed memorised less than every {plain} seed: dropout "
                                    f"keeps any unit from relying on a few others, so the network cannot "
                                    f"store each training image on its own.", supported)
    return Answer(NOT_SHOWN, text, supported, caveat=(
        "The expected cut did not show on these runs: the seeds overlap, or the gap moved less than "
        f"{CLEAR_CHANGE:.0%}. With few epochs the unregularized network has not begun to memorise, so there is "
        "nothing for dropout to prevent; and the luck of a seed can move the gap as much as a setting. More "
        "epochs or another pair of seeds would tell."))


def read_penalties(lab, groups, evidence=None) -> Answer:
    plain, l1, l2 = (arm.label for arm in lab.arms)
    stats = {label: first_layer_stats(groups[label][0]) for label in (plain, l1, l2)}
    if any(value is None for value in stats.values()):
        return Answer(WAITING, "These runs recorded no weight statistics; train the lab again.")
    share = {label: value["near_zero"] for label, value in stats.items()}
    norm = {label: value["l2_norm"] for label, value in stats.items()}
    text = ("First layer, share of weights with |w| < 0.001: " + ", ".join(f"{k} {v:.1%}" for k, v in share.items())
            + "; its ‖w‖: " + ", ".join(f"{k} {v:.3g}" for k, v in norm.items()) + ".")
    l1_sparse = share[l1] >= 2 * share[l2] and share[l1] - share[plain] >= 0.05
    l2_sparse = share[l2] >= 2 * share[l1] and share[l2] - share[plain] >= 0.05
    supported = lab.choices[0] if l1_sparse else lab.choices[1] if l2_sparse else lab.choices[2]
    l2_shrinks = norm[l2] <= (1 - CLEAR_CHANGE) * norm[plain]
    if l1_sparse and l2_shrinks:
        return Answer(SHOWN, text + " L1 pays the same for every bit of weight, so it is cheapest to set the "
                                    "weights of pixels no character inks to zero: a sparse layer. L2 pays for the "
                                    "square, so it shrinks every weight a little and few reach zero.",
                      supported)
    return Answer(NOT_SHOWN, text, supported, caveat=(
        "The textbook split (L1 sparse, L2 small) did not show clearly here. With Adam, weights under an L1 "
        "penalty hover around zero rather than sit on it, and a penalty too weak for the epochs trained leaves "
        "the layer close to its random start. A stronger penalty (L1 1e-3) or more epochs would show it."))


def read_data_or_dropout(lab, groups, evidence=None) -> Answer:
    sizes = [arm for arm in lab.arms if arm.variant == "overfit"]
    dropped = next(arm for arm in lab.arms if arm.variant != "overfit")
    gaps = {arm.label: _summary(groups[arm.label], _gap)["mean"] for arm in lab.arms}
    accuracy = {arm.label: _summary(groups[arm.label], lambda r: r.metrics["val"]["accuracy"])["mean"]
                for arm in lab.arms}
    fewest, most = sizes[0].label, sizes[-1].label
    text = ("Held-out − train loss gap: " + ", ".join(f"{label} {gap:.3f}" for label, gap in gaps.items())
            + ". Validation accuracy: " + ", ".join(f"{label} {value:.1%}" for label, value in accuracy.items()) + ".")
    where = compare_means([gaps[most]], [gaps[dropped.label]])
    supported = {"lower": lab.choices[0], "higher": lab.choices[1], "same": lab.choices[2]}[where]
    if gaps[most] <= (1 - CLEAR_CHANGE) * gaps[fewest]:
        return Answer(SHOWN, text + f" More images shrank the gap ({fewest} {gaps[fewest]:.3f} → {most} "
                                    f"{gaps[most]:.3f}): with more to remember, memorising each image pays off less. "
                                    f"Data also adds what regularization cannot: examples of shapes the model has "
                                    f"not seen (compare the validation accuracies).", supported)
    return Answer(NOT_SHOWN, text, supported, caveat=(
        f"More images did not shrink the gap here. A dense network this large can memorise {most} as easily as "
        f"{fewest} within {lab.shared['epochs']} epochs; the gap then measures over-confidence more than data. "
        "Another seed, or a learning curve with more sizes on the Sweep page (parameter: training images), "
        "would show the trend better."))


def read_early_stopping(lab, groups, evidence=None) -> Answer:
    full, early = (arm.label for arm in lab.arms)
    loss = {label: [r.metrics["test"]["log_loss"] for r in groups[label]] for label in (full, early)}
    accuracy = {label: _summary(groups[label], lambda r: r.metrics["test"]["accuracy"]) for label in (full, early)}
    stopped = [r.metrics.get("epochs_done") for r in groups[early]]
    best = [r.metrics.get("best_epoch") for r in groups[early]]
    where = compare_means(loss[early], loss[full])
    text = (f"Test loss: {full} {_spread(seed_summary(loss[full]))}, {early} {_spread(seed_summary(loss[early]))}. "
            f"Test accuracy: {full} {_percent(accuracy[full])}, {early} {_percent(accuracy[early])}. Early stopping "
            f"ended after {', '.join(map(str, stopped))} of {lab.shared['epochs']} epochs and kept epoch "
            f"{', '.join(str(b) for b in best)}.")
    supported = {"lower": lab.choices[0], "higher": lab.choices[1], "same": lab.choices[2]}[where]
    if where == "lower":
        return Answer(SHOWN, text + " Early stopping kept the weights from before the network grew over-confident: "
                                    "its loss is lower, for a fraction of the training time. "
                                    + _accuracy_story(accuracy[early]["mean"] - accuracy[full]["mean"], full), supported)
    return Answer(NOT_SHOWN, text, supported, caveat=(
        "Early stopping did not give a clearly lower test loss here. If validation loss was still falling "
        "near the end there was nothing to stop; a patience too short can stop at a noisy bump before the best "
        "epoch. Look at the curves: where does validation loss turn up?"))


def _accuracy_story(points, full) -> str:
    """What accuracy says beside the loss (early stopping minus the full run, as a fraction)."""
    if points <= -ACCURACY_POINT:
        return (f"Accuracy tells another story: {full} reads {-100 * points:.1f} points more test images right. "
                f"The extra epochs still sharpened which class wins, while making the network sure of its "
                f"mistakes too: loss punishes a confident wrong answer hard, accuracy counts it once. If you act "
                f"on the model's probabilities, trust the early stop; if only the top answer counts, it cost a "
                f"little.")
    if points >= ACCURACY_POINT:
        return f"It is also {100 * points:.1f} points more accurate."
    return ("Accuracy barely moved: the long run mostly grew surer of the answers it already had, right or "
            "wrong, which loss punishes and accuracy does not count.")


def read_is_it_real(lab, groups, evidence=None) -> Answer:
    plain, tweaked = (arm.label for arm in lab.arms)
    accuracy = {label: [r.metrics["test"]["accuracy"] for r in groups[label]] for label in (plain, tweaked)}
    summaries = {label: seed_summary(values) for label, values in accuracy.items()}
    first = {label: groups[label][0] for label in (plain, tweaked)}
    single = accuracy[tweaked][0] - accuracy[plain][0]
    text = (f"One seed each: {tweaked} {single * 100:+.1f} points against {plain}. Over all seeds: {plain} "
            f"{_percent(summaries[plain])}, {tweaked} {_percent(summaries[tweaked])}.")
    paired = _paired_text(evidence, first[plain], first[tweaked], groups[plain])
    if paired:
        text += " " + paired
    spread = max(summaries[plain]["std"] or 0.0, summaries[tweaked]["std"] or 0.0)
    real = (min(accuracy[tweaked]) > max(accuracy[plain]) or min(accuracy[plain]) > max(accuracy[tweaked])) \
        and abs(summaries[tweaked]["mean"] - summaries[plain]["mean"]) > 2 * spread
    if len(accuracy[plain]) < 2 or len(accuracy[tweaked]) < 2:
        return Answer(WAITING, text + " The spread needs a second seed of each.")
    if not real:
        return Answer(SHOWN, text + f" The seeds of one setting spread as widely ({spread * 100:.1f} points std) as "
                                    f"the two settings differ: the single-seed gap was the luck of training, not "
                                    f"the setting.", lab.choices[1])
    return Answer(NOT_SHOWN, text + " Every seed of one setting beat every seed of the other, by more than twice "
                                    "their spread.", lab.choices[0], caveat=(
        "The tweak looked like noise in the runs this lab was sized on, but here it held on every seed: it may be "
        "real for these settings. Three seeds are still few; more seeds (a sweep with 5) would make sure."))


def _paired_text(evidence, run_a, run_b, same_setting) -> str:
    """McNemar on the two settings' first seeds, and on two seeds of one setting: the test
    covers the luck of the test images, not of training."""
    if evidence is None or len(same_setting) < 2:
        return ""
    y_test, load_proba = evidence
    parts = []
    for a, b, what in ((run_a, run_b, "the two settings' first seeds"),
                       (same_setting[0], same_setting[1], "two seeds of the same setting")):
        proba_a, proba_b = load_proba(a.id), load_proba(b.id)
        if proba_a is None or proba_b is None or len(proba_a) != len(y_test) or len(proba_b) != len(y_test):
            return ""
        result = mcnemar(y_test, proba_a.argmax(axis=1), proba_b.argmax(axis=1))
        verdict = "unlikely to be the test images' luck" if result["p_value"] < ALPHA else "within the test images' luck"
        parts.append(f"{what}: {format_p(result['p_value'])} ({verdict})")
    return "McNemar's test, " + "; ".join(parts) + "."


LABS = {lab.id: lab for lab in (
    Lab("capacity", "Capacity: underfit vs overfit",
        "Three networks — 8 units, 64 units, and two layers of 512 — trained alike. Which ends with the lowest "
        "validation loss?",
        ("8 units: it is too small to memorise", "64 units: big enough to fit, too small to memorise",
         "2 × 512 units: more capacity always helps"),
        (Arm("8 units", "underfit", {"hidden_units": (8,)}), Arm("64 units", "overfit", {"hidden_units": (64,)}),
         Arm("2 × 512 units", "overfit")),
        read_capacity, "curves",
        "Try the Sweep page over Hidden layer sizes (64; 256; 1024) to see the whole curve; or the dropout lab: "
        "can regularization let the big network keep its capacity without memorising?"),
    Lab("dropout", "Dropout", "The large network memorises its training images. Does dropout (50% of hidden units "
        "and 30% of pixels switched off at random on every step) cut the held-out − train loss gap?",
        ("Yes: a smaller gap", "No clear change", "No: a larger gap"),
        (Arm("no dropout", "overfit"), Arm("dropout", "dropout")),
        read_dropout, "curves",
        "Sweep dropout (0, 0.2, 0.4, 0.6) with 2 seeds to find where it starts to cost accuracy.", seeds=2),
    Lab("penalties", "L1 vs L2: sparsity vs shrinkage", "An L1 penalty and an L2 penalty both keep weights small. "
        "Which one leaves many first-layer weights at (almost) zero?",
        ("L1: a sparse layer; L2 shrinks every weight", "L2: a sparse layer; L1 shrinks every weight",
         "Neither: both look like the unpenalised layer"),
        (Arm("no penalty", "overfit"), Arm("L1 1e-4", "overfit", {"l1": 1e-4}), Arm("L2 1e-3", "overfit", {"l2": 1e-3})),
        read_penalties, "weights",
        "Compare the first-layer pictures: which pixels did L1 switch off? Then try the l1l2 variant, both at once.",
        shared=dict(train_size=3000, epochs=20)),
    Lab("data", "More data vs regularization", "On 1,000 images the network memorises. What cuts the held-out − "
        "train loss gap more: four times the images, or dropout on the same 1,000?",
        ("Four times the images", "Dropout on the same images", "About the same"),
        (Arm("1,000 images", "overfit", {"train_size": 1000}), Arm("2,000 images", "overfit", {"train_size": 2000}),
         Arm("4,000 images", "overfit", {"train_size": 4000}),
         Arm("1,000 images + dropout", "dropout", {"train_size": 1000})),
        read_data_or_dropout, "learning_curve",
        "The Sweep page over Training images draws the whole learning curve with seeds; try it for dropout too.",
        shared=dict(epochs=30)),
    Lab("early_stopping", "Early stopping", "Stop when validation loss has not improved for 3 epochs and keep the "
        "best epoch's weights, or train all 30 epochs: which ends with the lower test loss?",
        ("Early stopping", "All 30 epochs", "No clear difference"),
        (Arm("all 30 epochs", "overfit"), Arm("early stopping", "overfit", {"patience": 3})),
        read_early_stopping, "curves",
        "Try patience 1 and 10 on the Train page: too short stops on a bump, too long lets it memorise.", seeds=2),
    Lab("is_it_real", "Is it real? Seeds and McNemar", "A tiny L2 penalty (1e-4) against none, one run each: one "
        "scores a bit higher. Is that the setting, or the luck of the seed?",
        ("The setting: the better one wins on every seed", "Luck: the seeds spread as much as the settings differ"),
        (Arm("no penalty", "overfit"), Arm("L2 1e-4", "overfit", {"l2": 1e-4})),
        read_is_it_real, "seeds",
        "On Compare, pick two seeds of one setting under 'Is the difference real?': McNemar covers the test "
        "images' luck, never the seed's. Sweep with 3+ seeds before trusting a gap.",
        seeds=3, shared=dict(train_size=3000, epochs=15)),
)}
