"""Take your run with you: its curves as CSV/JSON/TensorBoard events, its scores as JSON,
the runs table as CSV, and the run itself as one plain Keras script that trains it again
without this app.

Everything but ``export_run`` returns text from the run records it is given, so the app
can offer each as a download button; ``export_run`` reads one run from the store (never
writes there) and writes into a folder you name, never through a link in it.
"""

import csv
import io
import json
import math
import os
import secrets
import shutil
import time
from numbers import Real
from pathlib import Path

from . import config as engine_config
from .checks import ParameterError
from .config import TrainConfig, config_from_dict, validate
from .errors import KmnistError
from .records import EpochRecord

FIRST_COLUMNS = ("epoch",)  # then every other key in the order it first appears
# Record key prefix -> TensorBoard run folder: train_loss and val_loss share the tag epoch_loss,
# so TensorBoard draws them in one chart, as Keras's own callback lays them out.
TENSORBOARD_RUNS = {"train": "train", "val": "validation", "fit": "as_trained"}


# -- history and scores --------------------------------------------------------------------
def _check_history(history, weights=True) -> list:
    """Per-epoch dicts from ``EpochRecord``s (or dicts); ``weights=False`` drops the
    per-layer weight statistics, which are no column of a table or a curve."""
    if not isinstance(history, (list, tuple)) or not all(isinstance(r, (dict, EpochRecord)) for r in history):
        raise ParameterError(f"history must be a list of epoch records, got {type(history).__name__}")
    records = [r.to_dict() if isinstance(r, EpochRecord) else dict(r) for r in history]
    if not weights:
        for record in records:
            record.pop("weights", None)
    return records


def _union_columns(records, first=FIRST_COLUMNS) -> list:
    """Every key of every record, ``first`` ones first, the rest in order of first
    appearance: new keys the store adds later become new columns, never lost ones."""
    seen: dict[str, None] = {}
    for record in records:
        for key in record:
            seen.setdefault(str(key), None)
    return [k for k in first if k in seen] + [k for k in seen if k not in first]


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(value)  # round-trips exactly; nan and inf as Python writes them
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(_plain(value), ensure_ascii=False)
    return str(value)


def _csv(columns, rows) -> str:
    if not columns:
        return ""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in columns])
    return out.getvalue()


