"""How busy the host is with work that is not the benchmark's, so that a figure taken on a
shared machine says so (or is not printed at all).

The load average counts the benchmark's own server, browser and trainer as much as anyone
else's jobs, so besides it this measures the CPU time of *other* processes over a window:
all busy time in /proc/stat minus that of this process and its descendants (a process that
exits hands its time to its parent, so nothing is lost in between). Linux only.
"""

import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
OTHERS_LIMIT = 0.5  # cores other processes may use during a measurement before its figure is "under load"


def cores() -> int:
    """The CPUs this process may run on (what `nproc` prints)."""
    return len(os.sched_getaffinity(0))


def load_text() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg()) + f" on {cores()} cores"


def busy_on_start() -> str | None:
    """Why the host is too busy to start measuring (its 1-minute load average already over
    its cores before the benchmark runs anything); None when it is not."""
    load = os.getloadavg()[0]
    if load > cores():
        return f"the host is busy before the benchmark starts: 1-minute load {load:.2f} on {cores()} cores"
    return None


def _host_busy_ticks() -> int:
    """Busy CPU time of the whole host: user, nice, system, irq, softirq, steal."""
    values = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return sum(values) - values[3] - values[4]  # minus idle and iowait


def _tree_ticks(root) -> int:
    """CPU time of ``root`` and its descendants, including their reaped children's."""
    parents, ticks = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited meanwhile
            continue
        parents[int(entry.name)] = int(fields[1])
        ticks[int(entry.name)] = sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    ours, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in ours]
        ours.update(children)
        frontier += children
    return sum(ticks.get(pid, 0) for pid in ours)


class OthersWatch:
    """CPU used by processes outside this one's tree between ``start()`` and ``cores_used()``."""

    def __init__(self, root=None):
        self.root = os.getpid() if root is None else root
        self.start()

    def start(self):
        self.started = (os.times().elapsed, _host_busy_ticks(), _tree_ticks(self.root))

    def cores_used(self) -> float:
        elapsed, host, ours = self.started
        wall = max(os.times().elapsed - elapsed, 1e-9)
        return max(0.0, (_host_busy_ticks() - host - (_tree_ticks(self.root) - ours)) / TICKS / wall)

    def label(self) -> str:
        """How busy others kept the host during the window, and "UNDER LOAD" when that is
        more than OTHERS_LIMIT cores: such a figure measures the other work as much as ours."""
        used = self.cores_used()
        verdict = "UNDER LOAD, not a clean figure: " if used > OTHERS_LIMIT else ""
        return f"{verdict}other processes used {used:.2f} of {cores()} cores meanwhile; {load_text()}"
