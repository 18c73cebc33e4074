"""Turning a drawing or an uploaded picture into what the model was trained on.

KMNIST samples are 28×28, white ink on black, the character filling the frame (98% of
kmnist-mini samples span 27-28 px along their longer side; median ink box 28×22) with its
centre of mass near (13.9, 13.3). A canvas
drawing is black on white, far larger, anywhere on the canvas. We crop to the ink, scale
the longer side to the dataset's size, and place the centre of mass where the dataset has
it. Pure NumPy + Pillow, so the app can preprocess without TensorFlow.
"""

import io
import os
import stat
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage

from .checks import check_choice, check_float, check_int
from .errors import KmnistError

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 25_000_000
PEN_FILTER_BUDGET = 2e8  # pixel × footprint visits of the pen filter: ~1 s; a 400-px ring took minutes, then MemoryError
WORKING_SIDE = 1024  # longer side a larger picture is reduced to as it is decoded: ample for a 28 px sample
# Large pictures are read one at a time, all in this one thread: a 25-megapixel one takes ~120 MB while
# it is decoded and reduced, and the C allocator keeps what a thread used for that thread's next use, so
# a class uploading giant pictures at once waits a second each and the server grows by one such read,
# not by one per session.
LARGE_READER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="large-picture")
INK_THRESHOLD = 0.15  # ink level (0..1) that counts as part of the character
TARGET_SIZE = 28  # longer side of the ink box after scaling: the dataset fills the frame
TARGET_CENTRE = (13.9, 13.3)  # (row, column) centre of mass in KMNIST, from kmnist-mini
STROKE_WIDTH = (1.4, 2.0, 2.7)  # KMNIST pen width in pixels of the 28×28 frame: p10, median, p90
NOT_A_FILE = {"d": "a directory", "p": "a named pipe", "c": "a character device", "b": "a block device",
              "s": "a socket"}  # by the first letter of stat.filemode()


class ImageError(KmnistError, ValueError):
    """The picture cannot be used; the message says why in plain words."""


class EmptyImageError(ImageError):
    """No character in the picture (blank canvas, blank upload)."""


def read_image(data: bytes) -> np.ndarray:
    """Decode an uploaded file into a float ink map (H, W) in [0, 1], ink = 1."""
    if not isinstance(data, (bytes, bytearray)):
        raise ImageError(f"expected the file's bytes, got {type(data).__name__}")
    if len(data) == 0:
        raise ImageError("the file is empty (0 bytes)")
    if len(data) > MAX_UPLOAD_BYTES:
        raise ImageError(_too_large(len(data)))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))  # reads the header only
            if image.width * image.height > MAX_PIXELS:
                raise ImageError(f"the image is {image.width}×{image.height} pixels; the limit is {MAX_PIXELS / 1e6:.0f} megapixels")
            image.seek(0)  # first frame of an animation
            if max(image.size) > WORKING_SIDE:
                return LARGE_READER.submit(_ink_of, image).result()
            return _ink_of(image)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):  # Pillow's own limit, from the header
        raise ImageError(f"the image is over {(Image.MAX_IMAGE_PIXELS or 0) / 1e6:.0f} megapixels; the limit is "
                         f"{MAX_PIXELS / 1e6:.0f} megapixels") from None
    except UnidentifiedImageError:
        raise ImageError("the file is not an image this app can read (PNG, JPEG, GIF, BMP or WebP)") from None
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise ImageError(f"the image is damaged or truncated ({error})") from None


def read_image_file(path) -> np.ndarray:
    """Read an image file like an upload: a float ink map (H, W) in [0, 1], ink = 1.

    What the path is gets checked before anything is read: a named pipe or a device would
    block or never end, and a sparse file can claim gigabytes at no cost on disk. Only a
    regular file of at most MAX_UPLOAD_BYTES is opened, and no more than that is read
    (one byte more, so that a file grown since gets ``read_image``'s size message).
    """
    name = Path(path).name
    try:
        info = os.stat(path)  # follows symlinks: what counts is what would be read
        if not stat.S_ISREG(info.st_mode):
            kind = NOT_A_FILE.get(stat.filemode(info.st_mode)[0], "something else")
            raise ImageError(f"{name}: not a regular file but {kind}")
        if info.st_size > MAX_UPLOAD_BYTES:
            raise ImageError(f"{name}: {_too_large(info.st_size)}")
        with open(path, "rb") as handle:
            data = handle.read(MAX_UPLOAD_BYTES + 1)
    except OSError as error:
        raise ImageError(f"{name}: cannot read it ({error.strerror})") from None
    try:
        return read_image(data)
    except ImageError as error:
        raise ImageError(f"{name}: {error}") from None