def _plain(value):
    """JSON-safe: NaN and infinity become null (JSON has neither), tuples lists, numpy
    scalars Python numbers."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", None) == 0:
        value = value.item()  # numpy scalar
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def history_csv(history) -> str:
    """One row per epoch, one column per key found in any epoch (``epoch`` first); an
    epoch without a value (no validation split) leaves its cell empty. "" when empty."""
    records = _check_history(history, weights=False)
    return _csv(_union_columns(records), records)


def history_json(history) -> str:
    """The per-epoch records as a JSON list (NaN/inf written as null)."""
    return json.dumps(_plain(_check_history(history)), indent=2, allow_nan=False) + "\n"


def _iso(timestamp):
    return None if timestamp is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def metrics_json(run) -> str:
    """A run's scores with what is needed to read them: which run, its status, data,
    configuration and duration. ``run`` is a ``kmnist_core.store.Run``."""
    _check_run(run)
    document = {
        "run": {
            "id": run.id, "name": run.name, "variant": run.variant, "status": run.status,
            "created": _iso(run.created_at), "started": _iso(run.started_at), "finished": _iso(run.finished_at),
            "duration_seconds": run.duration, "data_source": run.data_source, "params": run.params,
            "error": run.error,
        },
        "config": run.config,
        "metrics": run.metrics,
    }
    return json.dumps(_plain(document), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _check_run(run):
    needed = ("id", "name", "variant", "status", "config", "metrics", "created_at")
    if any(not hasattr(run, attribute) for attribute in needed):
        raise ParameterError(f"run must be a kmnist_core.store.Run, got {type(run).__name__}")


def _flatten(values, prefix="") -> dict:
    """{"test": {"accuracy": 0.9}} -> {"test_accuracy": 0.9}; lists (per-class rows,
    confusion matrices, folds) are left out: a table cell holds one number."""
    flat = {}
    for key, value in (values or {}).items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}_"))
        elif not isinstance(value, (list, tuple)):
            flat[f"{prefix}{key}"] = value
    return flat


RUN_COLUMNS = ("id", "name", "variant", "status", "created", "duration_seconds", "params", "data_source", "error",
               "sweep_id")


def runs_csv(runs) -> str:
    """The runs table: one row per run with its identity, every configuration field and
    every scalar score (``test_accuracy``, ``val_log_loss``, ``fit_verdict``, ...).
    Columns are the union over the runs, in a stable order: identity, configuration
    (``config_`` prefix), scores."""
    if not isinstance(runs, (list, tuple)):
        raise ParameterError(f"runs must be a list of runs, got {type(runs).__name__}")
    for run in runs:
        _check_run(run)
    rows = []
    for run in runs:
        row = {"id": run.id, "name": run.name, "variant": run.variant, "status": run.status,
               "created": _iso(run.created_at), "duration_seconds": run.duration, "params": run.params,
               "data_source": run.data_source, "error": run.error, "sweep_id": getattr(run, "sweep_id", None)}
        row.update({f"config_{k}": v for k, v in (run.config or {}).items()})
        row.update(_flatten(run.metrics))
        rows.append(row)
    return _csv(_union_columns(rows, first=RUN_COLUMNS), rows)


# -- TensorBoard ---------------------------------------------------------------------------------
def tensorboard_events(history, folder) -> Path:
    """Write the per-epoch numbers as TensorBoard event files, laid out as Keras's own
    TensorBoard callback does: ``folder/train`` gets ``epoch_loss``, ``epoch_accuracy``...,
    ``folder/validation`` the ``val_*`` keys under the same tags, so TensorBoard draws
    training and validation in one chart. Step = the epoch number. Returns ``folder``.

    Written with ``tf.summary.create_file_writer`` and ``tf.summary.write`` with the
    scalar plugin's metadata: the same records ``tf.summary.scalar`` writes, but without
    needing the tensorboard package installed (TensorFlow 2.21 does not bring it)."""
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    records = _check_history(history, weights=False)
    folder = Path(folder)
    metadata = summary_pb2.SummaryMetadata(  # exactly what tensorboard's scalar summary attaches
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars", content=b""),
    )
    writers = {}
    try:
        for position, record in enumerate(records, start=1):
            step = int(record.get("epoch") or position)
            for key, value in record.items():
                if key == "epoch" or isinstance(value, bool) or not isinstance(value, Real):
                    continue  # None (no validation), text and flags are not curves
                prefix, _, name = key.partition("_")
                split = TENSORBOARD_RUNS.get(prefix)
                if split is None or not name:
                    split, name = "train", key
                if split not in writers:
                    writers[split] = tf.summary.create_file_writer(str(folder / split))
                with writers[split].as_default():
                    tf.summary.write(f"epoch_{name}", tf.constant(float(value), tf.float32), step=step,
                                     metadata=metadata)
    finally:
        for writer in writers.values():
            writer.close()
    return folder


# -- the run as a script ---------------------------------------------------------------------------
# The script is a real module (ruff lints it, tests import it); an export replaces its
# settings block, between these two marker lines, and nothing else.
TEMPLATE = Path(__file__).with_name("standalone_train.py")
SETTINGS_BEGIN = "# -- The run's settings"
SETTINGS_END = "# -- End of the run's settings"
_SETTINGS = (  # (config field, comment): the constant is the field's name in capitals
    ("variant", "the study's preset these settings started from"),
    ("family", '"dense", "cnn" or "bn_cnn"'),
    ("hidden_units", "sizes of the hidden Dense layers"),
    ("dropout", "fraction of hidden units dropped on each step"),
    ("input_dropout", "fraction of pixels dropped on each step"),
    ("l1", "weight penalty on sum |w|"),
    ("l2", "weight penalty on sum w^2"),
    ("optimizer", '"adam", "adamw", "sgd", "rmsprop" or "adadelta"'),
    ("learning_rate", "peak learning rate"),
    ("schedule", '"constant", "cosine" or "onecycle"'),
    ("label_smoothing", "share of each target spread over the other classes"),
    ("ema", "momentum of the weights' moving average the model ends with (0: off)"),
    ("augment", "randomly shift, rotate and zoom training images"),
    ("mixed_precision", "compute in bfloat16 (fast on CPUs with AVX-512 BF16)"),
    ("epochs", "passes over the training images"),
    ("batch_size", "images per step"),
    ("patience", "early stopping: epochs without a better validation loss (0: off)"),
    ("train_size", "training images used, a stratified sample (0: all)"),
    ("full_train", "True: train on every training image, no validation split"),
    ("val_fraction", "of each class held out for validation"),
    ("seed", "fixes weights, split, shuffling and augmentation"),
)
# kfold is the one field not among them: the script trains one model, on one fold's split
# (``val_fraction`` 1/k), and its RUN line says so rather than claim the run (``_title``).


def _literal(value) -> str:
    if isinstance(value, str):
        return json.dumps(value)  # "dense": validated choices, never user text
    if isinstance(value, tuple):
        return repr(tuple(int(v) for v in value))
    return repr(value)


def _precision(config, run) -> tuple:
    """(MIXED_PRECISION, its comment): what the run computed in when the app chose ("auto"),
    else what this machine's CPU would choose."""
    from .hardware import choose_precision

    if config.mixed_precision != "auto":
        return config.mixed_precision, None
    used = (getattr(run, "runtime", None) or {}).get("precision")
    if used:
        return used == "bfloat16", f'"auto" in the app: this run computed in {used}'
    chosen = choose_precision("auto", gpu_bf16=False)
    return chosen == "bfloat16", f'"auto" in the app: {chosen} on this machine\'s CPU'


