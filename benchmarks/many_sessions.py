"""A class on one server: 20 browser sessions with the Train page open while a run trains,
then the same 20 sessions each queueing a run. Prints the server's CPU use, SQLite opens
per second, page response times and whether every queued run arrived exactly once.

    KMNIST_DATA_DIR=/work/shared/data/kmnist-mini .venv/bin/python benchmarks/many_sessions.py
    ... --app-dir /tmp/before   # the same measurement of another checkout (e.g. git archive HEAD~3)

The server is `streamlit run app.py` started by a tiny launcher that counts calls to
``sqlite3.connect`` in the server process only (every store read or write opens one
connection) and writes the count to a file twice a second; the background trainer is a
separate process and is neither counted nor included in the CPU figure. One chromium
(Debian's), one context per session. Wall-clock figures depend on the host's load, which
is printed with them: the CPU other processes used during each measurement (``hostload``);
a figure taken while they used more than half a core is labelled UNDER LOAD, and on a host
already busier than its cores the benchmark refuses to start unless ``--under-load``.
"""

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import hostload
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
TICKS = os.sysconf("SC_CLK_TCK")

# Runs in the server process before Streamlit starts: count sqlite3.connect calls.
LAUNCHER = """
import os, sqlite3, sys, threading, time
count, real = [0], sqlite3.connect
def counted(*args, **kwargs):
    count[0] += 1
    return real(*args, **kwargs)
sqlite3.connect = counted
def report(path=sys.argv.pop(1)):
    while True:
        with open(path + ".tmp", "w") as out:
            out.write(str(count[0]))
        os.replace(path + ".tmp", path)  # never read half-written
        time.sleep(0.5)
threading.Thread(target=report, daemon=True).start()
from streamlit.web.cli import main
sys.argv[0] = "streamlit"
main()
"""


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url, timeout=90):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as reply:
                if reply.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("streamlit did not answer its health check") from None
            time.sleep(0.2)


def cpu_seconds(pid) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def opens(path) -> int:
    try:
        return int(path.read_text() or 0)
    except (OSError, ValueError):
        return 0


def quantiles(values) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
    return f"p50 {statistics.median(values):.2f} s, p95 {p95:.2f} s, max {values[-1]:.2f} s (n={len(values)})"


def open_train(context, url):
    """A session with the Train page drawn (its run picker shown)."""
    page = context.new_page()
    page.set_default_timeout(300_000)  # a loaded host with 20 tabs drawing is slow, not broken
    page.goto(f"{url}/train")
    page.get_by_text("Show run").first.wait_for()
    return page


def switch(page, title, ready) -> float:
    """Seconds from a click on the sidebar link ``title`` until ``ready`` text shows."""
    start = time.monotonic()
    page.get_by_role("link", name=title, exact=True).first.click()
    page.get_by_text(ready).first.wait_for()
    return time.monotonic() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=40.0, help="length of the idle-polling window")
    parser.add_argument("--switches", type=int, default=5, help="sessions that each switch Home and back")
    parser.add_argument("--app-dir", type=Path, default=ROOT, help="the checkout to serve")
    parser.add_argument("--shared", action="store_true", help="serve with KMNIST_SHARED=1")
    parser.add_argument("--under-load", action="store_true",
                        help="measure even on a host already busy before the start (figures labelled)")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # each figure as soon as it is measured
    print(f"host before the start: {hostload.load_text()}")
    if (busy := hostload.busy_on_start()) and not args.under_load:
        sys.exit(f"refusing to measure: {busy}; re-run on a quiet host, or pass --under-load to print "
                 f"figures labelled as taken under load")
    app_dir = args.app_dir.resolve()
    sys.path.insert(0, str(app_dir))
    from kmnist_core.config import make_config
    from kmnist_core.data import default_data_dir
    from kmnist_core.store import RunStore

    data = os.path.abspath(default_data_dir())
    home = Path(tempfile.mkdtemp(prefix="many-sessions-"))
    store = RunStore(home)
    long_run = store.create_run(make_config("overfit", epochs=500), data_dir=data)
    counter = home / "sqlite-opens"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, KMNIST_HOME=str(home), KMNIST_DATA_DIR=data, KMNIST_WORKER_IDLE_EXIT="5",
               PYTHONPATH=str(app_dir), KMNIST_SHARED="1" if args.shared else "")
    log = open(home / "streamlit.log", "w")  # noqa: SIM115 (the server's output while it runs)
    server = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(counter), "run", "app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"],
        cwd=app_dir, env=env, stdout=log, stderr=subprocess.STDOUT)
    print(f"serving {app_dir} (KMNIST_SHARED={env['KMNIST_SHARED'] or 'unset'}), data {data}, home {home}")
    try:
        wait_healthy(url)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(args.sessions)]
            start, others = time.monotonic(), hostload.OthersWatch()
            pages = [open_train(context, url) for context in contexts]  # one after another
            print(f"{len(pages)} sessions opened the Train page one after another in "
                  f"{time.monotonic() - start:.0f} s; {others.label()}")
            while store.get(long_run).progress is None:  # the worker has loaded TF and the data, and trains
                time.sleep(0.5)
            measure_polling(args, server.pid, counter)
            measure_switches(pages[:args.switches])
            measure_queueing(pages, store, long_run, server.pid, counter)
            browser.close()
    finally:
        for run in store.list_runs(statuses=("queued", "running")):
            store.request_stop(run.id)
        server.terminate()
        server.wait(timeout=30)
        log.close()


