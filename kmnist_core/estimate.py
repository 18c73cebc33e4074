"""How long a configuration will train on this machine, said before it starts.

The cost of one training image for one epoch is measured, not guessed: finished runs of
the same layers and regularizers on this machine give it (seconds / (images × epochs), median). With
none yet, a rough figure per family measured on kmnist-mini on a 2-core Intel host stands
in, made to err long, and the estimate says so: on an AVX2-only host convolutions run
about 4× slower, and a busy machine slower still.
"""

import statistics

from .config import TrainConfig, config_from_dict, images_after_split

# Seconds per training image per epoch as the app trains (scoring after each epoch included),
# 2-core Intel Xeon (AVX-512), quiet. dense: the slowest 512-512 presets at full scale,
# 1.6-1.7e-4 (l1l2, final; benchmarks/full_scale.py, README, 2026-11-29), where the 7e-5 of
# benchmarks/benchmark.py's bare steps on kmnist-mini said 113 s for runs of 176-290 s;
# the KMNIST simple CNN ~375 µs, bn_cnn ~690 µs (benchmark.py; `best` came within 12%).
ROUGH_COST = {"dense": 1.7e-4, "cnn": 3.8e-4, "bn_cnn": 7e-4}
LONG = 600.0  # seconds: past this the Train page says so before starting
# Before any run of an architecture the estimate errs long (issue 22: "about 11 s" for
# combined on 5,400 images × 30 epochs, while 3,000 images took 19 s on the learner's
# machine; this now says 49 s and 34 s): a margin for another host or load, and each
# epoch's fixed cost (scoring, the store's writes), which small runs feel most.
ROUGH_MARGIN = 1.25  # × ROUGH_COST
ROUGH_PER_EPOCH = 0.5  # seconds per epoch (per fold)
ROUGH_BASIS = ("rough, on the long side: no earlier run of these layers and regularizers here; the first one "
               "measures this machine")


def cost_kind(config) -> tuple:
    """What the per-image cost depends on: the family, the layer sizes, and whether the step
    draws dropout masks and adds weight penalties (at full scale XLA compiles a step
    without dropout whole and one with it only in part, ``training.xla_plan``: `dropout`
    trained at ~3x `overfit`'s time per image, benchmarks/full_scale.py)."""
    config = config if isinstance(config, TrainConfig) else config_from_dict(config)
    return config.family, config.hidden_units, config.draws_dropout, bool(config.l1 or config.l2)


def images_seen(config, train_images: int) -> int:
    """Training images × epochs the run will go through (k-fold trains k models)."""
    folds = config.kfold or 1
    per_model = train_images if not config.kfold else train_images * (folds - 1) // folds
    return per_model * config.epochs * folds


def seconds_per_image(runs, config):
    """(median measured cost, how many runs it came from) from finished runs of
    ``config``'s ``cost_kind``, or (None, 0)."""
    costs = [run.metrics["train_seconds"] / (run.metrics["train_images"] * run.metrics["epochs_done"])
             for run in runs
             if run.metrics and run.metrics.get("train_images") and run.metrics.get("epochs_done")
             and run.metrics.get("train_seconds") and not run.metrics.get("kfold")
             and cost_kind(run.config) == cost_kind(config)]
    return (statistics.median(costs), len(costs)) if costs else (None, 0)


def estimate(config, train_images: int, runs) -> tuple:
    """(seconds, basis): the expected training time and where the per-image cost came from."""
    cost, count = seconds_per_image(runs, config)
    if cost is None:
        epochs = config.epochs * (config.kfold or 1)
        return ROUGH_MARGIN * ROUGH_COST[config.family] * images_seen(config, train_images) \
            + ROUGH_PER_EPOCH * epochs, ROUGH_BASIS
    basis = f"from {count} earlier run{'s' if count != 1 else ''} of these layers and regularizers here"
    return cost * images_seen(config, train_images), basis


def within(config, train_images: int, seconds: float, limit: float = LONG) -> tuple:
    """(training images, epochs): either one, lowered alone, that brings a run expected to
    take ``seconds`` under ``limit`` (the time is proportional to both)."""
    share = limit / seconds
    images = int(train_images * share)
    step = 1000 if images >= 1000 else 100
    return max(100, images // step * step), max(1, int(config.epochs * share))


def train_images(config, available: int) -> int:
    """Images the model trains on: ``train_size``, or what the validation split leaves."""
    return config.train_size or images_after_split(config, available)