def _title(config, run) -> str:
    """What the script reproduces, in one line: its RUN constant, printed when it starts."""
    title = f'The "{config.variant}" configuration of KMNIST Explorer'
    if run is not None:
        _check_run(run)
        accuracy = ((run.metrics or {}).get("test") or {}).get("accuracy")
        score = f", test accuracy {accuracy:.2%}" if isinstance(accuracy, Real) else ""
        name = " ".join(str(run.name).split())
        title = f"KMNIST Explorer run #{int(run.id)} ({name}, variant {config.variant}{score})"
    if config.kfold:
        title += (f"; the run used {config.kfold}-fold cross-validation and kept the best fold's model, "
                  f"this script trains one fold's split (1/{config.kfold} of each class held out)")
    return title


def _engine_constant(run, used, key, today) -> tuple:
    """(value, comment tail) of an engine constant for ``run``'s script: what the run recorded
    it trained with (``training.engine_constants``), else today's, said so where it mattered."""
    recorded = (getattr(run, "runtime", None) or {}).get(key)
    if recorded is not None:
        as_tuple = tuple(tuple(int(v) for v in item) if isinstance(item, list) else float(item) for item in recorded)
        return as_tuple, ""
    if run is not None and used:
        return today, " (today's: this run did not record its own)"
    return today, ""


def script_settings(config, run=None) -> str:
    """The settings block of the exported script: one constant per setting of ``config``."""
    values = config.to_dict()
    if config.kfold:  # one of the folds: the same share held out, one model trained
        values["val_fraction"] = round(1.0 / config.kfold, 6)
    comments = dict(_SETTINGS)
    values["mixed_precision"], precision_note = _precision(config, run)
    comments["mixed_precision"] = precision_note or comments["mixed_precision"]
    lines = [(f"{field.upper()} = {_literal(values[field])}", comments[field]) for field, _ in _SETTINGS]
    blocks, blocks_note = _engine_constant(run, config.family == "bn_cnn", "bn_cnn_blocks", engine_config.BN_CNN_BLOCKS)
    ranges, ranges_note = _engine_constant(run, config.augment, "affine_ranges", engine_config.AFFINE_RANGES)
    width = max(len(code) for code, _ in lines) + 2
    return "\n".join([
        SETTINGS_BEGIN + " " + "-" * (95 - len(SETTINGS_BEGIN)),
        f"RUN = {_title(config, run)!r}",  # repr: any name stays one safe string literal
        *(code.ljust(width) + f"# {comment}" for code, comment in lines),
        f"BN_CNN_BLOCKS = {blocks!r}  # (filters, convolutions) per bn_cnn block{blocks_note}",
        f"SHIFT, ROTATION, ZOOM = {ranges!r}  # augmentation: +- fraction of the side, "
        f"+- turns, +- fraction of the size{ranges_note}",
        SETTINGS_END + " " + "-" * (95 - len(SETTINGS_END)),
    ])


