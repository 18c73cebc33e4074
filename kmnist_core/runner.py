"""Executing one stored run end to end: data, split, train, score, save.

This is where a run's life is written to the store: progress while it trains, a model
checkpoint now and then, and at the end its status, metrics and prediction arrays. Both
the CLI and the app's background worker call ``execute_run``.
"""

import time

import numpy as np

from .config import config_from_dict
from .data import load_kmnist, stratified_kfold, stratified_split
from .metrics import classification_metrics, fit_verdict
from .store import RunStore
from .training import predict_proba, train_model

PROGRESS_EVERY = 0.5  # seconds between progress writes and stop-flag polls
CHECKPOINT_EVERY = 15.0  # seconds between partial-model checkpoints


def execute_run(store: RunStore, run_id: int, datasets=None, on_progress=None) -> str:
    """Train and score run ``run_id`` (already marked running); returns its final status.

    Any exception marks the run failed with the message and is re-raised; a stop request
    ends it as "stopped" with the partial model and history kept. ``datasets`` is a cache
    {data folder: Dataset} shared across the runs of one process.
    """
    run = store.get(run_id)
    datasets = {} if datasets is None else datasets
    try:
        config = config_from_dict(run.config)
        if run.data_dir not in datasets:
            datasets[run.data_dir] = load_kmnist(run.data_dir)
        dataset = datasets[run.data_dir]
        store.update(run_id, data_source=dataset.source)
        if config.kfold:
            status, metrics = _cross_validate(store, run_id, config, dataset, on_progress)
        else:
            status, metrics = _train_once(store, run_id, config, dataset, on_progress)
    except BaseException as error:
        message = "stopped by keyboard interrupt" if isinstance(error, KeyboardInterrupt) else f"{type(error).__name__}: {error}"
        store.finish(run_id, "failed", error=message)
        raise
    store.finish(run_id, status, metrics=metrics)
    return status


def _train_once(store, run_id, config, dataset, on_progress, fold=None):
    x, y = dataset.x_train, dataset.y_train
    if config.full_train:
        x_fit, y_fit, x_val, y_val = x, y, None, None
    else:
        train_idx, val_idx = fold or stratified_split(y, config.val_fraction, config.seed)
        x_fit, y_fit, x_val, y_val = x[train_idx], y[train_idx], x[val_idx], y[val_idx]

    reporter = _StoreReporter(store, run_id, on_progress, fold_label=None)
    result = train_model(config, x_fit, y_fit, x_val, y_val, on_progress=reporter.progress,
                         should_stop=reporter.should_stop, on_epoch_model=reporter.checkpoint)
    store.save_model(run_id, result.model)
    store.update(run_id, params=int(result.model.count_params()))
    metrics = score(result.model, dataset, x_fit, y_fit, x_val, y_val, result.history)
    metrics["train_seconds"] = result.elapsed
    metrics["epochs_done"] = len(result.history)
    store.save_array(run_id, "test_proba", metrics.pop("_test_proba"))
    if x_val is not None:
        store.save_array(run_id, "val_proba", metrics.pop("_val_proba"))
    return result.status, metrics


def score(model, dataset, x_fit, y_fit, x_val=None, y_val=None, history=()) -> dict:
    """Metrics on test (and validation), plus train scores for the fit verdict.
    Without a validation split (full-train runs) the test split is the held-out set."""
    test_proba = predict_proba(model, dataset.x_test)
    train = classification_metrics(y_fit, predict_proba(model, x_fit))
    metrics = {"test": classification_metrics(dataset.y_test, test_proba), "_test_proba": test_proba}
    heldout_name, heldout = "test", metrics["test"]
    if x_val is not None:
        val_proba = predict_proba(model, x_val)
        metrics["val"] = heldout = classification_metrics(y_val, val_proba)
        metrics["_val_proba"] = val_proba
        heldout_name = "val"
    verdict, reason = fit_verdict(train["accuracy"], heldout["accuracy"], train["log_loss"], heldout["log_loss"],
                                  [epoch["val_loss"] for epoch in history],
                                  "validation" if heldout_name == "val" else "test")
    metrics["train"] = {"accuracy": train["accuracy"], "log_loss": train["log_loss"], "n": train["n"]}
    metrics["fit"] = {
        "verdict": verdict, "reason": reason, "heldout": heldout_name,
        "loss_gap": heldout["log_loss"] - train["log_loss"],
        "accuracy_gap": train["accuracy"] - heldout["accuracy"],
    }
    return metrics


