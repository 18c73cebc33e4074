"""What the Compare page shows, as plain data: which runs can be compared, one table row
per run, the fit verdict with its numbers, and the most confident mistakes."""

from .classes import CLASSES, NUM_CLASSES
from .config import STUDY_ORDER

MAX_RUNS = 6


def scored(run) -> bool:
    """A run with test scores: completed, or stopped after at least one epoch."""
    return bool(run.metrics and "test" in run.metrics)


def run_label(run) -> str:
    return f"#{run.id} {run.name}"


def most_accurate(runs):
    """The run a newcomer should ask first on Draw: the best test accuracy (newest on a tie),
    not simply the newest, which may be an underfit or a stopped run."""
    return max(runs, key=lambda run: ((run.metrics or {}).get("test", {}).get("accuracy", -1.0), run.id))


def default_selection(runs, limit=MAX_RUNS) -> list:
    """The newest scored run of each study variant (underfit → final, then the rest)."""
    newest = {}
    for run in sorted(filter(scored, runs), key=lambda r: r.id, reverse=True):
        newest.setdefault(run.variant, run)
    order = [v for v in STUDY_ORDER if v in newest] + sorted(set(newest) - set(STUDY_ORDER))
    return [newest[v].id for v in order][:limit]


def table_rows(runs) -> list:
    """One row per run for the side-by-side metrics table."""
    rows = []
    for run in runs:
        metrics, test = run.metrics, run.metrics["test"]
        row = {
            "run": run_label(run), "variant": run.variant, "status": run.status,
            "test accuracy %": 100 * test["accuracy"], "macro F1": test["macro_f1"],
            "Cohen's kappa": test["kappa"], "test loss": test["log_loss"],
            "train−held-out accuracy gap %": 100 * metrics["fit"]["accuracy_gap"],
            "held-out−train loss gap": metrics["fit"]["loss_gap"],
            "epochs": metrics.get("epochs_done"),
            "training time (s)": round(metrics.get("train_seconds", 0.0), 1),
            "parameters": run.params,
            "verdict": metrics["fit"]["verdict"],
        }
        if "cv" in metrics:
            row["k-fold accuracy"] = cv_text(metrics["cv"]["accuracy"])
        rows.append(row)
    return rows


def cv_text(summary, percent=True) -> str:
    """'91.2% ± 0.8%' from a {"mean", "std"} summary."""
    if percent:
        return f"{summary['mean']:.1%} ± {summary['std']:.1%}"
    return f"{summary['mean']:.3f} ± {summary['std']:.3f}"


def mistakes(y_test, test_proba, count=8):
    """The most confident wrong test predictions with class names, or None when the stored
    predictions do not belong to this test split (a run trained on other data) or are not
    a probability table at all (a damaged file that still parses)."""
    from .metrics import confident_mistakes  # scikit-learn: not needed to open the Home page

    if test_proba is None or test_proba.shape != (len(y_test), NUM_CLASSES):
        return None
    return [
        dict(m, true_label=CLASSES[m["true"]].label, predicted_label=CLASSES[m["predicted"]].label)
        for m in confident_mistakes(y_test, test_proba, count)
    ]
