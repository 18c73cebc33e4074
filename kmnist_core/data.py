"""Loading KMNIST: the official files from a local folder, or tensorflow-datasets.

A local folder wins when there is one (``data_dir=``, else ``default_data_dir()``:
``KMNIST_DATA_DIR`` or the kmnist-mini folder beside the project) because these machines
are often offline; tensorflow-datasets is the online path for everyone else.
Nothing here ever substitutes made-up data: if neither source answers, the caller gets a
``DataUnavailableError`` within seconds that says how to fix it.
"""

import gzip
import os
import socket
import threading
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from .checks import ParameterError, check_float, check_int
from .classes import NUM_CLASSES
from .errors import KmnistError

DATA_DIR_ENV = "KMNIST_DATA_DIR"
TFDS_DIR_ENV = "KMNIST_TFDS_DIR"
IMAGE_SHAPE = (28, 28)
# The most images (or labels) one file may declare. Full KMNIST has 70,000 images and
# Kuzushiji-49 270,912; a million leaves room for such sets while bounding what a file's
# header can make us allocate: 784 MB of pixels, 8 MB of int64 labels. Headers are
# checked against it before any data is read, so a small compressed file that claims
# millions of images is refused instead of being decompressed into gigabytes.
MAX_IMAGES = 1_000_000
NPY_HEADER_READERS = {  # the .npy format versions numpy.lib.format has public readers for
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}

NPZ_FILES = {
    "train_images": "kmnist-train-imgs.npz",
    "train_labels": "kmnist-train-labels.npz",
    "test_images": "kmnist-test-imgs.npz",
    "test_labels": "kmnist-test-labels.npz",
}
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
FILE_SETS = {"npz": NPZ_FILES, "idx": IDX_FILES}
# The project's sibling ../shared/data/kmnist-mini (8,000 real images), found from the
# package's own location so the CLI, the app and the tests all see the folder run.sh uses.
SIBLING_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "kmnist-mini"


class DataUnavailableError(KmnistError, RuntimeError):
    """Neither a local folder nor tensorflow-datasets can provide KMNIST."""


class DataFileError(KmnistError, ValueError):
    """A dataset file exists but is truncated, of the wrong kind or of the wrong shape."""


class DataMismatchError(KmnistError, ValueError):
    """A run would train on other data than it was queued with."""


@dataclass(frozen=True)
class Dataset:
    x_train: np.ndarray  # uint8 (N, 28, 28), white ink on black
    y_train: np.ndarray  # uint8 (N,)
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # human-readable: where the arrays came from

    def class_counts(self) -> dict:
        return {
            "train": np.bincount(self.y_train, minlength=NUM_CLASSES).tolist(),
            "test": np.bincount(self.y_test, minlength=NUM_CLASSES).tolist(),
        }


def load_kmnist(data_dir=None, tfds_dir=None, probe_timeout=3.0) -> Dataset:
    """Load KMNIST from ``data_dir``, else ``default_data_dir()``, else tensorflow-datasets."""
    check_float("probe_timeout", probe_timeout, 0.1, 60)
    data_dir = data_dir or default_data_dir()
    if data_dir:
        return load_local(data_dir)
    return load_tfds(tfds_dir or os.environ.get(TFDS_DIR_ENV), probe_timeout)


def default_data_dir():
    """The folder KMNIST is read from when none is given, or None for tensorflow-datasets.

    ``$KMNIST_DATA_DIR`` when it is set; set to an empty string it means "no local folder"
    (tensorflow-datasets only, and how tests hide the sibling). Otherwise the kmnist-mini
    folder beside the project (``SIBLING_DATA_DIR``, run.sh's fallback too) when it holds
    a complete set of the official files, so the CLI works without exporting anything.
    """
    chosen = os.environ.get(DATA_DIR_ENV)
    if chosen is not None:
        return Path(chosen) if chosen else None
    return SIBLING_DATA_DIR if _official_format(SIBLING_DATA_DIR) else None


def load_local(data_dir) -> Dataset:
    """Read the official KMNIST files (npz, or MNIST-format idx .gz) from one folder."""
    folder = Path(data_dir).expanduser()
    if not folder.is_dir():
        raise DataUnavailableError(
            f"KMNIST data folder {str(folder)!r} does not exist. Point {DATA_DIR_ENV} (or "
            f"--data-dir) at a folder holding {', '.join(NPZ_FILES.values())}."
        )
    kind = _official_format(folder)
    if kind is None:
        missing = [n for n in NPZ_FILES.values() if not (folder / n).is_file()]
        raise DataUnavailableError(
            f"KMNIST data folder {str(folder)!r} lacks {', '.join(missing)} (and has no "
            f"complete set of {', '.join(IDX_FILES.values())} either)."
        )
    files = FILE_SETS[kind]
    read = _read_npz if kind == "npz" else _read_idx
    arrays = {key: read(folder / name, _kind(key)) for key, name in files.items()}
    for split in ("train", "test"):
        _validate_split(arrays[f"{split}_images"], arrays[f"{split}_labels"],
                        files[f"{split}_images"], files[f"{split}_labels"])
    return Dataset(
        arrays["train_images"], arrays["train_labels"].astype(np.uint8),
        arrays["test_images"], arrays["test_labels"].astype(np.uint8),
        source=f"local folder {folder.resolve()} ({kind})",
    )


