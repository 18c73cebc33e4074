"""Bad input, fuzzed: any canvas array, any training parameter, a corpus of odd uploads,
and run names that try to be paths. Each gives a result or a clear, expected error."""

import io
import os
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from kmnist_core import cli
from kmnist_core.checks import ParameterError
from kmnist_core.config import TrainConfig, make_config
from kmnist_core.preprocess import MAX_UPLOAD_BYTES, ImageError, prepare, read_image, to_kmnist
from kmnist_core.store import RunNotFoundError, RunStore

from conftest import PROJECT_ROOT

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- the canvas ------------------------------------------------------------------------------
def _check_prepared(pixels):
    try:
        sample = prepare(pixels)
    except ImageError as error:
        assert str(error)  # a message for the user, never an empty one
        return
    assert sample.shape == (28, 28) and sample.dtype == np.uint8 and sample.max() > 0


@st.composite
def canvases(draw):
    """RGBA canvases of any size with a drawn pattern: empty, full, one pixel, noise, strokes."""
    height, width = draw(st.integers(1, 400)), draw(st.integers(1, 400))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    pattern = draw(st.sampled_from(["empty", "transparent", "full", "one pixel", "noise", "strokes", "faint"]))
    canvas = np.full((height, width, 4), 255, np.uint8)
    if pattern == "transparent":
        canvas[...] = 0
    elif pattern == "full":
        canvas[..., :3] = 0
    elif pattern == "one pixel":
        canvas[rng.integers(height), rng.integers(width), :3] = 0
    elif pattern == "noise":
        canvas = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    elif pattern in ("strokes", "faint"):
        for _ in range(rng.integers(1, 6)):
            r, c = rng.integers(height), rng.integers(width)
            canvas[r: r + rng.integers(1, 60), c: c + rng.integers(1, 60), :3] = 0 if pattern == "strokes" else 230
    return canvas


@FUZZ
@given(canvases())
def test_any_canvas_gives_a_sample_or_a_clear_message(canvas):
    _check_prepared(canvas)


@FUZZ
@given(hnp.arrays(np.uint8, hnp.array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=40).map(
    lambda shape: (*shape[:2], 4))))
def test_any_small_rgba_array_gives_a_sample_or_a_clear_message(canvas):
    _check_prepared(canvas)


@FUZZ
@given(hnp.arrays(st.sampled_from([np.float32, np.float64, np.int16, np.int64, np.bool_, np.uint16]),
                  hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=12)))
def test_arrays_of_any_dtype_and_shape_never_crash(pixels):
    _check_prepared(pixels)


@FUZZ
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=30)))
def test_ink_maps_of_any_shape_never_crash(ink):
    try:
        assert to_kmnist(ink).shape == (28, 28)
    except ImageError as error:
        assert str(error)


