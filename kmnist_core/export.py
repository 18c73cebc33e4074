"""Take your run with you: its curves as CSV/JSON/TensorBoard events, its scores as JSON,
the runs table as CSV, and the run itself as one plain Keras script that trains it again
without this app.

Everything returns text (or writes into a folder you name); nothing here touches the
run store, so the app can offer each as a download button.
"""

import csv
import io
import json
import math
import re
import time
from numbers import Real
from pathlib import Path
from string import Template

from . import config as engine_config
from .checks import ParameterError
from .config import TrainConfig, config_from_dict, validate
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
    seen = {}
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
_SETTINGS = (  # (constant, config field, comment): the top of the exported script
    ("FAMILY", "family", '"dense", "cnn" or "bn_cnn"'),
    ("HIDDEN_UNITS", "hidden_units", "sizes of the hidden Dense layers"),
    ("DROPOUT", "dropout", "fraction of hidden units dropped on each step"),
    ("INPUT_DROPOUT", "input_dropout", "fraction of pixels dropped on each step"),
    ("L1", "l1", "weight penalty on sum |w|"),
    ("L2", "l2", "weight penalty on sum w^2"),
    ("OPTIMIZER", "optimizer", '"adam", "adamw", "sgd", "rmsprop" or "adadelta"'),
    ("LEARNING_RATE", "learning_rate", "peak learning rate"),
    ("SCHEDULE", "schedule", '"constant", "cosine" or "onecycle"'),
    ("LABEL_SMOOTHING", "label_smoothing", "share of each target spread over the other classes"),
    ("EMA", "ema", "momentum of the weights' moving average the model ends with (0: off)"),
    ("AUGMENT", "augment", "randomly shift, rotate and zoom training images"),
    ("MIXED_PRECISION", "mixed_precision", "compute in bfloat16 (fast on CPUs with AVX-512 BF16)"),
    ("EPOCHS", "epochs", "passes over the training images"),
    ("BATCH_SIZE", "batch_size", "images per step"),
    ("FULL_TRAIN", "full_train", "True: train on every training image, no validation split"),
    ("VAL_FRACTION", "val_fraction", "of each class held out for validation"),
    ("SEED", "seed", "fixes weights, split, shuffling and augmentation"),
)

