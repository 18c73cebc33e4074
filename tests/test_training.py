import itertools

import numpy as np
import pytest

from kmnist_core.config import make_config
from kmnist_core.inference import make_predictor
from kmnist_core.metrics import loss_and_accuracy
from kmnist_core.records import EpochRecord
from kmnist_core.training import _Pace, train_model

from conftest import synthetic_arrays, tiny_config

X, Y = synthetic_arrays(20)
X_VAL, Y_VAL = synthetic_arrays(4, seed=9)


def test_progress_is_reported_between_calls_and_a_record_per_epoch():
    batches, epochs = [], []
    result = train_model(tiny_config(epochs=3), X, Y, X_VAL, Y_VAL, on_progress=batches.append,
                         on_epoch=lambda record, model: epochs.append(record))
    assert len(epochs) == 3 and [e.epoch for e in epochs] == [1, 2, 3] and epochs == result.history
    for epoch in (1, 2, 3):  # 200 images / 50 per batch: 4 steps, each epoch's last one reported
        steps = [b.step for b in batches if b.epoch == epoch]
        assert steps == sorted(set(steps)) and steps[-1] == 4 and all(b.steps == 4 for b in batches)
    assert all(e.val_loss is not None and e.train_loss is not None and e.fit_loss is not None for e in epochs)
    assert batches[-1].fraction == pytest.approx(1.0)
    assert batches[0].step == 1 and batches[0].eta is None  # one step first: it traces the graph, no rate yet
    assert batches[-1].eta is not None
    assert all(b.elapsed <= a.elapsed for b, a in itertools.pairwise(batches))
    assert result.status == "completed" and len(result.history) == 3


def test_fast_steps_run_many_to_a_call():
    """A tiny network's steps take well under a millisecond: after the first calls, each
    compiled call runs many of them, and the bar still moves every epoch."""
    x, y = synthetic_arrays(200)  # 2,000 images, 10 per batch: 200 steps an epoch
    batches = []
    train_model(tiny_config(batch_size=10, epochs=2), x, y, on_progress=batches.append)
    second_epoch = [b for b in batches if b.epoch == 2]
    assert second_epoch[-1].step == 200 and len(second_epoch) < 200 / 4


def test_pace_fits_each_call_in_its_time_and_grows_fourfold_at_most():
    pace = _Pace(seconds=0.2)
    pace.record(1, 3.0)  # the first call traces and compiles: still one step
    assert pace.steps == 1
    grown = []
    for _ in range(5):  # 1 ms a step
        pace.record(pace.steps, pace.steps * 0.001)
        grown.append(pace.steps)
    assert grown == [4, 16, 64, 200, 200]  # 200 steps of 1 ms: the 0.2 s a call may take
    pace.record(200, 2.0)  # the host got ten times slower: the next call is ten times shorter
    assert pace.steps == 20
    pace.record(20, 20 * 0.5)  # one step takes longer than a call may: one step a call
    assert pace.steps == 1


def test_a_learnable_problem_is_learned():
    result = train_model(tiny_config(epochs=15, learning_rate=3e-3), X, Y, X_VAL, Y_VAL)
    assert result.history[-1].val_accuracy > 0.9
    assert result.history[-1].train_loss < result.history[0].train_loss


def test_stop_between_calls_keeps_a_usable_partial_model():
    seen, polls = [], []

    def should_stop():
        polls.append(seen[-1])
        return seen[-1].epoch == 2  # during the second epoch

    result = train_model(tiny_config(epochs=50), X, Y, X_VAL, Y_VAL, on_progress=seen.append, should_stop=should_stop)
    assert result.status == "stopped"
    assert polls == seen  # polled after every call that reported progress
    assert seen[-1].epoch == 2 and len(result.history) == 1  # the half epoch is not in the curves
    proba = make_predictor(result.model)(X_VAL)
    assert proba.shape == (40, 10) and np.allclose(proba.sum(axis=1), 1, atol=1e-4)


def test_same_seed_same_history_other_seed_differs():
    first = train_model(tiny_config(seed=3, epochs=3), X, Y, X_VAL, Y_VAL).history
    second = train_model(tiny_config(seed=3, epochs=3), X, Y, X_VAL, Y_VAL).history
    other = train_model(tiny_config(seed=4, epochs=3), X, Y, X_VAL, Y_VAL).history
    assert [h.fit_loss for h in first] == pytest.approx([h.fit_loss for h in second], rel=1e-5)
    assert [h.fit_loss for h in first] != pytest.approx([h.fit_loss for h in other], rel=1e-5)


@pytest.mark.parametrize("family, extra", [("cnn", {}), ("bn_cnn", dict(augment=True, schedule="onecycle", optimizer="adamw"))])
def test_convolutional_families_train(family, extra):
    result = train_model(tiny_config(family=family, epochs=1, **extra), X, Y)
    assert result.status == "completed" and result.history[0].val_loss is None
    assert make_predictor(result.model)(X[:5]).shape == (5, 10)


