"""Loading KMNIST: the official files from a local folder, or tensorflow-datasets.

The local folder wins when it is set (``KMNIST_DATA_DIR`` or ``data_dir=``) because these
machines are often offline; tensorflow-datasets is the online path for everyone else.
Nothing here ever substitutes made-up data: if neither source answers, the caller gets a
``DataUnavailableError`` within seconds that says how to fix it.
"""

import gzip
import os
import socket
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from .checks import ParameterError, check_float, check_int
from .classes import NUM_CLASSES

DATA_DIR_ENV = "KMNIST_DATA_DIR"
TFDS_DIR_ENV = "KMNIST_TFDS_DIR"
IMAGE_SHAPE = (28, 28)

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


class DataUnavailableError(RuntimeError):
    """Neither a local folder nor tensorflow-datasets can provide KMNIST."""


class DataFileError(ValueError):
    """A dataset file exists but is truncated, of the wrong kind or of the wrong shape."""


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


def default_data_dir():
    """The local folder to read, or None for tensorflow-datasets."""
    return os.environ.get(DATA_DIR_ENV) or None


def load_kmnist(data_dir=None, tfds_dir=None, probe_timeout=3.0) -> Dataset:
    """Load KMNIST from ``data_dir`` (or ``$KMNIST_DATA_DIR``), else from tensorflow-datasets."""
    check_float("probe_timeout", probe_timeout, 0.1, 60)
    data_dir = data_dir or os.environ.get(DATA_DIR_ENV)
    if data_dir:
        return load_local(data_dir)
    return load_tfds(tfds_dir or os.environ.get(TFDS_DIR_ENV), probe_timeout)


def load_local(data_dir) -> Dataset:
    """Read the official KMNIST files (npz, or MNIST-format idx .gz) from one folder."""
    folder = Path(data_dir).expanduser()
    if not folder.is_dir():
        raise DataUnavailableError(
            f"KMNIST data folder {str(folder)!r} does not exist. Point {DATA_DIR_ENV} (or "
            f"--data-dir) at a folder holding {', '.join(NPZ_FILES.values())}."
        )
    if all((folder / name).is_file() for name in NPZ_FILES.values()):
        arrays = {key: _read_npz(folder / name) for key, name in NPZ_FILES.items()}
        kind = "npz"
    elif all((folder / name).is_file() for name in IDX_FILES.values()):
        arrays = {key: _read_idx(folder / name) for key, name in IDX_FILES.items()}
        kind = "idx"
    else:
        missing = [n for n in NPZ_FILES.values() if not (folder / n).is_file()]
        raise DataUnavailableError(
            f"KMNIST data folder {str(folder)!r} lacks {', '.join(missing)} (and has no "
            f"complete set of {', '.join(IDX_FILES.values())} either)."
        )
    files = NPZ_FILES if kind == "npz" else IDX_FILES
    for split in ("train", "test"):
        _validate_split(arrays[f"{split}_images"], arrays[f"{split}_labels"],
                        files[f"{split}_images"], files[f"{split}_labels"])
    return Dataset(
        arrays["train_images"], arrays["train_labels"].astype(np.uint8),
        arrays["test_images"], arrays["test_labels"].astype(np.uint8),
        source=f"local folder {folder.resolve()} ({kind})",
    )


def _read_npz(path: Path) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "arr_0" not in archive.files:
                raise DataFileError(f"{path.name}: no array 'arr_0' inside (found {archive.files})")
            return archive["arr_0"]
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
        if isinstance(error, DataFileError):
            raise
        raise DataFileError(f"{path.name}: not a readable npz file ({error})") from None


def _read_idx(path: Path) -> np.ndarray:
    """Parse the MNIST idx format: magic (0x0803 images / 0x0801 labels), dims, uint8 data."""
    try:
        with gzip.open(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as error:
        raise DataFileError(f"{path.name}: not a readable gzip file ({error})") from None
    if len(raw) < 8 or raw[0:2] != b"\0\0" or raw[2] != 0x08 or raw[3] not in (1, 3):
        raise DataFileError(f"{path.name}: not an idx1/idx3 ubyte file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header + int(np.prod(shape)):
        raise DataFileError(f"{path.name}: truncated (header says shape {shape})")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def _validate_split(images, labels, images_name, labels_name):
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise DataFileError(
            f"{images_name}: expected uint8 images of shape (N, 28, 28), "
            f"got {images.dtype} {images.shape}"
        )
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataFileError(f"{labels_name}: expected a 1-D integer label array, got {labels.dtype} {labels.shape}")
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
    n_val = int(round(len(labels) * val_fraction))
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
