"""Exports: CSV/JSON round trips, TensorBoard event files read back by TensorBoard's own
reader, and the standalone script: it compiles for every preset, builds the engine's
model and schedule exactly, augments as the engine does, and retrains a real run to
within 2 points of the run's own test accuracy."""

import csv
import dataclasses
import importlib.util
import io
import json
import math
import os
import py_compile
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from kmnist_core import training
from kmnist_core.checks import ParameterError
from kmnist_core.config import VARIANTS, TrainConfig, make_config
from kmnist_core.data import load_kmnist, stratified_split
from kmnist_core.export import (
    TEMPLATE,
    ExportError,
    export_run,
    history_csv,
    history_json,
    metrics_json,
    runs_csv,
    standalone_script,
    tensorboard_events,
)
from kmnist_core.inference import make_predictor
from kmnist_core.models import build_model
from kmnist_core.records import EpochRecord
from kmnist_core.runner import fit_indices
from kmnist_core.store import RunStore
from kmnist_core.training import train_model

HISTORY = [
    {"epoch": 1, "loss": 1.25, "accuracy": 0.5, "val_loss": 1.5, "val_accuracy": 0.45, "elapsed": 2.0},
    {"epoch": 2, "loss": 0.75, "accuracy": 0.75, "val_loss": 1.0, "val_accuracy": 0.625, "elapsed": 4.0},
    {"epoch": 3, "loss": 0.5, "accuracy": 0.875, "val_loss": None, "val_accuracy": None, "elapsed": 6.0,
     "learning_rate": 0.001},  # a key the lead may add later
]


def test_history_csv_has_every_key_in_a_stable_order():
    text = history_csv(HISTORY)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert text.splitlines()[0] == "epoch,loss,accuracy,val_loss,val_accuracy,elapsed,learning_rate"
    assert len(rows) == 3 and rows[2]["val_loss"] == "" and rows[0]["learning_rate"] == ""
    assert [float(r["loss"]) for r in rows] == [1.25, 0.75, 0.5]
    reordered = [{"elapsed": 1.0, "loss": 2.0, "epoch": 1}]
    assert history_csv(reordered).splitlines()[0] == "epoch,elapsed,loss"  # epoch first, then as found
    assert history_csv([]) == ""


def test_history_json_round_trips_and_writes_no_nan():
    assert json.loads(history_json(HISTORY)) == HISTORY
    text = history_json([{"epoch": 1, "loss": float("nan"), "accuracy": np.float32(0.5)}])
    assert json.loads(text) == [{"epoch": 1, "loss": None, "accuracy": 0.5}]


def _stored_runs(home):
    store = RunStore(home)
    first = store.create_run(make_config("combined", epochs=2), name="short combined", status="running")
    store.append_epoch(first, EpochRecord(epoch=1, train_loss=1.25, train_accuracy=0.5, val_loss=1.5, val_accuracy=0.45))
    metrics = {"test": {"accuracy": 0.875, "macro_f1": 0.87, "per_class": [{"class": 0}], "confusion": [[1]]},
               "val": {"accuracy": 0.86}, "fit": {"verdict": "good fit", "loss_gap": 0.1},
               "train_seconds": 12.5, "epochs_done": 2}
    store.finish(first, "completed", metrics=metrics)
    second = store.create_run(make_config("best", epochs=1), name='best, "quoted"')
    store.request_stop(second)  # a queued run is cancelled
    return store, [store.get(second), store.get(first)]


def test_metrics_json_names_the_run_and_keeps_its_scores(home):
    _, (_, run) = _stored_runs(home)
    document = json.loads(metrics_json(run))
    assert document["run"]["id"] == run.id and document["run"]["name"] == "short combined"
    assert document["run"]["status"] == "completed" and document["run"]["created"].endswith("Z")
    assert document["metrics"]["test"]["accuracy"] == 0.875 and document["config"]["epochs"] == 2


