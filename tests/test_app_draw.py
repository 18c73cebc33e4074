"""Draw page: an empty canvas invents nothing; an uploaded character is preprocessed,
shown as the model sees it and read by one or several models; odd uploads get a clear
message."""

import io

import numpy as np
from PIL import Image

from kmnist_core.classes import CLASSES
from kmnist_core.data import load_kmnist
from kmnist_core.preprocess import MAX_UPLOAD_BYTES

from app_support import app, app_home, app_runs, texts, trained_home  # noqa: F401


def png(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def upload(page, name, data, mime="image/png"):
    page.button_group(key="draw_source").set_value("Upload").run()
    page.file_uploader[0].set_value((name, data, mime)).run()
    assert not page.exception, [e.value for e in page.exception]
    return page


def test_without_a_model_it_offers_a_quick_training(app_home):
    page = app("pages/draw.py")
    assert "no trained model" in texts(page.info)
    assert page.button(key="quick_train")
    assert len(page.image) == 10  # the reference strip still shows what to draw


def test_empty_canvas_asks_for_a_drawing_and_predicts_nothing(app_runs):
    page = app("pages/draw.py")
    assert "Draw a character on the canvas" in texts(page.info)
    assert "Predictions" not in texts(page.subheader)
    assert not page.get("plotly_chart")


def test_the_chosen_models_survive_a_page_switch(app_runs):
    """Bug (issue 22): chose #2, #3, #4, looked at Compare, came back: only the default was left."""
    page = app("pages/draw.py")
    both = sorted(run.id for run in app_runs.list_runs())
    assert page.multiselect[0].value != both
    page.multiselect[0].set_value(both).run()
    page.switch_page("pages/compare.py")
    page.run()
    page.switch_page("pages/draw.py")
    page.run()
    assert sorted(page.multiselect[0].value) == both


def test_every_change_to_the_chosen_models_sticks(app_runs):
    """Seen in Chromium: adding #6 and then #2 lost #2 (as on Compare: a default that followed
    the last choice gave the picker a new identity at every change)."""
    page = app("pages/draw.py")
    both = sorted(run.id for run in app_runs.list_runs())
    page.multiselect[0].set_value(both).run()
    page.multiselect[0].set_value([both[1]]).run()
    assert page.multiselect[0].value == [both[1]]
    page.multiselect[0].set_value([]).run()
    assert page.multiselect[0].value == [] and "Pick a model above to read your drawing." in texts(page.info)


def test_a_circle_is_called_unlike_every_class_and_a_real_character_is_not(app_runs):
    """Issue 22: a circle was read at 90-100% with no word of caution."""
    x_test = load_kmnist().x_test
    page = app("pages/draw.py")
    upload(page, "scan.png", png(255 - np.kron(x_test[0], np.ones((4, 4), np.uint8))))
    assert "Unlike every character it learnt" not in texts(page.warning)
    rows, columns = np.mgrid[:280, :280]
    ring = np.hypot(rows - 140, columns - 140)
    page.file_uploader[0].set_value(("circle.png", png(np.where((ring > 90) & (ring < 108), 0, 255)), "image/png")).run()
    caution = texts(page.warning)
    assert "Unlike every character it learnt" in caution and "confidence is not correctness" in caution


def test_uploaded_character_is_read_by_every_selected_model(app_runs):
    x_test = load_kmnist().x_test
    page = app("pages/draw.py")
    page.multiselect[0].set_value([run.id for run in app_runs.list_runs()]).run()
    # a real test character, drawn dark on light paper and four times larger, like a scan
    scan = 255 - np.kron(x_test[0], np.ones((4, 4), np.uint8))
    upload(page, "scan.png", png(scan))
    preview = page.image[10]
    assert "Predictions" in texts(page.subheader)
    charts = page.get("plotly_chart")
    assert len(charts) == 2
    readings = [m.value for m in page.markdown if m.value.startswith("Reads")]
    assert len(readings) == 2 and all("confidence" in r for r in readings)
    assert preview.proto.imgs[0].url  # the preprocessed sample is shown
    captions = [caption for block in page.image for caption in block.captions]
    why = [c for c in captions if c.startswith("What drove")]
    assert len(why) == 2 and all("(occlusion)" in c for c in why)  # one heat map per model
    kana = {c.hiragana for c in CLASSES}
    look_alikes = [block for block in page.image if len(block.captions) == 5 and set(block.captions) <= kana]
    assert len(look_alikes) == 2  # five nearest training images per model
    page.button_group(key="explain_method").set_value("Integrated gradients").run()
    assert sum("(integrated gradients)" in c for block in page.image for c in block.captions) == 2


def test_blank_and_broken_uploads_get_a_clear_message(app_runs):
    page = app("pages/draw.py")
    upload(page, "blank.png", png(np.full((64, 64), 255)))
    assert "Cannot read this file: there is no character to read" in page.warning[0].value
    assert "File: blank.png" in texts(page.text)
    upload(page, "notes.png", b"these are not image bytes")
    assert "Cannot read this file: the file is not an image" in page.warning[0].value
    assert "File: notes.png" in texts(page.text) and "blank.png" not in texts(page.text)
    assert "Predictions" not in texts(page.subheader)


def test_a_picture_over_the_size_limit_is_refused_with_the_size_and_the_limit(app_runs):
    """A valid picture of 12 MB: the browser stops it at server.maxUploadSize, and a
    client that gets past that meets the page's own check, one line with both sizes."""
    noise = np.random.default_rng(0).integers(0, 256, (2000, 2000, 3), dtype=np.uint8)
    picture = png(noise)
    assert len(picture) > MAX_UPLOAD_BYTES
    page = app("pages/draw.py")
    upload(page, "photo.png", picture)
    assert [warning.value for warning in page.warning] == [
        f"Cannot read this file: the file is {len(picture) / 1e6:.1f} MB; the limit is {MAX_UPLOAD_BYTES / 1e6:.0f} MB"]
    assert "File: photo.png" in texts(page.text)
    assert "Predictions" not in texts(page.subheader)


def test_draw_asks_the_most_accurate_model_first_not_the_newest(app_runs):
    newest, older = app_runs.list_runs()[:2]
    app_runs.update(older.id, metrics={**older.metrics, "test": {**older.metrics["test"], "accuracy": 0.99}})
    app_runs.update(newest.id, metrics={**newest.metrics, "test": {**newest.metrics["test"], "accuracy": 0.50}})
    page = app("pages/draw.py")
    assert page.multiselect[0].value == [older.id]