def _ink_of(image: Image.Image) -> np.ndarray:
    return ink_map(_to_rgba_array(_decoded(image)))


def _decoded(image: Image.Image) -> Image.Image:
    """``image`` loaded; one whose longer side exceeds WORKING_SIDE reduced below it.

    A 35 KB 5000×5000 PNG is 100 MB once decoded and gigabytes as float arrays, so a large
    picture is reduced before any arithmetic: a JPEG is decoded at 1/2..1/8 scale by its
    own decoder (``draft``), others are decoded once and reduced band by band (box
    average), each band converted on its own so that no second full-size copy exists.
    """
    factor = -(-max(image.size) // WORKING_SIDE)
    if factor > 1:
        image.draft(None, (image.width // factor, image.height // factor))
    image.load()
    factor = -(-max(image.size) // WORKING_SIDE)
    if factor == 1:
        return image
    mode = _reducible_mode(image)
    small = Image.new(mode, (-(-image.width // factor), -(-image.height // factor)))
    band = 64 * factor
    for top in range(0, image.height, band):
        strip = image.crop((0, top, image.width, min(top + band, image.height))).convert(mode)
        small.paste(strip.reduce(factor), (0, top // factor))
    small.info = dict(image.info)  # EXIF orientation, transparency
    image.close()  # frees the full-size decode now, whoever still holds the Image
    return small


def _reducible_mode(image) -> str:
    """The mode ``Image.reduce`` averages ``image`` in: its own, or the nearest one that keeps
    what ``ink_map`` uses (grey levels, transparency, 16-bit range)."""
    if image.mode in ("L", "LA", "RGB", "RGBA", "I", "F", "CMYK"):
        return image.mode
    if image.mode.startswith("I;16"):
        return "I"
    return "LA" if image.has_transparency_data else "L"


def _too_large(size) -> str:
    return f"the file is {size / 1e6:.1f} MB; the limit is {MAX_UPLOAD_BYTES / 1e6:.0f} MB"


def _to_rgba_array(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16-bit / float greyscale
        values = np.asarray(image, dtype=np.float64)
        span = values.max() - values.min()
        grey = np.zeros_like(values) if span == 0 else (values - values.min()) / span * 255
        image = Image.fromarray(grey.astype(np.uint8), "L")
    if image.mode == "CMYK":
        image = image.convert("RGB")
    return np.asarray(ImageOps.exif_transpose(image).convert("RGBA"))


def ink_map(pixels: np.ndarray, background: str = "guess") -> np.ndarray:
    """Any greyscale, RGB or RGBA array -> float ink (H, W) in [0, 1].

    Transparent pixels count as background (the canvas's empty area). The background is
    whichever of light or dark dominates the border, so black-on-white drawings and
    white-on-black KMNIST-style images both work.
    """
    pixels = np.asarray(pixels)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3, 4) or min(pixels.shape[:2]) < 1:
        raise ImageError(f"expected an image array (H, W), (H, W, 3) or (H, W, 4), got shape {pixels.shape}")
    values = pixels.astype(np.float64)
    if not np.isfinite(values).all():
        raise ImageError("the image contains non-finite values")
    if pixels.dtype != np.uint8:
        values = np.clip(values, 0, 255)
    channels = values.shape[2]
    grey = values[..., 0] if channels < 3 else values[..., :3] @ np.array([0.299, 0.587, 0.114])
    if channels == 4:
        alpha = values[..., 3] / 255.0
        if _border(alpha).mean() < 0.5:  # transparent paper: composite onto the opposite of the ink
            strokes = alpha > 0.5
            dark_ink = not strokes.any() or np.median(grey[strokes]) < 128
            paper = 255.0 if dark_ink else 0.0
        else:
            paper = 255.0
        grey = grey * alpha + paper * (1 - alpha)
    check_choice("background", background, ("guess", "light"))
    # The canvas is always dark ink on white: guessing there would invert a frame drawn
    # along its edges. Uploads may be either, so their border decides.
    light_background = background == "light" or np.median(_border(grey)) >= 128
    ink = (255 - grey) / 255 if light_background else grey / 255
    return np.clip(ink, 0, 1).astype(np.float32)


def _border(array):
    return np.concatenate([array[0], array[-1], array[:, 0], array[:, -1]])


def to_kmnist(ink: np.ndarray, size=TARGET_SIZE, centre=TARGET_CENTRE) -> np.ndarray:
    """Crop, scale and centre an ink map like a KMNIST sample: uint8 (28, 28), ink white."""
    size = check_int("size", size, 8, 28)
    check_float("centre[0]", centre[0], 4, 24)
    check_float("centre[1]", centre[1], 4, 24)
    ink = np.asarray(ink, dtype=np.float32)
    if ink.ndim != 2:
        raise ImageError(f"expected a 2-D ink map, got shape {ink.shape}")
    if not np.isfinite(ink).all():
        raise ImageError("the ink map contains non-finite values")
    ink = np.clip(ink, 0, 1)
    mask = ink > INK_THRESHOLD
    if mask.sum() < 3:
        raise EmptyImageError("there is no character to read: draw a character (or upload one)")
    crop = _crop_to_ink(_normalise_pen(_crop_to_ink(ink), size))
    scale = size / max(crop.shape)
    height, width = max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))
    small = np.asarray(Image.fromarray((crop * 255).astype(np.uint8), "L").resize((width, height),
                                                                                  Image.Resampling.LANCZOS),
                       dtype=np.float32)
    if small.max() <= 0:
        raise EmptyImageError("the marks are too faint to read: draw a character with a thicker pen")
    small = np.clip(small / np.percentile(small[small > 0], 99), 0, 1)  # full-strength ink, like the dataset
    # Put the centre of mass where the dataset has it, keeping the whole box in frame.
    r_idx, c_idx = np.indices(small.shape)
    mass = small.sum()
    top = int(np.clip(round(centre[0] - (small * r_idx).sum() / mass), 0, 28 - height))
    left = int(np.clip(round(centre[1] - (small * c_idx).sum() / mass), 0, 28 - width))
    sample = np.zeros((28, 28), np.float32)
    sample[top: top + height, left: left + width] = small
    return (sample * 255).round().astype(np.uint8)


def _crop_to_ink(ink):
    """The ink's bounding box, so that scaling makes the character fill the frame."""
    mask = ink > INK_THRESHOLD
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return ink[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]


def _normalise_pen(crop, size):
    """Thin a thick pen or thicken a thin one towards the dataset's stroke width.

    A canvas pen that looks right on screen is often two or three times KMNIST's relative
    stroke width once the drawing is shrunk to 28 px, and models read such blobs badly.
    Pens within the dataset's p10-p90 range are left alone; thinner ones grow to p10,
    thicker ones shrink to the median (measured on re-drawn kmnist-mini test images: blobs
    cost more accuracy than hairlines). The crop ends at the ink, so the paper around it
    is made explicit (padding, ``mode="constant"``): otherwise a stroke along the box's
    edge measures twice its width and the thinning eats it from the outside too.
    """
    mask = crop > 0.5
    if mask.sum() < 3:
        return crop
    width = _pen_width(mask)
    low, median, high = (w * max(crop.shape) / size for w in STROKE_WIDTH)
    target = low if width < low else median if width > high else width
    steps = round(abs(width - target) / 2)
    if steps == 0:
        return crop
    cost = crop.size * (2 * steps + 1) ** 2  # the filter visits every pixel's whole disk
    if cost > PEN_FILTER_BUDGET:  # a huge thick stroke: shrink first (both factors fall with the square of the scale)
        scale = (PEN_FILTER_BUDGET / cost) ** 0.25
        shape = max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))
        smaller = np.asarray(Image.fromarray((crop * 255).astype(np.uint8), "L").resize(shape, Image.Resampling.BOX),
                             dtype=np.float32) / 255
        return _normalise_pen(smaller, size)
    if width > target:
        steps = min(steps, int(width // 2) - 1)  # never erase a stroke entirely
        return ndimage.minimum_filter(crop, footprint=_disk(steps), mode="constant") if steps > 0 else crop
    padded = np.pad(crop, steps)  # room to grow at the edges
    return ndimage.maximum_filter(padded, footprint=_disk(steps))


def _pen_width(mask):
    """Pen width in pixels: twice the median distance-to-paper along the strokes' ridge.

    The mask is padded with paper first because ``distance_transform_edt`` counts the
    outside of the array as ink.
    """
    distance = ndimage.distance_transform_edt(np.pad(mask, 1))
    ridge = (distance > 0) & (distance >= ndimage.maximum_filter(distance, 3))
    return 2 * float(np.median(distance[ridge]))


def _disk(radius):
    """Round footprint: a round pen thins and grows evenly in every direction, and a stroke
    survives thinning by less than its half-width (a square eats diagonal strokes whole)."""
    rows, cols = np.ogrid[-radius: radius + 1, -radius: radius + 1]
    return rows * rows + cols * cols <= radius * radius


def prepare(pixels, background: str = "guess") -> np.ndarray:
    """Canvas or image array -> KMNIST-like uint8 (28, 28). Raises EmptyImageError."""
    return to_kmnist(ink_map(pixels, background))
