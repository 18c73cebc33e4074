"""Loading saved models safely and predicting fast enough for a canvas.

Models are loaded with Keras ``safe_mode=True``: a ``.keras`` file that carries code
(a Lambda layer, a pickled function) is refused instead of executed.
"""

import os
import stat
import zipfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from .checks import ModelLoadError  # raised here; defined without TensorFlow
from .classes import CLASSES, NUM_CLASSES

# The largest model a run may build (8 dense layers of 4096 units) is ~1.5 GB with its
# optimizer state; a bigger file is no model of ours, and Keras would read it whole.
MAX_MODEL_BYTES = 2 * 1024**3
FILE_KINDS = {stat.S_ISFIFO: "a FIFO", stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device",
              stat.S_ISSOCK: "a socket"}


def load_model(path) -> keras.Model:
    path = Path(path)
    check_model_file(path)
    if not zipfile.is_zipfile(path):
        raise ModelLoadError(f"{path.name} is not a Keras model file (damaged or truncated)")
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many types for bad archives and unsafe content
        reason = str(error).splitlines()[0][:300] if str(error) else type(error).__name__
        raise ModelLoadError(f"{path.name} cannot be loaded safely: {reason}") from None
    if tuple(model.input_shape[1:]) != (28, 28) or tuple(model.output_shape[1:]) != (NUM_CLASSES,):
        raise ModelLoadError(
            f"{path.name} is not a KMNIST classifier (input {model.input_shape}, output {model.output_shape})"
        )
    return model


def check_model_file(path: Path) -> None:
    """Stat before reading: only a regular file of a model's size is opened. A FIFO would
    block the reader, /dev/zero never ends; ``stat`` follows a link, so a link is judged by
    what it leads to."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ModelLoadError(f"model file {path.name} is missing; the run may have failed before saving") from None
    except OSError as error:
        raise ModelLoadError(f"model file {path.name} cannot be read ({error.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise ModelLoadError(f"model file {path.name} is missing (a folder is in its place)")
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in FILE_KINDS.items() if test(info.st_mode)), "special")
        raise ModelLoadError(f"{path.name} is not a regular file ({kind}); it was not read")
    if info.st_size > MAX_MODEL_BYTES:
        raise ModelLoadError(f"{path.name} is {info.st_size / 1e9:.1f} GB, larger than any model a run makes "
                             f"({MAX_MODEL_BYTES / 1e9:.1f} GB at most); it was not read")


def make_predictor(model: keras.Model, batch_size: int = 512):
    """A compiled forward pass: (N, 28, 28) uint8/float -> (N, 10) probabilities, in
    batches of ``batch_size``. One traced graph per model instead of ``model.predict``'s
    per-call setup; it reads the model's variables, so it follows a model in training.
    The one forward pass of the project: training's per-epoch scores, the run's final
    scores, the CLI and the Draw page all call it."""

    @tf.function(input_signature=[tf.TensorSpec([None, 28, 28], tf.float32)], reduce_retracing=True)
    def forward(images):
        return tf.cast(model(images, training=False), tf.float32)

    def predict(images) -> np.ndarray:
        images = np.asarray(images, dtype=np.float32).reshape(-1, 28, 28)
        outputs = [forward(tf.constant(images[i:i + batch_size])).numpy() for i in range(0, len(images), batch_size)]
        return np.concatenate(outputs) if outputs else np.zeros((0, NUM_CLASSES), np.float32)

    predict(np.zeros((1, 28, 28), np.float32))  # trace now, not on the first stroke
    return predict


def top_k(probabilities: np.ndarray, k: int = 3) -> list:
    order = np.argsort(-probabilities)[:k]
    return [{"class": int(i), "hiragana": CLASSES[i].hiragana, "romaji": CLASSES[i].romaji,
             "probability": float(probabilities[i])} for i in order]
