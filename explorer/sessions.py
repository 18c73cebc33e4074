"""Many users on one server: who queued a run, what a session may change, how much it may queue.

Every browser session gets an owner token (``new_owner``, random, never user text) that is
stored with each run it queues. With ``KMNIST_SHARED=1`` (a teacher's server for a class)
a session still sees every run but may stop, cancel, rename or delete only its own, and
may have at most ``SESSION_LIMIT`` runs waiting or training at once, so one learner cannot
fill the queue the whole class waits in. Without it (one user, any number of tabs) every
session may change every run and nothing is capped. The CLI is the server's owner and
never goes through here. No Streamlit import here.
"""

import os
import secrets

from kmnist_core.status import ACTIVE
from kmnist_core.store import StoreError

SHARED_ENV = "KMNIST_SHARED"
# Active (queued or running) runs one session may have on a shared server: one whole study
# (its six variants), or a few single runs; not two studies. A sweep of more runs is refused.
SESSION_LIMIT = 6
NOT_YOURS = "another session queued it; on this shared server only that session may stop, rename or delete it"


class SessionLimitError(ValueError):
    """Queueing more would exceed the session's share of a shared server; nothing was queued."""


class NotYoursError(StoreError):
    """A session tried to change a run another session queued, on a shared server."""


def shared() -> bool:
    return os.environ.get(SHARED_ENV, "").strip() == "1"


def new_owner() -> str:
    return secrets.token_urlsafe(12)


def may_change(run, owner) -> bool:
    return not shared() or run.owner == owner


def room_problem(runs, owner, adding: int, what: str) -> str | None:
    """Why queueing ``adding`` more runs would exceed this session's share, or None."""
    if not shared():
        return None
    mine = sum(run.owner == owner and run.status in ACTIVE for run in runs)
    if mine + adding <= SESSION_LIMIT:
        return None
    have = f"; this session already has {mine} waiting or training" if mine else ""
    return (f"Not queued: {what} would add {adding} run{'s' if adding != 1 else ''}{have}, and on this shared "
            f"server each session may have at most {SESSION_LIMIT} at once. Wait for some to finish, or "
            f"cancel some.")


def _own(store, run_id, owner):
    """The run, read afresh, if this session may change it; else NotYoursError."""
    run = store.get(run_id)
    if not may_change(run, owner):
        raise NotYoursError(f"Run #{run.id}: {NOT_YOURS}.")
    return run


def request_stop(store, run_id, owner) -> str:
    _own(store, run_id, owner)
    return store.request_stop(run_id)


def rename(store, run_id, name, owner) -> None:
    _own(store, run_id, owner)
    store.rename(run_id, name)


def delete(store, run_id, owner) -> None:
    _own(store, run_id, owner)
    store.delete(run_id)
