"""The regularization study over several seeds: mean ± std [min, max] per variant.

Why: one run is one draw. The held-out − train loss gap of a 50-epoch run moves with the
seed, the thread count and the CPU's floating point (the l1l2 preset measured 0.41 on an
AVX-512 Intel host and 0.61 on an AVX2 AMD host), so "regularization shrinks the gap" is
only a finding when the gaps differ by more than that spread. This script measures the
spread, on the real images of KMNIST_DATA_DIR, with the app's own ``train_model`` and
``score`` (so gap and verdict are exactly what a run in the app reports).

    KMNIST_DATA_DIR=../shared/data/kmnist-mini python benchmarks/study_spread.py --seeds 0,1,2
    ... --variants overfit,l1l2 --set l1l2.l2=3e-3         # try other preset values
    ... --at 8,15,30       # also what runs of 8, 15 and 30 epochs would have shown
    ... --train-size 2000 --epochs 40                      # a quick study on a stratified subset

``--at`` scores the model after each of those epochs (train, validation and test sets), which
is what a run of that many epochs reports: the presets use a constant learning rate, so a
shorter run is the start of the longer one. That scoring is not counted in "seconds".
Per-run lines go to stderr, the tables to stdout.
"""

import argparse
import ast
import os
import platform
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kmnist_core.config import STUDY_ORDER, make_config  # noqa: E402
from kmnist_core.data import load_kmnist, stratified_split  # noqa: E402
from kmnist_core.metrics import OVERFIT_RISE, classification_metrics, fit_verdict  # noqa: E402
from kmnist_core.runner import score  # noqa: E402
from kmnist_core.training import predict_proba, train_model  # noqa: E402

FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def host() -> str:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown")
    words = set(info.split())
    flags = " ".join(f"{f}={'yes' if f in words else 'no'}" for f in FLAGS)
    env = " ".join(f"{k}={os.environ[k]}" for k in ("ONEDNN_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS")
                   if k in os.environ)
    import keras
    import tensorflow as tf
    return (f"host: {model}; {os.cpu_count()} cores; {flags}{'; ' + env if env else ''}\n"
            f"TensorFlow {tf.__version__}, Keras {keras.__version__}; wall-clock seconds are "
            f"noisy on a shared machine: compare them as ratios")


def parse_sets(items) -> dict:
    """["l1l2.l2=3e-3", ...] -> {"l1l2": {"l2": 0.003}}."""
    overrides = defaultdict(dict)
    for item in items:
        try:
            key, text = item.split("=", 1)
            variant, name = key.split(".", 1)
        except ValueError:
            raise SystemExit(f"--set wants VARIANT.FIELD=VALUE, got {item!r}")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        overrides[variant][name] = value
    return overrides


def stratified_subset(y, size, seed):
    """``size`` images keeping the class balance: the training-set-size knob, applied before
    the train/validation split."""
    if not size or size >= len(y):
        return np.arange(len(y))
    kept, _ = train_test_split(np.arange(len(y)), train_size=size, stratify=y, random_state=seed)
    return np.sort(kept)


def val_curve_stats(val_losses) -> dict:
    """Best epoch, rise at the end, first epoch with a 25% rise, and the epoch from which
    every later epoch shows one (a run stopped there or later is flagged)."""
    if not val_losses or val_losses[0] is None:
        return {"best_epoch": None, "rise": None, "first_flag": None, "flagged_from": None}
    best_so_far = np.minimum.accumulate(val_losses)
    flagged = np.asarray(val_losses) >= OVERFIT_RISE * best_so_far
    first = int(np.argmax(flagged)) + 1 if flagged.any() else None
    stays = None
    if flagged[-1]:
        last_clear = np.flatnonzero(~flagged)
        stays = int(last_clear[-1]) + 2 if len(last_clear) else 1
    best = int(np.argmin(val_losses))
    return {"best_epoch": best + 1, "rise": val_losses[-1] / val_losses[best] - 1,
            "first_flag": first, "flagged_from": stays}


