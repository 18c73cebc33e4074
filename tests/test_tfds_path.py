"""The tensorflow-datasets path, the default on a machine without a local KMNIST folder:
``load_tfds`` downloads and prepares KMNIST once, then trains and evaluates from the cache.

Offline, the KMNIST host is played by local files: tfds's own KMNIST builder reads them
through a download manager that hands it their paths instead of fetching its URLs, and
writes the same prepared cache (TFRecords and dataset_info.json) a real download does."""

import json
from pathlib import Path

import numpy as np
import pytest

from kmnist_core import data
from kmnist_core.cli import main

from conftest import synthetic_arrays

IDX_NAMES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
             "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}


def write_idx(path, array):
    """The MNIST idx layout tfds's builder parses: magic, one 4-byte size per dimension, bytes."""
    sizes = b"".join(int(size).to_bytes(4, "big") for size in array.shape)
    path.write_bytes(b"\0\0\x08" + bytes([array.ndim]) + sizes + np.ascontiguousarray(array, np.uint8).tobytes())


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The four official files (uncompressed: tfds extracts the .gz it downloads), holding
    learnable stand-ins for KMNIST."""
    folder = tmp_path_factory.mktemp("kmnist-host")
    (x_train, y_train), (x_test, y_test) = synthetic_arrays(20, seed=0), synthetic_arrays(5, seed=1)
    arrays = {"train_images": x_train, "train_labels": y_train, "test_images": x_test, "test_labels": y_test}
    for key, array in arrays.items():
        write_idx(folder / IDX_NAMES[key], array)
    return folder, arrays


@pytest.fixture(scope="module")
def tfds_dir(served, tmp_path_factory):
    """A tfds cache prepared by ``load_tfds`` itself, through its download branch."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets.image_classification import mnist

    folder, arrays = served
    cache = tmp_path_factory.mktemp("tfds")

    def from_folder(manager, urls):
        return {key: str(folder / Path(url).name.removesuffix(".gz")) for key, url in urls.items()}

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(data, "_host_reachable", lambda *args: True)  # "online", without a socket
        patch.setattr(tfds.download.DownloadManager, "download_and_extract", from_folder)
        # The builder reads a fixed 60,000/10,000 images from the files: ours hold fewer.
        patch.setattr(mnist, "_TRAIN_EXAMPLES", len(arrays["train_labels"]))
        patch.setattr(mnist, "_TEST_EXAMPLES", len(arrays["test_labels"]))
        dataset = data.load_tfds(str(cache))
    return cache, dataset


@pytest.fixture
def offline(monkeypatch):
    """No host, no download: whatever loads now comes from the prepared cache."""
    import tensorflow_datasets as tfds

    def refuse(*args):
        raise AssertionError("tried to download")

    monkeypatch.setattr(data, "_host_reachable", refuse)
    monkeypatch.setattr(tfds.download.DownloadManager, "download_and_extract", refuse)


def pairs(images, labels):
    """(image bytes, label) of every example, in one order (tfds shuffles when it writes)."""
    return sorted(zip((image.tobytes() for image in images), labels.tolist()))


def test_load_tfds_downloads_prepares_and_returns_the_files_images_and_labels(served, tfds_dir):
    _, arrays = served
    cache, dataset = tfds_dir
    assert dataset.source == f"tensorflow-datasets ({cache / 'kmnist' / '3.0.1'})"
    for split in ("train", "test"):
        images, labels = getattr(dataset, f"x_{split}"), getattr(dataset, f"y_{split}")
        assert images.shape == (len(arrays[f"{split}_labels"]), 28, 28) and images.dtype == np.uint8
        assert labels.shape == images.shape[:1] and labels.dtype == np.uint8
        assert pairs(images, labels) == pairs(arrays[f"{split}_images"], arrays[f"{split}_labels"])
    assert dataset.class_counts() == {"train": [20] * 10, "test": [5] * 10}


def test_a_run_trains_and_evaluates_from_the_tfds_cache(tfds_dir, offline, home, monkeypatch, capsys):
    cache, dataset = tfds_dir
    monkeypatch.setenv("KMNIST_DATA_DIR", "")  # no local folder: tensorflow-datasets only
    monkeypatch.setenv("KMNIST_TFDS_DIR", str(cache))
    assert main(["train", "--variant", "overfit", "--hidden-units", "32", "--epochs", "8", "--learning-rate", "0.003",
                 "--json"]) == 0
    run = json.loads(capsys.readouterr().out)
    assert run["status"] == "completed" and run["data_source"] == dataset.source
    assert run["test"]["accuracy"] > 0.9  # learnt from the cache's images and labels
    assert main(["evaluate", str(run["id"]), "--tfds", "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["data_source"] == dataset.source and scored["n"] == len(dataset.y_test) == 50
    assert scored["accuracy"] == pytest.approx(run["test"]["accuracy"])
