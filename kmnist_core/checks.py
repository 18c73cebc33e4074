"""Parameter validation in the scikit-learn style: a message that names the parameter
and the allowed range, raised before anything is written anywhere.

A ``ParameterError`` may carry several problems at once (a form with three bad fields
gets all three named in one message); each problem is (parameter name, what is wrong).
"""

import math
import unicodedata
from numbers import Integral, Real

from .errors import KmnistError

MAX_NAME = 80  # characters in a run's or a study's name


class ParameterError(KmnistError, ValueError):
    """One or more parameters are outside their allowed range."""

    def __init__(self, problems):
        if isinstance(problems, str):  # a whole sentence with no single parameter to name
            problems = [("", problems)]
        self.problems = [(name, text) for name, text in problems]
        super().__init__("; ".join(f"{name} {text}".strip() for name, text in self.problems))

    def describe(self, labels: dict) -> str:
        """The same problems named by the labels a user sees (a form's field labels)."""
        return "; ".join(f"{labels.get(name, name)} {text}".strip() for name, text in self.problems)


class ModelLoadError(KmnistError, RuntimeError):
    """A model file is missing, damaged, of the wrong kind, or unsafe to load. Defined here,
    not in ``inference``, so the CLI can name it without importing TensorFlow."""


def check_int(name, value, low=None, high=None):
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ParameterError([(name, f"must be an integer, got {value!r}")])
    _check_range(name, int(value), low, high, low_inclusive=True, high_inclusive=True)
    return int(value)


def check_float(name, value, low=None, high=None, low_inclusive=True, high_inclusive=True):
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ParameterError([(name, f"must be a finite number, got {value!r}")])
    _check_range(name, float(value), low, high, low_inclusive, high_inclusive)
    return float(value)


def check_choice(name, value, choices):
    # True == 1 in Python: a bool matches only a bool choice, a number only a number.
    if not any(value == c and isinstance(value, bool) == isinstance(c, bool) for c in choices):
        allowed = ", ".join(repr(c) for c in choices)
        raise ParameterError([(name, f"must be one of {allowed}; got {value!r}")])
    return value


def number_text(value) -> str:
    """A limit or a value as a message shows it: whole numbers in full (10000000, not
    1e+07; a seed's limit 4294967295, not 4.29497e+09), others as %g (1e-05, 0.3)."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e16 else f"{value:g}"


def range_text(low, high, low_inclusive=True, high_inclusive=True) -> str:
    left, right = "[" if low_inclusive else "(", "]" if high_inclusive else ")"
    lo = "-inf" if low is None else number_text(low)
    hi = "inf" if high is None else number_text(high)
    return f"{left}{lo}, {hi}{right}"


def _check_range(name, value, low, high, low_inclusive, high_inclusive):
    too_low = low is not None and (value < low if low_inclusive else value <= low)
    too_high = high is not None and (value > high if high_inclusive else value >= high)
    if too_low or too_high:
        raise ParameterError([(name, f"must be in {range_text(low, high, low_inclusive, high_inclusive)}, "
                                     f"got {number_text(value)}")])


def check_run_id(run_id) -> int:
    """Run ids are positive integers written in ASCII digits ("١" or "²" are refused, not
    read as 1 or 2); anything else is refused before it reaches a path."""
    if isinstance(run_id, str) and run_id.strip().isascii() and run_id.strip().isdigit() and len(run_id.strip()) <= 12:
        run_id = int(run_id.strip())
    if isinstance(run_id, bool) or not isinstance(run_id, Integral) or run_id < 1:
        raise ParameterError([("run_id", f"must be a positive integer in ASCII digits, got {run_id!r}")])
    return int(run_id)


def check_name(name) -> str:
    """Names are labels only: printable text, 1..80 characters, stored in the database."""
    if not isinstance(name, str):
        raise ParameterError([("name", f"must be text, got {type(name).__name__}")])
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME:
        raise ParameterError([("name", f"must be 1 to {MAX_NAME} characters, got {len(name)}")])
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise ParameterError([("name", "must not contain control characters")])
    if name.isdigit():  # "12" must always mean run 12, never a run named "12"
        raise ParameterError([("name", f"must not be only digits (it would read as a run id), got {name!r}")])
    return name
