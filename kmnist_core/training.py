"""The training loop: ``train_model`` fits a configuration, reports progress between calls of
steps and an ``EpochRecord`` per epoch through plain callbacks, and stops between steps when asked.
The caller (CLI, background worker, tests) decides where the progress goes.

The steps run in compiled calls of several steps each (``steps_per_execution``, but sized
as it goes): each call runs as many steps as fit in ``CALL_SECONDS`` at the pace just
measured, so a dense network's ~1 ms steps stop paying Python's per-step overhead while
the bar still moves, and a Stop still lands, several times a second.

After every epoch the model is scored cleanly — dropout off, no L1/L2 penalty, no label
smoothing — on the validation split and on a fixed sample of the training images, so the
train and validation curves measure the same thing as the fit verdict does. Keras' own
running training loss (dropout on, penalty added) is kept beside them as ``fit_loss``.
"""

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from . import config as settings
from .classes import NUM_CLASSES
from .config import TrainConfig, validate
from .hardware import choose_precision, configure_threads
from .inference import make_predictor
from .metrics import loss_and_accuracy
from .models import build_model, fuse_batch_norm
from .records import EpochRecord, Progress
from .status import Status
from .weights import layer_stats

TRAIN_SAMPLE = 1000  # training images scored cleanly per epoch: a stable curve for ~3% of an epoch's cost
XLA_MIN_WORK = 5e9  # weights x steps in a run from which XLA's compilation pays (see xla_plan)
XLA_STEP, XLA_UPDATES = "step", "updates"
CALL_SECONDS = 0.2  # target length of one compiled call of training steps: progress and the stop check in between


@dataclass
class TrainResult:
    model: keras.Model
    history: list = field(default_factory=list)  # EpochRecord per finished epoch
    status: Status = Status.COMPLETED  # or STOPPED
    elapsed: float = 0.0
    precision: str = "float32"  # what the layers computed in: "bfloat16" or "float32"
    threads: int = 1
    best_epoch: int | None = None  # early stopping: the epoch whose weights were restored
    stopped_early: bool = False
    # The engine's constants this run was built from (bn_cnn's blocks, the warp's ranges): code,
    # not settings, so they are recorded with the run; an export rebuilds the network it trained.
    engine: dict = field(default_factory=dict)


def make_dataset(x, y, batch_size, shuffle, seed, augment=False) -> tf.data.Dataset:
    """The tf.data pipeline a plain Keras ``fit`` reads (the benchmarks' yardstick; the
    engine trained on it until issue 23, and ``epoch_orders`` keeps its image order)."""
    one_hot = np.eye(NUM_CLASSES, dtype=np.float32)[y]
    data = tf.data.Dataset.from_tensor_slices((x.astype(np.float32), one_hot)).cache()
    if shuffle:
        data = data.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    data = data.batch(batch_size)
    if augment:
        data = data.map(random_affine, num_parallel_calls=tf.data.AUTOTUNE)
    return data.prefetch(tf.data.AUTOTUNE)


def epoch_orders(images: int, seed: int):
    """The order of the images in each epoch, one epoch after another: the order Keras's
    ``fit`` read ``make_dataset``'s shuffle in (same seed, same buffer), so a seed trains on
    the batches it trained on before, and the study's curves are the ones measured. ``fit``
    drew a new order per epoch and one more it left unused (seen by recording its batches:
    epochs 1, 2, 3 read the shuffle's orders 1, 3, 5), hence every second order here. Only
    indices go through tf.data, a whole epoch's at once, the next drawn while this one trains."""
    orders = tf.data.Dataset.range(images).shuffle(images, seed=seed, reshuffle_each_iteration=True)
    return iter(orders.batch(images).repeat().shard(2, 0).prefetch(1))


def random_affine(images, labels):
    """One random shift + rotation + zoom per image, as a single resampling of the batch:
    what varies between two hands writing one kana. No flips: a mirrored kana is not
    the same kana. Chaining three Keras Random* layers resamples (and blurs) three times
    and measured 0.8 points worse on kmnist-mini (97.9% vs 98.7%). The ranges are
    ``config.AFFINE_RANGES``."""
    shift, rotation, zoom = settings.AFFINE_RANGES
    n = tf.shape(images)[0]
    angle = tf.random.uniform([n], -rotation, rotation) * 2 * np.pi
    scale = 1.0 + tf.random.uniform([n], -zoom, zoom)
    shift_x = tf.random.uniform([n], -shift, shift) * 28
    shift_y = tf.random.uniform([n], -shift, shift) * 28
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    centre = 13.5
    zeros = tf.zeros([n])
    transform = tf.stack([  # maps each output pixel to the input pixel it samples
        cos, -sin, centre - cos * centre + sin * centre - shift_x,
        sin, cos, centre - sin * centre - cos * centre - shift_y,
        zeros, zeros,
    ], axis=1)
    moved = tf.raw_ops.ImageProjectiveTransformV3(
        images=images[..., None], transforms=transform, output_shape=[28, 28],
        interpolation="BILINEAR", fill_mode="CONSTANT", fill_value=0.0,
    )
    return moved[..., 0], labels


