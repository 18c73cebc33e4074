"""The regularization study as a whole: queue every variant with shared settings, and
summarise finished runs in the table the README and the Compare page show."""

from .config import STUDY_ORDER, make_config
from .store import RunStore


def enqueue_study(store: RunStore, variants=STUDY_ORDER, data_dir=None, **overrides) -> list:
    """Queue ``variants`` in order with the same ``overrides``; all are validated first,
    so a bad setting queues nothing."""
    configs = [make_config(variant, **overrides) for variant in variants]
    return [store.create_run(config, data_dir=data_dir) for config in configs]


def summary_row(run) -> dict:
    """One line per run: the figures that show under- and overfitting at a glance."""
    metrics = run.metrics or {}
    test, val, train, fit = (metrics.get(k) or {} for k in ("test", "val", "train", "fit"))
    return {
        "id": run.id, "name": run.name, "variant": run.variant, "status": run.status,
        "train_acc": train.get("accuracy"), "val_acc": val.get("accuracy"),
        "test_acc": test.get("accuracy"), "macro_f1": test.get("macro_f1"), "kappa": test.get("kappa"),
        "test_loss": test.get("log_loss"), "loss_gap": fit.get("loss_gap"), "heldout": fit.get("heldout"),
        "verdict": fit.get("verdict"), "epochs": metrics.get("epochs_done"),
        "seconds": metrics.get("train_seconds"), "params": run.params,
    }
