"""Does the app stay responsive while a full-scale training runs? Page switches timed in the
real browser (Debian's chromium), idle and then with `best` training on 60,000 images.

    .venv/bin/python benchmarks/app_under_load.py [--rounds 5] [--variant best]

The app reads kmnist-mini tiled x10 (tests/conftest.py write_tiled_folder; TIMING ONLY, deleted
afterwards) and a fresh run store. Each round clicks Home, Train, Compare and Draw in the
sidebar, as a user does, and times each from the click until the page's own content is
drawn and Streamlit has no script run in progress. A first round warms the server up
(imports, caches) and is not counted. Then the preset is queued as the Train page queues
it (``explorer.jobs.submit``: the background worker trains it) and, once its first epoch
is under way, the rounds are repeated; the run is stopped at the end.
"""

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from explorer import jobs
from kmnist_core import hardware
from kmnist_core.config import make_config
from kmnist_core.data import DATA_DIR_ENV
from kmnist_core.records import Progress
from kmnist_core.status import Status
from kmnist_core.store import RunStore

from app_support import wait_for
from browser import chromium, idle, serve_app, settle
from conftest import write_tiled_folder

STARTING = Progress(epoch=0, epochs=0, step=0, steps=0)
QUICK = re.compile("Quick-train")
PAGES = {  # sidebar title -> (its heading, what shows its main content is drawn)
    "Home": ("KMNIST Explorer", lambda page: page.get_by_text("The ten classes")),
    "Train": ("Train", lambda page: page.get_by_role("button", name="Start training")),
    "Compare": ("Compare", lambda page: page.get_by_role("button", name=QUICK)),  # the empty state's offer
    "Draw": ("Draw", lambda page: page.get_by_role("button", name=QUICK)),
}


def switch_to(page, title) -> float:
    """Seconds from the sidebar click until ``title``'s content is drawn and Streamlit is idle."""
    heading, content = PAGES[title]
    began = time.monotonic()
    page.get_by_role("link", name=title, exact=True).first.click()
    page.get_by_role("heading", name=heading).first.wait_for()
    content(page).wait_for()
    idle(page)
    return time.monotonic() - began


def rounds(page, count) -> dict:
    """{page: [seconds per switch]} over ``count`` rounds of every page."""
    timings = {title: [] for title in PAGES}
    for _ in range(count):
        for title in PAGES:
            timings[title].append(switch_to(page, title))
            settle(page)  # let a rerun the page triggered finish before the next click
    return timings


def percentile(values, share) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def summary(label, timings) -> list:
    every = [t for values in timings.values() for t in values]
    rows = [f"| {label} | {title} | {len(values)} | {statistics.median(values):.2f} s | "
            f"{percentile(values, 0.95):.2f} s |" for title, values in timings.items()]
    return [*rows, f"| {label} | **all pages** | {len(every)} | {statistics.median(every):.2f} s | "
                   f"{percentile(every, 0.95):.2f} s |"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the four pages per condition")
    parser.add_argument("--variant", default="best", help="the preset trained meanwhile (default: best)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kmnist-mini-tiled-x10-TIMING-ONLY-") as scratch:
        data_dir, home = Path(scratch) / "data", Path(scratch) / "home"
        write_tiled_folder(data_dir)
        os.environ[DATA_DIR_ENV] = str(data_dir)  # the runs queued below train on it, as the app's would
        os.environ[jobs.IDLE_EXIT_ENV] = "1"  # and their worker leaves soon after, before the folder goes
        store = RunStore(home)
        with serve_app(home, data=data_dir) as url, chromium() as page:
            page.goto(url)
            settle(page)
            rounds(page, 1)  # warm-up: first imports and caches
            load_idle = os.getloadavg()
            idle_timings = rounds(page, args.rounds)
            [run_id] = jobs.submit(store, [make_config(args.variant)])
            wait_for(lambda: (store.get(run_id).progress or STARTING).step >= 20, "the training to be under way",
                     timeout=600)
            progress = store.get(run_id).progress
            load_training = os.getloadavg()
            training_timings = rounds(page, args.rounds)
            run = store.get(run_id)
            store.request_stop(run_id)
            wait_for(lambda: not store.trainer_active(), "the worker to exit", timeout=300)
        assert run.status == Status.RUNNING, f"the run was {run.status} when the measuring ended"
    print(f"machine: {hardware.cpu_name()}, {hardware.usable_cores()} usable cores; host shared with other jobs")
    print(f"data: kmnist-mini tiled x10 (60,000 train images, timing only); run store: empty, then the run "
          f"trained meanwhile: {args.variant}, at epoch {progress.epoch} step {progress.step}/{progress.steps} "
          f"when measuring began, epoch {run.progress.epoch} step {run.progress.step} when it ended")
    print(f"load average (1, 5, 15 min): idle rounds {' '.join(f'{v:.2f}' for v in load_idle)}; "
          f"training rounds {' '.join(f'{v:.2f}' for v in load_training)}\n")
    print("| condition | page | switches | p50 | p95 |\n|---|---|---|---|---|")
    print("\n".join(summary("idle", idle_timings) + summary(f"{args.variant} training", training_timings)))
    print("\nfrom the sidebar click until the page's content is drawn and Streamlit is idle; first round not counted")


if __name__ == "__main__":
    main()
