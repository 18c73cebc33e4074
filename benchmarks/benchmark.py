"""Accuracy and speed, side by side in one process, on real data (kmnist-mini).

    KMNIST_DATA_DIR=../shared/data/kmnist-mini python benchmarks/benchmark.py [--only best,reference]

Trains the reference Keras simple CNN published with KMNIST (its own plain script:
Conv32-Conv64-MaxPool-Dropout0.25-Dense128-Dropout0.5, Adadelta lr=1.0, batch 128,
12 epochs), the same architecture through our pipeline, every study preset and `best`,
each on the full training split, and scores them on the test split. Test accuracy is
also measured after every epoch (outside the timed training) to find when each model
first reaches the reference's final accuracy. Then: drawing fidelity and canvas
prediction latency for `best`.
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kmnist_core import hardware  # noqa: E402
from kmnist_core.config import STUDY_ORDER, make_config  # noqa: E402
from kmnist_core.data import load_kmnist  # noqa: E402
from kmnist_core.fidelity import drawn_versions  # noqa: E402
from kmnist_core.inference import make_predictor  # noqa: E402
from kmnist_core.metrics import classification_metrics  # noqa: E402
from kmnist_core.preprocess import prepare  # noqa: E402
from kmnist_core.training import train_model  # noqa: E402


class _TestEveryEpoch(keras.callbacks.Callback):
    """Test accuracy after each epoch, with the evaluation time kept out of the clock."""

    def __init__(self, x_test, y_test):
        super().__init__()
        self.x_test, self.y_test = x_test, y_test
        self.start, self.eval_seconds, self.curve = time.perf_counter(), 0.0, []

    def on_epoch_end(self, epoch, logs=None):
        self.record(self.model)

    def record(self, model):
        trained_for = time.perf_counter() - self.start - self.eval_seconds
        began = time.perf_counter()
        accuracy = float(np.mean(make_predictor(model)(self.x_test).argmax(axis=1) == self.y_test))
        self.eval_seconds += time.perf_counter() - began
        self.curve.append((trained_for, accuracy))


def reference_script(dataset, seed=0):
    """The KMNIST repository's Keras simple CNN, as that script trains it (numpy in, fit)."""
    keras.utils.set_random_seed(seed)
    x = dataset.x_train.reshape(-1, 28, 28, 1).astype("float32") / 255
    y = keras.utils.to_categorical(dataset.y_train, 10)
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.Conv2D(64, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Dropout(0.25),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.Adadelta(learning_rate=1.0),
                  metrics=["accuracy"])
    x_test = dataset.x_test.reshape(-1, 28, 28, 1).astype("float32") / 255
    tracker = _TestEveryEpoch(x_test, dataset.y_test)
    start = time.perf_counter()
    model.fit(x, y, batch_size=128, epochs=12, verbose=0, callbacks=[tracker])
    seconds = time.perf_counter() - start - tracker.eval_seconds
    return make_predictor(model)(x_test), seconds, 12, tracker.curve


def ours(config, dataset):
    """Train ``config``; also the ETA the progress bar showed at the end of epoch 1 against
    the time the rest of the training really took (the goal: within 25%)."""
    tracker = _TestEveryEpoch(dataset.x_test, dataset.y_test)
    after_first = []
    result = train_model(config, dataset.x_train, dataset.y_train, on_epoch=lambda record, model: tracker.record(model),
                         on_progress=lambda p: after_first.append((p.elapsed, p.eta))
                         if p.epoch == 1 and p.step == p.steps else None)
    seconds = result.elapsed - tracker.eval_seconds
    eta_error = None
    if after_first and after_first[-1][1] and config.epochs > 1:
        elapsed, eta = after_first[-1]
        eta_error = eta / (result.elapsed - elapsed) - 1
    extras = {"precision": result.precision, "eta_error": eta_error}
    return result.model, make_predictor(result.model)(dataset.x_test), seconds, len(result.history), tracker.curve, extras


def time_to_reach(curve, target):
    return next((seconds for seconds, accuracy in curve if accuracy >= target), None)


def canvas_latency(model, dataset, repeats=200):
    """Preprocess + forward pass for one canvas drawing, as the Draw page does it."""
    predict = make_predictor(model)
    rng = np.random.default_rng(0)
    from kmnist_core.fidelity import as_canvas_drawing

    drawings = [as_canvas_drawing(dataset.x_test[i], rng) for i in range(20)]
    timings = []
    for i in range(repeats):
        began = time.perf_counter()
        predict(prepare(drawings[i % len(drawings)])[None])
        timings.append((time.perf_counter() - began) * 1000)
    return np.percentile(timings, 50), np.percentile(timings, 95)


