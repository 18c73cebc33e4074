"""The load figures of benchmarks/many_sessions.py (issue 20, item 7): CPU used by other
processes is told apart from the benchmark's own, and a busy host is refused or labelled."""

import os
import subprocess
import sys
import time

import pytest

from conftest import PROJECT_ROOT, wait_until

sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))
import hostload

BURN = "import sys, time\nstart = time.process_time()\nwhile time.process_time() - start < 0.5: pass\nopen(sys.argv[1], 'w').close()"


def _seconds(ticks):
    return ticks / hostload.TICKS


def test_cpu_of_our_own_children_counts_as_ours(tmp_path):
    before = hostload._tree_ticks(os.getpid())
    subprocess.run([sys.executable, "-c", BURN, str(tmp_path / "done")], check=True, timeout=120)
    assert _seconds(hostload._tree_ticks(os.getpid()) - before) >= 0.4


def test_cpu_of_a_process_outside_our_tree_counts_as_others(tmp_path):
    """A burner started by a shell that exits at once is nobody's child of ours."""
    done = tmp_path / "done"
    watch = hostload.OthersWatch()
    ours = hostload._tree_ticks(os.getpid())
    start = time.monotonic()
    subprocess.run(["sh", "-c", f'"{sys.executable}" -c "$0" "$1" >/dev/null 2>&1 &', BURN, str(done)], check=True)
    assert wait_until(done.exists, timeout=120)
    wall = time.monotonic() - start
    assert watch.cores_used() * wall >= 0.4  # its half second of CPU, plus whatever else ran meanwhile
    assert _seconds(hostload._tree_ticks(os.getpid()) - ours) < 0.4


@pytest.mark.parametrize("load, refused", [(0.5, False), (2.5, True)])
def test_a_host_busier_than_its_cores_is_refused_before_measuring(monkeypatch, load, refused):
    monkeypatch.setattr(hostload.os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(hostload, "cores", lambda: 2)
    reason = hostload.busy_on_start()
    assert (reason is not None) == refused
    if refused:
        assert "1-minute load 2.50 on 2 cores" in reason


@pytest.mark.parametrize("others, labelled", [(0.1, False), (1.2, True)])
def test_a_figure_taken_while_others_used_the_cpu_says_under_load(monkeypatch, others, labelled):
    watch = hostload.OthersWatch()
    monkeypatch.setattr(watch, "cores_used", lambda: others)
    label = watch.label()
    assert label.startswith("UNDER LOAD") == labelled and f"other processes used {others:.2f} of" in label
