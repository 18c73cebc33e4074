"""The sentences a learner concludes from, drawn from runs: which runs can be set side by
side (``comparable_groups``), how regularization moved the held-out − train loss gap
(``loss_gap_summary``), which run or setting is the most accurate, if any can be told
(``ranking_sentence``), and why the lowest loss need not be the most accurate
(``loss_accuracy_sentence``).

Plain functions, runs in and text out (``kmnist_core.store.Run`` with metrics), so the
Compare page, the labs and the study report say the same thing. Conclusions are drawn only
across comparable runs; seeds of one setting are one entry, mean ± spread, and a difference
smaller than the seeds' spread is said to be one."""

import json
import re

from .classes import NUM_CLASSES
from .significance import ALPHA, format_p, mcnemar, seed_summary
from .verdict import loss_accuracy_disagreement


def run_label(run) -> str:
    return f"#{run.id} {run.name}"


def not_comparable_reason(run, reference) -> str:
    """Why a conclusion cannot set ``run`` beside ``reference``, in words ("10 epochs vs 30",
    "1,000 training images vs 3,000", "another study"), or "" when it can. Runs of one study
    are comparable by construction: the study queued them to answer one question (Train
    all variants gives underfit its own 10 epochs on purpose). Otherwise they must share
    data, training images and epochs, and a study."""
    study, reference_study = run.study_id, reference.study_id
    if study is not None and study == reference_study:
        return ""
    reasons = []
    if run.data_source and reference.data_source and run.data_source != reference.data_source:
        reasons.append(f"other data ({run.data_source} vs {reference.data_source})")
    size, reference_size = (r.config.get("train_size") or 0 for r in (run, reference))
    if size != reference_size:
        reasons.append(f"{_images(size)} training images vs {_images(reference_size)}")
    epochs, reference_epochs = run.config.get("epochs"), reference.config.get("epochs")
    if epochs != reference_epochs:
        reasons.append(f"{epochs} epoch{'s' if epochs != 1 else ''} vs {reference_epochs}")
    if study != reference_study:
        reasons.append("another study")
    return ", ".join(reasons)


def _images(count) -> str:
    return f"{count:,}" if count else "all"


def comparable_groups(runs) -> list:
    """``runs`` split into groups a conclusion may be drawn across (each run comparable with
    its group's first run), the largest first, the newest first among equals. Conclusion
    sentences use the first group; the others are named with the reason."""
    groups: list = []
    for run in runs:
        home = next((group for group in groups if not not_comparable_reason(run, group[0])), None)
        if home is None:
            groups.append([run])
        else:
            home.append(run)
    return sorted(groups, key=lambda group: (-len(group), -max(run.id for run in group)))


def set_apart_sentence(runs) -> str:
    """Which picked runs the conclusions leave out, and why; "" when all are comparable."""
    groups = comparable_groups(runs)
    if len(groups) < 2:
        return ""
    compared = groups[0]
    apart = [f"{run_label(run)} ({not_comparable_reason(run, compared[0])})" for group in groups[1:] for run in group]
    return (f"Left out of these conclusions, not comparable with the runs they compare "
            f"({', '.join(f'#{run.id}' for run in compared)}): {'; '.join(apart)}. They stay in the tables and "
            f"charts below.")


def loss_gap_summary(runs) -> str:
    """One sentence with numbers: how far the regularized runs moved the held-out−train
    loss gap from the unregularized run's (the study's point in one line), across the
    comparable runs only (``comparable_groups``). Seeds of one setting are one entry, mean ±
    spread, and a difference within the seeds' spread is said to be one. An underfitting
    run is described like the others, its small gap explained by its high train loss: it
    fits nothing well, which is no cure. A gap that reads the same is "kept", not "cut"."""
    settings = settings_groups(comparable_groups(runs)[0])
    if sum(map(len, settings)) < 2:
        return ""
    lead = "Held-out − train loss gap (smaller = less memorising): "
    fitted = [group for group in settings if not _underfitting(group)]
    underfit = [_underfit_text(group) for group in settings if _underfitting(group)]
    plain = [group for group in fitted if regularization(group[0]) == 0]
    if not plain:
        listed = [", ".join(f"{group_name(group)} {_gap_text(group)}" for group in sorted(fitted, key=_mean_gap))]
        return (lead + "; ".join(filter(None, listed + underfit)) + "."
                + (" None of these runs is unregularized, so none is a baseline to measure a cut from." if fitted else ""))
    base = max(plain, key=_mean_gap)
    parts = [_moved(group, base) for group in fitted if group is not base] + underfit
    return f"{lead}{group_name(base)} {_gap_text(base)}" + "".join(f"; {part}" for part in parts) + "."


