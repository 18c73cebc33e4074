"""Candidate recipes for the `best` preset: what `benchmarks/benchmark.py --recipe NAME` trains.

A recipe is a set of overrides on the `best` preset (`preset`: the preset as it is now),
and optionally, while it trains, bn_cnn's convolution blocks (config.BN_CNN_BLOCKS), the
warp's ranges (config.AFFINE_RANGES), one extra augmentation after the warp (Cutout,
mixup, shear, elastic distortion, or only half the images warped), AdamW's weight decay, or
Keras' own unfused batch normalization. README "What was tried for `best`" lists each
recipe's result and the command that printed it.
"""

import itertools
from contextlib import contextmanager

import keras
import tensorflow as tf

from kmnist_core import config as settings
from kmnist_core import models, training

SIX = ((32, 2), (64, 2), (128, 2))  # bn_cnn as of 2026-11-28: two convolutions at 28x28
FIVE = ((32, 1), (64, 2), (128, 2))
FIRST16 = ((16, 2), (64, 2), (128, 2))  # half the filters at 28x28: a quarter of those layers' multiply-adds
NARROW = ((24, 1), (48, 2), (96, 2))
WIDE = ((48, 2), (96, 2), (192, 2))  # 1.5x the filters: ~2.2x the multiply-adds
WIDE_WARP, MILD_WARP = (0.10, 0.03, 0.10), (0.07, 0.02, 0.07)  # config.AFFINE_RANGES: shift, turns, zoom
_V1 = dict(family="bn_cnn", hidden_units=(), dropout=0.2, epochs=20, batch_size=64, learning_rate=3e-3,
           optimizer="adamw", schedule="onecycle", label_smoothing=0.1, augment=True, ema=0.0,
           blocks=SIX, affine=WIDE_WARP)  # the `best` preset as of 2026-11-28, pinned (`preset` follows changes)
# name: overrides of the `best` preset, plus "blocks" (config.BN_CNN_BLOCKS), "affine"
# (config.AFFINE_RANGES), "extra" (one more augmentation, EXTRAS), "weight_decay" (AdamW's) and
# "stock_bn" (train with Keras' unfused BatchNormalization: what models.fuse_batch_norm saves)
# "flatten" (the last block's 7x7 maps flattened into the classifier, not averaged) and
# "separable" (every convolution after the first block depthwise-separable: ~1/6 the multiply-adds)
RECIPES = {
    "preset": {},  # whatever `best` is now
    "v1": _V1,
    "v1-ema": dict(_V1, ema=0.99),  # the last ~100 steps' weights averaged
    "five": dict(_V1, blocks=FIVE),  # one convolution at 28x28: a quarter fewer multiply-adds
    "five-b128-15ep-ema": dict(_V1, blocks=FIVE, batch_size=128, learning_rate=4e-3, epochs=15, ema=0.99),
    "narrow-b128-30ep": dict(_V1, blocks=NARROW, batch_size=128, learning_rate=4e-3, epochs=30),
    "v1-30ep": dict(_V1, epochs=30),
    "v1-sgd": dict(_V1, optimizer="sgd", learning_rate=0.1),
    "v1-input-dropout": dict(_V1, input_dropout=0.1),
    "v1-wd0.05": dict(_V1, weight_decay=0.05),
    "v1-cutout": dict(_V1, extra="cutout"),
    "v1-mixup": dict(_V1, extra="mixup"),
    "v1-shear": dict(_V1, extra="shear"),
    "v1-elastic": dict(_V1, extra="elastic"),
    "v1-half-warped": dict(_V1, extra="half"),
    "mild": dict(_V1, affine=MILD_WARP),  # the warp's ranges cut by a third
    "five-mild": dict(_V1, blocks=FIVE, affine=MILD_WARP),
    "mild-stock-bn": dict(_V1, affine=MILD_WARP, stock_bn=True),  # Keras' own BatchNormalization, not fused
    # 2026-11-29, second screen: `mild` (the preset since then) with one change
    "mild-30ep": dict(_V1, affine=MILD_WARP, epochs=30),
    "wide-mild": dict(_V1, affine=MILD_WARP, blocks=WIDE),
    "milder": dict(_V1, affine=(0.05, 0.015, 0.05)),
    "mild-b32": dict(_V1, affine=MILD_WARP, batch_size=32, learning_rate=2e-3),
    "mild-dropout0.4": dict(_V1, affine=MILD_WARP, dropout=0.4),
    "mild-dropout0.5": dict(_V1, affine=MILD_WARP, dropout=0.5),
    "mild-flatten": dict(_V1, affine=MILD_WARP, flatten=True),
    "separable-mild": dict(_V1, affine=MILD_WARP, separable=True),
    "separable-wide-mild": dict(_V1, affine=MILD_WARP, separable=True, blocks=((32, 2), (96, 2), (192, 2))),
    # 2026-12-07, third screen: `best` within 3x the reference's time on AVX2, where its
    # multiply-adds per epoch (4x the reference's per image, 20 epochs against 12) set the time
    "preset-15ep": dict(blocks=SIX, epochs=15),  # the preset of that day (six-20ep) with 15 epochs
    # 2026-12-07, fourth screen: a quarter or half of the 28x28 layers' multiply-adds (where an AVX2
    # epoch spends most), with two more epochs to win back the accuracy 20 epochs lost
    "first16": dict(blocks=FIRST16, epochs=20),
    "first16-22ep": dict(blocks=FIRST16, epochs=22),  # the preset since 2026-12-07
    "five-22ep": dict(blocks=FIVE, epochs=22),
    "six-20ep": dict(blocks=SIX, epochs=20),  # the preset until 2026-12-07
}


