"""How long each guided lab takes, end to end, and what its answer says on real images.

Why: a lab is sized to finish in about two minutes on two cores (kmnist_core/labs.py). This
queues each lab's runs as a study in a fresh store, lets the app's background worker train
them (a separate process, as in the app: its TensorFlow start-up is included), and prints
the wall-clock time from the click to the last run finished, the answer and whether the
expected effect showed.

    KMNIST_DATA_DIR=../shared/data/kmnist-mini python benchmarks/labs.py [--labs dropout,capacity]
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kmnist_core.data import default_data_dir, load_kmnist
from kmnist_core.hardware import cpu_name, usable_cores
from kmnist_core.labs import LABS, answer, enqueue_lab
from kmnist_core.store import RunStore
from kmnist_core.worker import ensure_worker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labs", default=",".join(LABS), help="lab ids, separated by commas")
    args = parser.parse_args()
    data_dir = os.path.abspath(default_data_dir())
    dataset = load_kmnist(data_dir)
    print(f"host: {cpu_name()}; {usable_cores()} usable cores; load average {os.getloadavg()[0]:.2f} at start; "
          f"data: {dataset.source}")
    for lab_id in args.labs.split(","):
        lab = LABS[lab_id]
        store = RunStore(tempfile.mkdtemp(prefix=f"lab-{lab_id}-"))
        started = time.monotonic()
        _, run_ids = enqueue_lab(store, lab, prediction=lab.choices[0], data_dir=data_dir,
                                        data_source=dataset.source)
        ensure_worker(store, idle_exit=1.0)
        while not all(store.get(run_id).finished for run_id in run_ids):
            time.sleep(0.5)
        seconds = time.monotonic() - started
        runs = [store.get(run_id) for run_id in run_ids]
        training = sum(run.metrics.get("train_seconds", 0.0) for run in runs if run.metrics)
        result = answer(lab, runs, (dataset.y_test, lambda run_id, store=store: store.load_array(run_id, "test_proba")))
        print(f"\n{lab_id}: {len(runs)} runs, {seconds:.0f} s from the click to the last run ({training:.0f} s "
              f"training); load average {os.getloadavg()[0]:.2f}")
        print(f"  {result.status}; supports: {result.supported}")
        print(f"  {result.text}")
        if result.caveat:
            print(f"  caveat: {result.caveat}")


if __name__ == "__main__":
    main()
