"""Training slots: one lock file per training that may run at once (``KMNIST_WORKERS``).

A trainer holds its slot's lock for as long as it trains; the OS drops the lock when the
process dies, even by SIGKILL, so a run left "running" in a slot nobody holds is known to
be an orphan (``RunStore.reconcile``). A part of ``RunStore``."""

import fcntl
import os
import stat
import time
from contextlib import contextmanager

from . import diskspace
from .checks import check_int
from .database import Connections
from .errors import StoreError
from .hardware import worker_count


class TrainingSlots(Connections):

    @contextmanager
    def training_lock(self, blocking=True, patience=0.0, slot=0):
        """Held by whoever trains in training slot ``slot``. The OS drops it when that
        process dies, even by SIGKILL, so 'running' runs of that slot found while holding
        it are known to be orphans. Yields True when acquired, False when
        ``blocking=False`` and someone else has it (after retrying for ``patience``
        seconds: others take it for a moment to check)."""
        handle = self._open_lock(slot)
        try:
            if not _flock(handle, blocking, patience):
                yield False
                return
            yield True
        finally:
            os.close(handle)

    @contextmanager
    def free_slot(self, slots=None, patience=0.0):
        """Hold the first free one of training slots 0..``slots``-1 (default
        ``KMNIST_WORKERS``), retrying for ``patience`` seconds; yields its number, or None
        when all are taken."""
        slots = worker_count() if slots is None else slots
        deadline = time.monotonic() + patience
        while True:
            for slot in range(slots):
                with self.training_lock(blocking=False, slot=slot) as acquired:
                    if acquired:
                        yield slot
                        return
            if time.monotonic() >= deadline:
                yield None
                return
            time.sleep(0.05)

    def _open_lock(self, slot=0) -> int:
        """A slot's lock file (slot 0: ``training.lock``, as before there were slots), never
        followed through a link, and only if it is a regular file."""
        path = self.home / ("training.lock" if slot == 0 else f"training-{check_int('slot', slot, 1)}.lock")
        if self.read_only:
            raise self._read_only_error()
        try:
            handle = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
        except OSError as error:
            raise diskspace.translate(error, self.home) or StoreError(
                f"{path} cannot be used as the training lock ({error.strerror}); move it aside") from None
        if not stat.S_ISREG(os.fstat(handle).st_mode):
            os.close(handle)
            raise StoreError(f"{path} is not a regular file, so it cannot be the training lock; move it aside")
        return handle

    def held_slots(self, slots=None) -> list:
        """The training slots among 0..``slots``-1 (default ``KMNIST_WORKERS``) that a
        trainer holds."""
        held = []
        for slot in range(worker_count() if slots is None else slots):
            with self.training_lock(blocking=False, slot=slot) as acquired:
                if not acquired:
                    held.append(slot)
        return held

    def trainer_active(self, slots=None) -> bool:
        return bool(self.held_slots(slots))


def _flock(handle, blocking, patience) -> bool:
    deadline = time.monotonic() + patience
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
