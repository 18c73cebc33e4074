"""The guided labs' answers, read from synthetic finished runs: each lab says which prediction
its runs support, with their numbers, both when the expected effect shows and when it does
not (then honestly, with why that can happen). No training here."""

import itertools

import numpy as np
import pytest

from kmnist_core.checks import ParameterError
from kmnist_core.labs import LABS, NOT_SHOWN, SHOWN, WAITING, answer, check_prediction, group_runs
from kmnist_core.records import EpochRecord
from kmnist_core.status import Status
from kmnist_core.store import Run

_ids = itertools.count(1)


def finished(lab, label, seed=0, gap=0.5, train_accuracy=1.0, val_accuracy=0.88, val_losses=(0.6, 0.5, 0.55),
             test_loss=0.6, test_accuracy=0.87, weights=None, **extra):
    """A completed run of ``lab``'s arm ``label`` as the runner stores it."""
    arm = next(arm for arm in lab.arms if arm.label == label)
    config = lab.config(arm, seed)
    history = [EpochRecord(epoch=i + 1, val_loss=loss, weights=weights) for i, loss in enumerate(val_losses)]
    metrics = {"train": {"accuracy": train_accuracy, "log_loss": 0.01},
               "val": {"accuracy": val_accuracy, "log_loss": val_losses[-1]},
               "test": {"accuracy": test_accuracy, "log_loss": test_loss},
               "fit": {"loss_gap": gap, "verdict": "good fit"}, **extra}
    return Run(id=next(_ids), name=label, variant=config.variant, status=Status.COMPLETED, config=config.to_dict(),
               created_at=0.0, metrics=metrics, history=history)


def test_every_lab_queues_validated_runs_seed_by_seed_and_offers_predictions():
    for lab in LABS.values():
        configs = lab.configs()
        assert len(configs) == len(lab.arms) * lab.seeds and 2 <= len(lab.choices) <= 3
        assert [config.seed for config, _ in configs] == sorted(config.seed for config, _ in configs)
        assert len({(config, name) for config, name in configs}) == len(configs)
    assert len(LABS) >= 6


def test_a_prediction_must_be_one_of_the_labs_choices():
    lab = LABS["dropout"]
    assert check_prediction(lab, lab.choices[1]) == lab.choices[1]
    with pytest.raises(ParameterError, match="prediction must be one of"):
        check_prediction(lab, "I think so")
    with pytest.raises(ParameterError, match="prediction must be one of"):
        check_prediction(lab, None)


def test_runs_are_matched_to_arms_by_settings_not_names():
    lab = LABS["dropout"]
    run = finished(lab, "dropout", seed=1)
    run.name = "renamed by the learner"
    other = finished(LABS["capacity"], "64 units")
    queued = finished(lab, "no dropout")
    queued.status = Status.QUEUED
    assert group_runs(lab, [run, other, queued]) == {"no dropout": [], "dropout": [run]}
    assert answer(lab, [run, other, queued]).status == WAITING
    assert "Waiting for a finished run of: no dropout." in answer(lab, [run, queued]).text
    queued.status = Status.STOPPED
    assert "No completed run of: no dropout (stopped, cancelled or failed)" in answer(lab, [run, queued]).text


def test_capacity_shown_and_not_shown():
    lab = LABS["capacity"]
    runs = [finished(lab, "8 units", train_accuracy=0.82, val_losses=(0.9, 0.8, 0.78)),
            finished(lab, "64 units", val_losses=(0.6, 0.45, 0.44)),
            finished(lab, "2 × 512 units", val_losses=(0.6, 0.5, 0.7))]
    result = answer(lab, runs)
    assert result.status == SHOWN and result.supported == lab.choices[1] and result.caveat is None
    assert "8 units fits 82.0%" in result.text and "+40% from its best (0.500 at epoch 2)" in result.text
    assert "Lowest: 64 units" in result.text

    runs[0] = finished(lab, "8 units", train_accuracy=0.95, val_losses=(0.9, 0.8, 0.35))
    runs[2] = finished(lab, "2 × 512 units", val_losses=(0.6, 0.5, 0.52))
    result = answer(lab, runs)
    assert result.status == NOT_SHOWN and result.supported == lab.choices[0]
    assert "8 units fitted its training images well" in result.caveat and "had not started memorising" in result.caveat


def test_capacity_names_no_winner_between_losses_one_seed_cannot_separate():
    """Seen in Chromium: 64 units ended at 0.702, 2 x 512 at 0.715, and the lab told a learner
    who predicted "more capacity" that the runs show otherwise, while the report ranked
    2 x 512 4.7 points more accurate. A 2% gap on one seed names no winner, and the loss vs
    accuracy disagreement is explained."""
    lab = LABS["capacity"]
    runs = [finished(lab, "8 units", train_accuracy=0.99, val_losses=(0.9, 0.8, 0.80), val_accuracy=0.80),
            finished(lab, "64 units", val_losses=(0.7, 0.64, 0.702), val_accuracy=0.82),
            finished(lab, "2 × 512 units", val_losses=(0.6, 0.558, 0.715), val_accuracy=0.867)]
    result = answer(lab, runs)
    assert result.supported is None
    assert "64 units and 2 × 512 units end within 10% of each other's loss" in result.text
    assert "2 × 512 units is the more accurate (86.7% vs 82.0%)" in result.text