def make_optimizer(config: TrainConfig, steps_per_epoch: int):
    total = config.epochs * steps_per_epoch
    rate = config.learning_rate
    if config.schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(config.learning_rate, total)
    elif config.schedule == "onecycle":  # warm up for 20% of the steps, then cosine down
        warmup = max(1, int(0.2 * total))
        rate = keras.optimizers.schedules.CosineDecay(
            config.learning_rate / 25, max(1, total - warmup), alpha=1e-3,
            warmup_target=config.learning_rate, warmup_steps=warmup,
        )
    optimizers = {
        "adam": keras.optimizers.Adam,
        "adamw": lambda **kw: keras.optimizers.AdamW(weight_decay=1e-4, **kw),
        "sgd": lambda **kw: keras.optimizers.SGD(momentum=0.9, nesterov=True, **kw),
        "rmsprop": keras.optimizers.RMSprop,
        "adadelta": keras.optimizers.Adadelta,
    }
    # Keras swaps the averaged weights into the model when fit ends: a plain model is saved.
    averaging = dict(use_ema=True, ema_momentum=config.ema) if config.ema else {}
    return optimizers[config.optimizer](learning_rate=rate, **averaging)


class _Clock:
    """Seconds left, from the pace of the steps after the first: the first batch traces
    the graph (seconds for a CNN) and the work after each epoch (scoring, and whatever the
    caller's ``on_epoch`` does: the store's writes, checkpoints) is a cost of its own, so
    both are measured apart instead of being spread over every step as a plain average
    would."""

    def __init__(self, epochs, steps):
        self.epochs, self.steps = epochs, steps
        self.start = time.perf_counter()
        self.first_batch_end = None
        self.after_epochs = 0.0  # seconds spent after epochs: scoring and the on_epoch hook
        self.epochs_ended = 0

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def eta(self, epoch, step) -> float | None:
        done = (epoch - 1) * self.steps + step
        if self.first_batch_end is None:
            self.first_batch_end = time.perf_counter()
            return None
        if done < 2:
            return None
        stepping = time.perf_counter() - self.first_batch_end - self.after_epochs
        per_step = max(stepping, 0.0) / (done - 1)
        epochs_left = self.epochs - epoch + (1 if step == self.steps else 0)
        per_epoch_end = self.after_epochs / self.epochs_ended if self.epochs_ended else 0.0
        return per_step * (self.epochs * self.steps - done) + per_epoch_end * max(0, epochs_left)


class _Pace:
    """How many training steps the next compiled call runs: as many as fit in
    ``CALL_SECONDS`` at the pace of the last call, growing at most fourfold per call (the
    first calls trace and compile, and one slow call must not make the next one long)."""

    def __init__(self, seconds=CALL_SECONDS):
        self.seconds, self.steps = seconds, 1

    def record(self, steps, seconds):
        fit = int(self.seconds * steps / max(seconds, 1e-9))
        self.steps = max(1, min(4 * self.steps, fit))


def make_train_steps(model: keras.Model, x, y, batch_size: int, augment: bool, xla: str | None):
    """``train_steps(order, first, count)``: one compiled call running ``count`` training
    steps, steps ``first`` to ``first + count - 1`` of an epoch whose image order is
    ``order``; returns Keras's running loss and accuracy after the last. ``count`` is a
    tensor, so calls of any length share one graph.

    The images stay in memory as they came (uint8: a quarter of float32) and each step
    gathers its batch inside the graph: no tf.data pipeline handing over 54,000 single
    images an epoch (~20% of a dense epoch on 2 cores). ``xla`` is ``xla_plan``'s answer:
    with ``XLA_STEP`` the whole step goes through XLA, which compiles once per batch shape:
    the epoch's last, smaller batch takes the plain graph instead of a second compilation
    (seconds) in the middle of the run. With ``XLA_UPDATES`` only the optimizer's update does
    (``compile_updates``)."""
    images, targets = tf.constant(x), tf.constant(np.eye(NUM_CLASSES, dtype=np.float32)[y])
    steps, remainder = divmod(len(x), batch_size)
    if xla == XLA_UPDATES:
        compile_updates(model)
    plain_step = tf.function(model.train_step, autograph=False)
    step = tf.function(model.train_step, jit_compile=True, autograph=False) if xla == XLA_STEP else plain_step

    def batch(order, index):
        picked = order[index * batch_size:(index + 1) * batch_size]
        x_batch, y_batch = tf.cast(tf.gather(images, picked), tf.float32), tf.gather(targets, picked)
        return random_affine(x_batch, y_batch) if augment else (x_batch, y_batch)

    @tf.function
    def full_batches(order, first, count):
        logs = step(batch(order, first))
        for index in tf.range(first + 1, first + count):
            logs = step(batch(order, index))
        return logs

    @tf.function
    def last_batch(order, index):
        return plain_step(batch(order, index))

    def train_steps(order, first, count):
        if not (xla == XLA_STEP and remainder and first + count > steps):
            return full_batches(order, tf.constant(first), tf.constant(count))
        if count > 1:
            full_batches(order, tf.constant(first), tf.constant(count - 1))
        return last_batch(order, tf.constant(steps))

    return train_steps


