import numpy as np
import pytest

from kmnist_core.config import make_config
from kmnist_core.training import predict_proba, train_model

from conftest import synthetic_arrays

X, Y = synthetic_arrays(20)
X_VAL, Y_VAL = synthetic_arrays(4, seed=9)


def _tiny(**overrides):
    values = dict(hidden_units=(32,), epochs=3, batch_size=50)
    values.update(overrides)
    return make_config("overfit", **values)


def test_progress_is_reported_per_batch_and_per_epoch():
    events = []
    result = train_model(_tiny(), X, Y, X_VAL, Y_VAL, on_progress=events.append)
    batches = [e for e in events if e.kind == "batch"]
    epochs = [e for e in events if e.kind == "epoch"]
    assert len(batches) == 3 * 4 and len(epochs) == 3  # 200 images / 50 per batch
    assert [e.epoch for e in epochs] == [1, 2, 3]
    assert all(e.val_loss is not None and e.val_accuracy is not None for e in epochs)
    assert batches[-1].fraction == pytest.approx(1.0) and batches[0].eta > 0
    assert all(b.elapsed <= a.elapsed for b, a in zip(batches, batches[1:]))
    assert result.status == "completed" and len(result.history) == 3
    assert set(result.history[0]) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "elapsed"}


def test_a_learnable_problem_is_learned():
    result = train_model(_tiny(epochs=15, learning_rate=3e-3), X, Y, X_VAL, Y_VAL)
    assert result.history[-1]["val_accuracy"] > 0.9
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def test_stop_between_batches_keeps_a_usable_partial_model():
    calls = []

    def should_stop():
        calls.append(1)
        return len(calls) >= 6  # during the second epoch

    result = train_model(_tiny(epochs=50), X, Y, X_VAL, Y_VAL, should_stop=should_stop)
    assert result.status == "stopped"
    assert len(calls) == 6 and len(result.history) == 1  # the half epoch is not in the curves
    proba = predict_proba(result.model, X_VAL)
    assert proba.shape == (40, 10) and np.allclose(proba.sum(axis=1), 1, atol=1e-4)


def test_same_seed_same_history_other_seed_differs():
    first = train_model(_tiny(seed=3), X, Y, X_VAL, Y_VAL).history
    second = train_model(_tiny(seed=3), X, Y, X_VAL, Y_VAL).history
    other = train_model(_tiny(seed=4), X, Y, X_VAL, Y_VAL).history
    assert [h["loss"] for h in first] == pytest.approx([h["loss"] for h in second], rel=1e-5)
    assert [h["loss"] for h in first] != pytest.approx([h["loss"] for h in other], rel=1e-5)


@pytest.mark.parametrize("family, extra", [("cnn", {}), ("bn_cnn", dict(augment=True, schedule="onecycle", optimizer="adamw"))])
def test_convolutional_families_train(family, extra):
    result = train_model(_tiny(family=family, epochs=1, **extra), X, Y)
    assert result.status == "completed" and result.history[0]["val_loss"] is None
    assert predict_proba(result.model, X[:5]).shape == (5, 10)


def test_checkpoint_hook_gets_the_model_each_epoch():
    seen = []
    train_model(_tiny(epochs=2), X, Y, on_epoch_model=lambda model: seen.append(model.count_params()))
    assert len(seen) == 2 and seen[0] > 0


def test_bad_arrays_are_refused_before_training():
    with pytest.raises(ValueError, match=r"x_train must be an array of shape \(N, 28, 28\)"):
        train_model(_tiny(), X.reshape(-1, 784), Y)
    with pytest.raises(ValueError, match="y_train must hold one label per image"):
        train_model(_tiny(), X, Y[:-1])
    with pytest.raises(ValueError, match=r"y_val must be in \[0, 9\]"):
        train_model(_tiny(), X, Y, X_VAL, Y_VAL + 10)
