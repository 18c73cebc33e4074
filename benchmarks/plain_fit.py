"""A plain Keras ``fit`` of a preset's network: the yardstick ``full_scale.py`` times the
engine against.

    python benchmarks/plain_fit.py --data-dir FOLDER --variant overfit [--epochs N]

What a Keras user would write for the same network on the same data: the preset's model
(``models.build_model``, stock layers: no fused batch normalization), optimizer, loss and
precision; numpy arrays into ``model.fit`` with Keras's defaults (``steps_per_execution=1``,
no XLA on a CPU) and a validation pass after every epoch (on the test split for the presets
that train on everything). `best`'s augmentation is mapped over a tf.data pipeline, as a
Keras user would add it. Prints one JSON line: seconds at the end of every epoch.
"""

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras

from kmnist_core.config import make_config
from kmnist_core.data import load_local
from kmnist_core.hardware import choose_precision, configure_threads
from kmnist_core.models import build_model
from kmnist_core.runner import fit_indices
from kmnist_core.training import make_dataset, make_optimizer


class EpochClock(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.start, self.ends = time.perf_counter(), []

    def on_epoch_end(self, epoch, logs=None):
        self.ends.append(time.perf_counter() - self.start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--variant", required=True)
    parser.add_argument("--epochs", type=int, default=0, help="0: the preset's own")
    args = parser.parse_args()
    configure_threads()
    config = make_config(args.variant, epochs=args.epochs or None)
    dataset = load_local(args.data_dir)
    fit, val = fit_indices(dataset.y_train, config)
    x, y = dataset.x_train[fit].astype("float32"), keras.utils.to_categorical(dataset.y_train[fit], 10)
    x_val, y_val = (dataset.x_test, dataset.y_test) if val is None else (dataset.x_train[val], dataset.y_train[val])
    validation = (x_val.astype("float32"), keras.utils.to_categorical(y_val, 10))
    keras.utils.set_random_seed(config.seed)
    precision = choose_precision(config.mixed_precision)
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
    model = build_model(config)
    model.compile(optimizer=make_optimizer(config, math.ceil(len(x) / config.batch_size)),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
                  metrics=["accuracy"])
    clock = EpochClock()
    if config.augment:
        model.fit(make_dataset(dataset.x_train[fit], dataset.y_train[fit], config.batch_size, shuffle=True,
                               seed=config.seed, augment=True),
                  validation_data=validation, epochs=config.epochs, callbacks=[clock], verbose=0)
    else:
        model.fit(x, y, batch_size=config.batch_size, validation_data=validation, epochs=config.epochs,
                  callbacks=[clock], verbose=0)
    print(json.dumps({"variant": args.variant, "precision": precision, "images": len(x), "epoch_ends": clock.ends}))


if __name__ == "__main__":
    main()
