"""Scores for a set of predictions.

Everything here takes plain arrays (true labels, predicted probabilities), so the app can
recompute or compare without TensorFlow."""

import numpy as np
from sklearn import metrics as skm

from .checks import check_int
from .classes import CLASSES, NUM_CLASSES

CLASS_INDICES = list(range(NUM_CLASSES))  # every class, even one a prediction never names


def classification_metrics(y_true, proba) -> dict:
    y_true, proba = _check(y_true, proba)
    y_pred = proba.argmax(axis=1)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=CLASS_INDICES, zero_division=0
    )
    return {
        "n": len(y_true),
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "macro_f1": float(skm.f1_score(y_true, y_pred, labels=CLASS_INDICES, average="macro", zero_division=0)),
        "kappa": float(skm.cohen_kappa_score(y_true, y_pred, labels=CLASS_INDICES)),
        "log_loss": float(skm.log_loss(y_true, _normalised(proba), labels=CLASS_INDICES)),
        "per_class": [
            {"class": c.index, "label": c.label, "precision": float(p), "recall": float(r),
             "f1": float(f), "support": int(s)}
            for c, p, r, f, s in zip(CLASSES, precision, recall, f1, support)
        ],
        "confusion": skm.confusion_matrix(y_true, y_pred, labels=CLASS_INDICES).tolist(),
    }


def loss_and_accuracy(y_true, proba) -> tuple:
    """(log loss, accuracy) without scikit-learn's overhead: what the learning curves
    plot after every epoch, computed exactly as ``classification_metrics`` does."""
    y_true, proba = _check(y_true, proba)
    picked = _normalised(proba)[np.arange(len(y_true)), y_true]
    return float(-np.mean(np.log(picked))), float(np.mean(proba.argmax(axis=1) == y_true))


def confident_mistakes(y_true, proba, n=12) -> list:
    """Indices of the wrong predictions the model was most sure of, most confident first."""
    y_true, proba = _check(y_true, proba)
    check_int("n", n, 1, 1000)
    y_pred = proba.argmax(axis=1)
    wrong = np.flatnonzero(y_pred != y_true)
    order = wrong[np.argsort(-proba[wrong, y_pred[wrong]], kind="stable")][:n]
    return [
        {"index": int(i), "true": int(y_true[i]), "predicted": int(y_pred[i]),
         "confidence": float(proba[i, y_pred[i]])}
        for i in order
    ]


def _normalised(proba):
    """float32 softmax rows sum to 1 only up to rounding; log loss insists on exactly 1."""
    clipped = np.clip(proba, 1e-7, 1.0)
    return clipped / clipped.sum(axis=1, keepdims=True)


def _check(y_true, proba):
    y_true = np.asarray(y_true).astype(np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[1] != NUM_CLASSES or len(proba) != len(y_true) or len(y_true) == 0:
        raise ValueError(
            f"proba must have shape (len(y_true), {NUM_CLASSES}) with len(y_true) > 0; "
            f"got y_true {y_true.shape} and proba {proba.shape}"
        )
    return y_true, proba
