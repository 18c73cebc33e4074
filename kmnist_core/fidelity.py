"""Drawing fidelity: does the canvas path read a character as well as the dataset path?

``as_canvas_drawing`` re-renders a real KMNIST sample the way the canvas would hand it to
us — upscaled, black ink on white RGBA, somewhere on the canvas at some size, with a
thinner or thicker pen — so a test can run it back through ``preprocess.prepare`` and
compare a model's accuracy on both versions of the same images.
"""

import numpy as np
from PIL import Image
from scipy import ndimage

from .checks import check_int
from .preprocess import prepare

CANVAS = 280


def as_canvas_drawing(sample: np.ndarray, rng: np.random.Generator, canvas: int = CANVAS) -> np.ndarray:
    check_int("canvas", canvas, 56, 2000)
    side = int(canvas * rng.uniform(0.35, 0.95))
    ink = np.asarray(Image.fromarray(sample).resize((side, side), Image.Resampling.BICUBIC))
    pen = rng.integers(-1, 3)  # thinner, as drawn, thicker, much thicker
    width = max(3, side // 40) | 1  # a filter size that scales with the drawing
    if pen < 0:
        ink = ndimage.grey_erosion(ink, size=(width, width))
    elif pen > 0:
        ink = ndimage.grey_dilation(ink, size=(width * pen, width * pen))
    rgba = np.full((canvas, canvas, 4), 255, np.uint8)
    top, left = rng.integers(0, canvas - side + 1, size=2)
    rgba[top:top + side, left:left + side, :3] = 255 - ink[..., None]
    return rgba


def drawn_versions(images: np.ndarray, seed: int = 0) -> np.ndarray:
    """The canvas round trip for every image: (N, 28, 28) -> (N, 28, 28)."""
    rng = np.random.default_rng(seed)
    return np.stack([prepare(as_canvas_drawing(image, rng)) for image in images])
