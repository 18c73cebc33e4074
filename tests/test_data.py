import gzip
import re
import socket
import time

import numpy as np
import pytest

from kmnist_core import data
from kmnist_core.checks import ParameterError
from kmnist_core.classes import CLASSES
from kmnist_core.data import DataFileError, DataUnavailableError, load_kmnist, load_local

from conftest import PROJECT_ROOT, synthetic_arrays, write_npz_folder


def test_local_npz_folder_loads_validated_arrays(synthetic_dir):
    dataset = load_local(synthetic_dir)
    assert dataset.x_train.shape == (200, 28, 28) and dataset.x_train.dtype == np.uint8
    assert dataset.x_test.shape == (50, 28, 28)
    assert dataset.class_counts() == {"train": [20] * 10, "test": [5] * 10}
    assert "npz" in dataset.source and str(synthetic_dir.resolve()) in dataset.source


def test_env_var_selects_local_folder(synthetic_dir, monkeypatch):
    monkeypatch.setenv("KMNIST_DATA_DIR", str(synthetic_dir))
    assert data.default_data_dir() == synthetic_dir
    assert len(load_kmnist().y_train) == 200


def test_with_nothing_set_the_kmnist_mini_beside_the_project_is_loaded(monkeypatch):
    """What run.sh falls back to, so `python -m kmnist_core data` works without exports."""
    monkeypatch.delenv("KMNIST_DATA_DIR", raising=False)
    sibling = (PROJECT_ROOT.parent / "shared" / "data" / "kmnist-mini").resolve()
    dataset = load_kmnist()
    assert dataset.source == f"local folder {sibling} (npz)"
    assert dataset.class_counts() == {"train": [600] * 10, "test": [200] * 10}


def test_a_sibling_without_the_official_files_is_not_a_default(tmp_path, monkeypatch):
    monkeypatch.delenv("KMNIST_DATA_DIR", raising=False)
    write_npz_folder(tmp_path / "partial")
    (tmp_path / "partial" / "kmnist-test-labels.npz").unlink()
    monkeypatch.setattr(data, "SIBLING_DATA_DIR", tmp_path / "partial")
    assert data.default_data_dir() is None
    monkeypatch.setattr(data, "SIBLING_DATA_DIR", tmp_path / "nowhere")
    assert data.default_data_dir() is None


def test_an_empty_data_dir_variable_means_no_local_folder(synthetic_dir, monkeypatch):
    monkeypatch.setattr(data, "SIBLING_DATA_DIR", synthetic_dir)
    monkeypatch.delenv("KMNIST_DATA_DIR", raising=False)
    assert data.default_data_dir() == synthetic_dir
    monkeypatch.setenv("KMNIST_DATA_DIR", "")
    assert data.default_data_dir() is None


def _write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.tobytes())


def test_idx_gz_folder_reads_the_same_arrays(tmp_path):
    x_train, y_train = synthetic_arrays(3)
    x_test, y_test = synthetic_arrays(2, seed=5)
    for name, array in (("train-images-idx3-ubyte.gz", x_train), ("train-labels-idx1-ubyte.gz", y_train),
                        ("t10k-images-idx3-ubyte.gz", x_test), ("t10k-labels-idx1-ubyte.gz", y_test)):
        _write_idx(tmp_path / name, array)
    dataset = load_local(tmp_path)
    np.testing.assert_array_equal(dataset.x_train, x_train)
    np.testing.assert_array_equal(dataset.y_test, y_test)
    assert "idx" in dataset.source


def test_truncated_idx_file_is_named(tmp_path):
    x, y = synthetic_arrays(2)
    for name, array in (("train-images-idx3-ubyte.gz", x), ("train-labels-idx1-ubyte.gz", y),
                        ("t10k-images-idx3-ubyte.gz", x), ("t10k-labels-idx1-ubyte.gz", y)):
        _write_idx(tmp_path / name, array)
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as handle:
        handle.write(bytes([0, 0, 8, 3]) + (20).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\0" * 100)
    with pytest.raises(DataFileError, match=re.escape("t10k-images-idx3-ubyte.gz: truncated")):
        load_local(tmp_path)


def test_truncated_npz_is_named(synthetic_dir):
    path = synthetic_dir / "kmnist-test-imgs.npz"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataFileError, match=re.escape("kmnist-test-imgs.npz")):
        load_local(synthetic_dir)


@pytest.mark.parametrize("file, array, message", [
    ("kmnist-train-imgs.npz", np.zeros((200, 32, 32), np.uint8), r"shape \(N, 28, 28\)"),
    ("kmnist-train-imgs.npz", np.zeros((200, 28, 28), np.float32), "expected uint8"),
    ("kmnist-train-labels.npz", np.full(200, 12, np.uint8), r"labels must be in \[0, 9\]"),
    ("kmnist-test-labels.npz", np.zeros(49, np.uint8), "50 images but kmnist-test-labels.npz has 49"),
])
def test_wrong_content_is_refused_with_the_file_name(synthetic_dir, file, array, message):
    np.savez(synthetic_dir / file, arr_0=array)
    with pytest.raises(DataFileError, match=message):
        load_local(synthetic_dir)