def standalone_script(config, run=None) -> str:
    """A single readable Python file (Keras + NumPy only) that rebuilds and trains this
    configuration from the official KMNIST .npz files in a folder given on its command line
    and prints ``test accuracy: 0.xxxx``. ``config`` is a TrainConfig (or a run's stored
    config dict); ``run``, when given, names the run and its score, and says what precision
    it computed in. Every setting reaches the script (tests/test_export.py checks each
    field of TrainConfig), except k-fold cross-validation, which the script says it does not do.

    The script is ``standalone_train.py`` with its settings block replaced; its code mirrors
    ``models.build_model`` (layers, order, seeds), ``training.make_optimizer``,
    ``training.random_affine``, ``runner.fit_indices`` and the early stopping of ``train_model``."""
    if isinstance(config, dict):
        config = config_from_dict(config)
    if not isinstance(config, TrainConfig):
        raise ParameterError(f"config must be a TrainConfig or a stored config dict, got {type(config).__name__}")
    validate(config)
    template = TEMPLATE.read_text(encoding="utf-8")
    begin, end = template.index(SETTINGS_BEGIN), template.index(SETTINGS_END)
    end = template.index("\n", end)
    return template[:begin] + script_settings(config, run) + template[end:]


# -- everything of one run, to a folder (the CLI's `export`) -------------------------------------
EXPORTED = ("model.keras", "history.csv", "history.json", "metrics.json", "train_run.py", "tensorboard")


class ExportError(KmnistError, FileExistsError):
    """A name the export would write is taken (by a file, a folder or a link)."""


def export_run(store, run_id, folder, force=False) -> list:
    """Write a run's model, history (CSV, JSON), metrics, standalone script and TensorBoard
    events into ``folder`` (created if missing); returns the paths written. File names are
    fixed (``EXPORTED``): nothing in a path comes from the run's name.

    Nothing is ever written through a link: each file is written under a new temporary
    name in ``folder`` and renamed into place, and a rename replaces a link, never what
    it points to. A name already taken (a file, a folder or a link) is refused before
    anything is written, unless ``force``, which replaces it."""
    run = store.get(run_id)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = store.model_path(run.id)
    contents = {"model.keras": model if model.is_file() else None,
                "history.csv": history_csv(run.history), "history.json": history_json(run.history),
                "metrics.json": metrics_json(run), "train_run.py": standalone_script(run.config, run=run),
                "tensorboard": run.history or None}
    names = [name for name in EXPORTED if contents[name] is not None]
    taken = [folder / name for name in names if os.path.lexists(folder / name)]
    if taken and not force:
        what = "a link" if taken[0].is_symlink() else "a folder" if taken[0].is_dir() else "a file"
        more = f" (and {len(taken) - 1} more of the export's names)" if len(taken) > 1 else ""
        raise ExportError(f"{taken[0]} exists ({what}){more}: not replaced without --force")
    written = []
    for name in names:
        if name == "tensorboard":
            _replace(folder / name, lambda path: tensorboard_events(run.history, path), directory=True)
        elif name == "model.keras":
            _replace(folder / name, lambda path: shutil.copyfile(model, path))
        else:
            _replace(folder / name, lambda path, text=contents[name]: path.write_text(text, encoding="utf-8"))
        written.append(folder / name)
    return written


def _replace(target: Path, write, directory=False) -> None:
    """``write(path)`` into a fresh temporary name beside ``target`` (created by us, so no
    link can be there), then rename it to ``target``: a link at ``target`` is replaced, not
    followed, and a reader never sees a half-written file."""
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(6)}.partial")
    if directory:
        temporary.mkdir()  # fails if anything, a link included, has that name
    else:
        os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        write(temporary)
        if directory and target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)  # only --force gets here; rmtree never follows links inside it
        elif directory and os.path.lexists(target):
            target.unlink()  # a link or a file: rename cannot put a folder over either
        os.replace(temporary, target)
    except BaseException:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        else:
            temporary.unlink(missing_ok=True)
        raise
