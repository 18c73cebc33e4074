import numpy as np
import pytest

from kmnist_core.metrics import classification_metrics, confident_mistakes
from kmnist_core.verdict import (
    FIT_GRADES,
    VERDICTS,
    fit_verdict,
    grade_of,
    loss_accuracy_disagreement,
    verdict_line,
)


def _one_hot(labels, confidence=0.91):
    proba = np.full((len(labels), 10), (1 - confidence) / 9)
    proba[np.arange(len(labels)), labels] = confidence
    return proba


def test_perfect_predictions_score_one():
    labels = np.repeat(np.arange(10), 3)
    result = classification_metrics(labels, _one_hot(labels))
    assert result["accuracy"] == result["macro_f1"] == result["kappa"] == 1.0
    assert np.trace(np.array(result["confusion"])) == 30
    assert result["log_loss"] == pytest.approx(-np.log(0.91), rel=1e-6)


def test_one_confusion_lands_in_the_right_cell():
    labels = np.repeat(np.arange(10), 2)
    predicted = labels.copy()
    predicted[0] = 3  # a true 0 read as 3
    result = classification_metrics(labels, _one_hot(predicted))
    assert result["confusion"][0][3] == 1 and result["confusion"][0][0] == 1
    assert result["accuracy"] == pytest.approx(19 / 20)
    assert result["per_class"][0]["recall"] == pytest.approx(0.5)
    assert result["per_class"][3]["precision"] == pytest.approx(2 / 3)
    assert 0 < result["kappa"] < result["accuracy"]


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="proba must have shape"):
        classification_metrics([0, 1], np.ones((3, 10)) / 10)
    with pytest.raises(ValueError, match="proba must have shape"):
        classification_metrics([], np.ones((0, 10)))


def _climb(rise, lowest_epoch=5, epochs=30, lowest=0.40):
    """A held-out loss curve falling to ``lowest`` at ``lowest_epoch``, then climbing
    steadily to ``rise`` above it at the last epoch."""
    falling = [lowest * (1 + 0.1 * (lowest_epoch - epoch)) for epoch in range(1, lowest_epoch + 1)]
    steps = epochs - lowest_epoch
    return falling + [lowest * (1 + rise * step / steps) for step in range(1, steps + 1)]


@pytest.mark.parametrize("rise, verdict", [
    (0.05, "good fit"), (0.24, "starting to overfit"), (0.28, "overfitting"), (0.60, "strongly overfitting"),
])
def test_the_verdict_is_graded_by_how_far_held_out_loss_rose(rise, verdict):
    """Seen in Chromium: a run whose validation loss rose 24% from epoch 5 read "good fit"
    while its curve climbed, one at +28% "overfitting": a flip at one 25% line."""
    fit = fit_verdict(1.0, 0.89, 0.01, 0.5, _climb(rise))
    assert fit["verdict"] == verdict and fit["grade"] == [g.verdict for g in FIT_GRADES].index(verdict)
    assert fit["rise"] == pytest.approx(rise) and (fit["since_epoch"], fit["last_epoch"]) == (5, 30)
    assert fit["reason"].startswith(f"{verdict.capitalize()}: validation loss {rise:+.0%} since epoch 5 "
                                    f"(0.400 → {0.4 * (1 + rise):.3f} at epoch 30, 25 epochs later)")
    assert "train loss 0.010, train acc 100.0%" in fit["reason"]


def test_the_grade_boundaries_are_declared_once_in_order():
    bounds = [grade.below for grade in FIT_GRADES]
    assert bounds == sorted(bounds) and bounds[-1] == float("inf")
    assert [grade_of(bound - 1e-9) for bound in bounds[:-1]] == list(range(len(bounds) - 1))
    assert grade_of(bounds[0]) == 1  # a boundary belongs to the grade above it


def test_a_run_trained_on_every_image_is_read_on_its_test_curve_by_the_same_rule():
    """`final` was judged on the test split by another rule ("within 0.5 of its training loss")."""
    fit = fit_verdict(1.0, 0.90, 0.02, 0.45, _climb(0.15, lowest_epoch=8), heldout="test")
    assert fit["verdict"] == "starting to overfit" and fit["curve"] == "test"
    assert "test loss +15% since epoch 8" in fit["reason"] and "within 0.5" not in fit["reason"]


def test_a_curve_still_falling_is_a_good_fit_that_says_so():
    fit = fit_verdict(0.99, 0.90, 0.05, 0.35, [0.6, 0.5, 0.4, 0.35])
    assert fit["verdict"] == "good fit" and fit["rise"] == 0 and fit["since_epoch"] == 4
    assert "validation loss at its lowest (0.350) in its last epoch, 4: still falling" in fit["reason"]


@pytest.mark.parametrize("numbers, phrase", [
    ((0.75, 0.72, 0.80, 0.90), "Underfitting: train loss 0.800 and train accuracy 75.0%"),
    # near chance (a learning rate of 1e-9, seen in Chromium): not "needs more capacity"
    ((0.095, 0.09, 2.30, 2.30), "Not learning: train accuracy 9.5%"),
])
def test_underfitting_is_described_by_its_training_figures_not_its_gap(numbers, phrase):
    """An underfit run's gap (0.44) equalled dropout's (0.46): its small gap is explained by
    its high train loss, never read as generalising."""
    fit = fit_verdict(*numbers, val_losses=[1.2, 1.0, 0.9, 0.95])
    assert fit["verdict"] == "underfitting" and fit["grade"] is None
    assert fit["reason"].startswith(phrase)


def test_verdicts_stored_before_grading_still_read():
    old = {"verdict": "overfitting", "reason": "Validation loss climbed from 0.450 at epoch 2 to 0.700."}
    assert verdict_line(old) == "Overfitting. Validation loss climbed from 0.450 at epoch 2 to 0.700."
    assert {"good fit", "overfitting", "underfitting"} <= set(VERDICTS)
    new = fit_verdict(1.0, 0.89, 0.01, 0.5, _climb(0.3))
    assert verdict_line(new) == new["reason"]


def test_loss_and_accuracy_disagreeing_is_explained_with_the_numbers():
    text = loss_accuracy_disagreement(("dropout 0.6", 0.401, 0.873), ("dropout 0", 0.452, 0.889))
    assert text.startswith("dropout 0.6 has the lowest validation loss (0.401 vs 0.452) but dropout 0 is the more "
                           "accurate (88.9% vs 87.3%).")
    assert "over-confident" in text and "accuracy only counts right or wrong" in text


def test_confident_mistakes_are_sorted_by_confidence():
    labels = np.array([0, 1, 2, 3])
    proba = _one_hot(np.array([0, 2, 3, 3]), 0.5)
    proba[2] = _one_hot(np.array([3]), 0.99)[0]
    mistakes = confident_mistakes(labels, proba, n=5)
    assert [m["index"] for m in mistakes] == [2, 1]
    assert mistakes[0] == {"index": 2, "true": 2, "predicted": 3, "confidence": pytest.approx(0.99)}
