"""How long a run may stay silent before its first progress write, from measured start-ups.

Between being claimed and its first progress write a run imports TensorFlow, loads its
data, builds its model and traces the first batch. A trainer paused (Ctrl-Z, SIGSTOP) or
hung in that phase still holds its training slot, so it is no orphan, and the only sign
is silence. A fixed ten minutes covered full-scale data on a loaded host but left a worker
stopped during "Starting: loading data…" on kmnist-mini unnoticed for ten minutes. So the
runner records each run's start-up (``runtime["startup_seconds"]``), and the limit is a
few times the slowest recent start-up on the same data, with a floor; ten minutes only
while nothing has been measured on that data yet.
"""

import time

RECENT = 10  # recent start-ups considered
START_FACTOR = 3  # limit: this many times the slowest of them...
START_FLOOR = 60.0  # ... and never under this many seconds
UNMEASURED_START_LIMIT = 600.0  # seconds, while no start-up on that data was measured (full-scale `best`
# on a loaded 2-core host took minutes; benchmarks/full_scale.py)


def recent_startups(runs, like) -> list:
    """Start-up seconds measured on the RECENT latest of ``runs`` (newest first, as
    ``RunStore.list_runs`` gives them) that trained on the same data as ``like``."""
    measured = [(run.runtime or {}).get("startup_seconds") for run in runs
                if run.id != like.id and run.data_dir == like.data_dir]
    return [seconds for seconds in measured if seconds][:RECENT]


def start_limit(startups) -> float:
    """Seconds a run may go without its first progress write."""
    if not startups:
        return UNMEASURED_START_LIMIT
    return max(START_FLOOR, START_FACTOR * max(startups))


def silent_at_start(run, startups, now=None) -> float | None:
    """Seconds a running run has gone since it was claimed without any progress write,
    when that is longer than ``start_limit(startups)``; else None."""
    if run.status != "running" or run.progress is not None:
        return None
    now = time.time() if now is None else now
    silent = now - (run.started_at or now)
    return silent if silent > start_limit(startups) else None