def test_runs_csv_is_the_union_of_identity_config_and_scores(home):
    _, runs = _stored_runs(home)
    rows = list(csv.DictReader(io.StringIO(runs_csv(runs))))
    header = runs_csv(runs).splitlines()[0].split(",")
    assert header[:4] == ["id", "name", "variant", "status"]
    assert "config_family" in header and "test_accuracy" in header and "fit_verdict" in header
    assert header.index("config_seed") < header.index("test_accuracy")
    assert not any(c.endswith(("per_class", "confusion")) for c in header)  # lists are not cells
    best, combined = rows
    assert best["name"] == 'best, "quoted"' and best["test_accuracy"] == "" and best["config_family"] == "bn_cnn"
    assert combined["test_accuracy"] == "0.875" and json.loads(combined["config_hidden_units"]) == [512, 512]
    assert runs_csv([]) == ""


def _read_events(folder):
    """Scalars as {tag: [(step, value)]} straight from the TFRecord files (no tensorboard)."""
    found = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(str(path)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                assert value.metadata.plugin_data.plugin_name == "scalars"
                found.setdefault(value.tag, []).append((event.step, float(tf.make_ndarray(value.tensor))))
    return found


def test_tensorboard_events_hold_the_history(tmp_path):
    folder = tensorboard_events(HISTORY, tmp_path / "tb")
    train, validation = _read_events(folder / "train"), _read_events(folder / "validation")
    assert set(train) == {"epoch_loss", "epoch_accuracy", "epoch_elapsed", "epoch_learning_rate"}
    assert train["epoch_loss"] == [(1, 1.25), (2, 0.75), (3, 0.5)]
    assert validation["epoch_loss"] == [(1, 1.5), (2, 1.0)]  # epoch 3 had no validation
    assert validation["epoch_accuracy"] == [(1, float(np.float32(0.45))), (2, 0.625)]  # float32, as tf.summary.scalar


def test_tensorboard_reads_the_events_with_its_own_reader(tmp_path):
    """tensorboard is a pinned dependency: without it this fails rather than skips."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder = tensorboard_events(HISTORY, tmp_path / "tb")
    for split, prefix in (("train", ""), ("validation", "val_")):
        accumulator = EventAccumulator(str(folder / split), size_guidance={"tensors": 0})
        accumulator.Reload()
        for name in ("loss", "accuracy"):
            events = accumulator.Tensors(f"epoch_{name}")
            expected = [(h["epoch"], float(np.float32(h[prefix + name]))) for h in HISTORY
                        if h[prefix + name] is not None]  # TensorBoard scalars are float32
            assert [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in events] == expected
            assert accumulator.SummaryMetadata(f"epoch_{name}").plugin_data.plugin_name == "scalars"
    # The records are the ones tf.summary.scalar (which needs tensorboard) would write.
    writer = tf.summary.create_file_writer(str(tmp_path / "reference"))
    with writer.as_default():
        tf.summary.scalar("epoch_loss", 1.25, step=1)
    writer.close()
    ours, reference = (EventAccumulator(str(path)) for path in (folder / "train", tmp_path / "reference"))
    ours.Reload()
    reference.Reload()
    assert ours.SummaryMetadata("epoch_loss") == reference.SummaryMetadata("epoch_loss")
    assert ours.Tensors("epoch_loss")[0].tensor_proto == reference.Tensors("epoch_loss")[0].tensor_proto


def _load_script(source, tmp_path, name):
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"exported_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines constants and functions; main() only under __main__
    return path, module


def _layers(model):
    return [(type(layer).__name__, tuple(layer.output.shape), layer.count_params(),
             getattr(layer, "rate", None), getattr(layer, "seed", None)) for layer in model.layers]


def _assert_same_model(config, script):
    keras.utils.set_random_seed(config.seed)
    engine_model = build_model(config)
    keras.utils.set_random_seed(config.seed)
    script_model = script.build_model()
    assert _layers(script_model) == _layers(engine_model)
    for ours, theirs in zip(script_model.layers, engine_model.layers):
        regularizer = getattr(theirs, "kernel_regularizer", None)
        if regularizer is not None:
            assert ours.kernel_regularizer.get_config() == regularizer.get_config()
    # Same seed, same architecture: the same initial weights.
    assert all(np.array_equal(a, b) for a, b in zip(script_model.get_weights(), engine_model.get_weights()))


def _assert_same_optimizer(config, script, steps=85):
    engine_optimizer, script_optimizer = training.make_optimizer(config, steps), script.make_optimizer(steps)
    assert type(script_optimizer) is type(engine_optimizer)
    for key in ("weight_decay", "use_ema", "ema_momentum"):
        assert script_optimizer.get_config().get(key) == engine_optimizer.get_config().get(key)
    for step in (0, 10, steps * config.epochs // 5, steps * config.epochs // 2, steps * config.epochs - 1):
        engine_optimizer.iterations.assign(step)
        script_optimizer.iterations.assign(step)
        assert float(script_optimizer.learning_rate) == pytest.approx(float(engine_optimizer.learning_rate), rel=1e-6)


@pytest.mark.parametrize("variant", [*VARIANTS, "kfold", "ema"])
def test_every_preset_exports_a_script_that_builds_the_engines_model(variant, tmp_path):
    config = {"kfold": make_config("combined", kfold=5, epochs=3),
              "ema": make_config("combined", optimizer="sgd", ema=0.995)}.get(variant) or make_config(variant)
    source = standalone_script(config)
    assert "kmnist_core" not in source and "tensorflow" not in source and "sklearn" not in source
    path, script = _load_script(source, tmp_path, variant)
    py_compile.compile(str(path), doraise=True)
    _assert_same_model(config, script)
    _assert_same_optimizer(config, script)


def test_the_template_is_a_module_whose_settings_are_the_combined_preset():
    """The script's template is real code (ruff lints it, this imports it), and the
    export replaces its settings block and nothing else: exporting the preset the
    template holds gives the template back."""
    import kmnist_core.standalone_train as template

    assert standalone_script(make_config("combined")) == TEMPLATE.read_text(encoding="utf-8")
    assert template.VARIANT == "combined" and template.HIDDEN_UNITS == (512, 512) and template.TRAIN_SIZE == 0
    _assert_same_model(make_config("combined"), template)


# -- every setting a run used reaches the script ---------------------------------------------------
LABELS = np.random.default_rng(0).permutation(np.repeat(np.arange(10), 20))  # 20 per class, shuffled


def _same_split(config, script):
    """The script holds out and trains on as many images of each class as the engine."""
    engine_fit, engine_val = fit_indices(LABELS, config)
    script_fit, script_val = script.split(LABELS)
    assert np.array_equal(np.bincount(LABELS[script_fit], minlength=10), np.bincount(LABELS[engine_fit], minlength=10))
    if engine_val is None:
        assert script_val is None
    else:
        assert np.array_equal(np.bincount(LABELS[script_val], minlength=10), np.bincount(LABELS[engine_val], minlength=10))
    return script_fit, script_val


def _batches(config, script):
    images, targets = np.random.default_rng(1).integers(0, 255, (130, 28, 28)).astype("float32"), np.zeros((130, 10))
    batches = script.Batches(images, targets, script.SEED)
    first, _ = batches[0]
    assert len(batches) == math.ceil(130 / config.batch_size) and len(first) == config.batch_size
    moved = not any(np.array_equal(image, original) for image in first for original in images)
    assert moved == config.augment


def _early_stopping(config, script):
    """Fed the same validation losses, the script stops at the epoch the engine stops at
    and ends with the best epoch's weights."""
    losses = [1.0, 0.8, 0.9, 0.95, 0.97, 0.99, 1.0]

    class Model:  # predicts probabilities whose log loss is the epoch's loss
        stop_training, weights, epoch = False, None, 0

        def predict(self, images, batch_size, verbose):
            right = math.exp(-losses[self.epoch])
            probabilities = np.full((len(images), 10), (1 - right) / 9)
            probabilities[np.arange(len(images)), np.arange(len(images))] = right  # the labels are 0..3
            return probabilities

        def get_weights(self):
            return [self.epoch]

        def set_weights(self, weights):
            self.weights = weights

    model, callback = Model(), script.EarlyStopping(np.zeros((4, 28, 28)), np.arange(4))
    callback.set_model(model)
    stopped_at = None
    for epoch in range(len(losses)):
        model.epoch = epoch
        callback.on_epoch_end(epoch)
        if model.stop_training:
            stopped_at = epoch + 1
            break
    callback.on_train_end()
    assert model.weights == [1]  # epoch 2, the lowest loss
    # The engine stops once `patience` epochs passed without a better loss.
    assert stopped_at == 2 + config.patience


def _named(config, script):
    assert f"variant {config.variant}" in script.RUN or f'"{config.variant}"' in script.RUN
    _assert_same_model(config, script)


def _label_smoothing(config, script):
    assert script.make_loss().get_config()["label_smoothing"] == config.label_smoothing


def _train_size(config, script):
    fit, _ = _same_split(config, script)
    assert len(fit) == config.train_size


def _precision(config, script):
    assert script.MIXED_PRECISION is True  # main() builds the model under mixed_bfloat16 when set


def _one_fold(config, script):
    """The script trains one model: one fold's split, and says so instead of claiming the run."""
    assert 1 / config.kfold == script.VAL_FRACTION
    assert f"{config.kfold}-fold cross-validation" in script.RUN and "trains one fold's split" in script.RUN


def _seeded(config, script):
    _same_split(config, script)
    _assert_same_model(config, script)


FIELD_CHECKS = {  # field: (settings that differ from overfit's preset, what the script must then do)
    "variant": (dict(variant="l1l2"), _named),
    "family": (dict(family="cnn", hidden_units=(64,)), _assert_same_model),
    "hidden_units": (dict(hidden_units=(64, 32)), _assert_same_model),
    "dropout": (dict(dropout=0.3), _assert_same_model),
    "input_dropout": (dict(input_dropout=0.2), _assert_same_model),
    "l1": (dict(l1=1e-4), _assert_same_model),
    "l2": (dict(l2=1e-3), _assert_same_model),
    "epochs": (dict(epochs=7, schedule="cosine"), _assert_same_optimizer),
    "batch_size": (dict(batch_size=50), _batches),
    "learning_rate": (dict(learning_rate=3e-4), _assert_same_optimizer),
    "optimizer": (dict(optimizer="rmsprop"), _assert_same_optimizer),
    "schedule": (dict(schedule="onecycle"), _assert_same_optimizer),
    "label_smoothing": (dict(label_smoothing=0.1), _label_smoothing),
    "ema": (dict(ema=0.99), _assert_same_optimizer),
    "augment": (dict(augment=True, batch_size=40), _batches),
    "patience": (dict(patience=3), _early_stopping),
    "train_size": (dict(train_size=150), _train_size),
    "mixed_precision": (dict(mixed_precision=True), _precision),
    "full_train": (dict(full_train=True), _same_split),
    "val_fraction": (dict(val_fraction=0.25), _same_split),
    "seed": (dict(seed=7), _seeded),
    "kfold": (dict(kfold=4), _one_fold),
}


@pytest.mark.parametrize("field", [field.name for field in dataclasses.fields(TrainConfig)])
def test_every_setting_of_a_run_reaches_the_script(field, tmp_path):
    """A field of TrainConfig the exported script does not carry out fails here: the script
    promises the run's settings (a run on 1,000 images was retrained on 5,400)."""
    assert field in FIELD_CHECKS, (f"TrainConfig.{field} has no export check: make kmnist_core/standalone_train.py "
                                   f"carry it out (or say it does not), then add its check to FIELD_CHECKS")
    overrides, check = FIELD_CHECKS[field]
    config = make_config(**{"variant": "overfit", "epochs": 3, **overrides})
    assert getattr(config, field) != getattr(make_config("overfit", epochs=3), field)  # the check sees a change
    _, script = _load_script(standalone_script(config), tmp_path, field)
    if field != "kfold":
        assert getattr(script, field.upper()) == getattr(config, field)
    check(config, script)


def test_an_auto_precision_exports_what_the_run_computed_in(home):
    _, (_, run) = _stored_runs(home)
    config = make_config("best")  # mixed_precision "auto"
    for used, expected in (("bfloat16", "MIXED_PRECISION = True"), ("float32", "MIXED_PRECISION = False")):
        ran = type(run)(**{**run.__dict__, "config": config.to_dict(), "runtime": {"precision": used}})
        settings = standalone_script(config, run=ran)
        assert expected in settings and f'"auto" in the app: this run computed in {used}' in settings


def test_a_run_exports_the_blocks_and_warp_it_trained_with_not_todays(home):
    """`best` moved to 16 filters at 28x28 on 2026-12-07: a run trained on the 32-filter
    network must not export a script that trains the new one."""
    _, (_, run) = _stored_runs(home)
    config = make_config("best")
    recorded = {"bn_cnn_blocks": [[32, 2], [64, 2], [128, 2]], "affine_ranges": [0.1, 0.03, 0.1]}  # as JSON keeps them
    ran = type(run)(**{**run.__dict__, "config": config.to_dict(), "runtime": recorded})
    _, script = _load_script(standalone_script(config, run=ran), home, "recorded")
    assert script.BN_CNN_BLOCKS == ((32, 2), (64, 2), (128, 2)) and (script.SHIFT, script.ROTATION, script.ZOOM) == (0.1, 0.03, 0.1)
    unrecorded = type(run)(**{**run.__dict__, "config": config.to_dict(), "runtime": {}})
    assert "(today's: this run did not record its own)" in standalone_script(config, run=unrecorded)


def test_the_script_trains_on_the_runs_sample_with_early_stopping(tmp_path, synthetic_dir):
    """The exported script, run as a learner runs it, on the tiny synthetic set: it trains
    on the run's training-set size and keeps the best epoch's weights (when it stops is
    checked above, with losses chosen for it)."""
    config = make_config("overfit", hidden_units=(16,), epochs=4, learning_rate=0.01, train_size=120, patience=2)
    script = tmp_path / "train_run.py"
    script.write_text(standalone_script(config))
    done = subprocess.run([sys.executable, str(script), str(synthetic_dir)], capture_output=True, text=True,
                          timeout=600, cwd=tmp_path, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "training on 120 images" in done.stdout
    assert re.search(r"^early stopping: kept epoch [1-4]'s weights", done.stdout, re.MULTILINE), done.stdout[-2000:]


def test_the_script_augments_as_the_engine_does(monkeypatch, tmp_path, mini_dir):
    """The same random draws give the same moved images (to float rounding)."""
    _, script = _load_script(standalone_script(make_config("best")), tmp_path, "augment")
    images = load_kmnist(mini_dir).x_test[:4].astype(np.float32)
    fractions = iter([0.9, 0.2, 0.7, 0.35])  # angle, zoom, shift x, shift y: drawn in that order

    class FixedDraws:
        def __init__(self):
            self.values = iter([0.9, 0.2, 0.7, 0.35])

        def uniform(self, low, high, n):
            return np.full(n, low + next(self.values) * (high - low))

    def fixed_tf_uniform(shape, low, high):
        return tf.fill(shape, low + next(fractions) * (high - low))

    monkeypatch.setattr(training.tf.random, "uniform", fixed_tf_uniform)
    engine, _ = training.random_affine(tf.constant(images), None)
    moved = script.random_affine(images, FixedDraws())
    assert not np.allclose(moved, images)  # it did move them
    assert np.allclose(moved, engine.numpy(), atol=1e-3)


@pytest.mark.slow
def test_an_exported_run_trains_to_the_runs_accuracy(tmp_path, mini_dir):
    """The `combined` preset, 8 epochs, trained by the engine on its stratified split and
    by the exported script in a fresh process: test accuracies within 2 points."""
    data = load_kmnist(mini_dir)
    config = make_config("combined", epochs=8)
    fit, held_out = stratified_split(data.y_train, config.val_fraction, config.seed)
    result = train_model(config, data.x_train[fit], data.y_train[fit], data.x_train[held_out], data.y_train[held_out])
    run_accuracy = float(np.mean(make_predictor(result.model)(data.x_test).argmax(axis=1) == data.y_test))

    script = tmp_path / "train_run.py"
    script.write_text(standalone_script(config))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, str(script), str(mini_dir)], capture_output=True, text=True,
                          timeout=600, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r"^test accuracy: ([0-9.]+) \(2,000 test images\)$", done.stdout, re.MULTILINE)
    assert found, done.stdout[-2000:]
    script_accuracy = float(found.group(1))
    print(f"run {run_accuracy:.4f}, exported script {script_accuracy:.4f}")
    assert run_accuracy > 0.8
    assert abs(script_accuracy - run_accuracy) <= 0.02
    assert f"{result.model.count_params():,} parameters" in done.stdout


