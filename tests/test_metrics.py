import numpy as np
import pytest

from kmnist_core.metrics import classification_metrics, confident_mistakes, fit_verdict


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


@pytest.mark.parametrize("numbers, curve, verdict, phrase", [
    ((0.75, 0.72, 0.80, 0.90), [1.2, 1.0, 0.9], "underfitting", "cannot fit even"),
    # near chance (a learning rate of 1e-9, seen in Chromium): not "needs more capacity"
    ((0.095, 0.09, 2.30, 2.30), [2.30, 2.30], "underfitting", "not learning at all, which capacity does not explain"),
    ((1.00, 0.89, 0.01, 0.60), [0.5, 0.45, 0.7], "overfitting", "climbed from 0.450 at epoch 2 to 0.700"),
    ((1.00, 0.89, 0.05, 0.40), [0.6, 0.42, 0.44], "good fit", "ends +5% from its best (0.420 at epoch 2)"),
    ((1.00, 0.89, 0.01, 0.60), [], "overfitting", "more than 0.5 above"),  # no curves: the gap decides
    ((0.99, 0.90, 0.10, 0.40), [], "good fit", "stays within 0.5 of its training loss"),
])
def test_fit_verdict(numbers, curve, verdict, phrase):
    result, reason = fit_verdict(*numbers, val_losses=curve)
    assert result == verdict
    assert phrase in reason and f"train acc {numbers[0]:.1%}" in reason


def test_confident_mistakes_are_sorted_by_confidence():
    labels = np.array([0, 1, 2, 3])
    proba = _one_hot(np.array([0, 2, 3, 3]), 0.5)
    proba[2] = _one_hot(np.array([3]), 0.99)[0]
    mistakes = confident_mistakes(labels, proba, n=5)
    assert [m["index"] for m in mistakes] == [2, 1]
    assert mistakes[0] == {"index": 2, "true": 2, "predicted": 3, "confidence": pytest.approx(0.99)}
