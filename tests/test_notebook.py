"""notebooks/study.ipynb runs from top to bottom in a Jupyter kernel of this interpreter,
and its runs land in the store the app reads."""

import json
import os
import sys

import pytest

from kmnist_core.store import RunStore

from conftest import PROJECT_ROOT, wait_until

NOTEBOOK = PROJECT_ROOT / "notebooks" / "study.ipynb"


def test_the_notebook_is_kept_without_outputs():
    """Outputs are made by running it, never stored: no stale figures, no diffs of them."""
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    code = [cell for cell in cells if cell["cell_type"] == "code"]
    assert code and all(cell["outputs"] == [] and cell["execution_count"] is None for cell in code)


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    """A Jupyter kernel of this interpreter (the venv's packages, this checkout's code) with a
    store of its own in ``KMNIST_HOME``; yields (kernel name, home). The name is its own: a
    "python3" kernel installed for the user would take precedence over the venv's."""
    home = tmp_path / "home"
    monkeypatch.setenv("KMNIST_HOME", str(home))  # the kernel inherits this environment
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])))
    kernels = tmp_path / "jupyter" / "kernels" / "kmnist-test"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "KMNIST test kernel", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return "kmnist-test", home


@pytest.mark.slow
def test_the_study_notebook_runs_and_stores_its_runs(kernel, mini_dir, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    kernel_name, home = kernel
    monkeypatch.setenv("KMNIST_DATA_DIR", str(mini_dir))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name=kernel_name,
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



@pytest.mark.process
def test_interrupting_the_kernel_stops_the_run_and_keeps_its_model(kernel, synthetic_dir):
    """As Ctrl-C in the CLI: the run stops after its batch, its epochs and model kept, and
    ``api.train`` returns it (the kernel is not left with a half-written run)."""
    from jupyter_client.manager import start_new_kernel

    kernel_name, home = kernel
    manager, client = start_new_kernel(kernel_name=kernel_name)
    try:
        client.execute(f"from kmnist_core import api\n"
                       f"run = api.train('overfit', data_dir={str(synthetic_dir)!r}, hidden_units='16', epochs=1000)\n"
                       f"print('returned', run.status, len(run.history))")
        store = RunStore(home)

        def epochs_done():
            runs = store.list_runs()
            return len(store.get(runs[0].id).history) if runs else 0

        assert wait_until(lambda: epochs_done() >= 2, timeout=300)
        manager.interrupt_kernel()
        printed = []
        while (message := client.get_iopub_msg(timeout=120))["content"].get("execution_state") != "idle":
            printed.append(message["content"].get("text", "") + message["content"].get("ename", ""))
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    (run,) = store.list_runs()
    assert run.status == "stopped" and 2 <= run.metrics["epochs_done"] < 1000
    assert store.model_path(run.id).is_file()
    assert f"returned stopped {run.metrics['epochs_done']}\n" in printed