def run_once(variant, seed, args, overrides, dataset):
    config = make_config(variant, seed=seed, epochs=args.epochs, **overrides.get(variant, {}))
    keep = stratified_subset(dataset.y_train, args.train_size, seed)
    x, y = dataset.x_train[keep], dataset.y_train[keep]
    if config.full_train:
        x_fit, y_fit, x_val, y_val = x, y, None, None
    else:
        train_idx, val_idx = stratified_split(y, config.val_fraction, config.seed)
        x_fit, y_fit, x_val, y_val = x[train_idx], y[train_idx], x[val_idx], y[val_idx]

    snapshots, scoring, done, scored_before = {}, [0.0], [], {}
    at = {e for e in args.at if e < config.epochs}

    def snapshot(model):  # what a run stopped after this epoch would report
        done.append(1)
        epoch = len(done)
        if epoch in at:
            start = time.perf_counter()
            sets = {"train": (x_fit, y_fit), "val": (x_val, y_val), "test": (dataset.x_test, dataset.y_test)}
            scored_before[epoch] = scoring[0]
            snapshots[epoch] = {name: classification_metrics(ys, predict_proba(model, xs))
                                for name, (xs, ys) in sets.items() if xs is not None}
            scoring[0] += time.perf_counter() - start

    result = train_model(config, x_fit, y_fit, x_val, y_val, on_epoch_model=snapshot)
    val_losses = [h["val_loss"] for h in result.history]
    rows = {config.epochs: row_from(score(result.model, dataset, x_fit, y_fit, x_val, y_val, result.history),
                                    val_losses)}
    for epoch, sets in snapshots.items():
        heldout = sets.get("val", sets["test"])
        verdict, _ = fit_verdict(sets["train"]["accuracy"], heldout["accuracy"], sets["train"]["log_loss"],
                                 heldout["log_loss"], val_losses[:epoch], "validation" if "val" in sets else "test")
        metrics = {"train": sets["train"], "val": sets.get("val"), "test": sets["test"],
                   "fit": {"verdict": verdict, "loss_gap": heldout["log_loss"] - sets["train"]["log_loss"]}}
        rows[epoch] = row_from(metrics, val_losses[:epoch])
        rows[epoch]["seconds"] = result.history[epoch - 1]["elapsed"] - scored_before[epoch]
    seconds = rows[config.epochs]["seconds"] = result.elapsed - scoring[0]
    final = rows[config.epochs]
    print(f"{variant:>8} seed {seed} ({config.epochs} ep, {len(x_fit)} train imgs): gap {final['gap']:+.3f} "
          f"val-loss rise {_fmt_pct(final['rise'])} best ep {final['best_epoch']} "
          f"first 25% rise ep {final['first_flag']} train {final['train_acc']:.3f} "
          f"val {_fmt(final['val_acc'])} test {final['test_acc']:.3f} {final['verdict']} {seconds:.1f} s\n"
          f"    val loss by epoch: {' '.join(f'{v:.2f}' for v in val_losses if v is not None)}",
          file=sys.stderr, flush=True)
    return rows


def row_from(metrics, val_losses) -> dict:
    return {"gap": metrics["fit"]["loss_gap"], "verdict": metrics["fit"]["verdict"],
            "train_acc": metrics["train"]["accuracy"], "test_acc": metrics["test"]["accuracy"],
            "val_acc": (metrics.get("val") or {}).get("accuracy"), **val_curve_stats(val_losses)}


def spread(values, fmt="{:.3f}") -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    text = f"{fmt.format(np.mean(values))} ± {fmt.replace('+', '').format(np.std(values))}"
    return text + f" [{fmt.format(min(values))}, {fmt.format(max(values))}]" if len(values) > 1 else text


def _fmt(value):
    return "—" if value is None else f"{value:.3f}"


def _fmt_pct(value):
    return "—" if value is None else f"{value:+.0%}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    parser.add_argument("--epochs", type=int, default=None, help="for every variant (default: each preset's)")
    parser.add_argument("--train-size", type=int, default=None,
                        help="stratified subset of the training images, taken before the split")
    parser.add_argument("--variants", default=",".join(STUDY_ORDER))
    parser.add_argument("--set", action="append", default=[], metavar="VARIANT.FIELD=VALUE",
                        help="override a preset value, e.g. l1l2.l2=3e-3 (repeatable)")
    parser.add_argument("--at", default="", help="also score after these epochs, e.g. 8,15,30")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    variants = args.variants.split(",")
    args.at = [int(e) for e in args.at.split(",") if e]
    overrides = parse_sets(args.set)

    dataset = load_kmnist()
    print(host())
    print(f"data: {dataset.source}; {args.train_size or len(dataset.y_train)} of {len(dataset.y_train)} "
          f"training images (10% of them held out for validation), {len(dataset.y_test)} test images")
    print(f"seeds {seeds}; overrides {dict(overrides) or 'none'}\n", flush=True)

    results = defaultdict(list)  # (variant, epochs) -> one row per seed
    for seed in seeds:
        for variant in variants:
            for epochs, row in run_once(variant, seed, args, overrides, dataset).items():
                results[(variant, epochs)].append(row)

    print("| variant | epochs | held-out − train loss gap | gap per seed | val loss rise (end vs best) "
          "| best val epoch | first 25% rise | flagged from | train acc | val acc | test acc | verdicts | seconds |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (variant, epochs), rows in sorted(results.items(), key=lambda kv: (variants.index(kv[0][0]), kv[0][1])):
        col = lambda key: [r[key] for r in rows]  # noqa: E731
        flags = [r["first_flag"] for r in rows]
        verdicts = ", ".join(f"{n}× {v}" for v, n in Counter(col("verdict")).most_common())
        print(f"| {variant} | {epochs} | {spread(col('gap'), '{:+.3f}')} | "
              f"{' '.join(f'{g:+.3f}' for g in col('gap'))} | {spread(col('rise'), '{:+.0%}')} | "
              f"{spread(col('best_epoch'), '{:.1f}')} | "
              f"{' '.join('never' if f is None else str(f) for f in flags) if rows[0]['rise'] is not None else '—'} | "
              f"{' '.join('—' if f is None else str(f) for f in col('flagged_from'))} | "
              f"{spread(col('train_acc'))} | {spread(col('val_acc'))} | {spread(col('test_acc'))} | "
              f"{verdicts} | {spread(col('seconds'), '{:.1f}')} |")


if __name__ == "__main__":
    main()
