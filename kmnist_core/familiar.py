"""Is a drawing like the characters a model learnt from? A classifier must name one of its
ten classes for whatever it is shown, and often does so at 99-100% for a circle, lines
along the canvas's edges or a blob in a corner: its confidence says nothing about that.

Distance does. A sample is compared with its nearest training image twice: in pixels
(what it looks like, the same for every model) and in the model's last hidden layer (what
the model makes of it; where the nearest-neighbour view searches). Each distance is set
against the same distance for real characters the model never saw (held-out test images,
up to ``CALIBRATION_IMAGES``): beyond their ``QUANTILE`` in either space, the sample is
unlike every class the model knows, and the Draw page says so.

Measured on kmnist-mini with `combined` trained 2 epochs (tests/test_familiar.py, limits from
1,000 test images): a circle 1.12× the limit, lines along all four edges 1.06×, along the top
and bottom 1.04×, a corner blob 1.75× (in pixels alone: 1.10×, 1.03×, 0.79×, 1.69×); over
the limit: 4.3% of the other 1,000 test images and 3.0% of 300 of them redrawn through the
canvas path. The margins are thin: a caution, not a verdict."""

from dataclasses import dataclass

import numpy as np

from .checks import check_float, check_int

QUANTILE = 0.98  # farther than 98 of 100 real held-out characters: unlike every class
CALIBRATION_IMAGES = 1000  # held-out images the limits are taken from (a sample, at full scale)
_CHUNK = 2048  # reference images per matrix product: bounded memory at 60,000 training images


def nearest_pixel_distances(images, reference) -> np.ndarray:
    """Each (28, 28) image's Euclidean distance (ink in 0..1) to its nearest ``reference`` image."""
    queries = np.asarray(images, np.float32).reshape(len(images), -1) / 255.0
    best = np.full(len(queries), np.inf, np.float32)
    lengths = (queries ** 2).sum(axis=1)
    for start in range(0, len(reference), _CHUNK):
        block = np.asarray(reference[start:start + _CHUNK], np.float32).reshape(-1, queries.shape[1]) / 255.0
        squared = lengths[:, None] + (block ** 2).sum(axis=1)[None] - 2 * queries @ block.T
        best = np.minimum(best, squared.min(axis=1))
    return np.sqrt(np.maximum(best, 0.0))


@dataclass(frozen=True)
class Limits:
    """The ``quantile`` of held-out characters' distances to their nearest training image."""

    pixels: float
    features: float
    quantile: float


def calibrate(index, x_train, x_held_out, quantile=QUANTILE, sample=CALIBRATION_IMAGES, seed=0) -> Limits:
    """The limits for ``index`` (a ``explain.NeighbourIndex`` of ``x_train``), from up to
    ``sample`` of the held-out images ``x_held_out``."""
    from .explain import embed

    quantile = check_float("quantile", quantile, 0.5, 1.0)
    sample = check_int("sample", sample, 10, 100_000)
    chosen = np.random.default_rng(seed).permutation(len(x_held_out))[:sample]
    held_out = np.asarray(x_held_out)[chosen]
    return Limits(pixels=float(np.quantile(nearest_pixel_distances(held_out, x_train), quantile)),
                  features=float(np.quantile(index.farthest_from_all(embed(index.model, held_out)), quantile)),
                  quantile=quantile)


def strangeness(index, x_train, images, limits: Limits) -> np.ndarray:
    """For (N, 28, 28) images: the larger of their two distances, each over its limit.
    Above 1: farther from every training image than ``limits.quantile`` of real characters."""
    from .explain import embed

    images = np.asarray(images)
    return np.maximum(nearest_pixel_distances(images, x_train) / limits.pixels,
                      index.farthest_from_all(embed(index.model, images)) / limits.features)
