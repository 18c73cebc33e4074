"""Fault injection for the reliability tests: worker processes to kill, and kills placed
exactly at a write boundary.

Importing TensorFlow takes seconds on a busy 2-core machine, and a killed worker is a
fresh process each time. So a *zygote* process imports the worker's code once and forks
one worker per request; each fork is a real, separate process that trains from the same
store and dies by a real SIGKILL, exactly like ``python -m kmnist_core.worker`` would.
Run as a script, it reads one JSON request per line on stdin and answers each with the
forked worker's pid.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Zygote:
    """The test side: start the zygote, ask it for workers, kill them, wait for them."""

    def __init__(self):
        self.process = subprocess.Popen(
            [sys.executable, __file__], cwd=PROJECT_ROOT, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )
        assert self.process.stdout.readline().strip() == "ready"

    def worker(self, home, idle_exit=0.0, checkpoint_every=None, kill_at=None, workers=1) -> int:
        """Fork a worker draining ``home``'s queue, one of ``workers`` (KMNIST_WORKERS)
        that may train side by side. ``kill_at`` = {"method": "finish", "call": 1,
        "after": False} makes it SIGKILL itself at that ``RunStore`` method call; method
        "keras_save" kills it after writing half of a model file."""
        request = {"home": str(home), "idle_exit": idle_exit, "checkpoint_every": checkpoint_every,
                   "kill_at": kill_at, "workers": workers}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return int(self.process.stdout.readline())

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=30)


def kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    wait_gone(pid)


def wait_gone(pid, timeout=120.0) -> bool:
    """True once ``pid`` has exited (the zygote reaps its children at once)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False


# -- the zygote side ---------------------------------------------------------------------
def catches(pid, signum) -> bool:
    """Whether process ``pid`` has a handler of its own for ``signum`` (``SigCgt`` in
    /proc): how a test knows a trainer is inside ``stop_on_signals`` before signalling it,
    instead of sleeping a guessed second."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught, 16) >> (int(signum) - 1) & 1)


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


def _arm(kill_at):
    """Make this process SIGKILL itself at the ``kill_at["call"]``-th call of a write."""
    from kmnist_core.store import RunStore

    calls = {"n": 0}
    if kill_at["method"] == "keras_save":
        import keras

        original_save = keras.Model.save

        def half_written_save(model, path, *args, **kwargs):
            original_save(model, path, *args, **kwargs)
            calls["n"] += 1
            if calls["n"] == kill_at["call"]:
                os.truncate(path, os.path.getsize(path) // 2)
                _die()

        keras.Model.save = half_written_save
        return
    original = getattr(RunStore, kill_at["method"])

    def hooked(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == kill_at["call"] and not kill_at.get("after"):
            _die()
        result = original(self, *args, **kwargs)
        if calls["n"] == kill_at["call"]:
            _die()
        return result

    setattr(RunStore, kill_at["method"], hooked)


def _serve():
    sys.path.insert(0, str(PROJECT_ROOT))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import kmnist_core.runner as runner
    from kmnist_core.worker import run_worker

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped as they die
    print("ready", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid:
            print(pid, flush=True)
            continue
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        log = os.open(Path(request["home"]) / "worker.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.dup2(log, 1)
        os.dup2(log, 2)
        if request["checkpoint_every"] is not None:
            runner.CHECKPOINT_EVERY = request["checkpoint_every"]
        if request["kill_at"]:
            _arm(request["kill_at"])
        os.environ["KMNIST_WORKERS"] = str(request["workers"])
        run_worker(request["home"], idle_exit=request["idle_exit"])
        os._exit(0)


if __name__ == "__main__":
    _serve()
