"""Exports: CSV/JSON round trips, TensorBoard event files read back by TensorBoard's own
reader, and the standalone script: it compiles for every preset, builds the engine's
model and schedule exactly, augments as the engine does, and retrains a real run to
within 2 points of the run's own test accuracy."""

import csv
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
from kmnist_core.config import VARIANTS, make_config
from kmnist_core.data import load_kmnist, stratified_split
from kmnist_core.export import history_csv, history_json, metrics_json, runs_csv, standalone_script, tensorboard_events
from kmnist_core.inference import make_predictor
from kmnist_core.models import build_model
from kmnist_core.records import EpochRecord
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
    store, (_, run) = _stored_runs(home)
    document = json.loads(metrics_json(run))
    assert document["run"]["id"] == run.id and document["run"]["name"] == "short combined"
    assert document["run"]["status"] == "completed" and document["run"]["created"].endswith("Z")
    assert document["metrics"]["test"]["accuracy"] == 0.875 and document["config"]["epochs"] == 2


def test_runs_csv_is_the_union_of_identity_config_and_scores(home):
    store, runs = _stored_runs(home)
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


@pytest.mark.parametrize("variant", [*VARIANTS, "kfold", "ema"])
def test_every_preset_exports_a_script_that_builds_the_engines_model(variant, tmp_path):
    config = {"kfold": make_config("combined", kfold=5, epochs=3),
              "ema": make_config("combined", optimizer="sgd", ema=0.995)}.get(variant) or make_config(variant)
    source = standalone_script(config)
    assert "kmnist_core" not in source and "tensorflow" not in source and "sklearn" not in source
    path, script = _load_script(source, tmp_path, variant)
    py_compile.compile(str(path), doraise=True)
    assert config.family == script.FAMILY and config.hidden_units == script.HIDDEN_UNITS
    assert config.epochs == script.EPOCHS and config.augment == script.AUGMENT and config.seed == script.SEED
    assert (0.2 if variant == "kfold" else config.val_fraction) == script.VAL_FRACTION

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

    steps = 85
    engine_optimizer, script_optimizer = training.make_optimizer(config, steps), script.make_optimizer(steps)
    assert type(script_optimizer) is type(engine_optimizer)
    for key in ("weight_decay", "use_ema", "ema_momentum"):
        assert script_optimizer.get_config().get(key) == engine_optimizer.get_config().get(key)
    for step in (0, 10, steps * config.epochs // 5, steps * config.epochs // 2, steps * config.epochs - 1):
        engine_optimizer.iterations.assign(step)
        script_optimizer.iterations.assign(step)
        assert float(script_optimizer.learning_rate) == pytest.approx(float(engine_optimizer.learning_rate), rel=1e-6)


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


def test_the_script_names_its_run_and_refuses_bad_input(home):
    store, (_, run) = _stored_runs(home)
    source = standalone_script(run.config, run=run)
    assert source.startswith(f'"""KMNIST Explorer run #{run.id} (short combined, variant combined, test accuracy 87.50%)')
    renamed = type(run)(**{**run.__dict__, "name": 'a """ b \\N{x}'})
    compile(standalone_script(run.config, run=renamed), "train_run.py", "exec")  # odd names stay text
    for call, message in [(lambda: standalone_script("combined"), "config must be a TrainConfig"),
                          (lambda: standalone_script(make_config(), filename="../x.py"), "filename must be a plain name"),
                          (lambda: history_csv({"epoch": 1}), "history must be a list of epoch records"),
                          (lambda: runs_csv([{"id": 1}]), "run must be a kmnist_core.store.Run"),
                          (lambda: metrics_json(None), "run must be a kmnist_core.store.Run")]:
        with pytest.raises(ParameterError, match=message) as error:
            call()
        assert "\n" not in str(error.value)
    assert math.isfinite(json.loads(metrics_json(run))["run"]["duration_seconds"])