def test_the_script_names_its_run_and_refuses_bad_input(home, tmp_path):
    _, (_, run) = _stored_runs(home)
    _, script = _load_script(standalone_script(run.config, run=run), tmp_path, "named")
    title = script.RUN
    assert title == f"KMNIST Explorer run #{run.id} (short combined, variant combined, test accuracy 87.50%)"
    for odd in ('a """ b \\N{x}', "two\nlines ' and \" quotes", "\u202eevil"):
        renamed = type(run)(**{**run.__dict__, "name": odd})
        source = standalone_script(run.config, run=renamed)
        _, script = _load_script(source, tmp_path, "renamed")
        assert " ".join(odd.split()) in script.RUN and "\u202e" not in source  # one line of plain text
    for call, message in [(lambda: standalone_script("combined"), "config must be a TrainConfig"),
                          (lambda: history_csv({"epoch": 1}), "history must be a list of epoch records"),
                          (lambda: runs_csv([{"id": 1}]), "run must be a kmnist_core.store.Run"),
                          (lambda: metrics_json(None), "run must be a kmnist_core.store.Run")]:
        with pytest.raises(ParameterError, match=message) as error:
            call()
        assert "\n" not in str(error.value)
    assert math.isfinite(json.loads(metrics_json(run))["run"]["duration_seconds"])


