"""What runs on a Ray cluster: one run's training as a task, and the mailbox it reports through.

The task trains with the runner's own code (``runner.train_run``); only its ``Reporter``
differs: instead of writing the store, which stays on the app's machine, it posts progress,
epoch records and checkpoints to a ``Mailbox`` actor that the dispatcher
(``kmnist_core.dispatcher``) empties into the store, and asks the mailbox whether the run
was asked to stop. The finished model (the bytes of its .keras file) and the prediction
arrays come back as the task's result, through Ray's object store.

Imported only when runs are trained on Ray (``KMNIST_RAY_ADDRESS``); every node needs this
project and its pinned requirements installed, as the app's machine has them.
"""

import os
import tempfile
from pathlib import Path

import ray

from .config import config_from_dict
from .hardware import WORKERS_ENV, usable_cores
from .runner import Reporter, train_run


@ray.remote(num_cpus=0, max_restarts=0)
class Mailbox:
    """Messages from the tasks, (run id, kind, payload), kept in order until the
    dispatcher takes them; and the runs the dispatcher asked to stop."""

    def __init__(self):
        self.messages, self.stopping = [], set()

    def post(self, message) -> None:
        self.messages.append(message)

    def take(self) -> list:
        messages, self.messages = self.messages, []
        return messages

    def stop(self, run_id) -> None:
        self.stopping.add(run_id)

    def should_stop(self, run_id) -> bool:
        return run_id in self.stopping


class MailboxReporter(Reporter):
    """A training's reports, posted to the mailbox. Progress is posted without waiting (a
    lost one is replaced half a second later); an epoch record or a checkpoint is waited
    for, so that what a run finished is on the app's machine before it goes on."""

    def __init__(self, mailbox, run_id):
        super().__init__()
        self.mailbox, self.run_id = mailbox, run_id

    def write_progress(self, event):
        self.mailbox.post.remote((self.run_id, "progress", event.to_dict()))

    def write_epoch(self, record):
        ray.get(self.mailbox.post.remote((self.run_id, "epoch", record.to_dict())))

    def write_checkpoint(self, model):
        ray.get(self.mailbox.post.remote((self.run_id, "checkpoint", keras_bytes(model))))

    def poll_stop(self) -> bool:
        return ray.get(self.mailbox.should_stop.remote(self.run_id))


def keras_bytes(model) -> bytes:
    """The model as the bytes of its .keras file (the format the store keeps)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        model.save(path)
        return path.read_bytes()


def where() -> dict:
    """The runtime facts of a run trained here: the executor and the node."""
    context = ray.get_runtime_context()
    return {"executor": "ray", "node_id": context.get_node_id(), "node_ip": ray.util.get_node_ip_address()}


@ray.remote(max_retries=0)  # a run trains exactly once: a task lost with its node is an interrupted run, not a retry
def train_task(run_id, config_values, dataset, mailbox, cpus) -> dict:
    """Train one run on this node with ``cpus`` cores (the task's reservation: TensorFlow's
    threads are sized to it, not to the whole node). ``dataset`` is the object the
    dispatcher put in the object store once per data source. Returns {status, metrics,
    model (bytes or None), facts, arrays}."""
    node = where() | {"cpus": cpus}
    ray.get(mailbox.post.remote((run_id, "started", node)))
    os.environ[WORKERS_ENV] = str(max(1, usable_cores() // cpus))  # training_threads: cores // workers
    outcome = train_run(config_from_dict(config_values), dataset, MailboxReporter(mailbox, run_id))
    answer: dict = {"status": str(outcome.status), "metrics": outcome.metrics, "model": None, "facts": None,
                    "arrays": outcome.arrays}
    if outcome.result is not None:
        facts = outcome.facts()
        facts["runtime"].update(node)
        answer.update(model=keras_bytes(outcome.result.model), facts=facts)
    return answer
