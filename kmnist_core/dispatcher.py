"""Training the queue on a Ray cluster: the dispatcher, a worker whose trainings run elsewhere.

With ``KMNIST_RAY_ADDRESS`` set, the process the app starts for queued runs is this one
instead of a local worker. It stays on the app's machine, the only writer of the store, and:

- claims queued runs oldest first, as many as the cluster's nodes have room for (each run
  reserves ``KMNIST_RAY_CPUS`` cores, default 1), and submits each as a task (``ray_tasks.train_task``);
  the rest stay queued, so Cancel still works on them;
- sends each data source to the cluster once (``ray.put``), never read again by the tasks;
- empties the tasks' mailbox into the store (progress, epochs, checkpoints), passes Stop
  on, and saves what a finished task returns (model, predictions, where it trained).

It holds a training slot like a worker (so the app starts no second one), and one more
slot per run in training, above any local worker's: a run's slot is free only once nobody
trains it. So when a node dies, its run alone is marked interrupted (its epochs kept), and
when the dispatcher dies, ``store.reconcile`` marks all of its runs interrupted.
"""

import importlib
import threading
import time
import zipfile
from contextlib import ExitStack
from dataclasses import dataclass
from io import BytesIO

import ray
from ray.exceptions import RayError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from .config import config_from_dict
from .ray_tasks import Mailbox, train_task
from .records import EpochRecord, Progress
from .runner import PROGRESS_EVERY, finish_run, run_dataset, save_outputs
from .status import Status
from .store import RunStore
from .worker import RAY_CPUS_ENV, cpus_per_run

TASK_SLOT_BASE = 1000  # training slots of runs on the cluster, above any local worker's (one per core)
POLL = 0.2  # seconds between looks at the tasks and the mailbox


class KerasFile:
    """A .keras file's bytes, in the shape ``store.save_model`` takes a model (anything
    with ``save(path)``), so the store writes it atomically as it writes its own."""

    def __init__(self, data: bytes):
        if not zipfile.is_zipfile(BytesIO(data)):
            raise ValueError("the model sent back by the cluster is not a .keras file")
        self.data = data

    def save(self, path):
        with open(path, "wb") as file:
            file.write(self.data)


@dataclass
class Flight:
    """A run in training on the cluster, with the lock of its training slot."""

    run_id: int
    slot: int
    lock: ExitStack
    stop_sent: bool = False


def dispatch(store: RunStore, address, idle_exit=30.0, log=None, stop=None) -> None:
    """Train queued runs on the Ray cluster at ``address`` (the caller holds the
    dispatcher's training slot: ``worker.dispatch_queue``) until nothing has trained or
    waited for ``idle_exit`` seconds, or ``stop`` is set (the runs in training are then
    stopped, as a worker stops its run)."""
    cpus = cpus_per_run()
    ray.init(address=address, log_to_driver=False, configure_logging=False)
    dispatcher = Dispatcher(store, cpus, log)
    try:
        dispatcher.serve(idle_exit, stop)
    finally:
        dispatcher.abandon()
        ray.shutdown()