class _LayersWith:
    """keras.layers with some layers replaced, for models.py's builder alone: keras.layers
    itself stays whole, so the isinstance checks elsewhere (the weight statistics) still work."""

    def __init__(self, **replaced):
        self.replaced = replaced

    def __getattr__(self, name):
        return self.replaced.get(name) or getattr(keras.layers, name)


def _separable_after_first_block(conv2d, first_block):
    """A stand-in for Conv2D: the first ``first_block`` convolutions built stay plain,
    every later one is a SeparableConv2D (a 3x3 per channel, then 1x1 across)."""
    built = itertools.count()

    def convolution(filters, kernel_size, kernel_regularizer=None, **kwargs):
        if next(built) < first_block:
            return conv2d(filters, kernel_size, kernel_regularizer=kernel_regularizer, **kwargs)
        return keras.layers.SeparableConv2D(filters, kernel_size, depthwise_regularizer=kernel_regularizer,
                                            pointwise_regularizer=kernel_regularizer, **kwargs)
    return convolution


def _cutout(moved, labels, original):
    """Half the images get a 10x10 square blanked at a random place (Cutout)."""
    n = tf.shape(moved)[0]
    centre_y, centre_x = tf.random.uniform([n, 1, 1], 0, 28), tf.random.uniform([n, 1, 1], 0, 28)
    pixel = tf.range(28, dtype=tf.float32) + 0.5
    inside = (tf.abs(pixel[None, :, None] - centre_y) < 5) & (tf.abs(pixel[None, None, :] - centre_x) < 5)
    return tf.where(inside & (tf.random.uniform([n, 1, 1]) < 0.5), 0.0, moved), labels


def _mixup(moved, labels, original):
    """Each image blended with another of the batch, labels alike (mixup, alpha 0.2)."""
    n = tf.shape(moved)[0]
    a, b = tf.random.gamma([n], 0.2), tf.random.gamma([n], 0.2)
    share = a / (a + b)
    partner = tf.random.shuffle(tf.range(n))
    blend = lambda x, s: s * x + (1 - s) * tf.gather(x, partner)  # noqa: E731
    return blend(moved, share[:, None, None]), blend(labels, share[:, None])