# -- export_run into a folder: never through a link, never over a file without force ------------------
def _planted(tmp_path):
    """An export folder where links point outside it and a file of an export's name waits."""
    outside, folder = tmp_path / "outside", tmp_path / "export"
    (outside / "events").mkdir(parents=True)
    folder.mkdir()
    for name in ("script.py", "metrics.json"):
        (outside / name).write_text(f"mine: {name}\n")
    (folder / "train_run.py").symlink_to(outside / "script.py")
    (folder / "metrics.json").symlink_to(outside / "metrics.json")
    (folder / "tensorboard").symlink_to(outside / "events", target_is_directory=True)
    (folder / "history.csv").write_text("my own table\n")
    return outside, folder


def _snapshot(folder):
    return {str(path.relative_to(folder)): path.read_bytes() if path.is_file() else None
            for path in sorted(folder.rglob("*"))}


def test_export_refuses_a_taken_name_and_writes_nothing(home, tmp_path):
    store, (_, run) = _stored_runs(home)
    _, folder = _planted(tmp_path)
    before = _snapshot(tmp_path)
    with pytest.raises(ExportError, match="not replaced without --force") as error:
        export_run(store, run.id, folder)
    assert str(folder / "history.csv") in str(error.value) and "\n" not in str(error.value)
    assert _snapshot(tmp_path) == before  # nothing written anywhere, not even in the folder