_SCRIPT = Template('''\
"""$title

This is the code of one KMNIST Explorer run as a single plain Keras script: the same
architecture, regularization, optimizer, learning-rate schedule and augmentation, with
the run's settings as constants below. Change one and train again to see what it does.

    python $filename /path/to/kmnist

The folder must hold the four official KMNIST files: kmnist-train-imgs.npz,
kmnist-train-labels.npz, kmnist-test-imgs.npz and kmnist-test-labels.npz. Needs only
NumPy and Keras 3. A rerun lands close to the run's accuracy, not on it: the validation
split holds out the same number of images of each class but not the same images, and
shuffling and augmentation draw other random numbers.
"""

import math
import sys
from pathlib import Path

import keras
import numpy as np
from keras import layers, regularizers

# -- The run's settings ----------------------------------------------------------------------
$settings$note

NUM_CLASSES = 10
BN_CNN_BLOCKS = $blocks  # (filters, convolutions) per bn_cnn block
SHIFT, ROTATION, ZOOM = $affine  # augmentation: +- fraction of the side, +- turns, +- fraction of the size


def load(folder):
    """(train images, train labels, test images, test labels) from the official .npz files."""
    arrays = []
    for name in ("train-imgs", "train-labels", "test-imgs", "test-labels"):
        path = Path(folder) / f"kmnist-{name}.npz"
        if not path.is_file():
            sys.exit(f"{path} not found: pass the folder holding the official KMNIST .npz files")
        with np.load(path) as archive:
            arrays.append(archive["arr_0"])
    return arrays


def stratified_split(labels, fraction, seed):
    """Indices (train, validation), holding out `fraction` of every class."""
    rng = np.random.default_rng(seed)
    held_out = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        held_out.extend(members[:round(fraction * len(members))])
    held_out = np.sort(held_out)
    return np.setdiff1d(np.arange(len(labels)), held_out), held_out


def build_model():
    """Raw 28x28 pixels in [0, 255] in, 10 class probabilities out."""
    penalty = regularizers.L1L2(L1, L2) if (L1 or L2) else None
    inputs = keras.Input(shape=(28, 28), name="image")
    x = layers.Rescaling(1.0 / 255)(inputs)
    if INPUT_DROPOUT:
        x = layers.Dropout(INPUT_DROPOUT, seed=SEED)(x)
    if FAMILY == "dense":
        x = layers.Flatten()(x)
    elif FAMILY == "cnn":  # the KMNIST repository's simple Keras CNN
        x = layers.Reshape((28, 28, 1))(x)
        x = layers.Conv2D(32, 3, activation="relu", kernel_regularizer=penalty)(x)
        x = layers.Conv2D(64, 3, activation="relu", kernel_regularizer=penalty)(x)
        x = layers.MaxPooling2D()(x)
        x = layers.Flatten()(x)
    else:  # bn_cnn: blocks of conv-BatchNorm-ReLU layers, max-pooled between blocks
        x = layers.Reshape((28, 28, 1))(x)
        for block, (filters, convolutions) in enumerate(BN_CNN_BLOCKS, start=1):
            for _ in range(convolutions):
                x = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_regularizer=penalty)(x)
                x = layers.BatchNormalization(momentum=0.9)(x)
                x = layers.Activation("relu")(x)
            last = block == len(BN_CNN_BLOCKS)
            x = layers.GlobalAveragePooling2D()(x) if last else layers.MaxPooling2D()(x)
    for units in HIDDEN_UNITS:
        x = layers.Dense(units, activation="relu", kernel_regularizer=penalty)(x)
        if DROPOUT:
            x = layers.Dropout(DROPOUT, seed=SEED)(x)
    if DROPOUT and not HIDDEN_UNITS:
        x = layers.Dropout(DROPOUT, seed=SEED)(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs)


def make_optimizer(steps_per_epoch):
    total = EPOCHS * steps_per_epoch
    rate = LEARNING_RATE
    if SCHEDULE == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(LEARNING_RATE, total)
    elif SCHEDULE == "onecycle":  # warm up for 20% of the steps, then cosine down
        warmup = max(1, int(0.2 * total))
        rate = keras.optimizers.schedules.CosineDecay(
            LEARNING_RATE / 25, max(1, total - warmup), alpha=1e-3,
            warmup_target=LEARNING_RATE, warmup_steps=warmup,
        )
    # With EMA, Keras puts the averaged weights into the model when fit ends.
    averaging = dict(use_ema=True, ema_momentum=EMA) if EMA else {}
    if OPTIMIZER == "adamw":
        return keras.optimizers.AdamW(rate, weight_decay=1e-4, **averaging)
    if OPTIMIZER == "sgd":
        return keras.optimizers.SGD(rate, momentum=0.9, nesterov=True, **averaging)
    return {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop,
            "adadelta": keras.optimizers.Adadelta}[OPTIMIZER](rate, **averaging)


def random_affine(images, rng):
    """One random shift + rotation + zoom per image, in a single resampling. No flips:
    a mirrored kana is not the same kana."""
    n = len(images)
    angle = rng.uniform(-ROTATION, ROTATION, n) * 2 * np.pi
    scale = 1.0 + rng.uniform(-ZOOM, ZOOM, n)
    shift_x = rng.uniform(-SHIFT, SHIFT, n) * 28
    shift_y = rng.uniform(-SHIFT, SHIFT, n) * 28
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    centre, zeros = 13.5, np.zeros(n)
    transform = np.stack([  # maps each output pixel to the input pixel it samples
        cos, -sin, centre - cos * centre + sin * centre - shift_x,
        sin, cos, centre - sin * centre - cos * centre - shift_y,
        zeros, zeros,
    ], axis=1).astype("float32")
    moved = keras.ops.image.affine_transform(images[..., None], transform, interpolation="bilinear",
                                             fill_mode="constant", fill_value=0)
    return keras.ops.convert_to_numpy(moved)[..., 0]


class Batches(keras.utils.PyDataset):
    """The training images in a new random order every epoch, BATCH_SIZE at a time."""

    def __init__(self, images, targets, seed):
        super().__init__()
        self.images, self.targets = images.astype("float32"), targets
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(images))

    def __len__(self):
        return math.ceil(len(self.images) / BATCH_SIZE)

    def __getitem__(self, index):
        chosen = self.order[index * BATCH_SIZE:(index + 1) * BATCH_SIZE]
        images = self.images[chosen]
        if AUGMENT:
            images = random_affine(images, self.rng)
        return images, self.targets[chosen]

    def on_epoch_end(self):
        self.order = self.rng.permutation(len(self.images))


def main():
    if len(sys.argv) != 2:
        sys.exit(f"usage: python {sys.argv[0]} /path/to/kmnist")
    x_train, y_train, x_test, y_test = load(sys.argv[1])
    one_hot = np.eye(NUM_CLASSES, dtype="float32")
    if FULL_TRAIN:
        x_fit, y_fit, validation = x_train, y_train, None
    else:
        fit, held_out = stratified_split(y_train, VAL_FRACTION, SEED)
        x_fit, y_fit = x_train[fit], y_train[fit]
        validation = (x_train[held_out].astype("float32"), one_hot[y_train[held_out]])

    keras.utils.set_random_seed(SEED)
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if MIXED_PRECISION else "float32")
    model = build_model()  # layers take the precision policy when they are built
    keras.mixed_precision.set_global_policy("float32")
    steps = math.ceil(len(x_fit) / BATCH_SIZE)
    model.compile(optimizer=make_optimizer(steps),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=LABEL_SMOOTHING),
                  metrics=["accuracy"])
    print(f"{FAMILY} model, {model.count_params():,} parameters; training on {len(x_fit):,} images")
    model.fit(Batches(x_fit, one_hot[y_fit], SEED), validation_data=validation,
              validation_batch_size=512, epochs=EPOCHS, verbose=2)
    probabilities = model.predict(x_test.astype("float32"), batch_size=512, verbose=0)
    accuracy = float(np.mean(probabilities.argmax(axis=1) == y_test))
    print(f"test accuracy: {accuracy:.4f} ({len(y_test):,} test images)")


if __name__ == "__main__":
    main()
''')


