"""One KMNIST Explorer run as a single plain Keras script: the same architecture,
regularization, optimizer, learning-rate schedule, augmentation, training-set size and
early stopping, with the run's settings as the constants in the block below. Change one
and train again to see what it does.

    python train_run.py /path/to/kmnist      (this file's name in place of train_run.py)

The folder must hold the four official KMNIST files: kmnist-train-imgs.npz,
kmnist-train-labels.npz, kmnist-test-imgs.npz and kmnist-test-labels.npz. Needs only
NumPy and Keras 3. A rerun lands close to the run's accuracy, not on it: the validation
split and the training sample hold the same number of images of each class but not the
same images, and shuffling and augmentation draw other random numbers.

(In KMNIST Explorer this file is the template standalone_train.py: an export replaces
its settings block, and nothing else, with one run's settings.)
"""

import math
import sys
from pathlib import Path

import keras
import numpy as np
from keras import layers, regularizers

# -- The run's settings ------------------------------------------------------------------------
RUN = 'The "combined" configuration of KMNIST Explorer'
VARIANT = "combined"       # the study's preset these settings started from
FAMILY = "dense"           # "dense", "cnn" or "bn_cnn"
HIDDEN_UNITS = (512, 512)  # sizes of the hidden Dense layers
DROPOUT = 0.5              # fraction of hidden units dropped on each step
INPUT_DROPOUT = 0.3        # fraction of pixels dropped on each step
L1 = 1e-05                 # weight penalty on sum |w|
L2 = 0.0001                # weight penalty on sum w^2
OPTIMIZER = "adam"         # "adam", "adamw", "sgd", "rmsprop" or "adadelta"
LEARNING_RATE = 0.001      # peak learning rate
SCHEDULE = "constant"      # "constant", "cosine" or "onecycle"
LABEL_SMOOTHING = 0.0      # share of each target spread over the other classes
EMA = 0.0                  # momentum of the weights' moving average the model ends with (0: off)
AUGMENT = False            # randomly shift, rotate and zoom training images
MIXED_PRECISION = False    # compute in bfloat16 (fast on CPUs with AVX-512 BF16)
EPOCHS = 30                # passes over the training images
BATCH_SIZE = 64            # images per step
PATIENCE = 0               # early stopping: epochs without a better validation loss (0: off)
TRAIN_SIZE = 0             # training images used, a stratified sample (0: all)
FULL_TRAIN = False         # True: train on every training image, no validation split
VAL_FRACTION = 0.1         # of each class held out for validation
SEED = 0                   # fixes weights, split, shuffling and augmentation
BN_CNN_BLOCKS = ((16, 2), (64, 2), (128, 2))  # (filters, convolutions) per bn_cnn block
SHIFT, ROTATION, ZOOM = (0.07, 0.02, 0.07)  # augmentation: +- fraction of the side, +- turns, +- fraction of the size
# -- End of the run's settings -----------------------------------------------------------------

NUM_CLASSES = 10


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


def stratified_sample(labels, size, seed):
    """Sorted indices of `size` images, every class keeping its share (largest remainders
    round up, so the counts add up to `size`)."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * size / len(labels)
    taken = np.floor(exact).astype(int)
    taken[np.argsort(taken - exact, kind="stable")[:size - taken.sum()]] += 1
    chosen = [rng.permutation(np.flatnonzero(labels == label))[:count] for label, count in zip(classes, taken)]
    return np.sort(np.concatenate(chosen))


def split(labels):
    """Indices (trained on, validation or None). The validation split is taken from all the
    training images first, then TRAIN_SIZE images of the rest, as the app does."""
    if FULL_TRAIN:
        fit, held_out = np.arange(len(labels)), None
    else:
        fit, held_out = stratified_split(labels, VAL_FRACTION, SEED)
    if TRAIN_SIZE:
        if len(fit) < TRAIN_SIZE:
            sys.exit(f"TRAIN_SIZE must be at most {len(fit)} for this data (the training images left after "
                     f"the validation split), got {TRAIN_SIZE}")
        fit = fit[stratified_sample(labels[fit], TRAIN_SIZE, SEED)]
    return fit, held_out


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


def make_loss():
    return keras.losses.CategoricalCrossentropy(label_smoothing=LABEL_SMOOTHING)


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


class EarlyStopping(keras.callbacks.Callback):
    """Stop once the validation loss has not improved for PATIENCE epochs, and end with the
    best epoch's weights. The loss is measured as the app's curves measure it: dropout
    off, no weight penalty, no label smoothing."""

    def __init__(self, images, labels):
        super().__init__()
        self.images, self.labels = images, labels
        self.best_loss, self.best_epoch, self.best_weights = math.inf, 0, None

    def on_epoch_end(self, epoch, logs=None):
        probabilities = self.model.predict(self.images, batch_size=512, verbose=0)
        picked = np.clip(probabilities, 1e-7, 1.0)
        picked = picked[np.arange(len(self.labels)), self.labels] / picked.sum(axis=1)
        loss = float(-np.mean(np.log(picked)))
        if loss < self.best_loss:
            self.best_loss, self.best_epoch, self.best_weights = loss, epoch + 1, self.model.get_weights()
        elif epoch + 1 - self.best_epoch >= PATIENCE:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)
            print(f"early stopping: kept epoch {self.best_epoch}'s weights, the lowest validation loss "
                  f"({self.best_loss:.4f})")


def main():
    if len(sys.argv) != 2:
        sys.exit(f"usage: python {sys.argv[0]} /path/to/kmnist")
    x_train, y_train, x_test, y_test = load(sys.argv[1])
    one_hot = np.eye(NUM_CLASSES, dtype="float32")
    fit, held_out = split(y_train)
    validation, callbacks = None, []
    if held_out is not None:
        validation = (x_train[held_out].astype("float32"), one_hot[y_train[held_out]])
        if PATIENCE:
            callbacks.append(EarlyStopping(validation[0], y_train[held_out]))

    keras.utils.set_random_seed(SEED)
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if MIXED_PRECISION else "float32")
    model = build_model()  # layers take the precision policy when they are built
    keras.mixed_precision.set_global_policy("float32")
    steps = math.ceil(len(fit) / BATCH_SIZE)
    model.compile(optimizer=make_optimizer(steps), loss=make_loss(), metrics=["accuracy"])
    print(RUN)
    print(f"{FAMILY} model, {model.count_params():,} parameters; training on {len(fit):,} images")
    model.fit(Batches(x_train[fit], one_hot[y_train[fit]], SEED), validation_data=validation,
              validation_batch_size=512, epochs=EPOCHS, callbacks=callbacks, verbose=2)
    probabilities = model.predict(x_test.astype("float32"), batch_size=512, verbose=0)
    accuracy = float(np.mean(probabilities.argmax(axis=1) == y_test))
    print(f"test accuracy: {accuracy:.4f} ({len(y_test):,} test images)")


if __name__ == "__main__":
    main()
