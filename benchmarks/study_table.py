"""Train the six study variants on real data and print the README's variant table.

    KMNIST_DATA_DIR=../shared/data/kmnist-mini python benchmarks/study_table.py

Runs go to a temporary store unless KMNIST_HOME is set, so the table is reproducible.
"""

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kmnist_core.data import default_data_dir
from kmnist_core.store import RunStore
from kmnist_core.study import VARIANTS_STUDY, enqueue_study, study_configs, summary_row
from kmnist_core.worker import drain_queue


def val_loss_rise(history) -> str:
    """The overfitting signal the verdict reads: how far validation loss ended above its best."""
    losses = [record.val_loss for record in history if record.val_loss is not None]
    if not losses:
        return "— (no validation split)"
    best = min(range(len(losses)), key=losses.__getitem__)
    return f"{losses[-1] / losses[best] - 1:+.0%} (best at epoch {best + 1} of {len(losses)})"


def main():
    home = os.environ.get("KMNIST_HOME") or tempfile.mkdtemp(prefix="kmnist-study-")
    store = RunStore(home)
    ids = enqueue_study(store, *VARIANTS_STUDY, study_configs(), data_dir=default_data_dir())[1]  # None: tensorflow-datasets
    drain_queue(store, log=lambda message: print(message, file=sys.stderr))
    runs = [store.get(i) for i in ids]
    print(f"data: {runs[0].data_source}\n")
    print("| variant | train acc | val acc | test acc | macro F1 | kappa | held-out − train loss "
          "| val loss: end vs best epoch | verdict | time |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        row = summary_row(run)
        val = "—" if row["val_acc"] is None else f"{row['val_acc']:.3f}"
        gap = f"{row['loss_gap']:+.3f}" + (" (test)" if row["heldout"] == "test" else "")
        print(f"| {row['variant']} | {row['train_acc']:.3f} | {val} | {row['test_acc']:.3f} | "
              f"{row['macro_f1']:.3f} | {row['kappa']:.3f} | {gap} | {val_loss_rise(run.history)} | "
              f"{row['verdict']} | {row['seconds']:.0f} s |")


if __name__ == "__main__":
    main()
