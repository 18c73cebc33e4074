"""An 800-px-wide screen, as a classroom projector or a small laptop (issue 22): in Debian's
chromium, the Train page's score tiles show their whole values and labels (they were cut
to "8…", "0…") and its buttons their whole labels, and the Draw canvas fits its column (it was clipped on its right edge)."""

import pytest

from kmnist_core.config import make_config
from kmnist_core.store import RunStore
from kmnist_core.worker import drain_queue

from browser import chromium, data_dir, serve_app, settle

pytestmark = pytest.mark.browser

WIDTH = 800

# A tile's value or label, or any element inside it, narrower than its text (an ellipsis).
CUT_TILES = """() => [...document.querySelectorAll(
    "[data-testid='stMetricValue'], [data-testid='stMetricValue'] *, "
    + "[data-testid='stMetricLabel'], [data-testid='stMetricLabel'] *")]
    .filter(element => element.scrollWidth > element.clientWidth + 1).map(element => element.innerText)"""


# A button's label (or a link styled as one, or a toggle's) cut short with an ellipsis: "Quick study (1–…".
CUT_BUTTONS = """() => [...document.querySelectorAll(
    "[data-testid='stMain'] button *, [data-testid='stMain'] [data-testid='stPageLink'] *, "
    + "[data-testid='stMain'] [data-testid='stCheckbox'] *")]
    .filter(element => (element.innerText || "").trim() && element.scrollWidth > element.clientWidth + 1)
    .map(element => element.innerText)"""


def test_scores_and_canvas_fit_an_800_px_screen(tmp_path):
    home = tmp_path / "home"
    store = RunStore(home)
    store.create_run(make_config("underfit", epochs=1, train_size=500), data_dir=data_dir())
    drain_queue(store)
    with serve_app(home) as url, chromium(width=WIDTH, height=900) as page:
        page.goto(f"{url}/train")
        page.get_by_text("Test accuracy").first.wait_for()
        settle(page)
        assert page.locator("[data-testid='stMetricValue']").count() == 4
        assert page.evaluate(CUT_TILES) == []
        assert page.evaluate(CUT_BUTTONS) == []

        page.goto(f"{url}/draw")
        canvas = page.locator("canvas.upper-canvas")
        canvas.wait_for()
        settle(page)
        column = page.locator("[data-testid='stColumn']").filter(has=canvas).last
        drawn, room = canvas.bounding_box(), column.bounding_box()
        assert drawn["width"] >= 280 and drawn["x"] + drawn["width"] <= room["x"] + room["width"] + 0.5