def test_npz_without_arr_0_is_refused(synthetic_dir):
    np.savez(synthetic_dir / "kmnist-train-labels.npz", labels=np.zeros(200, np.uint8))
    with pytest.raises(DataFileError, match=re.escape("kmnist-train-labels.npz: no array 'arr_0'")):
        load_local(synthetic_dir)


def test_pickled_npz_is_not_unpickled(synthetic_dir):
    np.savez(synthetic_dir / "kmnist-train-labels.npz", arr_0=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(DataFileError, match=r"^kmnist-train-labels\.npz: holds Python objects"):
        load_local(synthetic_dir)


def test_missing_folder_and_missing_files_say_what_to_do(tmp_path):
    with pytest.raises(DataUnavailableError, match=r"does not exist.*KMNIST_DATA_DIR"):
        load_local(tmp_path / "nowhere")
    write_npz_folder(tmp_path / "partial")
    (tmp_path / "partial" / "kmnist-test-labels.npz").unlink()
    with pytest.raises(DataUnavailableError, match=re.escape("lacks kmnist-test-labels.npz")):
        load_local(tmp_path / "partial")


def test_offline_without_folder_fails_fast_with_both_fixes(tmp_path, monkeypatch):
    """The download host never answers (connect hangs): the error still comes within seconds."""
    monkeypatch.setenv("KMNIST_DATA_DIR", "")  # no local folder, not even kmnist-mini beside the project

    def hang(*args, **kwargs):
        time.sleep(15)  # the hang under test: a connect that never answers
        raise OSError("timed out")  # as a real connect would, long after we stopped waiting

    monkeypatch.setattr(socket, "create_connection", hang)
    start = time.monotonic()
    with pytest.raises(DataUnavailableError) as error:
        load_kmnist(tfds_dir=str(tmp_path / "tfds"), probe_timeout=2.0)
    assert time.monotonic() - start < 10
    message = str(error.value)
    assert "KMNIST_DATA_DIR" in message and "go online once" in message


def test_stratified_split_is_balanced_disjoint_and_seeded():
    labels = np.repeat(np.arange(10), 30)
    train, val = data.stratified_split(labels, 0.2, seed=1)
    assert len(val) == 60 and len(train) == 240
    assert not set(train) & set(val)
    assert np.bincount(labels[val], minlength=10).tolist() == [6] * 10
    again, _ = data.stratified_split(labels, 0.2, seed=1)
    other, _ = data.stratified_split(labels, 0.2, seed=2)
    assert np.array_equal(train, again) and not np.array_equal(train, other)


@pytest.mark.parametrize("fraction", [0.0, 0.6, -0.1, float("nan")])
def test_split_fraction_out_of_range_names_the_parameter(fraction):
    with pytest.raises(ParameterError, match="val_fraction"):
        data.stratified_split(np.repeat(np.arange(10), 30), fraction)


def test_kfold_partitions_every_image_once():
    labels = np.repeat(np.arange(10), 12)
    folds = data.stratified_kfold(labels, k=4, seed=0)
    assert len(folds) == 4
    held_out = np.concatenate([val for _, val in folds])
    assert sorted(held_out) == list(range(len(labels)))
    for train, val in folds:
        assert np.bincount(labels[val], minlength=10).tolist() == [3] * 10
        assert not set(train) & set(val)
    with pytest.raises(ParameterError, match="k must be in \\[2, 12\\]"):
        data.stratified_kfold(labels, k=13)
    with pytest.raises(ParameterError, match="k must be in \\[2, 20\\]"):
        data.stratified_kfold(labels, k=1)


def test_examples_per_class_come_from_that_class():
    images, labels = synthetic_arrays(6)
    examples = data.examples_per_class(images, labels, per_class=4)
    for index, chosen in examples.items():
        assert len(chosen) == 4
        row = 2 + 2 * index
        assert (chosen[:, row + 1, 10] > 200).all()


def test_class_map_matches_the_dataset_readme():
    assert [c.hiragana for c in CLASSES] == list("おきすつなはまやれを")
    assert [c.romaji for c in CLASSES] == ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]
    assert CLASSES[0].codepoint == "U+304A" and CLASSES[9].codepoint == "U+3092"


def test_real_mini_set_loads(mini_dir):
    dataset = load_local(mini_dir)
    assert dataset.class_counts() == {"train": [600] * 10, "test": [200] * 10}
