"""McNemar's exact test and seed summaries: hand-computed cases, an independent check
against SciPy (a scikit-learn dependency, so always installed), and the error messages."""

import json
import math

import numpy as np
import pytest
from scipy.stats import binomtest

from kmnist_core.checks import ParameterError
from kmnist_core.significance import ALPHA, exact_p_value, format_p, mcnemar, seed_summary, sentence


def paired(both_right, only_a, only_b, both_wrong, seed=0):
    """Labels and two prediction arrays with exactly these four counts, shuffled."""
    rng = np.random.default_rng(seed)
    n = both_right + only_a + only_b + both_wrong
    y = rng.integers(0, 10, n)
    wrong_a = (y + 1 + rng.integers(0, 9, n)) % 10  # any other class
    wrong_b = (y + 1 + rng.integers(0, 9, n)) % 10
    a_right = np.array([True] * both_right + [True] * only_a + [False] * only_b + [False] * both_wrong)
    b_right = np.array([True] * both_right + [False] * only_a + [True] * only_b + [False] * both_wrong)
    order = rng.permutation(n)
    a_right, b_right = a_right[order], b_right[order]
    pred_a, pred_b = np.where(a_right, y, wrong_a), np.where(b_right, y, wrong_b)
    assert np.count_nonzero(pred_a == y) == both_right + only_a
    assert np.count_nonzero(pred_b == y) == both_right + only_b
    return y, pred_a, pred_b


def test_counts_and_hand_computed_p_value():
    # b = 1, c = 9: p = 2 · (C(10,0) + C(10,1)) / 2^10 = 2 · 11 / 1024 = 22/1024
    y, a, b = paired(both_right=80, only_a=1, only_b=9, both_wrong=10)
    result = mcnemar(y, a, b)
    assert result == {
        "n": 100, "both_right": 80, "only_a_right": 1, "only_b_right": 9, "both_wrong": 10,
        "accuracy_a": 0.81, "accuracy_b": 0.89, "p_value": 0.021484375, "significant": True,
    }
    assert json.loads(json.dumps(result)) == result
    # swapping the models swaps b and c and leaves p alone
    swapped = mcnemar(y, b, a)
    assert (swapped["only_a_right"], swapped["only_b_right"], swapped["p_value"]) == (9, 1, 0.021484375)


def test_equal_disagreements_give_p_one():
    y, a, b = paired(both_right=50, only_a=7, only_b=7, both_wrong=3)
    result = mcnemar(y, a, b)
    assert result["p_value"] == 1.0 and result["significant"] is False
    assert exact_p_value(1, 0) == 1.0  # 2 · C(1,0)/2 = 1
    assert exact_p_value(5, 0) == 2 / 32  # 0.0625
    assert exact_p_value(6, 0) == 2 / 64


def test_identical_predictions_agree_on_every_image():
    y, a, _ = paired(both_right=90, only_a=0, only_b=0, both_wrong=10)
    result = mcnemar(y, a, a.copy())
    assert (result["only_a_right"], result["only_b_right"], result["p_value"]) == (0, 0, 1.0)
    text = sentence("dropout", "overfit", result)
    assert text == ("dropout and overfit agree on every one of the 100 test images (both right on 90, "
                    "both wrong on 10): nothing tells them apart.")


def test_two_wrong_answers_that_differ_are_not_a_disagreement():
    """McNemar pairs right/wrong, not the labels: both wrong in different ways is 'both wrong'."""
    y = np.array([0, 1, 2])
    result = mcnemar(y, [5, 1, 2], [6, 1, 2])
    assert (result["both_wrong"], result["only_a_right"], result["only_b_right"]) == (1, 0, 0)


@pytest.mark.parametrize("b, c", [(41, 12), (12, 41), (100, 130), (400, 460), (1500, 1620), (3, 40), (0, 25)])
def test_large_counts_match_scipy_and_a_direct_sum(b, c):
    ours = exact_p_value(b, c)
    n = b + c
    direct = min(1.0, 2 * math.fsum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2.0 ** n) if n < 1000 else None
    scipy_p = binomtest(min(b, c), n, 0.5, alternative="two-sided").pvalue
    assert ours == pytest.approx(scipy_p, rel=1e-9, abs=1e-300)
    if direct is not None:
        assert ours == pytest.approx(direct, rel=1e-12)


