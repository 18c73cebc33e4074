"""The regularization study as a whole: its configurations (each variant's own preset, or
the quick version), queueing them in order, and the one-line summary per finished run that
the README's table and the Compare page show, with its time said the same way everywhere."""

from .config import STUDY_ORDER, make_config
from .store import RunStore

# The quick study: fewer images and epochs, chosen so that over- and underfitting still show
# (benchmarks/study_spread.py --train-size 3000 --epochs 30 --at 20,25 on kmnist-mini, seeds 0
# and 1: overfit is flagged on both seeds only at 30 epochs (+28%, +41% validation-loss rise;
# at 20 one seed is only "starting to overfit"), dropout shrinks its loss gap from 0.76 to 0.47, and
# L1/L2's mid-run spike has passed by then). At 2,000 images even `final` overfits.
QUICK_STUDY = dict(train_size=3000, epochs=30)

# (kind, name, purpose) of the two ways to queue the whole study; labs and sweeps name their own.
VARIANTS_STUDY = ("variants", "All variants",
                  "How underfitting, overfitting and each regularizer show, each variant with its own preset")
QUICK_STUDY_NAME = ("quick", "Quick study",
                    "How underfitting, overfitting and each regularizer show, on the same images and epochs")


def study_configs(variants=STUDY_ORDER, **shared) -> list:
    """One validated config per variant; ``shared`` settings (None = the preset's) apply to
    all. Every variant is validated before any is returned, so a bad setting queues nothing."""
    return [make_config(variant, **shared) for variant in variants]


def enqueue_study(store: RunStore, kind, name, purpose, configs, data_dir=None, data_source=None, owner=None,
                  lab=None, prediction=None) -> tuple:
    """Queue ``configs`` in order as one study (all or nothing; ``store.create_study`` says
    what the rest mean). Returns (the study's id, its run ids)."""
    study_id = store.create_study(kind, name, purpose, [(config, None) for config in configs], data_dir=data_dir,
                                  data_source=data_source, owner=owner, lab=lab, prediction=prediction)
    return study_id, [run.id for run in store.study_runs(study_id)]


def summary_row(run) -> dict:
    """One line per run: the figures that show under- and overfitting at a glance."""
    metrics = run.metrics or {}
    test, val, train, fit = (metrics.get(k) or {} for k in ("test", "val", "train", "fit"))
    return {
        "id": run.id, "name": run.name, "variant": run.variant, "status": str(run.status),
        "train_acc": train.get("accuracy"), "val_acc": val.get("accuracy"),
        "test_acc": test.get("accuracy"), "macro_f1": test.get("macro_f1"), "kappa": test.get("kappa"),
        "test_loss": test.get("log_loss"), "loss_gap": fit.get("loss_gap"), "heldout": fit.get("heldout"),
        "verdict": fit.get("verdict"), "epochs": metrics.get("epochs_done"),
        "seconds": metrics.get("train_seconds"), "params": run.params,
    }


def run_times(run) -> tuple:
    """(seconds training, seconds in all) of a run, either None when unknown. Training is
    fitting with its per-epoch scoring (``metrics["train_seconds"]``, every fold of a k-fold
    run); in all runs from the moment a trainer took the run from the queue to its end, so
    it adds loading data, TensorFlow's start, the final scoring and saving (``Run.duration``;
    still growing while the run trains). The CLI's ``runs``, the Train page and Compare
    all show these two, named so: "9 s training, 16 s in all"."""
    return (run.metrics or {}).get("train_seconds"), run.duration


def whole_seconds(seconds) -> int | None:
    return None if seconds is None else round(seconds)


def seconds_text(seconds) -> str:
    """"9 s", "2 min 05 s"; "…" when unknown."""
    if seconds is None:
        return "…"
    seconds = whole_seconds(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def about_text(seconds) -> str:
    """"about 9 s"; "under a second" where a rounded "about 0 s" would read as nothing at all."""
    if seconds is not None and round(seconds) < 1:
        return "under a second"
    return f"about {seconds_text(seconds)}"


def run_time_text(run) -> str:
    """A run's time in words: "9 s training, 16 s in all" (or only the part that is known)."""
    training, in_all = run_times(run)
    parts = [f"{seconds_text(training)} training"] if training is not None else []
    if in_all is not None:
        parts.append(f"{seconds_text(in_all)} in all")
    return ", ".join(parts) or "not started"