def _shear(moved, labels, original):
    """A second warp: a random slant of up to ±0.2 (x shifted by 0.2 × y at most)."""
    n = tf.shape(moved)[0]
    slant, zeros, ones = tf.random.uniform([n], -0.2, 0.2), tf.zeros([n]), tf.ones([n])
    transform = tf.stack([ones, slant, -slant * 13.5, zeros, ones, zeros, zeros, zeros], axis=1)
    sheared = tf.raw_ops.ImageProjectiveTransformV3(images=moved[..., None], transforms=transform,
                                                    output_shape=[28, 28], interpolation="BILINEAR",
                                                    fill_mode="CONSTANT", fill_value=0.0)
    return sheared[..., 0], labels


def _elastic(moved, labels, original):
    """A smooth random displacement of up to 2 px (a 4x4 grid of offsets, bicubically
    upsampled), resampled bilinearly: the classic handwriting distortion."""
    n = tf.shape(moved)[0]
    field = tf.image.resize(tf.random.uniform(tf.stack([n, 4, 4, 2]), -2.0, 2.0), [28, 28], method="bicubic")
    rows, cols = tf.meshgrid(tf.range(28, dtype=tf.float32), tf.range(28, dtype=tf.float32), indexing="ij")
    y, x = tf.reshape(rows + field[..., 0], [n, 784]), tf.reshape(cols + field[..., 1], [n, 784])
    y0, x0 = tf.floor(y), tf.floor(x)
    flat = tf.reshape(tf.pad(moved, [[0, 0], [1, 1], [1, 1]]), [n, 900])  # zero border

    def pixel(row, col):
        row = tf.clip_by_value(tf.cast(row, tf.int32) + 1, 0, 29)
        col = tf.clip_by_value(tf.cast(col, tf.int32) + 1, 0, 29)
        return tf.gather(flat, row * 30 + col, batch_dims=1)

    dy, dx = y - y0, x - x0
    out = (pixel(y0, x0) * (1 - dy) * (1 - dx) + pixel(y0, x0 + 1) * (1 - dy) * dx
           + pixel(y0 + 1, x0) * dy * (1 - dx) + pixel(y0 + 1, x0 + 1) * dy * dx)
    return tf.reshape(out, [n, 28, 28]), labels


def _half(moved, labels, original):
    """Only half the images warped, the rest kept sharp."""
    keep = tf.random.uniform([tf.shape(moved)[0], 1, 1]) < 0.5
    return tf.where(keep, original, moved), labels


EXTRAS = {"cutout": _cutout, "mixup": _mixup, "shear": _shear, "elastic": _elastic, "half": _half}


@contextmanager
def recipe_engine(overrides):
    """The engine set up for one recipe: bn_cnn's blocks, the warp's ranges, an extra
    augmentation after the warp, AdamW's weight decay, the batch normalization's kernel,
    the pooling before the classifier and the kind of convolution, all restored afterwards."""
    saved = (settings.BN_CNN_BLOCKS, settings.AFFINE_RANGES, training.random_affine, keras.optimizers.AdamW,
             training.fuse_batch_norm, models.layers)
    settings.BN_CNN_BLOCKS = overrides.pop("blocks", settings.BN_CNN_BLOCKS)
    settings.AFFINE_RANGES = overrides.pop("affine", settings.AFFINE_RANGES)
    extra = overrides.pop("extra", None)
    if extra:
        warp = saved[2]
        training.random_affine = lambda images, labels: EXTRAS[extra](*warp(images, labels), images)
    if "weight_decay" in overrides:
        decay, adamw = overrides.pop("weight_decay"), saved[3]
        keras.optimizers.AdamW = lambda weight_decay=None, **kwargs: adamw(weight_decay=decay, **kwargs)
    if overrides.pop("stock_bn", False):
        training.fuse_batch_norm = lambda model: model
    replaced = {}
    if overrides.pop("flatten", False):
        replaced["GlobalAveragePooling2D"] = keras.layers.Flatten
    if overrides.pop("separable", False):
        replaced["Conv2D"] = _separable_after_first_block(keras.layers.Conv2D, settings.BN_CNN_BLOCKS[0][1])
    if replaced:
        models.layers = _LayersWith(**replaced)
    try:
        yield overrides
    finally:
        (settings.BN_CNN_BLOCKS, settings.AFFINE_RANGES, training.random_affine, keras.optimizers.AdamW,
         training.fuse_batch_norm, models.layers) = saved
