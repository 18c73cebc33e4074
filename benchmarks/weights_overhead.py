"""What recording weight statistics at every epoch end costs, on real data (kmnist-mini).

    KMNIST_DATA_DIR=../shared/data/kmnist-mini python benchmarks/weights_overhead.py [--epochs 10] [--repeats 3]

Trains the study's dense `overfit` network (784-512-512-10) as ``training.train_model``
builds, compiles and feeds it, on the same stratified 90% split, once without and once with
a Keras callback that calls ``weights.layer_stats(model)`` at every epoch end (and
serialises it to JSON, as the store will). The two are run alternately ``--repeats`` times
and the medians compared; the callback also times its own calls, which is the cost
without the run-to-run noise of a shared 2-core machine. Goal: ≤ 10% overhead.
"""

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras

from kmnist_core.config import make_config
from kmnist_core.data import load_kmnist, stratified_split
from kmnist_core.hardware import configure_threads
from kmnist_core.models import build_model
from kmnist_core.training import make_dataset, make_optimizer
from kmnist_core.weights import layer_stats

GOAL = 0.10


class RecordWeights(keras.callbacks.Callback):
    """layer_stats at every epoch end, JSON-encoded as it would be stored; timed."""

    def __init__(self):
        super().__init__()
        self.seconds, self.records, self.json_bytes = [], [], 0

    def on_epoch_end(self, epoch, logs=None):
        began = time.perf_counter()
        record = {"epoch": epoch + 1, "layers": layer_stats(self.model)}
        self.json_bytes += len(json.dumps(record, allow_nan=False))
        self.records.append(record)
        self.seconds.append(time.perf_counter() - began)


def cpu_model() -> str:
    """'Intel(R) Xeon(R) Processor (AVX-512, AMX)': the model name, plus the vector units
    that decide TF's CPU speed (a virtual machine's model name often hides the generation)."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    units = [label for flag, label in (("avx2", "AVX2"), ("avx512f", "AVX-512"), ("amx_tile", "AMX")) if flag in flags]
    return f"{name} ({', '.join(units)})" if units else name


def load() -> str:
    try:
        return "load average {:.1f}, {:.1f}, {:.1f}".format(*os.getloadavg())
    except OSError:
        return "load average unknown"


def train_once(config, x, y, x_val, y_val, record: bool):
    keras.utils.set_random_seed(config.seed)
    model = build_model(config)
    steps = math.ceil(len(x) / config.batch_size)
    model.compile(optimizer=make_optimizer(config, steps), loss="categorical_crossentropy", metrics=["accuracy"])
    train = make_dataset(x, y, config.batch_size, shuffle=True, seed=config.seed)
    validation = make_dataset(x_val, y_val, 512, shuffle=False, seed=config.seed)
    callback = RecordWeights() if record else None
    began = time.perf_counter()
    model.fit(train, validation_data=validation, epochs=config.epochs, callbacks=[callback] if callback else [],
              shuffle=False, verbose=0)
    return time.perf_counter() - began, callback


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="KMNIST folder (default: $KMNIST_DATA_DIR)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3, help="alternating pairs of runs")
    args = parser.parse_args()

    configure_threads()
    dataset = load_kmnist(args.data_dir)
    config = make_config("overfit", epochs=args.epochs)
    train_idx, val_idx = stratified_split(dataset.y_train, config.val_fraction, config.seed)
    x, y = dataset.x_train[train_idx], dataset.y_train[train_idx]
    x_val, y_val = dataset.x_train[val_idx], dataset.y_train[val_idx]
    print(f"host CPU: {cpu_model()}, {os.cpu_count()} logical cores; Python {platform.python_version()}, "
          f"Keras {keras.__version__}; {load()}")
    print(f"data: {dataset.source}; dense overfit {config.hidden_units}, {config.epochs} epochs, "
          f"{len(x):,} training images")

    train_once(make_config("overfit", epochs=1), x, y, x_val, y_val, record=True)  # warm-up: graph tracing
    plain, recorded, calls, sizes = [], [], [], []
    for repeat in range(args.repeats):
        order = (False, True) if repeat % 2 == 0 else (True, False)
        for record in order:
            seconds, callback = train_once(config, x, y, x_val, y_val, record)
            (recorded if record else plain).append(seconds)
            if callback:
                calls.extend(callback.seconds)
                sizes.append(callback.json_bytes / len(callback.records))
            print(f"  run {repeat + 1}, {'with' if record else 'without'} layer_stats: {seconds:.2f} s")

    print(f"  {load()} at the end")
    base, with_stats = statistics.median(plain), statistics.median(recorded)
    per_call = statistics.median(calls)
    print(f"without layer_stats: {base:.2f} s (median of {len(plain)})")
    print(f"with layer_stats:    {with_stats:.2f} s (median of {len(recorded)})")
    print(f"overhead, end to end: {with_stats / base - 1:+.1%}")
    direct = per_call * config.epochs / base
    print(f"layer_stats itself: {per_call * 1000:.1f} ms per epoch (median of {len(calls)} calls, max "
          f"{max(calls) * 1000:.1f} ms) = {direct:.2%} of the plain run; {sizes[0]:,.0f} bytes of JSON per epoch")
    verdict = "within" if direct <= GOAL else "OVER"
    print(f"{verdict} the {GOAL:.0%} goal (judged on the directly timed cost; the end-to-end figure "
          f"also holds run-to-run noise)")


if __name__ == "__main__":
    main()
