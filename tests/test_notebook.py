"""notebooks/study.ipynb runs from top to bottom in a Jupyter kernel of this interpreter,
and its runs land in the store the app reads."""

import json
import os
import sys

from kmnist_core.store import RunStore

from conftest import PROJECT_ROOT

NOTEBOOK = PROJECT_ROOT / "notebooks" / "study.ipynb"


def test_the_notebook_is_kept_without_outputs():
    """Outputs are made by running it, never stored: no stale figures, no diffs of them."""
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    code = [cell for cell in cells if cell["cell_type"] == "code"]
    assert code and all(cell["outputs"] == [] and cell["execution_count"] is None for cell in code)


def test_the_study_notebook_runs_and_stores_its_runs(tmp_path, mini_dir, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    home = tmp_path / "home"
    monkeypatch.setenv("KMNIST_HOME", str(home))  # the kernel inherits this environment
    monkeypatch.setenv("KMNIST_DATA_DIR", str(mini_dir))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])))
    # A kernel of this interpreter (the venv's packages, this checkout's code), under a name of
    # its own: a "python3" kernel installed for the user would take precedence over the venv's.
    kernels = tmp_path / "jupyter" / "kernels" / "kmnist-test"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "KMNIST test kernel", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="kmnist-test",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()  # raises on a cell's error

    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    text = "".join(output.get("text", "") for output in outputs)
    assert f"run store: {home}" in text
    assert "#2 overfit" in text and ("p = " in text or "p < " in text)  # McNemar's sentence
    figures = [output for output in outputs if "application/vnd.plotly.v1+json" in output.get("data", {})]
    assert len(figures) == 3  # curves, weights, confusion matrix

    runs = RunStore(home).list_runs()
    assert sorted(run.variant for run in runs) == ["dropout", "l1l2", "overfit", "underfit"]
    assert all(run.status == "completed" and run.data_source.startswith(f"local folder {mini_dir.resolve()}")
               for run in runs)

