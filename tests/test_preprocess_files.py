"""Image files from disk (the CLI's ``predict``): what the path is, and how big, is checked
before a byte is read. Every refusal is one line naming the file."""

import io
import os
import threading
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from kmnist_core.preprocess import MAX_UPLOAD_BYTES, ImageError, read_image, read_image_file


def _png() -> bytes:
    glyph = np.full((64, 64), 255, np.uint8)
    glyph[10:54, 28:36] = 0
    buffer = io.BytesIO()
    Image.fromarray(glyph).save(buffer, "PNG")
    return buffer.getvalue()


def _refusal(path) -> str:
    with pytest.raises(ImageError) as error:
        read_image_file(path)
    assert "\n" not in str(error.value)
    return str(error.value)


def test_a_regular_file_reads_like_its_bytes(tmp_path):
    path = tmp_path / "glyph.png"
    path.write_bytes(_png())
    np.testing.assert_array_equal(read_image_file(path), read_image(_png()))


def test_a_named_pipe_is_refused_without_being_opened(tmp_path):
    """A writer stands ready with a valid PNG: had the pipe been opened for reading, the
    call would have read it and returned an image instead of refusing."""
    pipe = tmp_path / "pipe.png"
    os.mkfifo(pipe)
    writer = threading.Thread(target=pipe.write_bytes, args=(_png(),), daemon=True)
    writer.start()  # blocks in open() until a reader comes
    try:
        assert _refusal(pipe) == "pipe.png: not a regular file but a named pipe"
    finally:
        reader = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)  # let the writer finish
        writer.join()
        os.close(reader)


@pytest.mark.parametrize("link", [False, True], ids=["/dev/zero", "a symlink to it"])
def test_a_device_that_never_ends_is_refused(tmp_path, link):
    path = tmp_path / "zeros.png" if link else "/dev/zero"
    if link:
        path.symlink_to("/dev/zero")
    name = "zeros.png" if link else "zero"
    assert _refusal(path) == f"{name}: not a regular file but a character device"


def test_a_large_sparse_file_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "huge.png"
    with open(path, "wb") as handle:
        handle.truncate(20 * 2**20)  # 21 MB that take no space on disk
    tracemalloc.start()
    try:
        message = _refusal(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert message == f"huge.png: the file is 21.0 MB; the limit is {MAX_UPLOAD_BYTES / 1e6:.0f} MB"
    assert peak < 2**20, peak  # reading even the first 10 MB would show here


def test_a_directory_and_a_missing_file_are_named(tmp_path):
    (tmp_path / "folder.png").mkdir()
    assert _refusal(tmp_path / "folder.png") == "folder.png: not a regular file but a directory"
    assert _refusal(tmp_path / "nothing.png") == "nothing.png: cannot read it (No such file or directory)"


def test_what_read_image_refuses_is_named_too(tmp_path):
    (tmp_path / "notes.png").write_bytes(b"not an image at all")
    assert _refusal(tmp_path / "notes.png").startswith("notes.png: the file is not an image")