def test_epoch_hook_gets_the_model_each_epoch():
    seen = []
    train_model(tiny_config(epochs=2), X, Y, on_epoch=lambda record, model: seen.append(model.count_params()))
    assert len(seen) == 2 and seen[0] > 0


def test_train_curve_is_scored_without_dropout_or_penalty():
    """With heavy dropout and L2 the loss Keras minimises (fit_loss) sits far above the
    model's loss on the same images scored as it will be used (train_loss)."""
    config = tiny_config(epochs=4, dropout=0.6, input_dropout=0.3, l2=0.05, learning_rate=3e-3)
    result = train_model(config, X, Y, X_VAL, Y_VAL)
    last = result.history[-1]
    assert last.fit_loss > last.train_loss + 0.3
    clean = make_predictor(result.model)(X)
    picked = np.clip(clean[np.arange(len(Y)), Y], 1e-7, 1)
    assert last.train_loss == pytest.approx(float(-np.mean(np.log(picked))), rel=0.05)  # sample of 1,000 ≥ all 200


def test_early_stopping_restores_the_best_epoch():
    noisy = Y.copy()
    noisy[::3] = (noisy[::3] + 1) % 10  # a third of the labels wrong: memorising them hurts validation
    config = tiny_config(epochs=60, hidden_units=(256,), learning_rate=1e-2, patience=2)
    result = train_model(config, X, noisy, X_VAL, Y_VAL)
    losses = [record.val_loss for record in result.history]
    best = int(np.argmin(losses)) + 1
    assert result.stopped_early and len(result.history) == best + 2 < 60
    assert result.best_epoch == best and losses[-1] > losses[best - 1]
    restored_loss, _ = loss_and_accuracy(Y_VAL, make_predictor(result.model)(X_VAL))
    assert restored_loss == pytest.approx(losses[best - 1], rel=1e-5)


def test_precision_used_is_reported():
    result = train_model(tiny_config(epochs=1, mixed_precision=False), X, Y)
    assert result.precision == "float32" and result.threads >= 1
    assert isinstance(result.history[0], EpochRecord)


def test_bad_arrays_are_refused_before_training():
    with pytest.raises(ValueError, match=r"x_train must be an array of shape \(N, 28, 28\)"):
        train_model(tiny_config(epochs=3), X.reshape(-1, 784), Y)
    with pytest.raises(ValueError, match="y_train must hold one label per image"):
        train_model(tiny_config(epochs=3), X, Y[:-1])
    with pytest.raises(ValueError, match=r"y_val must be in \[0, 9\]"):
        train_model(tiny_config(epochs=3), X, Y, X_VAL, Y_VAL + 10)


def _bn_cnn_pair():
    """Two identical small bn_cnn models, the second with fused batch normalization."""
    import keras

    from kmnist_core.models import build_model, fuse_batch_norm

    config = make_config("best", mixed_precision=False, dropout=0.0)
    stock, fused = build_model(config), build_model(config)
    fused.set_weights(stock.get_weights())
    for model in (stock, fused):
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="categorical_crossentropy")
    return stock, fuse_batch_norm(fused)


def test_fused_batch_norm_trains_as_the_stock_layer_does():
    """Same weights, same batch, one step: the same loss, weights and moving statistics."""
    stock, fused = _bn_cnn_pair()
    before = stock.get_weights()
    targets = np.eye(10, dtype=np.float32)[Y[:32]]
    losses = [float(model.train_on_batch(X[:32].astype(np.float32), targets)) for model in (stock, fused)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)
    # Each tensor's step, stock against fused, within 5% of its largest move: the two kernels
    # sum 12,500-25,000 values a channel in different orders, and the first convolution's
    # gradient (its 16 filters see one input channel) adds that rounding up to ~1-3%.
    steps = [(a - w, b - w) for a, b, w in zip(stock.get_weights(), fused.get_weights(), before)]
    assert all(np.abs(by_stock).max() > 0 for by_stock, _ in steps)  # every tensor moved, moving statistics too
    for by_stock, by_fused in steps:
        assert np.abs(by_stock - by_fused).max() <= 0.05 * np.abs(by_stock).max()


def test_fused_batch_norm_runs_tensorflows_fused_kernel_and_saves_stock_layers(tmp_path):
    import keras
    import tensorflow as tf

    _, fused = _bn_cnn_pair()
    step = tf.function(lambda x: fused(x, training=True))
    graph = step.get_concrete_function(tf.TensorSpec((8, 28, 28), tf.float32)).graph
    assert sum(op.type.startswith("FusedBatchNorm") for op in graph.get_operations()) == 6
    fused.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    assert {type(layer).__name__ for layer in loaded.layers} >= {"BatchNormalization"}
    assert all(type(layer).__module__.startswith("keras.") for layer in loaded.layers)