def settings_groups(runs) -> list:
    """``runs`` grouped by their settings, the seed aside, in first-seen order."""
    groups: dict = {}
    for run in runs:
        groups.setdefault(_settings_but_seed(run), []).append(run)
    return list(groups.values())


def group_name(group) -> str:
    """A run's name, or for seeds of one setting the name without its seed and "×3 seeds"."""
    if len(group) == 1:
        return group[0].name
    setting = re.sub(r" · seed \d+$", "", group[0].name)
    return f"{setting} ×{len(group)} seeds"


def _mean_gap(group) -> float:
    return seed_summary([run.metrics["fit"]["loss_gap"] for run in group])["mean"]


def _gap_text(group) -> str:
    summary = seed_summary([run.metrics["fit"]["loss_gap"] for run in group])
    return f"{summary['mean']:.2f}" + ("" if summary["std"] is None else f" ± {summary['std']:.2f}")


def _moved(group, base) -> str:
    """How ``group`` moved the gap from ``base``'s: cut, raised, kept, or within the seeds' spread."""
    gaps = [seed_summary([run.metrics["fit"]["loss_gap"] for run in g]) for g in (group, base)]
    (mean, std), (base_mean, base_std) = ((g["mean"], g["std"]) for g in gaps)
    noise = max(std or 0.0, base_std or 0.0)
    if noise and abs(mean - base_mean) < noise:
        return (f"{group_name(group)} {_gap_text(group)}, within the seeds' spread of {group_name(base)}: these "
                f"seeds cannot tell the two apart")
    if f"{mean:.2f}" == f"{base_mean:.2f}":
        return f"{group_name(group)} kept it at {_gap_text(group)}"
    return f"{group_name(group)} {'cut' if mean < base_mean else 'raised'} it to {_gap_text(group)}"


def _underfitting(group) -> bool:
    return any(run.metrics["fit"]["verdict"] == "underfitting" for run in group)


def _underfit_text(group) -> str:
    """An underfit gap with its cause: the high train loss of a model that fits nothing well."""
    train = [run.metrics.get("train") or {} for run in group]
    if all("log_loss" in figures for figures in train):
        losses = seed_summary([figures["log_loss"] for figures in train])
        accuracy = seed_summary([figures["accuracy"] for figures in train])
        figures = (f"train loss {losses['mean']:.2f}" + ("" if losses["std"] is None else f" ± {losses['std']:.2f}")
                   + f", train accuracy {accuracy['mean']:.1%}")
    else:
        figures = "its training figures were not stored"
    return (f"{group_name(group)} {_gap_text(group)}, small only because it underfits: it fits even its training "
            f"images badly ({figures}), so its held-out loss has little to rise above — no cure for memorising")


def regularization(run) -> float:
    """Dropout and penalties summed: 0 for an unregularized run."""
    config = run.config
    return config.get("dropout", 0) + config.get("input_dropout", 0) + config.get("l1", 0) + config.get("l2", 0)


def paired_difference(y_test, proba_a, proba_b):
    """McNemar's exact test on two runs' stored test predictions, or None when either is
    missing or belongs to another test split."""
    expected = (len(y_test), NUM_CLASSES)
    if proba_a is None or proba_b is None or proba_a.shape != expected or proba_b.shape != expected:
        return None
    return mcnemar(y_test, proba_a.argmax(axis=1), proba_b.argmax(axis=1))


def _settings_but_seed(run) -> str:
    return json.dumps({k: v for k, v in run.config.items() if k != "seed"}, sort_keys=True)


def only_seed_differs(run_a, run_b) -> bool:
    """Same settings, another seed: any gap between them is the luck of training."""
    return _settings_but_seed(run_a) == _settings_but_seed(run_b) and run_a.config.get("seed") != run_b.config.get("seed")


