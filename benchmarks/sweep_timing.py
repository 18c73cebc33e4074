"""How long a sweep takes: the dense overfit network, dropout 0 / 0.2 / 0.4 / 0.6 with two
seeds each (8 runs) at 10 epochs, trained one after another as the worker does.

    KMNIST_DATA_DIR=../shared/data/kmnist-mini python benchmarks/sweep_timing.py

Runs go to a temporary store unless KMNIST_HOME is set. Prints the sweep's summary, each
run's training time, the total seconds and the host CPU.
"""

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kmnist_core.data import default_data_dir
from kmnist_core.hardware import cpu_name, usable_cores
from kmnist_core.store import RunStore
from kmnist_core.sweep import best_sentence, enqueue_sweep, mean_std_text, summarise
from kmnist_core.worker import drain_queue

VARIANT, PARAM, VALUES, SEEDS, EPOCHS = "overfit", "dropout", "0, 0.2, 0.4, 0.6", 2, 10


def main():
    home = os.environ.get("KMNIST_HOME") or tempfile.mkdtemp(prefix="kmnist-sweep-")
    data_dir = default_data_dir()
    store = RunStore(home)
    load = os.getloadavg()
    start = time.perf_counter()
    import kmnist_core.runner  # noqa: F401 (TensorFlow: timed apart from the training)

    imported = time.perf_counter()
    sweep_id = enqueue_sweep(store, VARIANT, PARAM, VALUES, SEEDS, data_dir=data_dir and os.path.abspath(data_dir),
                             epochs=EPOCHS)
    drain_queue(store, log=lambda message: print(message, file=sys.stderr))
    done = time.perf_counter()

    runs = store.sweep_runs(sweep_id)
    sweep = store.get_sweep(sweep_id)
    rows = summarise(runs, PARAM, sweep.values)
    print(f"data: {runs[0].data_source}")
    print(f"sweep {sweep_id}: {VARIANT}, {PARAM} {VALUES} × {SEEDS} seeds, {EPOCHS} epochs: {len(runs)} runs\n")
    print("| dropout | seeds | train acc | val acc | train loss | val loss |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['label']}{' ★' if row['best'] else ''} | {row['finished']} | "
              f"{mean_std_text(row['train_accuracy'])} | {mean_std_text(row['heldout_accuracy'])} | "
              f"{mean_std_text(row['train_loss'])} | {mean_std_text(row['heldout_loss'])} |")
    print(f"\n{best_sentence(rows, PARAM)}")
    seconds = [run.metrics["train_seconds"] for run in runs if run.metrics]
    print(f"\nper run (training only): {', '.join(f'{s:.1f}' for s in seconds)} s")
    print(f"TensorFlow import: {imported - start:.1f} s")
    print(f"total: {done - imported:.1f} s for {len(runs)} runs "
          f"({sum(seconds):.1f} s training, the rest data, scoring and saving)")
    print(f"host: {cpu_name()}, {usable_cores()} usable cores; load average {load[0]:.1f} at the start, "
          f"{os.getloadavg()[0]:.1f} at the end (above ~1, other processes shared the cores)")


if __name__ == "__main__":
    main()
