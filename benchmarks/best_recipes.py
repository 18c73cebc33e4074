"""Candidate recipes for the `best` preset against the reference script, side by side in one process.

    KMNIST_DATA_DIR=../shared/data/kmnist-mini python benchmarks/best_recipes.py --recipe shipped,ema --seeds 0,1,2
    ONEDNN_MAX_CPU_ISA=AVX2 KMNIST_DATA_DIR=... python benchmarks/best_recipes.py ...   # an AVX2-only host, imitated

For every seed the reference script (the KMNIST repository's Keras simple CNN, as
benchmarks/benchmark.py trains it) is trained first, then each recipe, all on the 6,000
training images, scored on the 2,000 test images. A recipe's time ratio is its training
seconds over the reference's, seed by seed, so both saw the same load on the host; the
table shows each recipe's median ratio. Only ratios mean anything on a shared host.

A recipe is a set of overrides on the `best` preset (`preset`: the preset as it is now),
and optionally bn_cnn's convolution blocks (config.BN_CNN_BLOCKS) while it trains.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from benchmark import canvas_latency, reference_script  # noqa: E402

from kmnist_core import config as settings  # noqa: E402
from kmnist_core import hardware  # noqa: E402
from kmnist_core.config import make_config  # noqa: E402
from kmnist_core.data import load_kmnist  # noqa: E402
from kmnist_core.inference import make_predictor  # noqa: E402
from kmnist_core.training import train_model  # noqa: E402

SIX = ((32, 2), (64, 2), (128, 2))  # bn_cnn as of 2026-11-28: two convolutions at 28x28
FIVE = ((32, 1), (64, 2), (128, 2))
_V1 = dict(family="bn_cnn", hidden_units=(), dropout=0.2, epochs=20, batch_size=64, learning_rate=3e-3,
           optimizer="adamw", schedule="onecycle", label_smoothing=0.1, augment=True, ema=0.0,
           blocks=SIX)  # the `best` preset as of 2026-11-28, pinned (`preset` follows later changes)
RECIPES = {  # name: overrides of the `best` preset (+ "blocks": bn_cnn's convolution blocks)
    "preset": {},  # whatever `best` is now
    "v1": _V1,
    "v1-ema": dict(_V1, ema=0.99),  # the last ~100 steps' weights averaged
    "five": dict(_V1, blocks=FIVE),  # one convolution at 28x28: a quarter fewer multiply-adds
    "five-b128-15ep-ema": dict(_V1, blocks=FIVE, batch_size=128, learning_rate=4e-3, epochs=15, ema=0.99),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="preset", help="comma-separated: " + ", ".join(RECIPES))
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    parser.add_argument("--latency", action="store_true", help="canvas prediction latency of each recipe's last model")
    args = parser.parse_args()
    names = args.recipe.split(",")
    unknown = [name for name in names if name not in RECIPES]
    if unknown:
        parser.error(f"unknown recipe {unknown[0]!r}; known: {', '.join(RECIPES)}")
    seeds = [int(seed) for seed in args.seeds.split(",")]

    hardware.configure_threads()
    dataset = load_kmnist()
    flags = hardware.cpu_flags()
    print(f"data: {dataset.source}; {len(dataset.y_train)} train / {len(dataset.y_test)} test images (real KMNIST)")
    print(f"host: {hardware.cpu_name()}, {hardware.usable_cores()} usable cores; flags: "
          + " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags))
    print(f"ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', '(unset)')}; native bfloat16: "
          f"{hardware.native_bfloat16()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"TensorFlow {__import__('tensorflow').__version__}, Keras {keras.__version__}")

    rows = {name: [] for name in ["reference", *names]}  # (seed, accuracy, seconds, precision)
    models = {}
    for seed in seeds:
        proba, seconds, _epochs, _curve = reference_script(dataset, seed)
        rows["reference"].append((seed, _accuracy(proba, dataset.y_test), seconds, "float32"))
        print(f"seed {seed} reference: {rows['reference'][-1][1]:.4f} in {seconds:.0f} s", file=sys.stderr, flush=True)
        for name in names:
            overrides = dict(RECIPES[name])
            blocks = overrides.pop("blocks", settings.BN_CNN_BLOCKS)
            config = make_config("best", seed=seed, full_train=True, **overrides)
            shipped, settings.BN_CNN_BLOCKS = settings.BN_CNN_BLOCKS, blocks
            try:
                result = train_model(config, dataset.x_train, dataset.y_train)
            finally:
                settings.BN_CNN_BLOCKS = shipped
            models[name] = result.model
            accuracy = _accuracy(make_predictor(result.model)(dataset.x_test), dataset.y_test)
            rows[name].append((seed, accuracy, result.elapsed, result.precision))
            print(f"seed {seed} {name}: {accuracy:.4f} in {result.elapsed:.0f} s", file=sys.stderr, flush=True)

    reference_seconds = {seed: seconds for seed, _, seconds, _ in rows["reference"]}
    print(f"\n| recipe | precision | test accuracy per seed ({', '.join(map(str, seeds))}) | median "
          "| training s per seed | time vs reference (median) |")
    print("|---|---|---|---|---|---|")
    for name, runs in rows.items():
        accuracies = " / ".join(f"{accuracy:.4f}" for _, accuracy, _, _ in runs)
        seconds = " / ".join(f"{s:.0f}" for _, _, s, _ in runs)
        ratio = statistics.median(s / reference_seconds[seed] for seed, _, s, _ in runs)
        median = statistics.median(accuracy for _, accuracy, _, _ in runs)
        print(f"| {name} | {runs[0][3]} | {accuracies} | {median:.4f} | {seconds} | {ratio:.2f}× |")
    if args.latency:
        for name, model in models.items():
            p50, p95 = canvas_latency(model, dataset)
            print(f"canvas prediction ({name}): p50 {p50:.1f} ms, p95 {p95:.1f} ms")


def _accuracy(probabilities, labels) -> float:
    return float(np.mean(np.asarray(probabilities).argmax(axis=1) == labels))


if __name__ == "__main__":
    main()