def _official_format(folder: Path):
    """"npz" or "idx": the format ``folder`` holds a complete set of files in, else None."""
    for kind, files in FILE_SETS.items():
        if all((folder / name).is_file() for name in files.values()):
            return kind
    return None


def _kind(key) -> str:
    """"images" or "labels": what a file of ``NPZ_FILES`` / ``IDX_FILES`` must hold."""
    return key.rsplit("_", 1)[1]


def _read_npz(path: Path, kind: str) -> np.ndarray:
    """Read ``arr_0`` of an npz, refusing it by its .npy header before reading its data."""
    try:
        with zipfile.ZipFile(path) as archive:
            if "arr_0.npy" not in archive.namelist():
                found = [name.removesuffix(".npy") for name in archive.namelist()]
                raise DataFileError(f"{path.name}: no array 'arr_0' inside (found {found})")
            with archive.open("arr_0.npy") as member:
                shape, fortran_order, dtype = _read_npy_header(member, path.name)
                _check_declared(path.name, kind, dtype, shape)
                data = _read_exactly(member, dtype.itemsize * int(np.prod(shape)), path.name)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as error:
        if isinstance(error, DataFileError):
            raise
        raise DataFileError(f"{path.name}: not a readable npz file ({_one_line(error)})") from None
    return np.frombuffer(data, dtype).reshape(shape, order="F" if fortran_order else "C")


def _read_npy_header(member, name):
    """(shape, fortran_order, dtype) from a .npy stream, positioned at its data."""
    version = np.lib.format.read_magic(member)
    if version not in NPY_HEADER_READERS:
        raise DataFileError(f"{name}: .npy format version {version[0]}.{version[1]} is not supported (1.0 or 2.0)")
    return NPY_HEADER_READERS[version](member)


def _read_idx(path: Path, kind: str) -> np.ndarray:
    """Parse the MNIST idx format: magic (0x0803 images / 0x0801 labels), dims, uint8 data.

    The header is read and checked first; then exactly the bytes it declares are
    decompressed, so the file's size on disk says nothing about what it costs to read."""
    try:
        with gzip.open(path, "rb") as handle:
            magic = handle.read(4)
            if len(magic) < 4 or magic[0:2] != b"\0\0" or magic[2] != 0x08 or magic[3] not in (1, 3):
                raise DataFileError(f"{path.name}: not an idx1/idx3 ubyte file (bad magic number)")
            dims = handle.read(4 * magic[3])
            if len(dims) < 4 * magic[3]:
                raise DataFileError(f"{path.name}: truncated inside its header")
            shape = tuple(int.from_bytes(dims[i: i + 4], "big") for i in range(0, len(dims), 4))
            _check_declared(path.name, kind, np.dtype(np.uint8), shape)
            data = _read_exactly(handle, int(np.prod(shape)), path.name)
    except (zlib.error, OSError, EOFError) as error:
        raise DataFileError(f"{path.name}: not a readable gzip file ({_one_line(error)})") from None
    return np.frombuffer(data, np.uint8).reshape(shape)


def _check_declared(name, kind, dtype, shape):
    """Refuse a file by what its header declares, before any of its data is read."""
    if dtype.hasobject:
        raise DataFileError(f"{name}: holds Python objects, which this app never unpickles")
    if kind == "images" and (dtype != np.uint8 or len(shape) != 3 or shape[1:] != IMAGE_SHAPE):
        raise DataFileError(f"{name}: expected uint8 images of shape (N, 28, 28), got {dtype} {shape}")
    if kind == "labels" and (len(shape) != 1 or not np.issubdtype(dtype, np.integer)):
        raise DataFileError(f"{name}: expected a 1-D integer label array, got {dtype} {shape}")
    if shape[0] > MAX_IMAGES:
        raise DataFileError(f"{name}: header declares {shape[0]:,} {kind}; the limit is {MAX_IMAGES:,}")


def _read_exactly(stream, count, name) -> bytes:
    """The ``count`` bytes a header declared, and not one more: a stream is never read to
    its end, because a few compressed megabytes can expand to any size."""
    data = stream.read(count)
    if len(data) < count:
        raise DataFileError(f"{name}: truncated (header declares {count:,} bytes of data, found {len(data):,})")
    if stream.read(1):
        raise DataFileError(f"{name}: longer than its header declares ({count:,} bytes of data)")
    return data