def xla_plan(config: TrainConfig, model: keras.Model, steps: int) -> str | None:
    """Where XLA goes in a run: ``XLA_STEP`` (the whole training step), ``XLA_UPDATES``
    (the optimizer's update only) or None. Only dense networks whose run is long enough to
    repay the compilation: their weights are their multiply-adds per image, so weights x
    steps is the run's work (the study's 784-512-512-10 network at full scale, not on
    kmnist-mini's 5,400 images and not the 8-unit ``underfit``, whose steps are too small).
    With dropout only the update: XLA's CPU code draws the dropout masks' random numbers
    ~4x slower than TensorFlow's kernel. Seconds per epoch, 54,000 tiled images, quiet
    2-core AMX host (plain graph / updates / whole step): overfit 2.6 / 1.7 / 1.3; l1l2
    3.2 / 2.7 / 2.0; dropout 2.8 / 2.2 / 9.9; combined 3.6 / 3.0 / 11.0. The convolutional
    families keep oneDNN's kernels (bfloat16 on AMX)."""
    if config.family != "dense" or model.count_params() * steps * config.epochs < XLA_MIN_WORK:
        return None
    return XLA_UPDATES if config.draws_dropout else XLA_STEP


def compile_updates(model: keras.Model) -> None:
    """Have ``model``'s optimizer apply its updates through XLA: one fused pass over the
    weights (Adam's two moments, the step, weight decay, the averaged weights) instead of a
    dozen kernels each, most of a dense step's cost beside its matrix products. The
    gradients still come from the plain graph, dropout masks included. The optimizer's
    variables are created first: XLA cannot create them."""
    optimizer, variables = model.optimizer, model.trainable_variables
    optimizer.build(variables)
    update = tf.function(lambda grads: optimizer.apply(grads, variables), jit_compile=True, autograph=False)
    optimizer.apply_gradients = lambda pairs: update([tf.convert_to_tensor(grad) for grad, _ in pairs])


class _Reporter:
    """Turns the steps done into progress events and epoch records, scores the model
    cleanly after each epoch, keeps the best weights for early stopping and polls the stop
    request."""

    def __init__(self, config, steps, scoring_sets, on_progress, on_epoch, should_stop):
        self.config, self.steps = config, steps
        self.scoring_sets = scoring_sets  # {"train": (x, y), "val": (x, y) or absent}
        self.on_progress, self.on_epoch, self.should_stop = on_progress, on_epoch, should_stop
        self.clock = _Clock(config.epochs, steps)
        self.history, self.stopped = [], False
        self.best = (math.inf, None, None)  # (val loss, epoch, weights)
        self.stopped_early = False
        self.model = self.predict = None

    def begin(self, model):
        self.model, self.predict = model, make_predictor(model)

    def steps_done(self, epoch, step, logs):
        if self.on_progress:
            self.on_progress(Progress(
                epoch=epoch, epochs=self.config.epochs, step=step, steps=self.steps,
                fit_loss=logs.get("loss"), fit_accuracy=logs.get("accuracy"),
                elapsed=self.clock.elapsed(), eta=self.clock.eta(epoch, step),
            ))
        if self.should_stop and self.should_stop():
            self.stopped = True

    def epoch_end(self, epoch, logs):
        started = time.perf_counter()
        scores = {name: loss_and_accuracy(y, self.predict(x)) for name, (x, y) in self.scoring_sets.items()}
        train, val = scores["train"], scores.get("val", (None, None))
        record = EpochRecord(
            epoch=epoch, train_loss=train[0], train_accuracy=train[1], val_loss=val[0], val_accuracy=val[1],
            fit_loss=logs.get("loss"), fit_accuracy=logs.get("accuracy"),
            elapsed=self.clock.elapsed(), weights=layer_stats(self.model),  # ~4 ms: what the penalties do
        )
        self.history.append(record)
        if self.on_epoch:
            self.on_epoch(record, self.model)
        self.clock.after_epochs += time.perf_counter() - started  # the caller's hook too: saving, checkpoints
        self.clock.epochs_ended += 1
        self._early_stopping(record)

    def _early_stopping(self, record):
        if not self.config.patience or record.val_loss is None:
            return
        if record.val_loss < self.best[0]:
            self.best = (record.val_loss, record.epoch, self.model.get_weights())
        elif record.epoch - self.best[1] >= self.config.patience:
            self.stopped_early = True

    def restore_best(self) -> int | None:
        """Early stopping keeps the best epoch's weights; returns that epoch."""
        if not self.config.patience or self.best[1] is None:
            return None
        self.model.set_weights(self.best[2])
        return self.best[1]


