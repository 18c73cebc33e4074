"""What regularization does to the weights, on real images: the README's weights table and
figure. Trains the study's overfit, dropout, l1l2 and combined presets on kmnist-mini (or
KMNIST_DATA_DIR) and prints each run's first-layer ‖w‖, mean |w| and near-zero share, and
writes their 16 strongest first-layer units side by side as one picture.

    .venv/bin/python benchmarks/weights_study.py [--epochs 50] [--out docs/weights-first-layer.png]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kmnist_core.config import make_config
from kmnist_core.data import load_kmnist, stratified_split
from kmnist_core.hardware import cpu_name
from kmnist_core.training import train_model
from kmnist_core.weights import NEAR_ZERO, first_layer_images, weight_grid

VARIANTS = ("overfit", "dropout", "l1l2", "combined")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="default: each preset's own")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "docs" / "weights-first-layer.png"))
    args = parser.parse_args()
    data = load_kmnist()
    print(f"data: {data.source}; host: {cpu_name()}; date {time.strftime('%Y-%m-%d')}")
    fit, val = stratified_split(data.y_train, 0.1, 0)
    pictures = []
    print(f"| variant | epochs | val acc | first-layer ‖w‖ | mean \\|w\\| | share \\|w\\| < {NEAR_ZERO:g} | seconds |")
    print("|---|---|---|---|---|---|---|")
    for variant in VARIANTS:
        config = make_config(variant, epochs=args.epochs)
        result = train_model(config, data.x_train[fit], data.y_train[fit], data.x_train[val], data.y_train[val])
        first = result.history[-1].weights[0]
        print(f"| {variant} | {len(result.history)} | {result.history[-1].val_accuracy:.3f} | {first['l2_norm']:.1f} | "
              f"{first['mean_abs']:.4f} | {first['near_zero']:.1%} | {result.elapsed:.0f} |", flush=True)
        images, _ = first_layer_images(result.model, count=16)
        pictures.append(weight_grid(images, columns=4, upscale=3))
    gap = np.full((pictures[0].shape[0], 12), 255, np.uint8)
    row = np.concatenate([part for picture in pictures for part in (picture, gap)][:-1], axis=1)
    Image.fromarray(row).save(args.out)
    print(f"wrote {args.out}: left to right {', '.join(VARIANTS)}")


if __name__ == "__main__":
    main()