def test_the_eta_counts_the_work_after_each_epoch():
    """What the caller does after an epoch (the store's writes, checkpoints) takes time the
    ETA must include: it once counted only the scoring, so a slow hook made it short."""
    import time

    reported = []
    train_model(tiny_config(epochs=4), X, Y, on_progress=lambda p: reported.append(p) if p.step == p.steps else None,
                on_epoch=lambda record, model: time.sleep(0.5))
    at_end_of_epoch_2 = next(p for p in reported if p.epoch == 2)
    assert at_end_of_epoch_2.eta >= 3 * 0.5  # three more epoch ends (2, 3, 4), each at least the hook's 0.5 s


@pytest.mark.parametrize("dropout", [0.0, 0.3], ids=["whole step", "updates only (dropout)"])
def test_xla_paths_train_as_the_plain_graph_does_smaller_last_batch_included(monkeypatch, tmp_path, dropout):
    """Long dense runs go through XLA (``xla_plan``): the whole step, its smaller last batch
    through the plain graph, or with dropout only the optimizer's update. Same seed, same
    data order, same dropout masks: the same curve up to rounding, and a model that saves
    and loads as plain Keras."""
    from kmnist_core import training
    from kmnist_core.inference import load_model

    config = tiny_config(batch_size=64, epochs=2, dropout=dropout)  # 200 images: three batches of 64 and one of 8
    plain = train_model(config, X, Y, X_VAL, Y_VAL).history
    monkeypatch.setattr(training, "XLA_MIN_WORK", 0)
    compiled = train_model(config, X, Y, X_VAL, Y_VAL)
    assert [h.fit_loss for h in compiled.history] == pytest.approx([h.fit_loss for h in plain], rel=1e-4)
    assert [h.val_loss for h in compiled.history] == pytest.approx([h.val_loss for h in plain], rel=1e-4)
    compiled.model.save(tmp_path / "model.keras")
    assert load_model(tmp_path / "model.keras").count_params() == compiled.model.count_params()


def test_xla_only_where_it_repays_its_compilation():
    from kmnist_core.models import build_model
    from kmnist_core.training import XLA_STEP, XLA_UPDATES, xla_plan

    full_scale_steps = 844  # 54,000 images in batches of 64
    plans = {variant: xla_plan(make_config(variant), build_model(make_config(variant)), full_scale_steps)
             for variant in ("underfit", "overfit", "dropout", "l1l2", "combined", "best")}
    assert plans == {"underfit": None, "overfit": XLA_STEP, "dropout": XLA_UPDATES, "l1l2": XLA_STEP,
                     "combined": XLA_UPDATES, "best": None}
    assert xla_plan(make_config("overfit"), build_model(make_config("overfit")), 85) is None  # kmnist-mini


def test_each_epoch_reads_the_images_in_the_order_keras_fit_read_them():
    """The study's curves were measured with Keras's ``fit`` over ``make_dataset``: the
    same seed must give the same batches, or a seed's lesson moves (seed 1's overfit run
    ended a 'good fit' at 25 epochs when the order was drawn another way)."""
    import keras
    import tensorflow as tf

    from kmnist_core.training import epoch_orders, make_dataset

    images, seen = 300, []
    x = np.zeros((images, 28, 28), np.uint8)
    x[:, 0, 0], x[:, 0, 1] = np.arange(images) % 256, np.arange(images) // 256  # each image carries its index

    def record(batch):
        seen.append(batch.numpy()[:, 0, 0].astype(int) + 256 * batch.numpy()[:, 0, 1].astype(int))
        return batch

    keras.utils.set_random_seed(5)
    data = make_dataset(x, np.arange(images) % 10, 50, shuffle=True, seed=5)
    data = data.map(lambda a, b: (tf.ensure_shape(tf.py_function(record, [a], tf.float32), [None, 28, 28]), b))
    inputs = keras.Input((28, 28))
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(inputs)))
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    model.fit(data, epochs=3, verbose=0)
    read_by_fit = np.concatenate(seen).reshape(3, images)
    keras.utils.set_random_seed(5)
    orders = epoch_orders(images, 5)
    assert all((next(orders).numpy() == epoch).all() for epoch in read_by_fit)


def test_a_training_records_the_engine_constants_it_was_built_from():
    """bn_cnn's blocks and the warp's ranges are code, not settings: the run keeps what it used."""
    from kmnist_core import config as settings

    best = train_model(make_config("best", epochs=1, batch_size=16, mixed_precision=False), X, Y)
    assert best.engine == {"bn_cnn_blocks": settings.BN_CNN_BLOCKS, "affine_ranges": settings.AFFINE_RANGES}
    assert train_model(tiny_config(epochs=1), X, Y).engine == {}
