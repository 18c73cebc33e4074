"""The engine from Python, for notebooks: the CLI's commands as functions that return
runs and numbers instead of printing them.

It is the CLI underneath: the same validation and messages (``make_config``,
``check_against_data``: a bad setting raises one ``ParameterError`` naming it and its
range, before anything is stored), the same store (``$KMNIST_HOME``, else ./runs), and the
same foreground training (``train`` trains in this process when no one else trains, else
follows the background worker). So a run trained in a notebook shows in the app, and the
app's runs load here. Progress is tqdm's ``auto`` bar: the notebook's own widget in Jupyter,
text on a terminal. Interrupting the kernel once stops the run after its batch (epochs
and model kept), as Ctrl-C does in the CLI; twice leaves at once.

    from kmnist_core import api
    overfit = api.train("overfit", epochs=5, train_size=2000)
    dropout = api.train("dropout", epochs=5, train_size=2000)
    print(api.compare(overfit, dropout)["sentence"])

The app's figures of these runs (plotly, shown inline by Jupyter) are in the app
package's ``notebook`` module, since this package never imports plotly.
"""

import os

from . import native_logs
from . import sweep as sweeping
from .config import check_against_data, make_config, parse_units
from .data import Dataset, default_data_dir, load_kmnist
from .records import Run
from .status import Status
from .store import RunStore, StoreError


def store(home=None) -> RunStore:
    """The run store at ``home`` (default: ``$KMNIST_HOME``, else ./runs: the app's when
    the kernel runs in the app's folder), with runs left "running" by a dead trainer
    marked interrupted first, as every CLI command does."""
    run_store = RunStore(home)
    run_store.reconcile()
    return run_store


def load_data(data_dir=None) -> Dataset:
    """KMNIST as uint8 arrays (``x_train`` (N, 28, 28), ``y_train``, ``x_test``,
    ``y_test``) and ``source``: ``data_dir``, else ``$KMNIST_DATA_DIR``, else the
    kmnist-mini folder beside the project, else tensorflow-datasets."""
    return load_kmnist(data_dir)


def train(variant="combined", name=None, data_dir=None, home=None, progress=True, **settings) -> Run:
    """Train ``variant``'s preset with ``settings`` changed (any ``TrainConfig`` field:
    ``epochs=5, dropout=0.3, hidden_units=(256, 256)`` or ``"256, 256"``) and return the
    finished run with its history and metrics. Raises ``RuntimeError`` when the training
    failed (the run stays in the store with its error)."""
    settings = _units_read(settings)
    config = make_config(variant, **settings)
    data_dir = data_dir or default_data_dir()  # stored as used: a worker elsewhere trains on the same
    dataset = load_kmnist(data_dir)  # fail fast, before anything is stored
    check_against_data([config], len(dataset.y_train))
    run_store = store(home)
    run_store.trainer_active()  # an unusable lock file is said now, before a run is queued
    run_id = run_store.create_run(config, name=name, data_dir=data_dir, data_source=dataset.source)
    _train([run_id], run_store, {run_store.get(run_id).data_dir: dataset}, progress)
    return _finished(run_store, run_id)


def sweep(param, values, variant="overfit", seeds=1, data_dir=None, home=None, progress=True, **settings) -> dict:
    """Train ``variant`` once per value of ``param`` (a list, or text as the CLI's
    ``--values`` reads it) and seed, and return the sweep's summary: {"id", "param",
    "title", "rows" (one per value: mean ± std over seeds, ``kmnist_core.sweep.summarise``),
    "best" (a sentence), "runs"}."""
    settings = _units_read(settings)
    configs = sweeping.sweep_configs(variant, param, values, seeds, **settings)
    data_dir = data_dir or default_data_dir()
    dataset = load_kmnist(data_dir)
    check_against_data(configs, len(dataset.y_train))
    data_dir = None if data_dir is None else os.path.abspath(data_dir)
    run_store = store(home)
    run_store.trainer_active()
    sweep_id = sweeping.enqueue_sweep(run_store, variant, param, values, seeds, data_dir=data_dir,
                                      data_source=dataset.source, **settings)
    run_ids = [run.id for run in run_store.sweep_runs(sweep_id)]
    _train(run_ids, run_store, {data_dir: dataset}, progress)
    return sweep_summary(sweep_id, home)