def cpu_flags():
    flags = hardware.cpu_flags()
    return " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in flags) or "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated subset: reference, cnn, best, best-float32 or preset names")
    args = parser.parse_args()
    hardware.configure_threads()
    dataset = load_kmnist()
    print(f"data: {dataset.source}; {len(dataset.y_train)} train / {len(dataset.y_test)} test images")
    print(f"machine: {hardware.usable_cores()} usable cores, {hardware.cpu_name()}, flags: {cpu_flags()}, "
          f"native bfloat16: {hardware.native_bfloat16()}")
    print(f"date: {time.strftime('%Y-%m-%d')}, TensorFlow {__import__('tensorflow').__version__}, Keras {keras.__version__}\n")

    wanted = args.only.split(",") if args.only else ["reference", "cnn", *STUDY_ORDER, "best", "best-float32"]
    rows, models = [], {}
    if "reference" in wanted:
        proba, seconds, epochs, curve = reference_script(dataset)
        rows.append(("reference (KMNIST simple CNN script)", proba, seconds, epochs, curve,
                     {"precision": "float32", "eta_error": None}))
    reference_accuracy = rows[0][4][-1][1] if rows else None
    configs = {"cnn": make_config("overfit", family="cnn", hidden_units=(128,), dropout=0.5, input_dropout=0.0,
                                  optimizer="adadelta", learning_rate=1.0, batch_size=128, epochs=12, full_train=True)}
    configs.update({name: make_config(name, full_train=True) for name in (*STUDY_ORDER, "best")})
    configs["best-float32"] = make_config("best", mixed_precision=False)  # what bfloat16 buys
    for name, config in configs.items():
        if name in wanted:
            print(f"training {name} …", file=sys.stderr, flush=True)
            model, proba, seconds, epochs, curve, extras = ours(config, dataset)
            label = "reference architecture, our pipeline" if name == "cnn" else name
            rows.append((label, proba, seconds, epochs, curve, extras))
            models[name] = model

    base_seconds = rows[0][2] if reference_accuracy is not None else None
    print("| model | precision | test acc | macro F1 | kappa | train time | images/s | time to reference acc "
          "| time vs reference | ETA error after epoch 1 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, proba, seconds, epochs, curve, extras in rows:
        scores = classification_metrics(dataset.y_test, proba)
        throughput = len(dataset.y_train) * epochs / seconds
        reach = time_to_reach(curve, reference_accuracy) if reference_accuracy else None
        reach_text = "never" if reach is None else f"{reach:.0f} s"
        ratio = f"{seconds / base_seconds:.2f}×" if base_seconds else "—"
        eta = "—" if extras["eta_error"] is None else f"{extras['eta_error']:+.0%}"
        print(f"| {label} | {extras['precision']} | {scores['accuracy']:.4f} | {scores['macro_f1']:.4f} | "
              f"{scores['kappa']:.4f} | {seconds:.0f} s | {throughput:.0f} | {reach_text} | {ratio} | {eta} |")
    if reference_accuracy is not None:
        print(f"\nreference final test accuracy: {reference_accuracy:.4f} after {base_seconds:.0f} s")
        for label, _proba, _seconds, _epochs, curve, _extras in rows[1:]:
            reach = time_to_reach(curve, reference_accuracy)
            if reach is not None:
                print(f"  {label}: reaches it after {reach:.0f} s = {reach / base_seconds:.2f}× the reference's time")

    if "best" in models:
        model = models["best"]
        original = float(np.mean(make_predictor(model)(dataset.x_test).argmax(axis=1) == dataset.y_test))
        drawn = float(np.mean(make_predictor(model)(drawn_versions(dataset.x_test)).argmax(axis=1) == dataset.y_test))
        print(f"\ndrawing fidelity (best): dataset images {original:.4f}, re-drawn on a canvas {drawn:.4f}, "
              f"gap {100 * (original - drawn):.1f} points")
        p50, p95 = canvas_latency(model, dataset)
        print(f"canvas prediction (preprocess + forward, best): p50 {p50:.1f} ms, p95 {p95:.1f} ms")


if __name__ == "__main__":
    main()
