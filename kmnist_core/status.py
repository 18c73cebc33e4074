"""A run's life in one place: its statuses and the moves allowed between them.

    queued ──▶ running ──▶ completed | stopped | failed | interrupted
       └──▶ cancelled

``interrupted`` is a status of its own, not a kind of failure: the process that trained
the run died (server restart, crash, kill) and the next trainer found it orphaned. The
run keeps its finished epochs, and the store records which runs were waiting at that
moment so the app can say what the queue did next.
"""

import time
from enum import StrEnum

from .stall import silent_at_start


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


# -- a running run that does not move -------------------------------------------------------
STALL_FLOOR = 60.0  # seconds without progress before any running run is called stalled
STALL_PACE = 10  # ... or this many times its own mean time between progress writes, if longer
STALL_START = 600.0  # seconds a run may take to be scored and saved after its last batch
# (full-scale `best` on a loaded 2-core host: minutes; benchmarks/full_scale.py)


def stalled(run, now=None, startups=()) -> float | None:
    """Seconds a running run has gone without a progress write, when that is longer than
    max(STALL_FLOOR, STALL_PACE x its own mean time between writes); else None.

    A trainer paused with Ctrl-Z, or hung, still holds the training lock, so its run is no
    orphan, yet nothing moves and the queue waits behind it. The rule follows the run's own
    pace (a large model's batch may take seconds) with a floor for the fast ones; before
    the first write (data loading, graph tracing) it allows a few times the slowest recent
    start-up on the same data (``startups``, from ``stall.recent_startups``), and after the
    last batch (scoring on the test split, saving the model) ``STALL_START`` seconds."""
    if run.status != Status.RUNNING:
        return None
    now = time.time() if now is None else now
    progress = run.progress
    if progress is None:
        return silent_at_start(run, startups, now)
    if progress.updated_at is None:  # written by a release that did not record the time
        return None
    silent = now - progress.updated_at
    if progress.epoch >= progress.epochs and progress.step >= progress.steps:  # scored and saved after the last batch
        return silent if silent > STALL_START else None
    pace = progress.elapsed / max(1, progress.writes)
    return silent if silent > max(STALL_FLOOR, STALL_PACE * pace) else None


def stall_note(seconds) -> str:
    """How a stalled run is described, the same in the CLI and the app."""
    return f"stalled: no progress for {int(seconds // 60)} min (paused or hung?)"