def sweep_summary(sweep_id, home=None) -> dict:
    """A stored sweep's summary (see ``sweep``), as far as its runs have finished."""
    run_store = store(home)
    stored = run_store.get_sweep(sweep_id)
    runs = run_store.sweep_runs(sweep_id)
    rows = sweeping.summarise(runs, stored.param, stored.values)
    return {"id": stored.id, "param": stored.param, "title": sweeping.title(stored), "rows": rows,
            "best": sweeping.best_sentence(rows, stored.param), "runs": runs}


def runs(home=None) -> list:
    """Every stored run, newest first (without its per-epoch history: ``get_run`` has it)."""
    return store(home).list_runs()


def get_run(reference, home=None) -> Run:
    """One run with its history, by id, exact name, or a ``Run`` (read afresh)."""
    return _get(store(home), reference)


def load_model(reference, home=None):
    """A run's Keras model, loaded with ``safe_mode=True``; ``ModelLoadError`` says why not."""
    from .cli import _run_model

    run_store = store(home)
    return _run_model(run_store, _get(run_store, reference))


def compare(run_a, run_b, home=None) -> dict:
    """McNemar's exact test on two runs' test predictions (``significance.mcnemar``: the
    images only one of them gets right, and whether that split is the luck of the test
    images), plus "sentence", the Compare page's plain reading of it from A's side."""
    from .runner import run_dataset
    from .significance import mcnemar, sentence

    run_store = store(home)
    first, second = _get(run_store, run_a), _get(run_store, run_b)
    if first.data_source != second.data_source:
        raise StoreError(f"runs {first.id} and {second.id} were scored on different test sets "
                         f"({first.data_source} and {second.data_source}): their predictions do not pair")
    predictions = []
    for run in (first, second):
        proba = run_store.load_array(run.id, "test_proba")
        if proba is None:
            raise StoreError(f"run {run.id} ({run.status}) has no stored test predictions to compare")
        predictions.append(proba.argmax(axis=1))
    result = mcnemar(run_dataset(first).y_test, *predictions)
    return dict(result, a=first.id, b=second.id,
                sentence=sentence(f"#{first.id} {first.name}", f"#{second.id} {second.name}", result))


def _get(run_store, reference) -> Run:
    return run_store.get(run_store.resolve(reference.id if isinstance(reference, Run) else reference))


def _units_read(settings) -> dict:
    """``hidden_units`` written as on the form ("512, 256") read as the CLI reads it."""
    if isinstance(settings.get("hidden_units"), str):
        return dict(settings, hidden_units=parse_units(settings["hidden_units"]))
    return settings


def _train(run_ids, run_store, datasets, progress) -> None:
    """The CLI's foreground training, with the notebook's progress bar."""
    from tqdm.auto import tqdm

    from .progress import ProgressBar
    from .worker import train_each

    with native_logs.quiet_while():
        import tensorflow as tf

        tf.config.list_physical_devices()  # probes for CUDA now, not in the first run's output
    bar = ProgressBar(tqdm, disable=not progress)
    try:
        train_each(run_store, run_ids, datasets, bar=bar)
    except KeyboardInterrupt:  # interrupted twice: leave at once, the run marked as the CLI does
        for run_id in run_ids:
            run_store.request_stop(run_id)
        raise


def _finished(run_store, run_id) -> Run:
    run = run_store.get(run_id)
    if run.status == Status.FAILED:
        raise RuntimeError(f"run {run.id} failed: {run.error}")
    return run
