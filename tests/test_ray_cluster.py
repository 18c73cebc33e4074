"""The queue on a simulated two-node Ray cluster on this machine (``ray.cluster_utils.Cluster``:
a head node, where the dispatcher connects, and a worker node, 1 CPU each): a node lost
mid-run and a dispatcher killed mid-run each leave only their own runs interrupted, with
the epochs they finished, never "running", and the queue goes on."""

import signal

import pytest

from kmnist_core.status import Status
from kmnist_core.store import RunStore

from conftest import wait_until
from ray_support import OBJECT_STORE, dispatcher_log, end_dispatchers, long, ray_environment, start_dispatcher, tiny

pytestmark = pytest.mark.ray


@pytest.fixture
def two_nodes():
    """(cluster, head node, worker node); every process of both nodes ended afterwards."""
    pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    with ray_environment():
        cluster = None
        try:
            node_args = dict(num_cpus=1, object_store_memory=OBJECT_STORE)
            cluster = Cluster(initialize_head=True, head_node_args=dict(node_args, include_dashboard=False))
            worker = cluster.add_node(**node_args)
            cluster.wait_for_nodes()
            yield cluster, cluster.head_node, worker
        finally:
            if cluster is not None:
                cluster.shutdown()


def _on(store, run_id, node):
    runtime = store.get(run_id).runtime or {}
    return runtime.get("node_id") == node.node_id


def test_a_lost_node_or_a_killed_dispatcher_interrupts_only_its_runs_and_the_queue_goes_on(two_nodes, home, mini_dir):
    cluster, head, worker = two_nodes
    store = RunStore(home)
    first_pair = [store.create_run(long(seed=seed), data_dir=mini_dir) for seed in (0, 1)]
    after_loss = store.create_run(tiny(seed=2), data_dir=mini_dir)
    killed = store.create_run(long(seed=3), data_dir=mini_dir)
    after_kill = store.create_run(tiny(seed=4), data_dir=mini_dir)
    first = start_dispatcher(home, cluster.address, mini_dir)
    second = None
    try:
        # One run per node (1 CPU each); once both have finished an epoch, the worker node goes.
        assert wait_until(lambda: all(store.get(run_id).history for run_id in first_pair), timeout=240), \
            dispatcher_log(home)
        lost = next(run_id for run_id in first_pair if _on(store, run_id, worker))
        survivor = next(run_id for run_id in first_pair if _on(store, run_id, head))
        cluster.remove_node(worker)
        assert wait_until(lambda: store.get(lost).finished, timeout=120), dispatcher_log(home)
        run = store.get(lost)
        assert run.status == Status.INTERRUPTED and run.history
        assert run.interruption["last_epoch"] == run.history[-1].epoch
        assert store.get(survivor).status == Status.RUNNING  # only the lost node's run
        # The queue goes on, on the head node alone.
        store.request_stop(survivor)
        assert wait_until(lambda: store.get(after_loss).finished and store.get(killed).history, timeout=180), \
            dispatcher_log(home)
        assert store.get(survivor).status == Status.STOPPED
        assert store.get(after_loss).status == Status.COMPLETED and _on(store, after_loss, head)
        # The dispatcher killed mid-run: its run is interrupted at once for every reader, the next goes on.
        first.send_signal(signal.SIGKILL)
        first.wait()
        runs = {run.id: run for run in store.list_runs()}  # any listing reconciles: no ghost "running"
        assert runs[killed].status == Status.INTERRUPTED and runs[killed].interruption["waiting"] == [after_kill]
        assert runs[after_kill].status == Status.QUEUED
        second = start_dispatcher(home, cluster.address, mini_dir)
        assert wait_until(lambda: store.get(after_kill).finished, timeout=180), dispatcher_log(home)
        assert store.get(after_kill).status == Status.COMPLETED
        log = dispatcher_log(home)
        for run_id in (*first_pair, after_loss, killed, after_kill):  # each sent to the cluster once, none again
            assert log.count(f"run {run_id} (") == 1, log
        assert store.get(lost).status == store.get(killed).status == Status.INTERRUPTED
    finally:
        end_dispatchers(store, first, *([second] if second else []))