def _cross_validate(store, run_id, config, dataset, on_progress):
    """k-fold CV stored as one run: per-fold scores, mean ± std, and the best fold's model."""
    folds = stratified_kfold(dataset.y_train, config.kfold, config.seed)
    results, best = [], None
    for number, (train_idx, val_idx) in enumerate(folds, start=1):
        reporter = _StoreReporter(store, run_id, on_progress, fold_label=f"{number}/{len(folds)}")
        reporter.epoch_offset = (number - 1) * config.epochs
        x, y = dataset.x_train, dataset.y_train
        result = train_model(config, x[train_idx], y[train_idx], x[val_idx], y[val_idx],
                             on_progress=reporter.progress, should_stop=reporter.should_stop)
        if result.status == "stopped":
            return "stopped", {"folds": results, "kfold": config.kfold}
        metrics = score(result.model, dataset, x[train_idx], y[train_idx], x[val_idx], y[val_idx], result.history)
        fold = {"fold": number, "val": _headline(metrics["val"]), "test": _headline(metrics["test"]),
                "history": result.history, "train_seconds": result.elapsed}
        results.append(fold)
        if best is None or fold["val"]["accuracy"] > best[0]["val"]["accuracy"]:
            best = (fold, result.model, metrics)
    fold, model, metrics = best
    store.save_model(run_id, model)
    store.update(run_id, params=int(model.count_params()))
    store.save_array(run_id, "test_proba", metrics.pop("_test_proba"))
    store.save_array(run_id, "val_proba", metrics.pop("_val_proba"))
    summary = {
        name: {"mean": float(np.mean([f["val"][name] for f in results])),
               "std": float(np.std([f["val"][name] for f in results]))}
        for name in ("accuracy", "macro_f1", "kappa")
    }
    metrics.update(folds=results, kfold=config.kfold, cv=summary, best_fold=fold["fold"],
                   train_seconds=sum(f["train_seconds"] for f in results),
                   epochs_done=sum(len(f["history"]) for f in results))
    return "completed", metrics


def _headline(metrics):
    return {k: metrics[k] for k in ("accuracy", "macro_f1", "kappa", "log_loss")}


class _StoreReporter:
    """Writes progress to the store (throttled), checkpoints the model now and then,
    and turns the store's stop flag into ``should_stop``."""

    def __init__(self, store, run_id, on_progress, fold_label):
        self.store, self.run_id, self.on_progress = store, run_id, on_progress
        self.fold_label, self.epoch_offset = fold_label, 0
        self.last_write = self.last_poll = 0.0
        self.last_checkpoint = time.monotonic()
        self.stop = False

    def progress(self, event):
        if self.on_progress:
            self.on_progress(event)
        now = time.monotonic()
        if event.kind == "epoch":
            record = {"epoch": event.epoch + self.epoch_offset, "loss": event.loss,
                      "accuracy": event.accuracy, "val_loss": event.val_loss,
                      "val_accuracy": event.val_accuracy, "elapsed": event.elapsed}
            self.store.append_epoch(self.run_id, record)
        elif now - self.last_write < PROGRESS_EVERY:
            return
        self.last_write = now
        state = {"epoch": event.epoch, "epochs": event.epochs, "step": event.step,
                 "steps": event.steps, "fraction": event.fraction, "elapsed": event.elapsed,
                 "eta": event.eta, "loss": event.loss, "accuracy": event.accuracy,
                 "fold": self.fold_label}
        self.store.update(self.run_id, progress=state)

    def should_stop(self):
        now = time.monotonic()
        if not self.stop and now - self.last_poll >= PROGRESS_EVERY:
            self.last_poll = now
            self.stop = self.store.stop_requested(self.run_id)
        return self.stop

    def checkpoint(self, model):
        if time.monotonic() - self.last_checkpoint >= CHECKPOINT_EVERY:
            self.store.save_model(self.run_id, model)
            self.last_checkpoint = time.monotonic()
