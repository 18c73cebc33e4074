import io

import numpy as np
import pytest
from PIL import Image

from kmnist_core.data import load_local
from kmnist_core.preprocess import EmptyImageError, ImageError, ink_map, prepare, read_image, to_kmnist


def _png(array, mode=None, fmt="PNG", **save):
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, fmt, **save) if mode else Image.fromarray(array).save(buffer, fmt, **save)
    return buffer.getvalue()


def _canvas_from(sample, size=280, offset=(40, 60), scale=0.6):
    """A KMNIST sample as the canvas would return it: black ink on white, RGBA, anywhere."""
    side = int(size * scale)
    big = np.asarray(Image.fromarray(sample).resize((side, side), Image.Resampling.BILINEAR))
    canvas = np.full((size, size, 4), 255, np.uint8)
    r, c = offset
    canvas[r:r + side, c:c + side, :3] = 255 - big[..., None]
    return canvas


@pytest.fixture(scope="module")
def samples(mini_dir):
    return load_local(mini_dir).x_test[:50]


def test_empty_canvas_asks_for_a_drawing():
    with pytest.raises(EmptyImageError, match="draw a character"):
        prepare(np.full((280, 280, 4), 255, np.uint8))
    with pytest.raises(EmptyImageError):
        prepare(np.zeros((280, 280, 4), np.uint8))  # fully transparent


def test_a_canvas_drawing_becomes_a_kmnist_like_sample(samples):
    correlations = []
    for sample in samples:
        result = prepare(_canvas_from(sample))
        assert result.shape == (28, 28) and result.dtype == np.uint8
        assert result.max() == 255 and result.mean() < 128  # white ink on black
        correlations.append(np.corrcoef(result.ravel().astype(float), sample.ravel().astype(float))[0, 1])
    assert np.mean(correlations) > 0.75  # ~0.84 measured: the same character, re-framed


def test_transparent_canvas_with_black_strokes_reads_like_an_opaque_one(samples):
    opaque = _canvas_from(samples[0])
    transparent = opaque.copy()
    transparent[..., 3] = 255 - opaque[..., 0]  # strokes opaque, paper transparent
    transparent[..., :3] = 0
    np.testing.assert_allclose(prepare(transparent).astype(int), prepare(opaque).astype(int), atol=40)


def test_white_on_black_upload_is_not_inverted(samples):
    ink = read_image(_png(samples[0]))
    assert ink.shape == (28, 28) and np.corrcoef(ink.ravel(), samples[0].ravel())[0, 1] > 0.99


def test_centre_of_mass_lands_where_the_dataset_has_it():
    ink = np.zeros((300, 300), np.float32)
    ink[20:60, 200:290] = 1.0  # a blob in the top-right corner
    result = to_kmnist(ink).astype(float)
    rows, cols = np.indices(result.shape)
    assert abs((result * rows).sum() / result.sum() - 13.9) < 1.5
    assert abs((result * cols).sum() / result.sum() - 13.3) < 1.5


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"hello, I am text pretending to be a PNG", "not an image"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "not an image|damaged"),
])
def test_odd_uploads_get_a_clear_message(data, message):
    with pytest.raises(ImageError, match=message):
        read_image(data)


def test_truncated_png_is_reported_damaged(samples):
    data = _png(np.kron(255 - samples[0], np.ones((20, 20), np.uint8)))
    with pytest.raises(ImageError, match=r"damaged|not an image"):
        read_image(data[: len(data) // 2])


def test_unusual_but_valid_formats_are_read(samples):
    sample = 255 - np.kron(samples[1], np.ones((4, 4), np.uint8))
    sixteen = (sample.astype(np.uint16) * 257)
    cmyk = Image.fromarray(sample).convert("CMYK")
    buffer = io.BytesIO()
    cmyk.save(buffer, "JPEG")
    frames = [Image.fromarray(sample), Image.fromarray(255 - sample)]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:])
    for data in (_png(sixteen), buffer.getvalue(), gif.getvalue(), _png(sample, fmt="BMP")):
        result = to_kmnist(read_image(data))
        assert result.shape == (28, 28) and result.max() > 200


def test_decompression_bombs_are_refused():
    data = _png(np.zeros((6000, 6000), np.uint8), optimize=True)
    with pytest.raises(ImageError, match=r"megapixels|not an image"):
        read_image(data)


@pytest.mark.parametrize("shape", [(0, 10), (5, 5, 2), (3,), (10, 10, 5)])
def test_wrong_array_shapes_are_refused(shape):
    with pytest.raises(ImageError):
        ink_map(np.zeros(shape, np.uint8))


def test_a_frame_along_the_canvas_edges_stays_ink_on_the_canvas():
    """Bug: a frame drawn along the canvas border made the border mostly dark, so the
    light/dark guess inverted the drawing. The canvas is always dark ink on white."""
    canvas = np.full((280, 280, 4), 255, np.uint8)
    for side in (np.s_[0:18, :], np.s_[-18:, :], np.s_[:, 0:18], np.s_[:, -18:]):
        canvas[(*side, slice(0, 3))] = 0
    sample = prepare(canvas, background="light")
    assert sample[:, :3].mean() > 100 and sample[10:18, 10:18].mean() < 20  # the frame inked, its inside empty
    guessed = prepare(canvas)  # an upload of the same picture still guesses from its border
    assert guessed[10:18, 10:18].mean() > sample[10:18, 10:18].mean()
