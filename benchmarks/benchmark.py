"""Accuracy and speed, side by side in one process, on real data (kmnist-mini).

    KMNIST_DATA_DIR=../shared/data/kmnist-mini python benchmarks/benchmark.py [--only best,reference]
    KMNIST_DATA_DIR=... python benchmarks/benchmark.py --only reference,best --seeds 0,1,2   # issue #10's check
    KMNIST_DATA_DIR=... python benchmarks/benchmark.py --recipe v1,mild --seeds 0,1,2   # candidates for `best`
    ONEDNN_MAX_CPU_ISA=AVX2 KMNIST_DATA_DIR=... python benchmarks/benchmark.py ...   # an AVX2-only host, imitated

Trains the reference Keras simple CNN published with KMNIST (its own plain script:
Conv32-Conv64-MaxPool-Dropout0.25-Dense128-Dropout0.5, Adadelta lr=1.0, batch 128,
12 epochs), the same architecture through our pipeline, every study preset and `best`,
each on the full training split, and scores them on the test split. Test accuracy is
also measured after every epoch (outside the timed training) to find when each model
first reaches the reference's final accuracy (of the same seed). With ``--seeds`` every row
is trained once per seed, the reference first: the table lists each seed's test accuracy
and prints their median, and the time ratio is taken seed by seed (both trained under the
same load) before its median. ``--recipe`` adds rows for candidate recipes of `best`
(benchmarks/recipes.py) beside the reference; ``--no-reference`` skips it. Then: drawing
fidelity and canvas prediction latency for `best` (the last seed's model).
"""

import argparse
import os
import sys
import time
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
from recipes import RECIPES, recipe_engine

from kmnist_core import hardware
from kmnist_core.config import STUDY_ORDER, make_config
from kmnist_core.data import load_kmnist
from kmnist_core.fidelity import drawn_versions
from kmnist_core.inference import make_predictor
from kmnist_core.metrics import classification_metrics
from kmnist_core.preprocess import prepare
from kmnist_core.training import train_model


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
    """Train ``config``; also the ETA the progress bar showed once epoch 1 was over (at the
    first batch of epoch 2: epoch 1's scoring and saving done, so their cost is known)
    against the time the rest of the training really took (the goal: within 25%)."""
    tracker = _TestEveryEpoch(dataset.x_test, dataset.y_test)
    after_first = []
    result = train_model(config, dataset.x_train, dataset.y_train, on_epoch=lambda record, model: tracker.record(model),
                         on_progress=lambda p: after_first.append((p.elapsed, p.eta))
                         if p.epoch == 2 and not after_first else None)
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


def _configs(seed):
    configs = {"cnn": make_config("overfit", family="cnn", hidden_units=(128,), dropout=0.5, input_dropout=0.0,
                                  optimizer="adadelta", learning_rate=1.0, batch_size=128, epochs=12,
                                  full_train=True, seed=seed)}
    configs.update({name: make_config(name, full_train=True, seed=seed) for name in (*STUDY_ORDER, "best")})
    configs["best-float32"] = make_config("best", mixed_precision=False, seed=seed)  # what bfloat16 buys
    return configs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated subset: reference, cnn, best, best-float32 or preset names")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2: every row trained once "
                        "per seed; accuracies per seed, their median and the median time ratio are printed")
    parser.add_argument("--recipe", help="comma-separated candidate recipes for `best`, each a row (trained "
                        "beside the reference alone unless --only says more): " + ", ".join(RECIPES))
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the reference script: accuracy only, no time ratios")
    args = parser.parse_args()
    seeds = [int(seed) for seed in args.seeds.split(",")]
    recipes = args.recipe.split(",") if args.recipe else []
    unknown = [name for name in recipes if name not in RECIPES]
    if unknown:
        parser.error(f"unknown recipe {unknown[0]!r}; known: {', '.join(RECIPES)}")
    hardware.configure_threads()
    dataset = load_kmnist()
    print(f"data: {dataset.source}; {len(dataset.y_train)} train / {len(dataset.y_test)} test images")
    print(f"machine: {hardware.usable_cores()} usable cores, {hardware.cpu_name()}, flags: {cpu_flags()}, "
          f"native bfloat16: {hardware.native_bfloat16()}")
    print(f"date: {time.strftime('%Y-%m-%d')}, TensorFlow {__import__('tensorflow').__version__}, Keras {keras.__version__}\n")

    everything = ["reference"] if recipes else ["reference", "cnn", *STUDY_ORDER, "best", "best-float32"]
    wanted = [name for name in (args.only.split(",") if args.only else everything)
              if not (args.no_reference and name == "reference")]
    rows, models = {}, {}  # label -> [(seed, proba, seconds, epochs, curve, extras)]
    for seed in seeds:
        if "reference" in wanted:
            proba, seconds, epochs, curve = reference_script(dataset, seed)
            rows.setdefault("reference (KMNIST simple CNN script)", []).append(
                (seed, proba, seconds, epochs, curve, {"precision": "float32", "eta_error": None}))
        for name, config in _configs(seed).items():
            if name in wanted:
                print(f"seed {seed}: training {name} …", file=sys.stderr, flush=True)
                model, proba, seconds, epochs, curve, extras = ours(config, dataset)
                label = "reference architecture, our pipeline" if name == "cnn" else name
                rows.setdefault(label, []).append((seed, proba, seconds, epochs, curve, extras))
                models[name] = model  # the last seed's
        for name in recipes:
            print(f"seed {seed}: training recipe {name} …", file=sys.stderr, flush=True)
            with recipe_engine(dict(RECIPES[name])) as overrides:
                model, *row = ours(make_config("best", seed=seed, full_train=True, **overrides), dataset)
            rows.setdefault(f"recipe {name}", []).append((seed, *row))

    reference = rows.get("reference (KMNIST simple CNN script)")
    base = {seed: (seconds, curve[-1][1]) for seed, _, seconds, _, curve, _ in reference} if reference else {}
    print(f"seeds: {', '.join(map(str, seeds))}; with several seeds each cell is the median over them, the test "
          "accuracy column lists every seed's; time ratios are taken seed by seed, then their median")
    print("| model | precision | test acc | median test acc | macro F1 | kappa | train time | images/s "
          "| time to reference acc | time vs reference | ETA error after epoch 1 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for label, runs in rows.items():
        scores = [classification_metrics(dataset.y_test, proba) for _, proba, *_ in runs]
        accuracies = " / ".join(f"{score['accuracy']:.4f}" for score in scores)
        seconds = median(seconds for _, _, seconds, *_ in runs)
        throughput = median(len(dataset.y_train) * epochs / secs for _, _, secs, epochs, _, _ in runs)
        reaches = [time_to_reach(curve, base[seed][1]) for seed, _, _, _, curve, _ in runs] if base else []
        reach_text = "—" if not base else "never" if None in reaches else f"{median(reaches):.0f} s"
        ratio = f"{median(secs / base[seed][0] for seed, _, secs, *_ in runs):.2f}×" if base else "—"
        eta_errors = [extras["eta_error"] for *_, extras in runs if extras["eta_error"] is not None]
        eta = f"{median(eta_errors):+.0%}" if eta_errors else "—"
        print(f"| {label} | {runs[0][5]['precision']} | {accuracies} | "
              f"{median(score['accuracy'] for score in scores):.4f} | {median(s['macro_f1'] for s in scores):.4f} | "
              f"{median(s['kappa'] for s in scores):.4f} | {seconds:.0f} s | {throughput:.0f} | {reach_text} | "
              f"{ratio} | {eta} |")

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