def train_model(
    config: TrainConfig,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_epoch: Callable[[EpochRecord, keras.Model], None] | None = None,
) -> TrainResult:
    """Fit ``config`` on (x_train, y_train), scoring on (x_val, y_val) when given.

    ``should_stop`` is polled between calls of steps (``CALL_SECONDS``); when it returns
    True training ends there and the result, model included, is marked stopped rather than
    thrown away.
    ``on_epoch`` gets each finished epoch's record and the model (for the store and
    checkpoints). With ``config.patience`` the model that comes back has the weights of
    the epoch with the lowest validation loss.
    """
    validate(config)
    _check_arrays("x_train", x_train, "y_train", y_train)
    if x_val is not None:
        _check_arrays("x_val", x_val, "y_val", y_val)
    threads = configure_threads()
    keras.utils.set_random_seed(config.seed)
    precision = choose_precision(config.mixed_precision)
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
    try:
        model = fuse_batch_norm(build_model(config))  # layers take the policy when they are built
    finally:
        keras.mixed_precision.set_global_policy("float32")
    steps = math.ceil(len(x_train) / config.batch_size)
    model.compile(
        optimizer=make_optimizer(config, steps),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=["accuracy"],
    )
    sample = np.random.default_rng(config.seed).permutation(len(x_train))[:TRAIN_SAMPLE]
    scoring_sets: dict[str, tuple] = {"train": (x_train[sample], y_train[sample])}
    if x_val is not None:
        scoring_sets["val"] = (x_val, y_val)
    reporter = _Reporter(config, steps, scoring_sets, on_progress, on_epoch, should_stop)
    train_steps = make_train_steps(model, x_train, y_train, config.batch_size, config.augment,
                                   xla=xla_plan(config, model, steps))
    _fit(model, train_steps, len(x_train), steps, reporter)
    return TrainResult(
        model=model, history=reporter.history,
        status=Status.STOPPED if reporter.stopped else Status.COMPLETED,
        elapsed=reporter.clock.elapsed(), precision=precision, threads=threads,
        best_epoch=reporter.restore_best(), stopped_early=reporter.stopped_early, engine=engine_constants(config),
    )


def engine_constants(config: TrainConfig) -> dict:
    """The constants of ``config.py`` that shaped this training: bn_cnn's convolution blocks,
    and the warp's ranges when it augments."""
    used = {"bn_cnn_blocks": settings.BN_CNN_BLOCKS} if config.family == "bn_cnn" else {}
    return used | ({"affine_ranges": settings.AFFINE_RANGES} if config.augment else {})


def _fit(model, train_steps, images, steps, reporter):
    """Keras's ``fit`` loop, in calls of ``_Pace`` steps: the progress and the stop check
    come between calls."""
    pace, orders = _Pace(), epoch_orders(images, reporter.config.seed)
    reporter.begin(model)
    for epoch in range(1, reporter.config.epochs + 1):
        model.reset_metrics()
        order, done = next(orders), 0
        while done < steps and not reporter.stopped:
            count = min(pace.steps, steps - done)
            started = time.perf_counter()
            logs = {name: float(value) for name, value in train_steps(order, done, count).items()}
            pace.record(count, time.perf_counter() - started)
            done += count
            reporter.steps_done(epoch, done, logs)
        if reporter.stopped:
            break  # a half-finished epoch is not a data point on the curves
        reporter.epoch_end(epoch, logs)
        if reporter.stopped_early:
            break
    model.optimizer.finalize_variable_values(model.trainable_variables)  # EMA: as fit ends


def _check_arrays(x_name, x, y_name, y):
    if not isinstance(x, np.ndarray) or x.ndim != 3 or x.shape[1:] != (28, 28):
        raise ValueError(f"{x_name} must be an array of shape (N, 28, 28), got {getattr(x, 'shape', type(x))}")
    if y is None or len(y) != len(x) or len(x) == 0:
        raise ValueError(f"{y_name} must hold one label per image of {x_name} ({len(x)}), got {None if y is None else len(y)}")
    if np.min(y) < 0 or np.max(y) >= NUM_CLASSES:
        raise ValueError(f"{y_name} must be in [0, {NUM_CLASSES - 1}]")