# -- every training parameter ---------------------------------------------------------------
FIELDS = [name for name in TrainConfig.__dataclass_fields__ if name != "variant"]
ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(["dense", "cnn", "adam", "cosine", "512,256", "1e-3", ""]),
    st.lists(st.one_of(st.integers(-10, 5000), st.floats(), st.text(max_size=3)), max_size=10).map(tuple),
    st.lists(st.integers(1, 64), min_size=1, max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@FUZZ
@given(st.one_of(st.sampled_from(["underfit", "overfit", "dropout", "l1l2", "combined", "final", "best"]),
                 st.text(max_size=10), st.integers(), st.none()),
       st.dictionaries(st.sampled_from([*FIELDS, "hidden", "lr"]), ODD_VALUES, max_size=5))
def test_any_parameters_give_a_valid_config_or_name_the_parameter(variant, overrides):
    try:
        config = make_config(variant, **overrides)
    except ParameterError as error:
        named = [name for name in [*FIELDS, "variant", "hidden", "lr"] if name in str(error)]
        assert named, f"{error} names no parameter"
        return
    assert make_config(config.variant, **{k: v for k, v in config.to_dict().items() if k != "variant"}) == config


def test_a_bare_number_for_hidden_units_names_the_parameter():
    with pytest.raises(ParameterError, match="hidden_units"):
        make_config("overfit", hidden_units=512)


# -- a corpus of odd uploads ------------------------------------------------------------------
def _encode(array, fmt="PNG", mode=None, **options):
    buffer = io.BytesIO()
    image = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _png_header(width, height, bit_depth=8, colour=0):
    """A PNG that claims any dimensions: the bytes a decompression bomb starts with."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _animated_gif(frames):
    buffer = io.BytesIO()
    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(buffer, "GIF", save_all=True, append_images=images[1:], duration=50, loop=0)
    return buffer.getvalue()


def upload_corpus():
    """(label, bytes) pairs: at least 100 files a user or an attacker could upload."""
    rng = np.random.default_rng(0)
    glyph = np.full((64, 64), 255, np.uint8)
    glyph[10:54, 28:36] = 0
    glyph[28:36, 10:54] = 0
    good = _encode(glyph)
    corpus = [("zero bytes", b""), ("one byte", b"\0"), ("text renamed .png", b"hello, this is not an image\n"),
              ("html", b"<html><body>hi</body></html>"), ("json", b'{"image": [1, 2, 3]}'),
              ("svg", b'<svg xmlns="http://www.w3.org/2000/svg"><circle r="4"/></svg>'),
              ("pdf header", b"%PDF-1.4\n%%EOF"), ("zip", b"PK\x05\x06" + b"\0" * 18),
              ("elf binary", b"\x7fELF" + bytes(200)), ("png magic only", b"\x89PNG\r\n\x1a\n"),
              ("jpeg magic only", b"\xff\xd8\xff"), ("gif magic only", b"GIF89a"),
              ("over the size cap", b"\0" * (10 * 1024 * 1024 + 1)),
              ("huge dimensions", _png_header(100_000, 100_000)), ("one row 1e6 wide", _png_header(1_000_000, 1)),
              ("zero width", _png_header(0, 10)), ("16-bit header lies", _png_header(50, 50, 16, 0))]
    corpus += [(f"truncated png at {n}%", good[: len(good) * n // 100]) for n in range(5, 100, 5)]
    corpus += [(f"png with byte {i} flipped", good[:i] + bytes([good[i] ^ 0xFF]) + good[i + 1:])
               for i in range(8, min(len(good), 8 + 25 * 7), 7)]
    corpus += [(f"random bytes {n}", rng.integers(0, 256, n, dtype=np.uint8).tobytes()) for n in (1, 10, 100, 1000, 10_000, 100_000)]
    for fmt in ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF", "PPM", "ICO", "TGA"):
        for side in (3, 64, 250):
            picture = np.asarray(Image.fromarray(glyph).resize((side, side)))
            corpus.append((f"valid {fmt} {side}px", _encode(picture, fmt, mode="RGB" if fmt in ("JPEG", "PPM") else None)))
        corpus.append((f"blank {fmt}", _encode(np.full((32, 32), 255, np.uint8), fmt,
                                               mode="RGB" if fmt in ("JPEG", "PPM") else None)))
    corpus += [("CMYK JPEG", _encode(np.stack([glyph] * 3, -1), "JPEG", mode="CMYK")),
               ("16-bit PNG", _encode((glyph.astype(np.uint16) * 257), "PNG")),
               ("16-bit flat PNG", _encode(np.full((20, 20), 1000, np.uint16), "PNG")),
               ("float TIFF", _encode(glyph.astype(np.float32) / 255, "TIFF")),
               ("1-bit PNG", _encode(glyph, "PNG", mode="1")), ("palette PNG", _encode(glyph, "PNG", mode="P")),
               ("LA PNG", _encode(glyph, "PNG", mode="LA")), ("RGBA transparent PNG", _encode(np.zeros((30, 30, 4), np.uint8))),
               ("progressive JPEG", _encode(np.stack([glyph] * 3, -1), "JPEG", progressive=True)),
               ("animated GIF", _animated_gif([glyph, 255 - glyph, glyph])),
               ("animated GIF blank first frame", _animated_gif([np.full((64, 64), 255, np.uint8), glyph])),
               ("1x1 PNG", _encode(np.zeros((1, 1), np.uint8))), ("1x5000 PNG", _encode(np.zeros((1, 5000), np.uint8))),
               ("4000x4000 PNG", _encode(np.full((4000, 4000), 255, np.uint8))),
               ("noise PNG", _encode(rng.integers(0, 256, (100, 100, 3), dtype=np.uint8))),
               ("png followed by junk", good + b"junk" * 100), ("two pngs glued", good + good),
               ("EXIF rotated JPEG", _exif_rotated(glyph))]
    return corpus


def _exif_rotated(glyph):
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(glyph).convert("RGB").save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


def test_every_odd_upload_reads_or_gets_a_clear_message():
    """The README's "Odd uploads" row, exactly: of these 116 files 60 are read and 56
    refused with one line. Every valid picture is among those read; the oversized file and
    the headers claiming impossible sizes are among those refused."""
    read, refused = [], {}
    for label, data in upload_corpus():
        start = time.monotonic()
        try:
            ink = read_image(data)
            assert ink.ndim == 2 and ink.dtype == np.float32 and 0 <= ink.min() <= ink.max() <= 1, label
            read.append(label)
        except ImageError as error:
            assert str(error) and "\n" not in str(error), label
            refused[label] = str(error)
        assert time.monotonic() - start < 10, f"{label} took too long"  # no hang
    print(f"\nupload corpus: {len(read)} read, {len(refused)} refused")
    assert (len(read), len(refused)) == (60, 56), refused
    assert not [label for label in refused if label.startswith("valid ")], refused
    assert {"huge dimensions", "one row 1e6 wide", "zero width"} <= set(refused)
    assert refused["over the size cap"] == "the file is 10.5 MB; the limit is 10 MB"


def test_the_server_caps_uploads_at_the_same_size_as_the_engine():
    """The browser refuses a file over Streamlit's server.maxUploadSize (in MiB) before
    sending it; read_image refuses one over MAX_UPLOAD_BYTES. The limit must be one: what
    Streamlit reads from the project's .streamlit/config.toml, started from the project
    folder as run.sh does."""
    script = "from streamlit import config\nprint(config.get_option('server.maxUploadSize'))\n"
    result = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.strip().splitlines()[-1]) * 1024 * 1024 == MAX_UPLOAD_BYTES


# -- names are labels, never paths ----------------------------------------------------------------
NAMES = st.one_of(
    st.text(max_size=120),
    st.lists(st.sampled_from(["..", "/", "\\", "\0", ".", "~", "runs.sqlite", "run-000001", "*",
                              "%2e%2e", "C:", "\u202e", "名前", "\n", " "]), max_size=12).map("".join),
)


_ROOT = tempfile.TemporaryDirectory()  # hypothesis reruns the test body: one root for all examples


def _outside(root, home):
    return {(str(p), p.stat().st_size) for p in root.rglob("*") if home not in p.parents and p != home}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=NAMES, rename_to=NAMES)
def test_no_name_creates_or_deletes_a_file_outside_the_home(name, rename_to):
    root = Path(_ROOT.name)
    home = root / "home"
    store = RunStore(home)
    before = _outside(root, home)
    try:
        run_id = store.create_run(make_config("underfit"), name=name)
    except ParameterError:
        run_id = store.create_run(make_config("underfit"))
    store.save_array(run_id, "test_proba", np.zeros((1, 10)))
    try:
        store.rename(run_id, rename_to)
    except ParameterError:
        pass
    run = store.get(run_id)
    for reference in (run.name, name, rename_to):
        cli.main(["--home", str(home), "delete", reference])  # by name: exact match or a clear error
    try:
        store.delete(run_id)
    except RunNotFoundError:
        pass
    assert not store.run_dir(run_id).exists()
    assert _outside(root, home) == before
    assert all(p.parent == home or p.parent.parent == home for p in home.rglob("*"))


@pytest.fixture(scope="module", autouse=True)
def _bait():
    """Files next to the home that a path-like name might reach."""
    root = Path(_ROOT.name)
    for path in ("bait.txt", "runs.sqlite", "other/run-000001/model.keras", "other/secret"):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text("do not touch")
    os.chmod(root, 0o755)
    yield
