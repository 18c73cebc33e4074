"""Parameter validation in the scikit-learn style: one message that names the parameter
and the allowed range, raised before anything is written anywhere."""

import math
from numbers import Integral, Real


class ParameterError(ValueError):
    """A public function got a parameter outside its allowed range."""


def check_int(name, value, low=None, high=None):
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ParameterError(f"{name} must be an integer, got {value!r}")
    _check_range(name, int(value), low, high, low_inclusive=True, high_inclusive=True)
    return int(value)


def check_float(name, value, low=None, high=None, low_inclusive=True, high_inclusive=True):
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ParameterError(f"{name} must be a finite number, got {value!r}")
    _check_range(name, float(value), low, high, low_inclusive, high_inclusive)
    return float(value)


def check_choice(name, value, choices):
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ParameterError(f"{name} must be one of {allowed}; got {value!r}")
    return value


def _check_range(name, value, low, high, low_inclusive, high_inclusive):
    too_low = low is not None and (value < low if low_inclusive else value <= low)
    too_high = high is not None and (value > high if high_inclusive else value >= high)
    if too_low or too_high:
        left = "[" if low_inclusive else "("
        right = "]" if high_inclusive else ")"
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise ParameterError(f"{name} must be in {left}{lo}, {hi}{right}, got {value:g}")
