"""Executing one stored run end to end: data, split, train, score, save.

This is where a run's life is written to the store: progress while it trains, an epoch
record per epoch, a model checkpoint now and then, and at the end its status, metrics and
prediction arrays. Both the CLI and the app's background worker call ``execute_run``.
The training itself (``train_run``) only talks to a ``Reporter``, so a run trained on a
Ray cluster (``kmnist_core.ray_tasks``) goes through the same code, reporting to the
dispatcher that writes the store instead. TensorFlow is imported only to train or score:
the dispatcher, which only saves, starts without it.
"""

import os
import time
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .config import check_against_data, config_from_dict
from .data import TFDS_DIR_ENV, DataMismatchError, load_local, load_tfds, stratified_kfold, stratified_sample, stratified_split
from .diskspace import translate
from .hardware import cpu_name
from .metrics import classification_metrics
from .status import Status
from .store import RunStore, StoreError
from .verdict import fit_verdict

if TYPE_CHECKING:
    from .training import TrainResult

PROGRESS_EVERY = 0.5  # seconds between progress writes and stop-flag polls
CHECKPOINT_EVERY = 15.0  # seconds between partial-model checkpoints


def execute_run(store: RunStore, run_id: int, datasets=None, on_progress=None, stop=None) -> Status:
    """Train and score run ``run_id`` (already claimed, under its training slot's lock);
    returns its final status.

    Any exception marks the run failed with the message and is re-raised; a stop request,
    or ``stop`` (a ``threading.Event``: this process was asked to stop by a signal), ends
    it as stopped with the partial model and history kept. Leaving at once (a second
    Ctrl-C: KeyboardInterrupt) marks it interrupted, as if the process had died, with its
    history. ``datasets`` is a cache {data folder: Dataset} shared across the runs of one
    process.
    """
    run = store.get(run_id)
    datasets = {} if datasets is None else datasets
    try:
        store.writable_run_dir(run_id)  # a link out of the home fails the run now, not after training
        config = config_from_dict(run.config)
        dataset = run_dataset(run, datasets)
        store.update(run_id, data_source=dataset.source)
        outcome = train_run(config, dataset, StoreReporter(store, run_id, on_progress, stop=stop))
        if outcome.result is not None:
            save_outputs(store, run_id, outcome.result.model, outcome.facts(), outcome.arrays)
    except Exception as error:
        if (full := translate(error, store.home)) is not None:
            _fail_for_full_disk(store, run_id, full)
            if full is error:
                raise
            raise full from error
        store.finish(run_id, Status.FAILED, error=f"{type(error).__name__}: {error}")
        raise
    except BaseException:
        store.mark_interrupted(run.slot or 0)  # we hold its slot: ours is that slot's only running run
        raise
    finish_run(store, run_id, outcome.status, outcome.metrics)
    return outcome.status


def _fail_for_full_disk(store, run_id, full) -> None:
    """A full disk (a checkpoint, an epoch record, a progress write found no space) fails
    the run with the one-line reason, its finished epochs kept, when the store can still
    write: a checkpoint that failed removed its temporary file. When it cannot, the run is
    left as it is: once this process has let its training slot go, the next listing marks
    it interrupted, its history kept."""
    with suppress(StoreError):
        store.finish(run_id, Status.FAILED, error=str(full))


def finish_run(store, run_id, status, metrics) -> None:
    """The run's final status and metrics, then its curves as TensorBoard event files in
    its folder, so that ``tensorboard --logdir $KMNIST_HOME`` lists every run."""
    from .export import tensorboard_events

    store.finish(run_id, status, metrics=metrics)
    history = store.get(run_id).history
    if history:
        tensorboard_events(history, store.run_dir(run_id) / "tensorboard")


def run_dataset(run, datasets=None):
    """The data ``run`` was queued with: its folder, or tensorflow-datasets when it has none;
    never this process's own default (a worker started with another KMNIST_DATA_DIR).
    Refused when that is no longer the data it was queued with (``run.data_source``)."""
    datasets = {} if datasets is None else datasets
    if run.data_dir not in datasets:
        datasets[run.data_dir] = load_local(run.data_dir) if run.data_dir else load_tfds(os.environ.get(TFDS_DIR_ENV))
    dataset = datasets[run.data_dir]
    if run.data_source and run.data_source != dataset.source:
        raise DataMismatchError(f"run {run.id} was queued to train on {run.data_source}, but that is now "
                                f"{dataset.source}; queue it again to train on that")
    return dataset


def fit_indices(labels, config):
    """(indices trained on, validation indices or None). The validation split is taken from
    all training images first, so runs with different ``train_size`` are judged on the same
    images; ``train_size`` then draws a stratified sample of the rest."""
    if config.full_train:
        fit, val = np.arange(len(labels)), None
    else:
        fit, val = stratified_split(labels, config.val_fraction, config.seed)
    check_against_data([config], len(labels))  # queued before the data changed, or by an older app
    if config.train_size:
        fit = fit[stratified_sample(labels[fit], config.train_size, config.seed)]
    return fit, val


