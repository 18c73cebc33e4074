"""The study on real images (kmnist-mini): the presets must behave as their names say,
and the combined model must be good and portable."""

import keras
import numpy as np
import pytest

from kmnist_core.config import make_config
from kmnist_core.data import load_local
from kmnist_core.fidelity import drawn_versions
from kmnist_core.store import RunStore
from kmnist_core.study import summary_row
from kmnist_core.worker import drain_queue

pytestmark = pytest.mark.slow

# One run is one draw: the held-out − train loss gap moves with the seed, the threads and
# the CPU (l1l2 0.41 here vs 0.61 on an AVX2 AMD host, same seed), so the study is trained
# on two seeds and every ordering must hold on each with a margin taken from the spread.
SEEDS = (0, 1)
# Half the presets' 50 epochs: overfit's validation loss bottoms out at epoch 4 and its 25%
# rise (where "overfitting" begins on the verdict's graded scale) is crossed at epoch 13-14
# on every seed, so at 25 it stands at +42..45%, and two seeds cost what one 50-epoch study did.
EPOCHS = 25
# Measured on kmnist-mini (real images), this host (Intel Xeon, AVX-512), with
#   KMNIST_DATA_DIR=../shared/data/kmnist-mini python benchmarks/study_spread.py --at 25 ...
# one invocation per setting: `--seeds 0,1,2` (presets as in config.py: overfit);
# `--seeds 0,1,2 --variants dropout --set dropout.input_dropout=0.3`;
# `--seeds 0,1 --variants l1l2 --set l1l2.l2=1e-4` and the same with `--seeds 2`;
# `--seeds 0,1 --variants combined --set combined.input_dropout=0.3 --set combined.l2=1e-4`.
# loss gap at 25 epochs, seeds 0 / 1 / 2 (mean ± std):
#   overfit  +0.632 +0.523 +0.669 (0.608 ± 0.062)   val loss rise +42..45%, overfitting x3
#   dropout  +0.324 +0.331 +0.413 (0.356 ± 0.040)   rise +1..8%, good fit x3
#   l1l2     +0.483 +0.405 +0.471 (0.453 ± 0.034)   rise +0%, good fit x3 (but see below)
#   combined +0.327 +0.290        (0.308 ± 0.018)   rise +0..2%, good fit x2
# Smallest per-seed shrink (overfit's gap minus the variant's, same seed): dropout 0.192,
# combined 0.233, l1l2 0.118. The margins are about half of that. l1l2's is smaller
# because L1/L2 penalties under Adam make the validation loss spike for a few epochs every
# ~15 (seen with L2 1e-4, 1e-3 and 3e-3, L1 0 or 1e-5): runs ending in a spike measured a
# shrink of 0.085 (25 epochs, l1=0, l2=1e-3, seed 0) and 0.096 (30 epochs, proposed
# preset, seed 2), so 0.05 still holds then.
# The same spikes make l1l2's verdict flip to "overfitting" in those epochs: it is not asserted.
MARGIN = {"dropout": 0.10, "combined": 0.12, "l1l2": 0.05}
REGULARIZED = ("dropout", "l1l2", "combined")


@pytest.fixture(scope="module")
def study(mini_dir, tmp_path_factory):
    """{(variant, seed): finished run} for the study on both seeds (underfit at its own 10 epochs)."""
    store = RunStore(tmp_path_factory.mktemp("study-home"))
    ids = {}
    for seed in SEEDS:
        for variant in ("underfit", "overfit", *REGULARIZED):
            epochs = None if variant == "underfit" else EPOCHS
            config = make_config(variant, seed=seed, epochs=epochs)
            ids[variant, seed] = store.create_run(config, data_dir=mini_dir)
    drain_queue(store)
    return store, {key: store.get(i) for key, i in ids.items()}


@pytest.fixture(scope="module")
def rows(study):
    return {key: summary_row(run) for key, run in study[1].items()}


def test_every_variant_completes(study):
    _, runs = study
    assert {key: run.status for key, run in runs.items()} == dict.fromkeys(runs, "completed")


@pytest.mark.parametrize("seed", SEEDS)
def test_combined_is_accurate_on_the_real_test_split(rows, seed):
    row = rows["combined", seed]
    assert row["test_acc"] > 0.85 and row["macro_f1"] > 0.85 and row["kappa"] > 0.85


@pytest.mark.parametrize("seed", SEEDS)
def test_overfit_memorises_and_is_flagged(rows, seed):
    row = rows["overfit", seed]
    assert row["train_acc"] > 0.99 and row["loss_gap"] > 0.45, row
    assert row["verdict"] in ("overfitting", "strongly overfitting"), row  # +42..45% on the graded scale


@pytest.mark.parametrize("variant", REGULARIZED)
def test_regularization_shrinks_the_overfit_gap(rows, variant):
    for seed in SEEDS:
        overfit, regularized = rows["overfit", seed]["loss_gap"], rows[variant, seed]["loss_gap"]
        assert regularized < overfit - MARGIN[variant], (variant, seed, regularized, overfit)


@pytest.mark.parametrize("variant", ("dropout", "combined"))
def test_dropout_keeps_the_validation_loss_near_its_best(rows, variant):
    assert [rows[variant, seed]["verdict"] for seed in SEEDS] == ["good fit"] * len(SEEDS)


def test_regularization_costs_no_accuracy(rows):
    """Mean test accuracy over the seeds, measured at 25 epochs: overfit 0.895 ± 0.003,
    dropout 0.906 ± 0.002, combined 0.907 ± 0.004, l1l2 0.894 ± 0.001 (same command)."""
    mean = {v: np.mean([rows[v, s]["test_acc"] for s in SEEDS]) for v in ("overfit", *REGULARIZED)}
    assert mean["dropout"] > mean["overfit"] - 0.005 and mean["combined"] > mean["overfit"] - 0.005, mean
    assert mean["l1l2"] > mean["overfit"] - 0.015, mean


@pytest.mark.parametrize("seed", SEEDS)
def test_underfit_cannot_fit_its_training_data(rows, seed):
    assert rows["underfit", seed]["train_acc"] < rows["overfit", seed]["train_acc"] - 0.1
    assert rows["underfit", seed]["verdict"] == "underfitting"


def test_saved_model_loads_in_plain_keras_and_scores_the_same(study, mini_dir):
    store, runs = study
    run = runs["combined", 0]
    model = keras.saving.load_model(store.model_path(run.id))  # safe_mode is on by default
    dataset = load_local(mini_dir)
    predicted = model.predict(dataset.x_test.astype("float32"), verbose=0).argmax(axis=1)
    accuracy = float(np.mean(predicted == dataset.y_test))
    assert accuracy == pytest.approx(run.metrics["test"]["accuracy"], abs=1e-9)


def test_drawings_are_read_almost_as_well_as_dataset_images(study, mini_dir):
    """Real test images re-drawn as canvas input (any place, any size, thin to very thick
    pens) and preprocessed back: accuracy stays within 3 points of the originals."""
    store, runs = study
    model = keras.saving.load_model(store.model_path(runs["combined", 0].id))
    dataset = load_local(mini_dir)
    images, labels = dataset.x_test[:1000], dataset.y_test[:1000]
    original = np.mean(model.predict(images.astype("float32"), verbose=0).argmax(axis=1) == labels)
    drawn = np.mean(model.predict(drawn_versions(images).astype("float32"), verbose=0).argmax(axis=1) == labels)
    assert original - drawn <= 0.03, (original, drawn)
