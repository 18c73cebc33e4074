"""Dataset files whose headers lie: refused by the header, before their data is read.

A few compressed megabytes of zeros can expand to gigabytes, so a file's size on disk
says nothing about what reading it costs. The bombs here hold 384 MB of zeros behind a
header that declares five million images: an unchecked reader holds at least that much.
"""

import gzip
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest

from kmnist_core.data import IDX_FILES, DataFileError, load_local

from conftest import synthetic_arrays, write_npz_folder

BOMB_IMAGES = 5_000_000
BOMB_ZEROS = 384 * 2**20  # bytes behind the bomb's header (1.5-2 MB once compressed)
PEAK_LIMIT_MB = 300


def _refusal_and_peak_mb(folder):
    """(the DataFileError's message, the most memory allocated at once while loading).

    tracemalloc sees Python's and NumPy's allocations, even those never touched; it
    measures this process alone, unlike ru_maxrss, which a forked child inherits."""
    tracemalloc.start()
    try:
        with pytest.raises(DataFileError) as error:
            load_local(folder)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return str(error.value), peak / 2**20


def _write_zeros(stream, count, chunk=2**20):
    zeros = bytes(chunk)
    for _ in range(count // chunk):
        stream.write(zeros)


def _idx_header(shape):
    return bytes([0, 0, 8, len(shape)]) + b"".join(int(d).to_bytes(4, "big") for d in shape)


def _write_idx_folder(folder):
    x, y = synthetic_arrays(2)
    for name in IDX_FILES.values():
        array = x if "images" in name else y
        with gzip.open(folder / name, "wb") as handle:
            handle.write(_idx_header(array.shape) + array.tobytes())
    return folder


def _npy_header(dtype, shape, version=(1, 0), padding=0):
    """The bytes of a .npy header, of any version and length: what a file may claim."""
    header = repr({"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
                   "shape": shape}).encode() + b" " * padding + b"\n"
    length = struct.pack("<H" if version == (1, 0) else "<I", len(header))
    return np.lib.format.magic(*version) + length + header


def test_an_idx_gzip_bomb_is_refused_by_its_header_in_little_memory(tmp_path):
    folder = _write_idx_folder(tmp_path)
    with gzip.open(folder / IDX_FILES["train_images"], "wb", compresslevel=1) as handle:
        handle.write(_idx_header((BOMB_IMAGES, 28, 28)))
        _write_zeros(handle, BOMB_ZEROS)
    message, peak = _refusal_and_peak_mb(folder)
    assert message == "train-images-idx3-ubyte.gz: header declares 5,000,000 images; the limit is 1,000,000"
    assert peak < PEAK_LIMIT_MB, peak


def test_an_npz_bomb_is_refused_by_its_header_in_little_memory(tmp_path):
    folder = write_npz_folder(tmp_path)
    with zipfile.ZipFile(folder / "kmnist-train-imgs.npz", "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("arr_0.npy", "w", force_zip64=True) as member:
            member.write(_npy_header(np.uint8, (BOMB_IMAGES, 28, 28)))
            _write_zeros(member, BOMB_ZEROS)
    message, peak = _refusal_and_peak_mb(folder)
    assert message == "kmnist-train-imgs.npz: header declares 5,000,000 images; the limit is 1,000,000"
    assert peak < PEAK_LIMIT_MB, peak


@pytest.mark.parametrize("file, content, message", [
    # 4 × 2^31 × 2^31 overflows int64 to 0 bytes, which an empty body used to "match"
    ("t10k-images-idx3-ubyte.gz", _idx_header((4, 2**31, 2**31)),
     "t10k-images-idx3-ubyte.gz: expected uint8 images of shape (N, 28, 28), got uint8 (4, 2147483648, 2147483648)"),
    ("t10k-labels-idx1-ubyte.gz", _idx_header((2_000_000,)),
     "t10k-labels-idx1-ubyte.gz: header declares 2,000,000 labels; the limit is 1,000,000"),
    ("t10k-images-idx3-ubyte.gz", _idx_header((50, 28, 28))[:10],
     "t10k-images-idx3-ubyte.gz: truncated inside its header"),
], ids=["dims that overflow", "labels past the limit", "header cut short"])
def test_idx_headers_are_checked_before_the_data(tmp_path, file, content, message):
    folder = _write_idx_folder(tmp_path)
    with gzip.open(folder / file, "wb") as handle:
        handle.write(content)
    with pytest.raises(DataFileError) as error:
        load_local(folder)
    assert str(error.value) == message


def test_an_idx_file_longer_than_its_header_is_refused(tmp_path):
    folder = _write_idx_folder(tmp_path)
    x, _ = synthetic_arrays(2)
    with gzip.open(folder / IDX_FILES["train_images"], "wb") as handle:
        handle.write(_idx_header(x.shape) + x.tobytes() + b"\0" * 784)
    with pytest.raises(DataFileError, match=r"^train-images-idx3-ubyte.gz: longer than its header declares"):
        load_local(folder)


@pytest.mark.parametrize("file, member, message", [
    ("kmnist-train-labels.npz", _npy_header(np.int64, (2_000_000,)),
     "kmnist-train-labels.npz: header declares 2,000,000 labels; the limit is 1,000,000"),
    ("kmnist-test-imgs.npz", _npy_header(np.uint8, (50, 28, 28), version=(3, 0)),
     "kmnist-test-imgs.npz: .npy format version 3.0 is not supported (1.0 or 2.0)"),
    ("kmnist-test-imgs.npz", _npy_header(np.uint8, (50, 28, 28), version=(2, 0), padding=100_000),
     "kmnist-test-imgs.npz: not a readable npz file (Header info length (100064) is large"),
], ids=["labels past the limit", "npy version 3.0", "100 kB header"])
def test_npz_headers_are_checked_before_the_data(synthetic_dir, file, member, message):
    with zipfile.ZipFile(synthetic_dir / file, "w") as archive:
        archive.writestr("arr_0.npy", member)
    with pytest.raises(DataFileError) as error:
        load_local(synthetic_dir)
    assert str(error.value).startswith(message) and "\n" not in str(error.value), str(error.value)


def test_a_fortran_ordered_npz_reads_the_same_images(synthetic_dir):
    x, _ = synthetic_arrays(20)
    np.savez(synthetic_dir / "kmnist-train-imgs.npz", arr_0=np.asfortranarray(x))
    np.testing.assert_array_equal(load_local(synthetic_dir).x_train, x)


@pytest.mark.parametrize("file", ["train-images-idx3-ubyte.gz", "kmnist-train-imgs.npz"])
def test_corrupt_compressed_data_is_named(tmp_path, file):
    """A damaged deflate stream raises zlib.error, which is neither OSError nor ValueError."""
    folder = _write_idx_folder(tmp_path) if file.endswith(".gz") else write_npz_folder(tmp_path)
    damaged = bytearray((folder / file).read_bytes())
    for at in range(60, len(damaged) // 2, 7):  # past the headers, into the compressed data
        damaged[at] ^= 0x55
    (folder / file).write_bytes(bytes(damaged))
    with pytest.raises(DataFileError, match=f"^{file}: not a readable"):
        load_local(folder)
