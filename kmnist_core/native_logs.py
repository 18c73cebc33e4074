"""TensorFlow's C++ start-up notes (oneDNN, CUDA probing on a CPU machine) kept off stderr.

They are written to file descriptor 2 before any log level applies: on a terminal they
bury the CLI's own output, in Jupyter they are a wall of red, and in the background
worker's log they read like errors ("failed call to cuInit"). ``KMNIST_NATIVE_LOGS=1``
shows them.
"""

import os
import sys
from contextlib import contextmanager

NATIVE_LOGS_ENV = "KMNIST_NATIVE_LOGS"  # set to 1 to see TensorFlow's C++ start-up messages


def _descriptor_2_to_devnull() -> None:
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 2)
    os.close(quiet)


def silence_for_this_process() -> None:
    """For a whole program (the CLI, the background worker): descriptor 2 goes to
    /dev/null, while Python's own stderr (progress bars, errors, tracebacks) keeps where
    it pointed."""
    if not os.environ.get(NATIVE_LOGS_ENV):
        sys.stderr = os.fdopen(os.dup(2), "w", buffering=1)
        _descriptor_2_to_devnull()


@contextmanager
def quiet_while():
    """Descriptor 2 on /dev/null for the ``with`` block only (a notebook's call that
    imports TensorFlow), restored afterwards."""
    if os.environ.get(NATIVE_LOGS_ENV):
        yield
        return
    saved = os.dup(2)
    _descriptor_2_to_devnull()
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