def ranking_sentence(y_test, runs, load_proba) -> str:
    """The top two by test accuracy among the comparable runs (``comparable_groups``).
    Two settings with 2+ seeds each are ranked by their means only when the gap is wider
    than the seeds' spread; otherwise the top two runs are ranked only when McNemar's test
    says the gap is unlikely to be the test images' luck. Two seeds of one configuration
    are never ranked as if a setting won: their gap is training's luck."""
    runs = comparable_groups(runs)[0]
    if len(runs) < 2:
        return ""
    settings = sorted(settings_groups(runs), key=lambda group: -_mean_accuracy(group))
    if len(settings) >= 2 and len(settings[0]) >= 2 and len(settings[1]) >= 2:
        return _seeds_ranking(*settings[:2])
    first, second = sorted(runs, key=lambda run: -run.metrics["test"]["accuracy"])[:2]
    paired = paired_difference(y_test, load_proba(first.id), load_proba(second.id))
    gap = 100 * (first.metrics["test"]["accuracy"] - second.metrics["test"]["accuracy"])
    if paired is None:
        return ""
    if paired["p_value"] < ALPHA and only_seed_differs(first, second):
        return (f"Most accurate: #{first.id} {first.name}, {gap:.1f} points above #{second.id} {second.name} "
                f"({format_p(paired['p_value'])}), but the two differ only in their seed: that gap is the luck "
                f"of training, not a better setting.")
    if paired["p_value"] < ALPHA:
        return (f"Most accurate: #{first.id} {first.name}, {gap:.1f} points above #{second.id} {second.name} "
                f"({format_p(paired['p_value'])}: unlikely to be the luck of the test images).")
    return (f"#{first.id} {first.name} and #{second.id} {second.name} are within noise: {gap:.1f} points apart, "
            f"{format_p(paired['p_value'])}. Do not rank them; more seeds or more test images would tell.")


def _mean_accuracy(group) -> float:
    return seed_summary([run.metrics["test"]["accuracy"] for run in group])["mean"]


def _accuracy_text(group) -> str:
    summary = seed_summary([run.metrics["test"]["accuracy"] for run in group])
    return f"{100 * summary['mean']:.1f} ± {100 * summary['std']:.1f}%"


def _seeds_ranking(first, second) -> str:
    """Two settings' mean test accuracies over their seeds: ranked only when the gap is
    wider than the seeds' spread (the larger of the two standard deviations)."""
    top, next_ = (seed_summary([run.metrics["test"]["accuracy"] for run in group]) for group in (first, second))
    gap, noise = 100 * (top["mean"] - next_["mean"]), 100 * max(top["std"], next_["std"])
    both = (f"{group_name(first)} {_accuracy_text(first)} and {group_name(second)} {_accuracy_text(second)} "
            f"(test accuracy, mean ± std over seeds)")
    if gap < noise:
        return (f"{both} are {gap:.1f} points apart, less than their seeds' spread ({noise:.1f}): these seeds cannot "
                f"tell the two apart. Do not rank them; more seeds would tell.")
    return f"Most accurate: {both}: {gap:.1f} points apart, more than their seeds' spread ({noise:.1f})."


def loss_accuracy_sentence(runs, y_test=None, load_proba=None) -> str:
    """Why the comparable run (or setting, over its seeds) with the lowest test loss is not
    the most accurate, when that happens; "" otherwise, and "" when the accuracy gap is
    itself within noise (the ranking sentence then says "do not rank them": explaining a
    difference it calls noise would contradict it). With ``y_test`` and ``load_proba``, two
    single runs are tested with McNemar's test; settings with seeds by their spread."""
    settings = settings_groups(comparable_groups(runs)[0])
    if len(settings) < 2:
        return ""

    def figures(group):
        loss = seed_summary([run.metrics["test"]["log_loss"] for run in group])["mean"]
        return group_name(group), loss, _mean_accuracy(group)

    lowest = min(settings, key=lambda group: figures(group)[1])
    top = max(settings, key=_mean_accuracy)
    if lowest is top or _mean_accuracy(top) <= _mean_accuracy(lowest):
        return ""
    if not _accuracy_gap_is_real(top, lowest, y_test, load_proba):
        return ""
    return loss_accuracy_disagreement(figures(lowest), figures(top), "test")


def _accuracy_gap_is_real(top, other, y_test, load_proba) -> bool:
    """Whether ``top``'s higher test accuracy over ``other`` (two settings' runs) is more
    than noise: wider than the seeds' spread, or McNemar's p below ALPHA for single runs."""
    if len(top) >= 2 and len(other) >= 2:
        spread = max(seed_summary([run.metrics["test"]["accuracy"] for run in group])["std"] for group in (top, other))
        return _mean_accuracy(top) - _mean_accuracy(other) > spread
    if y_test is None or load_proba is None:
        return True
    paired = paired_difference(y_test, load_proba(top[0].id), load_proba(other[0].id))
    return paired is not None and paired["p_value"] < ALPHA