@dataclass
class Outcome:
    """What training one run produced, before anything of it is saved: its final status,
    the metrics for the database, the trained model (None when a k-fold run stopped before
    its first fold ended) and the prediction arrays."""

    status: Status
    metrics: dict
    result: "TrainResult | None" = None
    arrays: dict = field(default_factory=dict)  # {"test_proba": ..., "val_proba": ...}

    def facts(self) -> dict:
        """The model's size and how it was trained, as ``store.update`` takes them; read
        where it trained (the CPU is that machine's). Only for an outcome with a model."""
        result = self.result
        assert result is not None, "a k-fold run stopped before its first fold has no model"
        return {"params": int(result.model.count_params()),
                "runtime": {"precision": result.precision, "threads": result.threads, "cpu": cpu_name(),
                            **result.engine}}


def train_run(config, dataset, reporter) -> Outcome:
    """Train ``config`` on ``dataset`` once, or by k-fold cross-validation, telling
    ``reporter`` (a ``Reporter``) of its progress and epochs; the store is not touched."""
    return (_cross_validate if config.kfold else _train_once)(config, dataset, reporter)


def save_outputs(store, run_id, model, facts, arrays) -> None:
    """The model (anything with Keras' ``save(path)``), its ``facts`` and its prediction
    arrays, into the run's folder and row."""
    store.save_model(run_id, model)
    kept = store.get(run_id).runtime or {}  # its start-up, recorded at its first progress write
    store.update(run_id, **facts | {"runtime": kept | facts.get("runtime", {})})
    for name, array in arrays.items():
        store.save_array(run_id, name, array)


def _train_once(config, dataset, reporter):
    from .training import train_model

    fit, val = fit_indices(dataset.y_train, config)
    x, y = dataset.x_train, dataset.y_train
    x_val, y_val = (None, None) if val is None else (x[val], y[val])
    # A run trained on every training image (final) has no validation split: its held-out
    # curve is the test split, so its verdict is read by the same rule as every other run's.
    # It chooses nothing: early stopping needs a validation split (config.validate).
    curve = (x_val, y_val) if val is not None else (dataset.x_test, dataset.y_test)
    result = train_model(config, x[fit], y[fit], *curve, on_progress=reporter.progress,
                         should_stop=reporter.should_stop, on_epoch=reporter.epoch)
    metrics = score(result.model, dataset, x[fit], y[fit], x_val, y_val, result.history)
    arrays = _pop_arrays(metrics)
    metrics.update(train_seconds=result.elapsed, epochs_done=len(result.history),
                   train_images=len(fit), best_epoch=result.best_epoch, stopped_early=result.stopped_early)
    return Outcome(result.status, metrics, result, arrays)


def _pop_arrays(metrics) -> dict:
    """The prediction arrays ``score`` left in ``metrics``, taken out of it (the database
    keeps only the numbers)."""
    return {name: metrics.pop(f"_{name}") for name in ("test_proba", "val_proba") if f"_{name}" in metrics}


# Training images scored after the last epoch for the fit verdict: all of kmnist-mini's,
# a stratified sample of full KMNIST's 60,000 (standard error ~0.15 points), since scoring
# them all took minutes for `best` on a loaded 2-core host after its bar had reached 100%.
VERDICT_SAMPLE = 10_000


def score(model, dataset, x_fit, y_fit, x_val=None, y_val=None, history=()) -> dict:
    """Metrics on test (and validation), plus train scores for the fit verdict, on at most
    ``VERDICT_SAMPLE`` training images. Without a validation split (full-train runs) the
    test split is the held-out set."""
    from .inference import make_predictor

    predict = make_predictor(model)
    if len(y_fit) > VERDICT_SAMPLE:
        kept = stratified_sample(y_fit, VERDICT_SAMPLE)
        x_fit, y_fit = x_fit[kept], y_fit[kept]
    test_proba = predict(dataset.x_test)
    train = classification_metrics(y_fit, predict(x_fit))
    metrics = {"test": classification_metrics(dataset.y_test, test_proba), "_test_proba": test_proba}
    heldout_name, heldout = "test", metrics["test"]
    if x_val is not None:
        val_proba = predict(x_val)
        metrics["val"] = heldout = classification_metrics(y_val, val_proba)
        metrics["_val_proba"] = val_proba
        heldout_name = "val"
    reading = fit_verdict(train["accuracy"], heldout["accuracy"], train["log_loss"], heldout["log_loss"],
                          [record.val_loss for record in history], "validation" if heldout_name == "val" else "test")
    metrics["train"] = {"accuracy": train["accuracy"], "log_loss": train["log_loss"], "n": train["n"]}
    metrics["fit"] = reading | {
        "heldout": heldout_name,
        "loss_gap": heldout["log_loss"] - train["log_loss"],
        "accuracy_gap": train["accuracy"] - heldout["accuracy"],
    }
    return metrics


