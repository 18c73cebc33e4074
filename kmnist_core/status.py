"""A run's life in one place: its statuses and the moves allowed between them.

    queued ──▶ running ──▶ completed | stopped | failed | interrupted
       └──▶ cancelled

``interrupted`` is a status of its own, not a kind of failure: the process that trained
the run died (server restart, crash, kill) and the next trainer found it orphaned. The
run keeps its finished epochs, and the store records which runs were waiting at that
moment so the app can say what the queue did next.
"""

from enum import StrEnum


class Status(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    STOPPED = "stopped"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


ACTIVE = frozenset({Status.QUEUED, Status.RUNNING})
FINISHED = frozenset(Status) - ACTIVE
WITH_MODEL = frozenset({Status.COMPLETED, Status.STOPPED})  # a model worth asking on Draw
NEXT = {
    Status.QUEUED: frozenset({Status.RUNNING, Status.CANCELLED}),
    Status.RUNNING: frozenset({Status.COMPLETED, Status.STOPPED, Status.FAILED, Status.INTERRUPTED}),
}


def can_move(old, new) -> bool:
    """True when a run in status ``old`` may move to ``new``."""
    return Status(new) in NEXT.get(Status(old), frozenset())
