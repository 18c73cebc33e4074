"""The Train form: its fields, their widgets' limits, and the mapping to ``TrainConfig``.

The form lives in ``st.session_state[FORM_KEY]``, a plain dict that survives page
switches; the widgets' own keys do not (Streamlit drops a widget's state when its page is
not shown), so every widget is re-seeded from the dict when the page opens again. The
variant is part of that dict: a run queued after a page switch carries the variant the
form shows, and the run's name (from ``config.describe``) says what was changed.
"""

import json
import time

import streamlit as st

from kmnist_core.checks import ParameterError
from kmnist_core.config import LABELS, PARAMETERS, make_config, parse_units, preset, setting_text

FORM_KEY = "train_form"
DEFAULT_VARIANT = "combined"
DEFAULT_K = 5
# The fields the form shows, in order; everything else keeps the preset's value.
FIELDS = ("variant", "family", "hidden_units", "dropout", "input_dropout", "l1", "l2", "epochs",
          "batch_size", "learning_rate", "train_size", "patience", "augment", "seed", "optimizer",
          "schedule", "label_smoothing", "ema", "use_kfold", "kfold")
DUPLICATE_WINDOW = 5.0  # seconds in which the same settings are not queued twice from one session
LAST_QUEUED_KEY = "train_last_queued"


def widget_key(field: str) -> str:
    return f"train_{field}"


def defaults(variant: str) -> dict:
    """The form's values for a preset: what the widgets show after choosing it."""
    values = preset(variant)
    form = {field: values[field] for field in FIELDS if field in values}
    form["hidden_units"] = ", ".join(str(units) for units in values["hidden_units"])
    form["use_kfold"] = values["kfold"] >= 2
    form["kfold"] = values["kfold"] if values["kfold"] >= 2 else DEFAULT_K
    return form


def init() -> dict:
    """Seed every widget from the remembered form (or the default preset); returns it."""
    state = st.session_state
    form = state.setdefault(FORM_KEY, defaults(DEFAULT_VARIANT))
    for field in FIELDS:
        state.setdefault(widget_key(field), form[field])
    return form


def load(values: dict) -> None:
    """Put ``values`` (every field) into the form and its widgets."""
    st.session_state[FORM_KEY] = dict(values)
    for field in FIELDS:
        st.session_state[widget_key(field)] = values[field]


def reset() -> None:
    """Callback (variant change, Reset): every field back to the chosen preset's value."""
    load(defaults(st.session_state[widget_key("variant")]))


def remember() -> dict:
    """Copy the widgets' values into the persistent form and return it."""
    form = {field: st.session_state[widget_key(field)] for field in FIELDS}
    st.session_state[FORM_KEY] = form
    return form


def to_config(form: dict):
    """The form on top of its preset, validated by the core (ParameterError)."""
    values = {field: form[field] for field in FIELDS if field not in ("variant", "use_kfold")}
    values["kfold"] = values["kfold"] if form["use_kfold"] else 0
    problems, config = [], None
    try:
        values["hidden_units"] = parse_units(values["hidden_units"])
    except ParameterError as error:
        problems += error.problems
        values["hidden_units"] = None  # checked above; the rest is still checked below
    try:
        config = make_config(form["variant"], **values)
    except ParameterError as error:
        problems += error.problems
    if problems:  # every problem at once, not the first of them
        raise ParameterError(problems)
    return config


def problem_text(error: ParameterError) -> str:
    """The core's message with the form's labels instead of parameter names."""
    return error.describe(LABELS)


def changed(form: dict) -> list:
    """["Dropout (hidden layers) 0.5 → 0.3", …]: what differs from the preset's values."""
    base = defaults(form["variant"])
    return [f"{PARAMETERS[field].label if field in PARAMETERS else 'k-fold CV'} "
            f"{setting_text(field, base[field])} → {setting_text(field, form[field])}"
            for field in FIELDS if field != "variant" and form[field] != base[field]
            and (field != "kfold" or form["use_kfold"])]


def first_time_queueing(config) -> bool:
    """False when this session queued the same settings under ``DUPLICATE_WINDOW`` seconds
    ago (a double click); remembers this attempt otherwise."""
    fingerprint = json.dumps(config.to_dict(), sort_keys=True)
    last = st.session_state.get(LAST_QUEUED_KEY)
    now = time.monotonic()
    if last and last[0] == fingerprint and now - last[1] < DUPLICATE_WINDOW:
        return False
    st.session_state[LAST_QUEUED_KEY] = (fingerprint, now)
    return True


# -- the form in the page's URL: a link that reproduces a setup ----------------------------------
def to_query(form: dict) -> dict:
    """The URL's query parameters for ``form``: the variant and what differs from it."""
    base = defaults(form["variant"])
    query = {"variant": form["variant"]}
    for field in FIELDS[1:]:
        if form[field] != base[field]:
            query[field] = str(form[field]).lower() if isinstance(form[field], bool) else str(form[field])
    return query


def from_query(query: dict) -> tuple:
    """(form, problems) from URL parameters: every readable, valid value applied on top of
    its preset, and every other one named in ``problems`` (a ParameterError's list) and
    left at the preset's value — a link with one typo still opens what it can."""
    variant = query.get("variant", DEFAULT_VARIANT)
    problems = []
    if variant not in PARAMETERS["variant"].choices:
        problems.append(("variant", f"must be one of {', '.join(PARAMETERS['variant'].choices)}; got {variant[:40]!r}"))
        variant = DEFAULT_VARIANT
    values = defaults(variant)
    for field, text in query.items():
        if field == "variant":
            continue
        if field not in FIELDS:
            problems.append((field[:40], "is not a setting of this form"))
            continue
        try:
            candidate = dict(values, **{field: _parse(field, text)})
            to_config(candidate)  # the value's range and the rules that tie fields together
        except ValueError as error:  # ParameterError is a ValueError too
            reason = error.problems[0][1] if isinstance(error, ParameterError) else f"cannot be {text[:40]!r}"
            problems.append((field, reason))
            continue
        values = candidate
    return values, problems


def _parse(field, text):
    """One URL value as the form holds it (ValueError when it cannot be read so)."""
    kind = "bool" if field == "use_kfold" else "int" if field == "kfold" else PARAMETERS[field].kind
    if kind == "bool":
        if text.lower() not in ("true", "false"):
            raise ValueError(text)
        return text.lower() == "true"
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    return text
