"""From the app's Train form to queued runs, and keeping the background worker awake.

The app never trains inside a Streamlit script run: a page turns its form into a
validated ``TrainConfig``, stores it as a queued run, and makes sure a background worker
(``kmnist_core.worker``) is there to train it. Switching pages, closing the tab or
opening a second one therefore never touches a training. No Streamlit import here, so
the same functions are easy to test and to call from scripts.
"""

import os
import time

from .checks import ParameterError
from .config import STUDY_ORDER, make_config, preset
from .data import DATA_DIR_ENV
from .store import RunStore
from .worker import ensure_worker

IDLE_EXIT_ENV = "KMNIST_WORKER_IDLE_EXIT"  # seconds a worker waits for new runs (tests use ~1)
DEFAULT_IDLE_EXIT = 30.0
SPAWN_GRACE = 5.0  # a new worker holds the training lock well within this (it locks before importing TF)

# The fields the Train form shows. Everything else keeps the preset's value.
FORM_FIELDS = ("family", "hidden_units", "dropout", "input_dropout", "l1", "l2",
               "epochs", "batch_size", "learning_rate", "use_kfold", "k")
# "Train all variants" carries these over from the form; each variant keeps its own
# architecture and regularization, which is what the study compares.
STUDY_SHARED = ("epochs", "batch_size", "learning_rate", "use_kfold", "k")
DEFAULT_K = 5
QUICK_RUN = dict(variant="combined", epochs=5)  # ~15 s on the mini set, reads drawings decently
QUICK_NAME = "quick model"

_last_spawn = {}  # store home -> time.monotonic() of the last worker this process started


def form_defaults(variant: str) -> dict:
    """The form's values for a preset: what the widgets show after a reset."""
    values = preset(variant)
    return {
        "family": values["family"],
        "hidden_units": ", ".join(str(units) for units in values["hidden_units"]),
        "dropout": values["dropout"], "input_dropout": values["input_dropout"],
        "l1": values["l1"], "l2": values["l2"],
        "epochs": values["epochs"], "batch_size": values["batch_size"],
        "learning_rate": values["learning_rate"],
        "use_kfold": values["kfold"] >= 2, "k": values["kfold"] if values["kfold"] >= 2 else DEFAULT_K,
    }


def parse_units(text) -> tuple:
    """'512, 256' -> (512, 256); '' -> () (no hidden layer: the CNN families may go straight
    from their pooled features to the classes). The core checks the sizes and their count."""
    if not str(text).strip():
        return ()
    parts = [part.strip() for part in str(text).split(",")]
    if not all(part.isdigit() for part in parts):
        raise ParameterError(f"hidden_units must be layer sizes separated by commas, e.g. 512, 256; got {text!r}")
    return tuple(int(part) for part in parts)


def config_from_form(variant: str, form: dict):
    """The form's values on top of the preset, validated by the core (ParameterError)."""
    values = {field: form[field] for field in FORM_FIELDS if field in form}
    use_kfold, k = values.pop("use_kfold", False), values.pop("k", DEFAULT_K)
    if "hidden_units" in values:
        values["hidden_units"] = parse_units(values["hidden_units"])
    return make_config(variant, kfold=k if use_kfold else 0, **values)


def study_configs(form: dict) -> list:
    """One config per study variant, underfit → final, sharing the form's training settings."""
    shared = {field: form[field] for field in STUDY_SHARED if field in form}
    return [config_from_form(variant, shared) for variant in STUDY_ORDER]


def data_dir():
    """The data folder runs are trained on: the app's own ``$KMNIST_DATA_DIR``, if set."""
    return os.environ.get(DATA_DIR_ENV) or None


def submit(store: RunStore, config, name=None) -> int:
    """Queue one run and make sure a worker will train it."""
    run_id = store.create_run(config, name=name, data_dir=data_dir())
    wake_worker(store)
    return run_id


def submit_study(store: RunStore, form: dict) -> list:
    """Queue the six study variants in order; all are validated before any is queued."""
    configs = study_configs(form)
    run_ids = [store.create_run(config, data_dir=data_dir()) for config in configs]
    wake_worker(store)
    return run_ids


def submit_quick(store: RunStore) -> int:
    """The empty-state shortcut: a small model good enough to read drawings."""
    return submit(store, make_config(**QUICK_RUN), name=QUICK_NAME)


def idle_exit() -> float:
    try:
        return max(0.5, float(os.environ.get(IDLE_EXIT_ENV, DEFAULT_IDLE_EXIT)))
    except ValueError:
        return DEFAULT_IDLE_EXIT


def wake_worker(store: RunStore) -> bool:
    """Start a worker when runs wait and nobody trains them; safe to call on every poll.

    A fresh worker needs a moment to start Python before it holds the training lock, so
    this process does not start another one for the same store within ``SPAWN_GRACE``
    seconds (a surplus worker would only find the lock taken and exit). The same call
    revives the queue after a worker died or the app restarted: the new worker marks
    orphaned 'running' runs failed and goes on.
    """
    key = str(store.home.resolve())
    if time.monotonic() - _last_spawn.get(key, float("-inf")) < SPAWN_GRACE:
        return False
    started = ensure_worker(store.home, idle_exit=idle_exit())
    if started:
        _last_spawn[key] = time.monotonic()
    return started
