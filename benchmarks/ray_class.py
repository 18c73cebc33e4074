"""A class pressing Quick study at once: N sessions each queue the six variants, trained by
local workers (``KMNIST_WORKERS``), then by a simulated Ray cluster on this same machine
(a head that trains nothing, as the app's machine, and worker nodes of 1 CPU each: the same
cores in total). Prints, per mode, whether every run arrived and trained exactly once, the
wall time, and per run: the fit itself, the time its trainer held a core, and the overhead
around the fit (start-up, data, scoring, saving; on Ray also scheduling, the object store and
the dispatcher's relay). One machine cannot show a speed-up; it shows what Ray costs per run.

    KMNIST_DATA_DIR=/work/shared/data/kmnist-mini .venv/bin/python benchmarks/ray_class.py
    ... --sessions 2 --train-size 1000 --epochs 10   # a smaller study, for a loaded host
    ... --modes ray                                   # one mode only

Needs the ray extra (``pip install -e .[ray]``). Wall-clock figures depend on the host's load,
printed with them: compare the two modes measured side by side, not across hosts.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from explorer import jobs
from kmnist_core.config import STUDY_ORDER
from kmnist_core.data import default_data_dir, load_kmnist
from kmnist_core.hardware import WORKERS_ENV, usable_cores
from kmnist_core.status import Status
from kmnist_core.store import RunStore
from kmnist_core.study import QUICK_STUDY, study_configs
from kmnist_core.worker import RAY_ADDRESS_ENV

# A private cluster on this machine, without Ray's memory monitor: on a shared host other
# jobs' memory (96% of it, once) made it kill the dispatcher's mailbox mid-benchmark.
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_memory_monitor_refresh_ms": "0"}


def load() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


def mean(values) -> float:
    return statistics.mean(values) if values else float("nan")


def run_class(home, sessions, configs, source) -> dict:
    """Every session queues ``configs`` (as the Train page's button does, shared-server caps
    included), then this process polls as open pages do, waking the trainer, until all are
    finished. Returns the figures."""
    store = RunStore(home)
    start = time.time()
    ids = []
    for session in range(sessions):
        ids += jobs.submit(store, configs, owner=f"session-{session}", data_source=source, what="the quick study")
    first_batch = {}
    while True:
        jobs.wake_worker(store)  # what every page poll does
        runs = [store.get(run_id) for run_id in ids]
        now = time.time()
        for run in runs:
            if run.progress is not None:
                first_batch.setdefault(run.id, now)
        if all(run.finished for run in runs):
            break
        time.sleep(0.5)
    wall = time.time() - start
    log = (Path(home) / "worker.log").read_text()
    completed = [run for run in runs if run.status == Status.COMPLETED]
    held = [run.finished_at - run.started_at for run in completed]
    fit = [run.metrics["train_seconds"] for run in completed]
    return {
        "queued": len(ids), "completed": len(completed),
        "other": sorted(f"{run.id}:{run.status}" for run in runs if run.status != Status.COMPLETED),
        "trained more than once": [run_id for run_id in ids if _starts(log, run_id) > 1],
        "wall": wall, "fit": mean(fit), "held": mean(held), "overhead": mean([h - f for h, f in zip(held, fit)]),
        "to first batch": mean([first_batch[run.id] - run.started_at for run in completed if run.id in first_batch]),
        "executors": sorted({(run.runtime or {}).get("executor", "local") for run in completed}),
        "nodes": len({(run.runtime or {}).get("node_id") for run in completed}),
    }


def _starts(log, run_id) -> int:
    """How many times the worker log says run ``run_id`` was started ("training run 7 (...)
    in slot 0") or sent to the cluster ("run 7 (...) sent")."""
    return log.count(f"run {run_id} (")


def report(mode, figures, cores) -> None:
    print(f"\n{mode}: {figures['completed']}/{figures['queued']} runs completed, others: {figures['other'] or 'none'}, "
          f"trained more than once: {figures['trained more than once'] or 'none'}; executors {figures['executors']}, "
          f"{figures['nodes']} node(s)")
    print(f"  wall {figures['wall']:.0f} s for the class; per run: fit {figures['fit']:.1f} s, core held "
          f"{figures['held']:.1f} s, overhead {figures['overhead']:.1f} s, claimed to first batch "
          f"{figures['to first batch']:.1f} s")
    print(f"  throughput {figures['completed'] / figures['wall'] * 60:.1f} runs/min on {cores} cores; {load()}")


def store_write_ms(home, writes=300) -> float:
    """Milliseconds per progress write, as the dispatcher makes one per run in training
    twice a second: its ceiling on runs in training at once is about 1000 / (2 x this)."""
    from kmnist_core.config import make_config
    from kmnist_core.records import Progress

    store = RunStore(home)
    run_id = store.create_run(make_config("underfit"), status=Status.RUNNING)
    start = time.perf_counter()
    for step in range(writes):
        store.update(run_id, progress=Progress(epoch=1, epochs=1, step=step, steps=writes, updated_at=time.time()))
    store.finish(run_id, Status.STOPPED)
    return (time.perf_counter() - start) * 1000 / writes


def with_cluster(nodes, function):
    """``function(address)`` with a simulated cluster running: a head of 0 CPUs (the app's
    machine) and ``nodes`` worker nodes of 1 CPU each; every Ray process ended after."""
    from ray.cluster_utils import Cluster

    os.environ.update(RAY_ENV)
    cluster = Cluster(initialize_head=True, head_node_args=dict(num_cpus=0, include_dashboard=False,
                                                                object_store_memory=200 * 1024**2))
    try:
        for _ in range(nodes):
            cluster.add_node(num_cpus=1, object_store_memory=200 * 1024**2)
        cluster.wait_for_nodes()
        return function(cluster.address)
    finally:
        cluster.shutdown()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=3, help="sessions, each queueing the study (default 3)")
    parser.add_argument("--train-size", type=int, default=QUICK_STUDY["train_size"])
    parser.add_argument("--epochs", type=int, default=QUICK_STUDY["epochs"])
    parser.add_argument("--modes", default="local,ray", help="local, ray or both (default local,ray)")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    data = os.path.abspath(default_data_dir())
    source = load_kmnist(data).source
    cores = usable_cores()
    configs = study_configs(STUDY_ORDER, train_size=args.train_size, epochs=args.epochs)
    os.environ.update({"KMNIST_DATA_DIR": data, "KMNIST_SHARED": "1", "KMNIST_WORKER_IDLE_EXIT": "5",
                       WORKERS_ENV: str(cores), "PYTHONPATH": str(ROOT)})
    print(f"{args.sessions} sessions x {len(configs)} runs ({args.train_size} images, {args.epochs} epochs) on "
          f"{data}; {cores} cores; {load()}")
    for mode in args.modes.split(","):
        home = tempfile.mkdtemp(prefix=f"ray-class-{mode}-")
        if mode == "local":
            os.environ.pop(RAY_ADDRESS_ENV, None)
            figures = run_class(home, args.sessions, configs, source)
            report(f"local workers ({WORKERS_ENV}={cores})", figures, cores)
        else:
            def on_cluster(address, home=home):
                os.environ[RAY_ADDRESS_ENV] = address
                try:
                    return run_class(home, args.sessions, configs, source)
                finally:
                    os.environ.pop(RAY_ADDRESS_ENV)
            figures = with_cluster(cores, on_cluster)
            report(f"Ray, simulated cluster ({cores} nodes x 1 CPU, head 0 CPU)", figures, cores)
        print(f"  home {home}")
    per_write = store_write_ms(tempfile.mkdtemp(prefix="ray-class-writes-"))
    print(f"\nstore: {per_write:.2f} ms per progress write: one dispatcher relays at most ~{1000 / (2 * per_write):.0f} "
          f"runs in training at once (2 writes per run per second); {load()}")


if __name__ == "__main__":
    main()
