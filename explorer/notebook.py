"""The app's figures for runs in a notebook: the same plotly figures the Train and Compare
pages draw (``charts``), returned so Jupyter shows them inline. Runs are given as the
``Run`` objects ``kmnist_core.api`` returns, or as ids or exact names; they are read afresh
from the store (``home``: default ``$KMNIST_HOME``, else ./runs), history included.

    from explorer import notebook as figures
    figures.curves(overfit, dropout)
"""

from kmnist_core import api

from . import charts
from .compare import first_layer_stats, run_label


def curves(*runs, home=None):
    """Loss and accuracy per epoch (train, validation, as trained), one colour per run;
    a run that stopped early is marked at the epoch whose weights it kept."""
    chosen = _read(runs, home)
    marks = {run_label(run): {"best": run.metrics.get("best_epoch")} for run in chosen
             if (run.metrics or {}).get("stopped_early")}
    return charts.curves_figure([(run_label(run), run.history) for run in chosen], marks=marks)


def confusion(run, home=None):
    """The test confusion matrix: rows the true class, columns the prediction, coloured by
    the row's share."""
    (chosen,) = _read([run], home)
    if not (chosen.metrics or {}).get("test"):
        raise ValueError(f"run {chosen.id} ({chosen.status}) has no test scores yet")
    return charts.confusion_figure(chosen.metrics["test"]["confusion"], f"{run_label(chosen)}: confusion matrix (test)")


def weights(*runs, home=None):
    """What regularization did to the first layer: its ‖w‖ and share of near-zero weights
    per epoch, one colour per run."""
    chosen = _read(runs, home)
    return charts.weights_figure([(run_label(run), run.history) for run in chosen])


def weight_histogram(*runs, home=None):
    """The first layer's |w| after the last epoch, overlaid (log counts)."""
    stats = [(run_label(run), first_layer_stats(run)) for run in _read(runs, home)]
    return charts.weight_histogram_figure([(label, found) for label, found in stats if found])


def sweep(summary):
    """A sweep's curve from ``api.sweep`` or ``api.sweep_summary``: train and held-out loss
    and accuracy against the swept value, mean ± std over seeds."""
    return charts.sweep_figure(summary["rows"], summary["param"])


def _read(runs, home):
    if not runs:
        raise ValueError("give at least one run (a Run, an id or an exact name)")
    return [api.get_run(run, home) for run in runs]
