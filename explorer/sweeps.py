"""What the Sweep page shows and queues, as plain data: the new-sweep form turned into
validated configs (one message naming every problem), a sweep's progress in words, and
its table of values with mean ± std over seeds. No Streamlit here."""

from kmnist_core import sweep as sweeping
from kmnist_core.checks import ParameterError
from kmnist_core.config import LABELS, VARIANTS, check_against_data, preset
from kmnist_core.status import Status

from . import jobs, sessions

DEFAULT_VARIANT = "overfit"  # the unregularized network: regularization sweeps show their effect on it
DEFAULT_PARAM = "dropout"
DEFAULT_SEEDS = 2
FORM_FIELDS = ("variant", "param", "values", "seeds", "epochs")


def defaults() -> dict:
    """The form as it first shows: a dropout sweep of the overfit network, two seeds,
    the preset's epochs (None)."""
    return {"variant": DEFAULT_VARIANT, "param": DEFAULT_PARAM, "values": sweeping.SWEEPABLE[DEFAULT_PARAM].example,
            "seeds": DEFAULT_SEEDS, "epochs": None}


def overrides(form) -> dict:
    """The settings every run of the sweep shares beyond its preset (only epochs here;
    None keeps the preset's, and a sweep over epochs ignores it)."""
    return {"epochs": form["epochs"]} if form["epochs"] is not None and form["param"] != "epochs" else {}


def to_configs(form, train_images=None) -> list:
    """The sweep's validated configs in queue order, or one ParameterError naming every
    problem (``train_images``: the loaded data's count, to check train_size against)."""
    configs = sweeping.sweep_configs(form["variant"], form["param"], form["values"], form["seeds"], **overrides(form))
    if train_images is not None:
        check_against_data(configs, train_images)
    return configs


def problem_text(error: ParameterError) -> str:
    """The problems named by the labels the form shows."""
    return error.describe(sweeping.SWEEP_LABELS)


def submit(store, form, owner, data_source) -> int:
    """Queue the sweep (validated again, as a whole) for session ``owner`` on the loaded data
    and wake the worker; its id. SessionLimitError, and nothing queued, when the sweep would
    exceed the session's share of a shared server."""
    jobs.check_room(store, owner, len(to_configs(form)), "this sweep")
    sweep_id = sweeping.enqueue_sweep(store, form["variant"], form["param"], form["values"], form["seeds"],
                                      data_dir=jobs.data_dir(), data_source=data_source, owner=owner,
                                      **overrides(form))
    jobs.wake_worker(store)
    return sweep_id


def plan_text(form, configs) -> str:
    """ "8 runs of overfit, 50 epochs each: 4 values × 2 seeds." """
    values = len(configs) // form["seeds"]
    epochs = configs[0].epochs if form["param"] != "epochs" else None
    each = f", {epochs} epochs each" if epochs else ""
    return (f"{len(configs)} runs of {form['variant']}{each}: {values} values × {form['seeds']} "
            f"seed{'s' if form['seeds'] != 1 else ''}, queued seed by seed so the whole curve shows early.")


def label(sweep) -> str:
    return f"#{sweep.id} {sweeping.title(sweep)}"


def progress_text(runs) -> str:
    """ "3 of 8 runs finished · 1 training · 4 queued" (and any that failed, were stopped or cancelled)."""
    count = {status: sum(run.status == status for run in runs) for status in Status}
    parts = [f"{count[Status.COMPLETED]} of {len(runs)} runs finished"]
    if count[Status.RUNNING]:
        parts.append(f"{count[Status.RUNNING]} training")
    if count[Status.QUEUED]:
        parts.append(f"{count[Status.QUEUED]} queued")
    for status in (Status.STOPPED, Status.FAILED, Status.CANCELLED, Status.INTERRUPTED):
        if count[status]:
            parts.append(f"{count[status]} {status} (left out of the curve)")
    return " · ".join(parts)


def queued_ids(runs, owner) -> list:
    """The queued runs ``owner`` may cancel (on a shared server, only its own)."""
    return [run.id for run in runs if run.status == Status.QUEUED and sessions.may_change(run, owner)]


def table_rows(rows, param) -> list:
    """One row per value: seeds finished, then mean ± std of train and held-out accuracy
    (in %) and loss; the best value (lowest mean held-out loss) starred."""
    heldout = sweeping.HELDOUT_NAMES[next((row["heldout"] for row in rows if row["heldout"]), "val")]
    return [{
        LABELS[param]: row["label"] + (" ★" if row["best"] else ""),
        "seeds finished": f"{row['finished']} of {row['runs']}",
        "train acc %": percent_text(row["train_accuracy"]),
        f"{heldout} acc %": percent_text(row["heldout_accuracy"]),
        "train loss": sweeping.mean_std_text(row["train_loss"]),
        f"{heldout} loss": sweeping.mean_std_text(row["heldout_loss"]),
    } for row in rows]


def percent_text(summary) -> str:
    """ "91.2 ± 0.4" (percent, std in percentage points), "91.2" for one seed, "" for none."""
    if not summary:
        return ""
    scaled = {**summary, "mean": 100 * summary["mean"],
              "std": None if summary["std"] is None else 100 * summary["std"]}
    return sweeping.mean_std_text(scaled, ".1f")


def variants() -> list:
    return list(VARIANTS)


def preset_epochs(variant) -> int:
    return preset(variant)["epochs"]
