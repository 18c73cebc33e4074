"""Two trainings side by side or one after the other: the same 2 short runs (overfit,
3 epochs, seeds 0 and 1) trained by 1 worker with every core (KMNIST_WORKERS=1) and by
2 workers with the cores split between them (KMNIST_WORKERS=2), as the app starts them
(``ensure_worker``: detached worker processes, each importing TensorFlow and loading the
data itself).

    KMNIST_DATA_DIR=../shared/data/kmnist-mini python benchmarks/parallel_workers.py [rounds]

Each round trains both settings in a fresh temporary store, alternating which goes first
(other jobs on the host change its speed). Prints, per setting and round, the wall time
from queueing to both runs finished, the time from the first claim to the last finish
(without starting Python: a worker claims a run before importing TensorFlow), the threads
each training used and the test accuracies (the same either way: same seeds).
"""

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kmnist_core.config import make_config
from kmnist_core.data import default_data_dir
from kmnist_core.hardware import WORKERS_ENV, cpu_name, usable_cores
from kmnist_core.store import RunStore
from kmnist_core.worker import ensure_worker

VARIANT, EPOCHS, SEEDS = "overfit", 3, (0, 1)


def timed(workers, data_dir) -> dict:
    """Queue the runs, start workers as the app does, and wait for both runs."""
    store = RunStore(tempfile.mkdtemp(prefix=f"kmnist-workers-{workers}-"))
    os.environ[WORKERS_ENV] = str(workers)  # the spawned workers inherit it
    start = time.time()
    ids = [store.create_run(make_config(VARIANT, epochs=EPOCHS, seed=seed), data_dir=data_dir) for seed in SEEDS]
    assert ensure_worker(store, idle_exit=0.5)
    while not all(store.get(i).finished for i in ids):
        time.sleep(0.2)
    runs = [store.get(i) for i in ids]
    assert all(run.status == "completed" for run in runs), [(run.status, run.error) for run in runs]
    return {"wall": max(run.finished_at for run in runs) - start,
            "training": max(run.finished_at for run in runs) - min(run.started_at for run in runs),
            "threads": [run.runtime["threads"] for run in runs],
            "accuracy": [run.metrics["test"]["accuracy"] for run in runs]}


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    data_dir = os.path.abspath(default_data_dir())
    print(f"{cpu_name()}, {usable_cores()} usable cores; load average {os.getloadavg()[0]:.1f}; data {data_dir}")
    print(f"2 runs: {VARIANT}, {EPOCHS} epochs, seeds {SEEDS}\n")
    results = {1: [], 2: []}
    for number in range(rounds):
        for workers in ((1, 2) if number % 2 == 0 else (2, 1)):
            result = timed(workers, data_dir)
            results[workers].append(result)
            print(f"round {number + 1}: {workers} worker(s) x {result['threads']} threads: wall {result['wall']:.1f} s, "
                  f"training {result['training']:.1f} s, test accuracy {result['accuracy']}", flush=True)
    print()
    for workers, rows in results.items():
        walls, trainings = [row["wall"] for row in rows], [row["training"] for row in rows]
        print(f"KMNIST_WORKERS={workers}: wall median {statistics.median(walls):.1f} s (each: "
              f"{', '.join(f'{w:.1f}' for w in walls)}), training median {statistics.median(trainings):.1f} s")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