def _cross_validate(config, dataset, reporter):
    """k-fold CV stored as one run: per-fold scores, mean ± std, and the best fold's model."""
    from .training import train_model

    folds = stratified_kfold(dataset.y_train, config.kfold, config.seed)
    results, best = [], None
    x, y = dataset.x_train, dataset.y_train
    for number, (train_idx, val_idx) in enumerate(folds, start=1):
        reporter.start_fold(number, len(folds), epoch_offset=(number - 1) * config.epochs)
        result = train_model(config, x[train_idx], y[train_idx], x[val_idx], y[val_idx],
                             on_progress=reporter.progress, should_stop=reporter.should_stop, on_epoch=reporter.epoch)
        if result.status == Status.STOPPED:
            return Outcome(Status.STOPPED, {"folds": results, "kfold": config.kfold})
        metrics = score(result.model, dataset, x[train_idx], y[train_idx], x[val_idx], y[val_idx], result.history)
        fold = {"fold": number, "val": _headline(metrics["val"]), "test": _headline(metrics["test"]),
                "epochs": len(result.history), "train_seconds": result.elapsed}
        results.append(fold)
        if best is None or fold["val"]["accuracy"] > best[0]["val"]["accuracy"]:
            best = (fold, result, metrics)
    fold, result, metrics = best
    arrays = _pop_arrays(metrics)
    summary = {
        name: {"mean": float(np.mean([f["val"][name] for f in results])),
               "std": float(np.std([f["val"][name] for f in results]))}
        for name in ("accuracy", "macro_f1", "kappa")
    }
    metrics.update(folds=results, kfold=config.kfold, cv=summary, best_fold=fold["fold"],
                   train_seconds=sum(f["train_seconds"] for f in results),
                   epochs_done=sum(f["epochs"] for f in results), train_images=len(folds[0][0]))
    return Outcome(Status.COMPLETED, metrics, result, arrays)


def _headline(metrics):
    return {k: metrics[k] for k in ("accuracy", "macro_f1", "kappa", "log_loss")}


class Reporter:
    """One training's progress (throttled, stamped with when and how often), epoch records
    and checkpoints now and then, and its stop poll; the stop signal of this process
    (``stop``, an Event set by a signal handler) stops it too. Where they go is the
    subclass's: ``write_progress``, ``write_epoch``, ``write_checkpoint``, ``poll_stop``."""

    def __init__(self, on_progress=None, stop=None):
        self.on_progress, self.stop_signal = on_progress, stop
        self.fold, self.epoch_offset = None, 0
        self.last_write = self.last_poll = 0.0
        self.last_checkpoint = time.monotonic()
        self.stop = False
        self.writes = 0

    def start_fold(self, number, folds, epoch_offset):
        """k-fold: events say "2/5" and epochs continue the count across folds."""
        self.fold, self.epoch_offset = f"{number}/{folds}", epoch_offset

    def progress(self, event):
        event.fold = self.fold
        if self.on_progress:
            self.on_progress(event)
        now = time.monotonic()
        if now - self.last_write >= PROGRESS_EVERY or event.step == event.steps:
            self.last_write = now
            self.writes += 1
            event.updated_at, event.writes = time.time(), self.writes
            self.write_progress(event)

    def epoch(self, record, model):
        record.epoch += self.epoch_offset
        self.write_epoch(record)
        if time.monotonic() - self.last_checkpoint >= CHECKPOINT_EVERY:
            self.write_checkpoint(model)
            self.last_checkpoint = time.monotonic()

    def should_stop(self):
        if self.stop_signal is not None and self.stop_signal.is_set():
            return True
        now = time.monotonic()
        if not self.stop and now - self.last_poll >= PROGRESS_EVERY:
            self.last_poll = now
            self.stop = self.poll_stop()
        return self.stop

    def write_progress(self, event):
        raise NotImplementedError

    def write_epoch(self, record):
        raise NotImplementedError

    def write_checkpoint(self, model):
        raise NotImplementedError

    def poll_stop(self) -> bool:
        raise NotImplementedError


class StoreReporter(Reporter):
    """Straight into the store, for a run trained in this process."""

    def __init__(self, store, run_id, on_progress=None, stop=None):
        super().__init__(on_progress, stop)
        self.store, self.run_id = store, run_id

    def write_progress(self, event):
        if self.writes == 1 and self.epoch_offset == 0:  # the run's first: its start-up is over (kmnist_core.stall)
            startup = event.updated_at - (self.store.get(self.run_id).started_at or event.updated_at)
            self.store.update(self.run_id, progress=event, runtime={"startup_seconds": round(startup, 1)})
        else:
            self.store.update(self.run_id, progress=event)

    def write_epoch(self, record):
        self.store.append_epoch(self.run_id, record)

    def write_checkpoint(self, model):
        self.store.save_model(self.run_id, model)

    def poll_stop(self) -> bool:
        return self.store.stop_requested(self.run_id)