def _literal(value) -> str:
    if isinstance(value, str):
        return json.dumps(value)  # "dense": validated choices, never user text
    if isinstance(value, tuple):
        return repr(tuple(int(v) for v in value))
    return repr(value)


def standalone_script(config, run=None, filename="train_run.py") -> str:
    """A single readable Python file (Keras + NumPy only) that rebuilds and trains this
    configuration from the official KMNIST .npz files in a folder given on its command line
    and prints ``test accuracy: 0.xxxx``. ``config`` is a TrainConfig (or a run's stored
    config dict); ``run``, when given, names the run and its score in the docstring.

    The code mirrors ``models.build_model`` (layers, order, seeds), ``training.make_optimizer``,
    ``training.random_affine`` and the compile/seed/precision steps of ``train_model``;
    tests/test_export.py checks that the script's model and schedule equal the engine's."""
    if isinstance(config, dict):
        config = config_from_dict(config)
    if not isinstance(config, TrainConfig):
        raise ParameterError(f"config must be a TrainConfig or a stored config dict, got {type(config).__name__}")
    validate(config)
    if not isinstance(filename, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}\.py", filename):
        raise ParameterError(f"filename must be a plain name ending in .py, got {filename!r}")
    values = config.to_dict()
    if config.kfold:  # one of the folds: the same share held out, one model trained
        values["val_fraction"] = round(1.0 / config.kfold, 6)
    width = max(len(f"{name} = {_literal(values[field])}") for name, field, _ in _SETTINGS) + 2
    settings = "\n".join(f"{name} = {_literal(values[field])}".ljust(width) + f"# {comment}"
                         for name, field, comment in _SETTINGS)
    note = ""
    if config.kfold:
        note = (f"\n# The run used {config.kfold}-fold cross-validation and kept the best fold's model;"
                f"\n# this script trains one fold's split (1/{config.kfold} of each class held out).")
    title = f'The "{config.variant}" configuration of KMNIST Explorer, as one Keras script.'
    if run is not None:
        _check_run(run)
        accuracy = ((run.metrics or {}).get("test") or {}).get("accuracy")
        score = f", test accuracy {accuracy:.2%}" if isinstance(accuracy, Real) else ""
        name = " ".join(str(run.name).split()).replace('"""', "'''").replace("\\", "/")
        title = f"KMNIST Explorer run #{int(run.id)} ({name}, variant {config.variant}{score}), as one Keras script."
    return _SCRIPT.substitute(title=title, filename=filename, settings=settings, note=note,
                              blocks=repr(engine_config.BN_CNN_BLOCKS),
                              affine=repr(engine_config.AFFINE_RANGES))


# -- everything of one run, to a folder (the CLI's `export`) -------------------------------------
EXPORT_FILES = ("model.keras", "history.csv", "history.json", "metrics.json", "train_run.py", "tensorboard/")


def export_run(store, run_id, folder) -> list:
    """Write a run's model, history (CSV, JSON), metrics, standalone script and TensorBoard
    events into ``folder`` (created; existing files of these names are replaced). File names
    are fixed: nothing in a path comes from the run's name. Returns the paths written."""
    import shutil

    run = store.get(run_id)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    model = store.model_path(run.id)
    if model.is_file():
        written.append(Path(shutil.copyfile(model, folder / "model.keras")))
    for name, text in (("history.csv", history_csv(run.history)), ("history.json", history_json(run.history)),
                       ("metrics.json", metrics_json(run)), ("train_run.py", standalone_script(run.config, run=run))):
        (folder / name).write_text(text, encoding="utf-8")
        written.append(folder / name)
    if run.history:
        written.append(tensorboard_events(run.history, folder / "tensorboard"))
    return written