def test_dropout_shown_only_when_every_seed_agrees():
    lab = LABS["dropout"]
    runs = [finished(lab, "no dropout", 0, gap=0.70), finished(lab, "no dropout", 1, gap=0.76),
            finished(lab, "dropout", 0, gap=0.45), finished(lab, "dropout", 1, gap=0.49)]
    result = answer(lab, runs)
    assert result.status == SHOWN and result.supported == lab.choices[0]
    assert "no dropout 0.730 ± 0.042 over 2 seeds, dropout 0.470 ± 0.028 over 2 seeds" in result.text

    runs[3] = finished(lab, "dropout", 1, gap=0.80)  # one seed overlaps the unregularized ones
    result = answer(lab, runs)
    assert result.status == NOT_SHOWN and result.supported == lab.choices[1]
    assert "seeds overlap" in result.caveat and "luck of a seed" in result.caveat


def test_penalties_sparsity_vs_shrinkage():
    lab = LABS["penalties"]

    def stats(near_zero, norm):
        return [{"near_zero": near_zero, "l2_norm": norm}]

    runs = [finished(lab, "no penalty", weights=stats(0.014, 29.4)), finished(lab, "L1 1e-4", weights=stats(0.62, 8.1)),
            finished(lab, "L2 1e-3", weights=stats(0.03, 12.3))]
    result = answer(lab, runs)
    assert result.status == SHOWN and result.supported == lab.choices[0]
    assert "no penalty 1.4%, L1 1e-4 62.0%, L2 1e-3 3.0%" in result.text and "L2 1e-3 12.3" in result.text

    runs[1] = finished(lab, "L1 1e-4", weights=stats(0.02, 25.0))
    result = answer(lab, runs)
    assert result.status == NOT_SHOWN and result.supported == lab.choices[2] and "hover around zero" in result.caveat


def test_more_data_vs_dropout():
    lab = LABS["data"]
    runs = [finished(lab, "1,000 images", gap=1.2, val_accuracy=0.78), finished(lab, "2,000 images", gap=0.9),
            finished(lab, "4,000 images", gap=0.6, val_accuracy=0.88),
            finished(lab, "1,000 images + dropout", gap=0.8, val_accuracy=0.80)]
    result = answer(lab, runs)
    assert result.status == SHOWN and result.supported == lab.choices[0]
    assert "1,000 images 1.200 → 4,000 images 0.600" in result.text and "4,000 images 88.0%" in result.text

    runs[2] = finished(lab, "4,000 images", gap=1.15)
    result = answer(lab, runs)
    assert result.status == NOT_SHOWN and result.supported == lab.choices[1] and "did not shrink" in result.caveat


def test_early_stopping_lower_test_loss_or_not():
    lab = LABS["early_stopping"]
    runs = [finished(lab, "all 30 epochs", 0, test_loss=0.72), finished(lab, "all 30 epochs", 1, test_loss=0.75),
            finished(lab, "early stopping", 0, test_loss=0.55, epochs_done=8, best_epoch=5),
            finished(lab, "early stopping", 1, test_loss=0.57, epochs_done=9, best_epoch=6)]
    result = answer(lab, runs)
    assert result.status == SHOWN and result.supported == lab.choices[0]
    assert "ended after 8, 9 of 30 epochs and kept epoch 5, 6" in result.text and "0.560 ± 0.014" in result.text
    assert "Accuracy barely moved" in result.text  # both at 87%
    runs[0] = finished(lab, "all 30 epochs", 0, test_loss=0.72, test_accuracy=0.89)
    runs[1] = finished(lab, "all 30 epochs", 1, test_loss=0.75, test_accuracy=0.89)
    assert "Accuracy tells another story: all 30 epochs reads 2.0 points more test images right" in answer(lab, runs).text

    runs[3] = finished(lab, "early stopping", 1, test_loss=0.80, epochs_done=30, best_epoch=29)
    result = answer(lab, runs)
    assert result.status == NOT_SHOWN and result.supported == lab.choices[2] and "nothing to stop" in result.caveat


def test_is_it_real_reads_seeds_and_mcnemar():
    lab = LABS["is_it_real"]
    accuracies = {"no penalty": (0.860, 0.872, 0.866), "L2 1e-4": (0.869, 0.861, 0.870)}
    runs = [finished(lab, label, seed, test_accuracy=value)
            for label, values in accuracies.items() for seed, value in enumerate(values)]
    y_test = np.arange(200) % 10
    rng = np.random.default_rng(0)
    proba = {run.id: np.eye(10)[np.where(rng.random(200) < run.metrics["test"]["accuracy"], y_test, (y_test + 1) % 10)]
             for run in runs}
    result = answer(lab, runs, (y_test, proba.get))
    assert result.status == SHOWN and result.supported == lab.choices[1]
    assert "One seed each: L2 1e-4 +0.9 points against no penalty" in result.text
    assert "no penalty 86.6% ± 0.6 points over 3 seeds" in result.text
    assert "McNemar's test, the two settings' first seeds: p = " in result.text and "two seeds of the same setting" in result.text

    runs = [finished(lab, label, seed, test_accuracy=value) for label, values in
            {"no penalty": (0.860, 0.862, 0.861), "L2 1e-4": (0.880, 0.882, 0.881)}.items()
            for seed, value in enumerate(values)]
    result = answer(lab, runs)
    assert result.status == NOT_SHOWN and result.supported == lab.choices[0] and "held on every seed" in result.caveat
    assert "McNemar" not in result.text  # no predictions given: scores only

    assert answer(lab, runs[:1] + runs[3:4]).status == WAITING  # one seed each: no spread yet