class Dispatcher:
    def __init__(self, store, cpus, log=None):
        self.store, self.cpus, self.log = store, cpus, log or (lambda message: None)
        here = ray.get_runtime_context().get_node_id()  # the mailbox lives and dies with this machine
        self.mailbox = Mailbox.options(scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False)).remote()
        self.flights = {}  # task ObjectRef -> Flight
        self.datasets, self.data_refs = {}, {}  # data folder -> Dataset; data source -> ObjectRef in the cluster
        self.last_stop_poll = 0.0
        self.room_said = None
        # Finished runs get their TensorBoard files written here, with TensorFlow: it loads
        # meanwhile, beside the loop (loading it there held progress and Stop up 10-30 s).
        threading.Thread(target=importlib.import_module, args=("tensorflow",), name="load-tensorflow").start()

    def serve(self, idle_exit, stop=None) -> None:
        idle_since, stopping = time.monotonic(), False
        while True:
            if stop is not None and stop.is_set() and not stopping:
                stopping = True
                self.log(f"{getattr(stop, 'signal_name', None) or 'stop'}: stopping the runs in training; "
                         "queued runs wait for the next worker")
                for flight in self.flights.values():
                    self._send_stop(flight)
            self._pass_stops()
            if self.flights:
                ready, _ = ray.wait(list(self.flights), num_returns=len(self.flights), timeout=POLL)
            else:
                ready = []
                time.sleep(POLL)
            self._deliver(ray.get(self.mailbox.take.remote()))  # before landing: a task's epochs precede its result
            for ref in ready:
                self._land(ref)
            if not stopping:
                self._claim()
            if self.flights:
                idle_since = time.monotonic()
            elif stopping or time.monotonic() - idle_since >= idle_exit:
                break

    # -- sending runs out ----------------------------------------------------------------------
    def room(self) -> int:
        """Runs the live nodes can train at once, ``cpus`` cores each."""
        nodes = [node for node in ray.nodes() if node.get("Alive")]
        room = sum(int(node.get("Resources", {}).get("CPU", 0) // self.cpus) for node in nodes)
        if room == 0 and self.room_said != room:
            self.log(f"no live node of the cluster has {self.cpus} CPU(s) ({RAY_CPUS_ENV}); queued runs wait")
        self.room_said = room
        return room

    def _claim(self) -> None:
        while len(self.flights) < self.room():
            slot, lock = self._free_task_slot()
            run = self.store.claim_next(slot=slot)
            if run is None:
                lock.close()
                return
            self._submit(run, slot, lock)

    def _free_task_slot(self):
        taken = {flight.slot for flight in self.flights.values()}
        slot = TASK_SLOT_BASE
        while True:
            if slot not in taken:
                lock = ExitStack()
                if lock.enter_context(self.store.training_lock(blocking=False, slot=slot)):
                    return slot, lock
                lock.close()
            slot += 1

    def _submit(self, run, slot, lock) -> None:
        try:
            self.store.writable_run_dir(run.id)  # a link out of the home fails the run now, not after training
            config_from_dict(run.config)
            data = self._data_ref(run)
        except Exception as error:
            self.store.finish(run.id, Status.FAILED, error=f"{type(error).__name__}: {error}")
            lock.close()
            self.log(f"run {run.id} failed: {error}")
            return
        ref = train_task.options(num_cpus=self.cpus).remote(run.id, run.config, data, self.mailbox, self.cpus)
        self.flights[ref] = Flight(run.id, slot, lock)
        self.log(f"run {run.id} ({run.name}) sent to the cluster (slot {slot})")

    def _data_ref(self, run):
        """The run's data in the cluster's object store, put there once per data source."""
        dataset = run_dataset(run, self.datasets)
        self.store.update(run.id, data_source=dataset.source)
        if dataset.source not in self.data_refs:
            self.data_refs[dataset.source] = ray.put(dataset)
            self.log(f"data {dataset.source} sent to the cluster's object store")
        return self.data_refs[dataset.source]

    # -- what comes back -----------------------------------------------------------------------
    def _deliver(self, messages) -> None:
        """The tasks' reports into the store, for runs still in training (a late progress
        post of a run already saved is dropped). Only the latest progress of each run is
        written: a dispatcher that falls behind (one store write per message) catches up
        instead of replaying every half second it missed."""
        training = {flight.run_id for flight in self.flights.values()}
        latest = {}
        for run_id, kind, payload in messages:
            if run_id not in training:
                continue
            if kind == "started":
                self.store.update(run_id, runtime=payload)
                self.log(f"run {run_id} training on node {payload['node_ip']} ({payload['node_id'][:8]})")
            elif kind == "progress":
                latest[run_id] = payload
            elif kind == "epoch":
                self.store.append_epoch(run_id, EpochRecord.from_dict(payload))
            elif kind == "checkpoint":
                self.store.save_model(run_id, KerasFile(payload))
        for run_id, payload in latest.items():
            event = Progress.from_dict(payload)
            event.updated_at = time.time()  # this machine's clock: the one the stall check reads
            self.store.update(run_id, progress=event)

    def _land(self, ref) -> None:
        flight = self.flights.pop(ref)
        try:
            answer = ray.get(ref)
            if answer["model"] is not None:
                save_outputs(self.store, flight.run_id, KerasFile(answer["model"]), answer["facts"], answer["arrays"])
            finish_run(self.store, flight.run_id, Status(answer["status"]), answer["metrics"])
            self.log(f"run {flight.run_id} {answer['status']}")
        except RayError as error:
            cause = error.cause if isinstance(error, RayTaskError) else error
            if isinstance(cause, RayError):  # its node, worker or mailbox died, or it was cancelled: as a killed trainer
                self.store.mark_interrupted(flight.slot)
                self.log(f"run {flight.run_id} interrupted: {type(cause).__name__}")
            else:  # the training raised, as it would have here: the run failed
                self.store.finish(flight.run_id, Status.FAILED, error=f"{type(cause).__name__}: {cause}")
                self.log(f"run {flight.run_id} failed: {cause}")
        except Exception as error:  # what came back could not be saved
            self.store.finish(flight.run_id, Status.FAILED, error=f"{type(error).__name__}: {error}")
            self.log(f"run {flight.run_id} failed: {error}")
        finally:
            flight.lock.close()

    # -- stopping ------------------------------------------------------------------------------
    def _pass_stops(self) -> None:
        """The store's stop requests (the Stop button, ``stop``) on to the tasks, polled as
        often as a local trainer polls them."""
        if not self.flights or time.monotonic() - self.last_stop_poll < PROGRESS_EVERY:
            return
        self.last_stop_poll = time.monotonic()
        asked = {run.id for run in self.store.list_runs(statuses=(Status.RUNNING,)) if run.stop_requested}
        for flight in self.flights.values():
            if flight.run_id in asked:
                self._send_stop(flight)

    def _send_stop(self, flight) -> None:
        if not flight.stop_sent:
            flight.stop_sent = True
            self.mailbox.stop.remote(flight.run_id)

    def abandon(self) -> None:
        """Leaving with runs still in training (a second signal, an error here): their
        tasks are cancelled and the runs marked interrupted, as a killed worker's are."""
        for ref, flight in list(self.flights.items()):
            ray.cancel(ref, force=True)
            self.store.mark_interrupted(flight.slot)
            flight.lock.close()
            self.log(f"run {flight.run_id} interrupted: the dispatcher left")
        self.flights.clear()
