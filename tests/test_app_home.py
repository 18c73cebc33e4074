"""Home page: the dataset, its classes, its source and license; fast (no TensorFlow)."""

import subprocess
import sys

from kmnist_core.classes import CLASSES
from kmnist_core.data import load_kmnist

from app_support import app, app_home, texts  # noqa: F401  (app_home is a fixture)
from browser import ROOT


def test_home_shows_classes_samples_counts_and_license(app_home):
    """The counts and totals are those of whatever folder the loader read (kmnist-mini
    here, the full set elsewhere): the page must report the data, not a fixed size."""
    loaded = load_kmnist()
    page = app()
    markdown = texts(page.markdown)
    for kana in CLASSES:
        assert kana.hiragana in markdown and kana.codepoint in markdown
    assert len(page.image) == 10  # one strip of real samples per class
    table = page.dataframe[0].value
    assert list(table["class"]) == [kana.label for kana in CLASSES]
    assert {"train": list(table["train"]), "test": list(table["test"])} == loaded.class_counts()
    assert (f"Loaded from **{loaded.source}**: {len(loaded.y_train):,} training and "
            f"{len(loaded.y_test):,} test images.") in markdown
    for needle in ("CC BY-SA 4.0", "doi:10.20676/00000341", "arXiv:1812.01718", "created by CODH", "NIJL"):
        assert needle in markdown
    # the first step named: the Train page opens on one preset, the study is a button away
    assert "**Quick study** trains all six variants on 3,000 images for 30 epochs" in texts(page.caption)


def test_home_without_data_says_how_to_fix_it(app_home, monkeypatch, tmp_path):
    monkeypatch.setenv("KMNIST_DATA_DIR", str(tmp_path / "missing"))
    page = app()
    assert "does not exist" in page.error[0].value
    assert "KMNIST_DATA_DIR" in page.info[0].value
    assert not page.dataframe


def test_home_and_its_modules_do_not_import_tensorflow(app_home):
    script = (
        "import sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        "page = AppTest.from_file('app.py', default_timeout=60).run()\n"
        "assert not page.exception and page.title[0].value == 'KMNIST Explorer'\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
