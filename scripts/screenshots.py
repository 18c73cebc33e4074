"""Screenshots of every page for the README: `python scripts/screenshots.py [out_dir]`.

Trains a few small runs of the study into a temporary store (so the pages have something
to show), serves the app, and drives Debian's chromium through Home, Train (a finished
run, then one live with its Stop button), Compare and Draw (a stroke and its reading).
Writes PNGs to docs/ by default.
"""

import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from test_e2e_browser import draw_stroke

from kmnist_core.config import make_config
from kmnist_core.store import RunStore
from kmnist_core.sweep import enqueue_sweep
from kmnist_core.worker import drain_queue

from browser import chromium, data_dir, open_page, serve_app, settle

RUNS = ["underfit", "overfit", "dropout", "l1l2"]  # each at its own preset


def train_examples(home) -> RunStore:
    """The study's runs, and a learning-curve sweep (training images 500 … 5,400, 2 seeds)."""
    store = RunStore(home)
    for variant in RUNS:
        store.create_run(make_config(variant), data_dir=data_dir())
    enqueue_sweep(store, "overfit", "train_size", "500,1500,3000,5400", seeds=2, data_dir=data_dir(), epochs=15)
    drain_queue(store)
    return store


def shoot(page, path, height):
    page.set_viewport_size({"width": 1400, "height": height})
    settle(page)
    page.wait_for_timeout(1500)  # plotly draws after Streamlit settles
    page.screenshot(path=str(path))
    print("wrote", path)


def main(out_dir):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as temporary:
        home = Path(temporary) / "home"
        store = train_examples(home)
        with serve_app(home) as url, chromium() as page:
            page.goto(url)
            page.get_by_role("heading", name="KMNIST Explorer").wait_for()
            shoot(page, out / "home.png", 1500)
            open_page(page, "Train")
            shoot(page, out / "train.png", 1700)
            epochs = page.get_by_role("spinbutton", name="Epochs")
            epochs.fill("40")
            epochs.press("Enter")
            settle(page)
            page.get_by_role("button", name="Start training").click()
            page.get_by_text(re.compile(r"epoch [3-9]/40")).first.wait_for(timeout=240_000)
            shoot(page, out / "train-live.png", 1300)
            page.get_by_role("button", name="Stop").click()
            page.get_by_text("Stopped by request").wait_for(timeout=120_000)
            open_page(page, "Compare")
            shoot(page, out / "compare.png", 2400)
            page.get_by_role("heading", name="What regularization did to the weights").scroll_into_view_if_needed()
            page.set_viewport_size({"width": 1400, "height": 1300})
            page.get_by_role("heading", name="What regularization did to the weights").evaluate(
                "element => element.scrollIntoView({block: 'start'})")
            page.wait_for_timeout(1500)
            page.screenshot(path=str(out / "compare-weights.png"))
            print("wrote", out / "compare-weights.png")
            open_page(page, "Sweep")
            page.wait_for_timeout(2000)
            shoot(page, out / "sweep.png", 1300)
            open_page(page, "Draw")
            page.locator("[data-testid='stMultiSelect']").first.click()  # a second model beside it
            page.keyboard.type("l1l2")
            page.keyboard.press("Enter")
            page.keyboard.press("Escape")
            settle(page)
            draw_stroke(page)
            page.get_by_text(re.compile(r"Reads .+ with \d+(\.\d)?% confidence")).first.wait_for(timeout=120_000)
            page.get_by_text(re.compile(r"What drove")).first.wait_for(timeout=120_000)
            shoot(page, out / "draw.png", 1500)
        print(len(store.list_runs()), "runs in the temporary store")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ROOT / "docs")