def _one_line(error) -> str:
    """A library's message as one line (numpy's header errors span two)."""
    return " ".join(str(error).split())


def _validate_split(images, labels, images_name, labels_name):
    """What no single header can show: matching counts and labels within the classes."""
    if len(images) == 0 or len(images) != len(labels):
        raise DataFileError(
            f"{images_name} has {len(images)} images but {labels_name} has {len(labels)} labels"
        )
    if labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise DataFileError(f"{labels_name}: labels must be in [0, 9], found {labels.min()}..{labels.max()}")


def load_tfds(tfds_dir=None, probe_timeout=3.0) -> Dataset:
    """tensorflow-datasets path: use its cache if prepared, download only if the host answers."""
    try:
        import tensorflow_datasets as tfds
        from tensorflow_datasets.image_classification.mnist import KMNIST
    except ImportError as error:
        raise DataUnavailableError(f"tensorflow-datasets is not importable ({error}). {_fixes(None)}") from None
    builder = tfds.builder("kmnist", data_dir=tfds_dir)
    if not builder.is_prepared():
        host = urlparse(KMNIST.URL).hostname
        if not _host_reachable(host, 80, probe_timeout):
            raise DataUnavailableError(
                f"KMNIST is not available: {DATA_DIR_ENV} is not set and tensorflow-datasets "
                f"has no cached copy and cannot reach {host}. {_fixes(builder.data_dir_root)}"
            )
        builder.download_and_prepare()
    splits = {}
    for split in ("train", "test"):
        batch = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1, as_supervised=True))
        images, labels = batch
        splits[split] = (images[..., 0].astype(np.uint8), labels.astype(np.uint8))
    return Dataset(*splits["train"], *splits["test"], source=f"tensorflow-datasets ({builder.data_dir})")


def _fixes(tfds_root) -> str:
    cache = f" (cache: {tfds_root})" if tfds_root else ""
    return (
        f"Fix: set {DATA_DIR_ENV} (or --data-dir) to a folder with the official KMNIST files "
        f"({', '.join(NPZ_FILES.values())}), or go online once so tensorflow-datasets can "
        f"download and cache it{cache}."
    )


def _host_reachable(host, port, timeout) -> bool:
    """TCP connect in a daemon thread, because DNS lookups ignore socket timeouts."""
    result = []

    def connect():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def stratified_split(labels, val_fraction=0.1, seed=0):
    """Indices (train, val) holding out ``val_fraction`` of every class."""
    from sklearn.model_selection import train_test_split

    check_float("val_fraction", val_fraction, 0.0, 0.5, low_inclusive=False)
    check_int("seed", seed, 0, 2**32 - 1)
    labels = np.asarray(labels)
    n_val = round(len(labels) * val_fraction)
    if n_val < NUM_CLASSES or len(labels) - n_val < NUM_CLASSES:
        raise ParameterError(
            f"val_fraction={val_fraction:g} of {len(labels)} images leaves fewer than one image "
            f"per class on one side; use a larger dataset or a val_fraction in (0, 0.5]"
        )
    indices = np.arange(len(labels))
    train_idx, val_idx = train_test_split(indices, test_size=n_val, stratify=labels, random_state=seed)
    return np.sort(train_idx), np.sort(val_idx)


def stratified_sample(labels, size, seed=0):
    """Sorted indices of ``size`` images keeping every class's share (the training-set-size
    knob: fewer images, same class balance)."""
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels)
    check_int("size", size, NUM_CLASSES, len(labels))
    if size == len(labels):
        return np.arange(len(labels))
    chosen, _ = train_test_split(np.arange(len(labels)), train_size=size, stratify=labels, random_state=seed)
    return np.sort(chosen)


def stratified_kfold(labels, k=5, seed=0):
    """List of k (train, val) index pairs; every class is spread evenly over the folds."""
    from sklearn.model_selection import StratifiedKFold

    check_int("k", k, 2, 20)
    check_int("seed", seed, 0, 2**32 - 1)
    labels = np.asarray(labels)
    smallest = np.bincount(labels, minlength=NUM_CLASSES).min()
    if k > smallest:
        raise ParameterError(f"k must be in [2, {smallest}] for this data (smallest class has {smallest} images), got {k}")
    folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(train, val) for train, val in folds.split(np.zeros(len(labels)), labels)]


def examples_per_class(images, labels, per_class=5, seed=0) -> dict:
    """A few real images of each class, for galleries and the reference strip."""
    check_int("per_class", per_class, 1, 100)
    rng = np.random.default_rng(seed)
    examples = {}
    for index in range(NUM_CLASSES):
        candidates = np.flatnonzero(labels == index)
        chosen = rng.choice(candidates, size=min(per_class, len(candidates)), replace=False)
        examples[index] = images[np.sort(chosen)]
    return examples