def measure_polling(args, pid, counter):
    """The Train page open in every session, one run training, nobody clicking."""
    cpu, count, start, others = cpu_seconds(pid), opens(counter), time.monotonic(), hostload.OthersWatch()
    time.sleep(args.seconds)
    wall = time.monotonic() - start
    cpu, count = cpu_seconds(pid) - cpu, opens(counter) - count
    print(f"{args.sessions} sessions polling the Train page for {wall:.0f} s while a run trains: "
          f"server CPU {100 * cpu / wall:.0f}% of one core, {count / wall:.1f} SQLite opens/s "
          f"({count / wall / args.sessions:.2f} per session per second); {others.label()}")


def measure_switches(pages):
    """Page response while the others poll: Train -> Home -> Train in these sessions in turn."""
    times, others = [], hostload.OthersWatch()
    for page in pages:
        times.append(switch(page, "Home", "The ten classes"))
        times.append(switch(page, "Train", "Show run"))
    print(f"page switch (click to content drawn) while the other sessions poll: {quantiles(times)}; {others.label()}")


def measure_queueing(pages, store, long_run, pid, counter):
    """Every session presses Start training at once; each run must arrive exactly once."""
    before = {run.id for run in store.list_runs()}
    cpu, count, start, others = cpu_seconds(pid), opens(counter), time.monotonic(), hostload.OthersWatch()
    clicked = []
    for page in pages:
        page.get_by_role("button", name="Start training").click()
        clicked.append(time.monotonic())
    shown = []
    for page, at in zip(pages, clicked):
        # Its own new run picked in its run view; or, when the click's rerun was cut short
        # and delivered again on a loaded host, the form's "queued a moment ago" (still once).
        page.get_by_text(re.compile("^Queued,|queued a moment ago")).first.wait_for()
        shown.append(time.monotonic() - at)
    wall = time.monotonic() - start
    cpu, count = cpu_seconds(pid) - cpu, opens(counter) - count
    new = [run for run in store.list_runs() if run.id not in before]
    owners = {run.owner for run in new}
    print(f"{len(pages)} sessions each pressing Start training at once: {len(new)} runs queued "
          f"({len(new) - len(pages):+d} vs. presses), {len(owners)} distinct owners "
          f"{'' if None not in owners else '(owner not recorded) '}in {wall:.1f} s; click to own run shown "
          f"{quantiles(shown)}; server CPU {100 * cpu / wall:.0f}%, {count / wall:.1f} SQLite opens/s; {others.label()}")
    assert store.get(long_run).status == "running", "the long run ended early: raise its epochs"


if __name__ == "__main__":
    main()