def test_huge_imbalance_underflows_to_zero_and_reads_as_tiny():
    p = exact_p_value(0, 5000)  # 2 / 2^5000 is below the smallest float
    assert p == 0.0
    assert format_p(p) == "p < 0.0001"


def test_sentences_read_as_specified():
    y, a, b = paired(both_right=1800, only_a=41, only_b=12, both_wrong=147)
    result = mcnemar(y, a, b)
    assert result["p_value"] == pytest.approx(binomtest(12, 53, 0.5).pvalue, rel=1e-9)
    assert result["p_value"] == pytest.approx(8.1713e-5, rel=1e-4)
    assert sentence("dropout", "overfit", result) == (
        "dropout is right on 41 images that overfit gets wrong, and wrong on 12 it gets right: "
        "p < 0.0001, unlikely to be the luck of the test images.")

    y, a, b = paired(both_right=1800, only_a=20, only_b=15, both_wrong=165)
    result = mcnemar(y, a, b)
    assert result["p_value"] > ALPHA
    assert sentence(" l1l2 ", "combined", result) == (
        "l1l2 is right on 20 images that combined gets wrong, and wrong on 15 it gets right: "
        "p = 0.5, a difference this size happens by the luck of the test images; treat them as equal.")

    y, a, b = paired(both_right=10, only_a=1, only_b=0, both_wrong=0)
    assert sentence("A", "B", mcnemar(y, a, b)) == (
        "A is right on 1 image that B gets wrong, and wrong on none it gets right: p = 1, "
        "a difference this size happens by the luck of the test images; treat them as equal.")


@pytest.mark.parametrize("p, text", [
    (1.0, "p = 1"), (0.42, "p = 0.42"), (0.021484375, "p = 0.021"), (0.05, "p = 0.05"),
    (0.0496, "p = 0.0496"), (0.04996, "p = 0.04996"), (0.00012, "p = 0.0001"), (0.00009, "p < 0.0001"),
])
def test_p_values_are_never_rounded_across_the_threshold(p, text):
    assert format_p(p) == text


def test_seed_summary():
    assert seed_summary([0.9, 0.92, 0.94]) == {"mean": pytest.approx(0.92), "std": pytest.approx(0.02), "n": 3}
    summary = seed_summary(np.array([1, 2, 3, 4]))
    assert summary["std"] == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert seed_summary([0.9]) == {"mean": 0.9, "std": None, "n": 1}
    assert seed_summary(v for v in [5, 5]) == {"mean": 5.0, "std": 0.0, "n": 2}
    assert json.dumps(seed_summary(np.float32([0.5, 0.7])))


@pytest.mark.parametrize("call, message", [
    (lambda: mcnemar([0, 1], [0, 1, 2], [0, 1]), "pred_a must have one label per test image (2), got 3"),
    (lambda: mcnemar([0, 1], [0, 1], [1]), "pred_b must have one label per test image (2), got 1"),
    (lambda: mcnemar([0, 10], [0, 1], [0, 1]), "y_true must hold labels in [0, 9], got values from 0 to 10"),
    (lambda: mcnemar([0, 1], [-1, 1], [0, 1]), "pred_a must hold labels in [0, 9]"),
    (lambda: mcnemar([], [], []), "y_true must be a non-empty 1-D array of labels"),
    (lambda: mcnemar([0, 1], [0.5, 1], [0, 1]), "pred_a must hold integer class labels"),
    (lambda: mcnemar([0, 1], ["a", "b"], [0, 1]), "pred_a must hold integer class labels"),
    (lambda: mcnemar([0, 1], np.eye(10)[:2], [0, 1]), "pass proba.argmax(axis=1)"),
    (lambda: exact_p_value(-1, 2), "b must be a non-negative integer"),
    (lambda: sentence("", "b", {}), "name_a must be a non-empty string"),
    (lambda: sentence("a", "b", {"p_value": 0.1}), "result must be the dict returned by mcnemar()"),
    (lambda: format_p(1.5), "p_value must be a number in [0, 1]"),
    (lambda: seed_summary([]), "values must hold at least one number"),
    (lambda: seed_summary([0.9, float("nan")]), "values must be finite numbers"),
    (lambda: seed_summary("0.9"), "values must be a list of numbers"),
])
def test_invalid_input_is_named_in_one_line(call, message):
    with pytest.raises(ParameterError, match=None) as error:
        call()
    assert message in str(error.value) and "\n" not in str(error.value)
