"""Is a difference between two runs real, or the luck of one test set / one seed?

Two models scored on the same test images are paired: most images both get right, some
both get wrong, and only the images where they *disagree* say which is better. McNemar's
exact test asks whether those disagreements split more unevenly than coin flips would;
accuracies alone (91.2% vs 90.8%) cannot say. It covers the luck of the test images only:
two trained models can differ for real while their settings do not (two seeds of one
configuration). ``seed_summary`` gives mean ± std for a metric measured over several seeds
of one configuration: the luck of training.

The p-value is SciPy's exact binomial test (``scipy.stats.binomtest``); what is ours is
reading it: the counts, the threshold, and the sentence a learner reads.
"""

import math
import statistics
from numbers import Real

import numpy as np

from .checks import ParameterError
from .classes import NUM_CLASSES

ALPHA = 0.05  # below this p-value a difference is called unlikely to be the test images' luck


def mcnemar(y_true, pred_a, pred_b) -> dict:
    """Paired comparison of two models' predicted labels on the same test images.

    Returns (JSON-serialisable): n; both_right; only_a_right (b: A right, B wrong);
    only_b_right (c); both_wrong; accuracy_a; accuracy_b; p_value, the exact two-sided
    McNemar p-value, i.e. the probability under "each disagreement is a fair coin flip"
    (Binomial(b + c, 1/2)) of a split at least as uneven as the one seen; and significant
    (p_value < ALPHA). With no disagreements at all, p_value is 1.
    """
    y_true = _labels("y_true", y_true)
    pred_a = _labels("pred_a", pred_a, len(y_true))
    pred_b = _labels("pred_b", pred_b, len(y_true))
    right_a, right_b = pred_a == y_true, pred_b == y_true
    b = int(np.count_nonzero(right_a & ~right_b))
    c = int(np.count_nonzero(~right_a & right_b))
    both_right = int(np.count_nonzero(right_a & right_b))
    n = len(y_true)
    p_value = exact_p_value(b, c)
    return {
        "n": n,
        "both_right": both_right,
        "only_a_right": b,
        "only_b_right": c,
        "both_wrong": n - both_right - b - c,
        "accuracy_a": (both_right + b) / n,
        "accuracy_b": (both_right + c) / n,
        "p_value": p_value,
        "significant": p_value < ALPHA,
    }


def exact_p_value(b, c) -> float:
    """Two-sided exact McNemar p-value for b vs c discordant pairs: the exact binomial test
    of min(b, c) successes in b + c fair coin flips (= min(1, 2 · P(X ≤ min(b, c))))."""
    from scipy.stats import binomtest  # SciPy's stats: imported only when a comparison is made

    for name, value in (("b", b), ("c", c)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ParameterError(f"{name} must be a non-negative integer, got {value!r}")
    b, c = int(b), int(c)
    if b + c == 0:
        return 1.0
    return float(binomtest(min(b, c), b + c, 0.5, alternative="two-sided").pvalue)


def format_p(p_value) -> str:
    """'p = 0.42', 'p = 0.021', 'p = 0.0001', 'p < 0.0001': two significant digits (one
    below 0.001), and never rounded across ALPHA."""
    if isinstance(p_value, bool) or not isinstance(p_value, Real) or not 0 <= float(p_value) <= 1:
        raise ParameterError(f"p_value must be a number in [0, 1], got {p_value!r}")
    if p_value < 0.0001:
        return "p < 0.0001"
    digits = 1 if p_value < 0.001 else 2
    text = f"{p_value:.{digits}g}"
    while p_value < ALPHA <= float(text):  # 0.0496 or 0.04996 must not read as 0.05
        digits += 1
        text = f"{p_value:.{digits}g}"
    return f"p = {text}"


def sentence(name_a, name_b, result) -> str:
    """One plain sentence on a ``mcnemar`` result, from A's side, e.g.
    "dropout is right on 41 images that overfit gets wrong, and wrong on 12 it gets right:
    p = 0.0001, unlikely to be the luck of the test images." ("that" keeps two run names,
    "#2 overfit · train size 3000" and the next, from reading as one.)"""
    for label, value in (("name_a", name_a), ("name_b", name_b)):
        if not isinstance(value, str) or not value.strip():
            raise ParameterError(f"{label} must be a non-empty string, got {value!r}")
    name_a, name_b = name_a.strip(), name_b.strip()
    keys = ("n", "both_right", "only_a_right", "only_b_right", "both_wrong", "p_value")
    if not isinstance(result, dict) or any(key not in result for key in keys):
        raise ParameterError(f"result must be the dict returned by mcnemar(), got {type(result).__name__}")
    b, c = result["only_a_right"], result["only_b_right"]
    if b == c == 0:
        return (f"{name_a} and {name_b} agree on every one of the {result['n']:,} test images "
                f"(both right on {result['both_right']:,}, both wrong on {result['both_wrong']:,}): "
                f"nothing tells them apart.")
    lead = (f"{name_a} is right on {_images(b)} that {name_b} gets wrong, "
            f"and wrong on {_images(c, noun=False)} it gets right: {format_p(result['p_value'])}, ")
    if result["p_value"] < ALPHA:
        return lead + "unlikely to be the luck of the test images."
    return lead + "a difference this size happens by the luck of the test images; treat them as equal."


def _images(count, noun=True) -> str:
    if count == 0:
        return "none" if not noun else "no images"
    if not noun:
        return f"{count:,}"
    return f"{count:,} image" if count == 1 else f"{count:,} images"


def seed_summary(values) -> dict:
    """{"mean", "std", "n"} of one metric over runs that differ only by seed.

    std is the sample standard deviation (n − 1 in the denominator: the seeds are a sample
    of all seeds one could try); with a single value it is None, since one run says nothing
    about the spread.
    """
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ParameterError(f"values must be a list of numbers, got {type(values).__name__}")
    values = list(values)
    if not values:
        raise ParameterError("values must hold at least one number, got none")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
            raise ParameterError(f"values must be finite numbers, got {value!r}")
    numbers = [float(v) for v in values]
    std = statistics.stdev(numbers) if len(numbers) > 1 else None
    return {"mean": statistics.fmean(numbers), "std": std, "n": len(numbers)}


def _labels(name, values, length=None) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == NUM_CLASSES:
        raise ParameterError(f"{name} must be class labels, got a ({len(array)}, {NUM_CLASSES}) "
                             f"probability table; pass proba.argmax(axis=1)")
    if array.ndim != 1 or array.size == 0:
        raise ParameterError(f"{name} must be a non-empty 1-D array of labels, got shape {array.shape}")
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ParameterError(f"{name} must hold integer class labels, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
            raise ParameterError(f"{name} must hold integer class labels, got non-integer values")
    if array.min() < 0 or array.max() >= NUM_CLASSES:
        raise ParameterError(f"{name} must hold labels in [0, {NUM_CLASSES - 1}], "
                             f"got values from {array.min():g} to {array.max():g}")
    if length is not None and len(array) != length:
        raise ParameterError(f"{name} must have one label per test image ({length}), got {len(array)}")
    return array.astype(np.int64)