def test_export_with_force_replaces_the_links_never_what_they_point_to(home, tmp_path):
    store, (_, run) = _stored_runs(home)
    outside, folder = _planted(tmp_path)
    before = _snapshot(outside)
    written = export_run(store, run.id, folder, force=True)
    assert _snapshot(outside) == before  # no file outside the folder changed, no event written there
    assert {path.name for path in written} == {"history.csv", "history.json", "metrics.json", "train_run.py",
                                              "tensorboard"}  # this run has no model file
    for path in written:
        assert not path.is_symlink()
    assert (folder / "history.csv").read_text().startswith("epoch,")
    assert json.loads((folder / "metrics.json").read_text())["run"]["id"] == run.id
    assert _read_events(folder / "tensorboard" / "train")["epoch_loss"] == [(1, 1.25)]
    assert sorted(path.name for path in folder.iterdir()) == sorted(path.name for path in written)  # no leftovers


def test_cli_export_names_the_file_it_will_not_replace(home, tmp_path, capsys):
    from kmnist_core.cli import main

    _, (_, run) = _stored_runs(home)
    folder = tmp_path / "export"
    assert main(["export", str(run.id), "--to", str(folder)]) == 0
    first = (folder / "train_run.py").read_text()
    capsys.readouterr()
    assert main(["export", str(run.id), "--to", str(folder)]) == 1
    error = capsys.readouterr().err
    assert len(error.splitlines()) == 1 and "--force" in error and str(folder) in error
    assert main(["export", str(run.id), "--to", str(folder), "--force"]) == 0
    assert (folder / "train_run.py").read_text() == first
