"""The CLI's studies: `train --variant quick|all` queues the six variants as one study,
`studies` and `study ID` list them with their runs' scores, and `report` writes the report
without ever replacing a file or following a link unasked."""

import contextlib
import json

import pytest

from kmnist_core.cli import main
from kmnist_core.config import STUDY_ORDER
from kmnist_core.store import RunStore

from conftest import write_npz_folder

TINY = ["--epochs", "1", "--hidden-units", "16", "--train-size", "150"]


@pytest.fixture(scope="module")
def quick_study(tmp_path_factory):
    """The quick study, tiny, trained once for the module: (home, its `train --json` output)."""
    home = tmp_path_factory.mktemp("home")
    data = write_npz_folder(tmp_path_factory.mktemp("data"))
    capture = tmp_path_factory.mktemp("out") / "train.json"
    with open(capture, "w") as out, contextlib.redirect_stdout(out):
        code = main(["--home", str(home), "--data-dir", str(data), "train", "--variant", "quick", *TINY, "--json"])
    assert code == 0
    return home, data, json.loads(capture.read_text())


def test_train_variant_quick_queues_one_study_of_the_six_variants(quick_study):
    home, _, printed = quick_study
    assert printed["kind"] == "quick" and printed["name"] == "Quick study"
    assert [run["variant"] for run in printed["runs"]] == list(STUDY_ORDER)
    assert all(run["status"] == "completed" and run["test"]["accuracy"] is not None for run in printed["runs"])
    # the form's settings win over the quick study's 3,000 images and 30 epochs
    assert {(run["config"]["train_size"], run["config"]["epochs"]) for run in printed["runs"]} == {(150, 1)}
    store = RunStore(home)
    assert [run.study_id for run in store.list_runs()] == [printed["id"]] * 6


def test_studies_and_study_list_the_runs_with_their_scores(quick_study, capsys):
    home, _, printed = quick_study
    assert main(["--home", str(home), "studies", "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert (listed["id"], listed["kind"], listed["runs"], listed["completed"]) == (printed["id"], "quick", 6, 6)
    assert main(["--home", str(home), "studies"]) == 0
    assert f"   {printed['id']}  quick       6/6" in capsys.readouterr().out
    assert main(["--home", str(home), "study", str(printed["id"])]) == 0
    text = capsys.readouterr().out
    store = RunStore(home)
    for run in store.study_runs(printed["id"]):
        assert f"{run.id:>4}  {run.variant:<9} completed   {run.metrics['test']['accuracy']:8.3f}" in text
    assert main(["--home", str(home), "study", "99"]) == 1
    assert "no study with id 99" in capsys.readouterr().err


def test_report_writes_html_or_markdown_and_refuses_to_overwrite(quick_study, tmp_path, capsys):
    home, _, printed = quick_study
    study = str(printed["id"])
    markdown, page = tmp_path / "study.md", tmp_path / "study.html"
    assert main(["--home", str(home), "report", study, "--to", str(markdown)]) == 0
    assert main(["--home", str(home), "report", study, "--to", str(page)]) == 0
    assert markdown.read_text().startswith("# Quick study") and "python -m kmnist_core --data-dir" in markdown.read_text()
    assert page.read_text().startswith("<!DOCTYPE html>") and "Plotly.newPlot(" in page.read_text()
    capsys.readouterr()
    markdown.write_text("mine")
    assert main(["--home", str(home), "report", study, "--to", str(markdown)]) == 1
    assert "already exists" in capsys.readouterr().err and markdown.read_text() == "mine"
    assert main(["--home", str(home), "report", study, "--to", str(markdown), "--force"]) == 0
    assert markdown.read_text().startswith("# Quick study")
    link = tmp_path / "link.md"
    link.symlink_to(tmp_path / "target.md")
    assert main(["--home", str(home), "report", study, "--to", str(link), "--force"]) == 1
    assert "symbolic link" in capsys.readouterr().err and not (tmp_path / "target.md").exists()
    assert main(["--home", str(home), "report", study, "--to", str(tmp_path / "study.pdf")]) == 2
    assert "report file must end in .html or .md, got '.pdf'" in capsys.readouterr().err


def test_a_study_takes_no_run_name(quick_study, capsys):
    home, data, _ = quick_study
    assert main(["--home", str(home), "--data-dir", str(data), "train", "--variant", "all", "--name", "x"]) == 2
    assert "--name names one run" in capsys.readouterr().err
    assert len(RunStore(home).list_runs()) == 6  # nothing queued
