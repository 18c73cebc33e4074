"""Scores for a set of predictions, and the fit verdict a learner reads first.

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
        "n": int(len(y_true)),
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


UNDERFIT_TRAIN_ACCURACY = 0.90  # a dense net fits KMNIST's training images to >99%
NOT_LEARNING_ACCURACY = 0.20  # below this on its training images a model is near chance (10%): not learning
OVERFIT_RISE = 1.25  # validation loss ended 25% above its best epoch
OVERFIT_GAP = 0.5  # without curves: held-out loss this far above training loss


def fit_verdict(train_accuracy, heldout_accuracy, train_loss, heldout_loss, val_losses=(), heldout="validation") -> tuple:
    """("underfitting" | "overfitting" | "good fit", a sentence with the numbers behind it).

    Underfitting: the model cannot fit even its training images.
    Overfitting: the classic sign on the curves, validation loss climbing back up while
    training loss keeps falling; without validation curves (runs trained on everything),
    a held-out loss far above the training loss. A train/held-out accuracy gap alone is
    not enough: on 5,400 images every dense network reaches ~100% on its training set.
    """
    numbers = (f"train acc {train_accuracy:.1%}, {heldout} acc {heldout_accuracy:.1%}, "
               f"{heldout}−train loss {heldout_loss - train_loss:+.3f}")
    losses = [v for v in val_losses if v is not None]
    if train_accuracy < NOT_LEARNING_ACCURACY:
        return "underfitting", (f"It is barely above guessing (10% for ten classes) even on its own training "
                                f"images: it is not learning at all, which capacity does not explain. Check the "
                                f"learning rate first (too small to move the weights, or so large that training "
                                f"diverges), then the regularization. {numbers}.")
    if train_accuracy < UNDERFIT_TRAIN_ACCURACY:
        return "underfitting", (f"It cannot fit even its own training images (train accuracy below "
                                f"{UNDERFIT_TRAIN_ACCURACY:.0%}): it needs more capacity, more epochs or "
                                f"less regularization. {numbers}.")
    if losses:
        best = min(range(len(losses)), key=losses.__getitem__)
        if losses[-1] >= OVERFIT_RISE * losses[best]:
            return "overfitting", (f"Validation loss climbed from {losses[best]:.3f} at epoch {best + 1} "
                                   f"to {losses[-1]:.3f} at the end ({losses[-1] / losses[best] - 1:+.0%}) "
                                   f"while it kept fitting its training images: it memorises. {numbers}.")
        # Still a good fit, but say how close it came: a 20% rise is not "near its best".
        return "good fit", (f"It fits its training images and its validation loss ends "
                            f"{losses[-1] / losses[best] - 1:+.0%} from its best ({losses[best]:.3f} at "
                            f"epoch {best + 1}), under the {OVERFIT_RISE - 1:.0%} rise that marks "
                            f"memorising. {numbers}.")
    if heldout_loss - train_loss > OVERFIT_GAP:
        return "overfitting", (f"Its {heldout} loss is more than {OVERFIT_GAP} above its training loss: "
                               f"it memorises. {numbers}.")
    return "good fit", (f"It fits its training images and its {heldout} loss stays within {OVERFIT_GAP} "
                        f"of its training loss. {numbers}.")


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
