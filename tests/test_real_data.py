"""The study on real images (kmnist-mini): the presets must behave as their names say,
and the combined model must be good and portable."""

import keras
import numpy as np
import pytest

from kmnist_core.data import load_local
from kmnist_core.fidelity import drawn_versions
from kmnist_core.store import RunStore
from kmnist_core.study import enqueue, study_configs, summary_row
from kmnist_core.worker import drain_queue


@pytest.fixture(scope="module")
def study(mini_dir, tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("study-home"))
    ids = enqueue(store, study_configs(("underfit", "overfit", "dropout", "l1l2", "combined")), data_dir=mini_dir)
    drain_queue(store)
    return store, {store.get(i).variant: store.get(i) for i in ids}


def test_every_variant_completes(study):
    _, runs = study
    assert {name: run.status for name, run in runs.items()} == dict.fromkeys(runs, "completed")


def test_combined_is_accurate_on_the_real_test_split(study):
    row = summary_row(study[1]["combined"])
    assert row["test_acc"] > 0.85 and row["macro_f1"] > 0.85 and row["kappa"] > 0.85


def test_regularization_shrinks_the_overfit_gap(study):
    rows = {name: summary_row(run) for name, run in study[1].items()}
    overfit_gap = rows["overfit"]["loss_gap"]
    assert overfit_gap > 0.5 and rows["overfit"]["train_acc"] > 0.99
    for name in ("dropout", "l1l2", "combined"):
        assert rows[name]["loss_gap"] < 0.8 * overfit_gap, name
    assert rows["overfit"]["verdict"] == "overfitting"


def test_underfit_cannot_fit_its_training_data(study):
    rows = {name: summary_row(run) for name, run in study[1].items()}
    assert rows["underfit"]["train_acc"] < rows["overfit"]["train_acc"] - 0.1
    assert rows["underfit"]["verdict"] == "underfitting"


def test_saved_model_loads_in_plain_keras_and_scores_the_same(study, mini_dir):
    store, runs = study
    run = runs["combined"]
    model = keras.saving.load_model(store.model_path(run.id))  # safe_mode is on by default
    dataset = load_local(mini_dir)
    predicted = model.predict(dataset.x_test.astype("float32"), verbose=0).argmax(axis=1)
    accuracy = float(np.mean(predicted == dataset.y_test))
    assert accuracy == pytest.approx(run.metrics["test"]["accuracy"], abs=1e-9)


def test_drawings_are_read_almost_as_well_as_dataset_images(study, mini_dir):
    """Real test images re-drawn as canvas input (any place, any size, thin to very thick
    pens) and preprocessed back: accuracy stays within 3 points of the originals."""
    store, runs = study
    model = keras.saving.load_model(store.model_path(runs["combined"].id))
    dataset = load_local(mini_dir)
    images, labels = dataset.x_test[:1000], dataset.y_test[:1000]
    original = np.mean(model.predict(images.astype("float32"), verbose=0).argmax(axis=1) == labels)
    drawn = np.mean(model.predict(drawn_versions(images).astype("float32"), verbose=0).argmax(axis=1) == labels)
    assert original - drawn <= 0.03, (original, drawn)
