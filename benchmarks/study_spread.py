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
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kmnist_core.config import STUDY_ORDER, make_config
from kmnist_core.data import load_kmnist
from kmnist_core.hardware import cpu_flags, cpu_name, usable_cores
from kmnist_core.inference import make_predictor
from kmnist_core.metrics import classification_metrics
from kmnist_core.runner import fit_indices, score
from kmnist_core.training import train_model
from kmnist_core.verdict import FIT_GRADES, fit_verdict

FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def host() -> str:
    import keras
    import tensorflow as tf

    flags = " ".join(f"{f}={'yes' if f in cpu_flags() else 'no'}" for f in FLAGS)
    return (f"host: {cpu_name()}; {usable_cores()} usable cores; {flags}\n"
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
            raise SystemExit(f"--set wants VARIANT.FIELD=VALUE, got {item!r}") from None
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        overrides[variant][name] = value
    return overrides


OVERFIT_RISE = 1 + FIT_GRADES[1].below  # where "overfitting" begins on the graded scale


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
    config = make_config(variant, seed=seed, epochs=args.epochs, train_size=args.train_size,
                         **overrides.get(variant, {}))
    fit, val = fit_indices(dataset.y_train, config)  # the app's split and training-set-size knob
    x, y = dataset.x_train, dataset.y_train
    x_fit, y_fit = x[fit], y[fit]
    x_val, y_val = (None, None) if val is None else (x[val], y[val])

    snapshots, scoring, done, scored_before = {}, [0.0], [], {}
    at = {e for e in args.at if e < config.epochs}

    def snapshot(model):  # what a run stopped after this epoch would report
        done.append(1)
        epoch = len(done)
        if epoch in at:
            start = time.perf_counter()
            sets = {"train": (x_fit, y_fit), "val": (x_val, y_val), "test": (dataset.x_test, dataset.y_test)}
            scored_before[epoch] = scoring[0]
            predict = make_predictor(model)
            snapshots[epoch] = {name: classification_metrics(ys, predict(xs))
                                for name, (xs, ys) in sets.items() if xs is not None}
            scoring[0] += time.perf_counter() - start

    curve = (x_val, y_val) if val is not None else (dataset.x_test, dataset.y_test)  # as the runner reads final
    result = train_model(config, x_fit, y_fit, *curve, on_epoch=lambda record, model: snapshot(model))
    val_losses = [record.val_loss for record in result.history]
    rows = {config.epochs: row_from(score(result.model, dataset, x_fit, y_fit, x_val, y_val, result.history),
                                    val_losses)}
    for epoch, sets in snapshots.items():
        heldout = sets.get("val", sets["test"])
        verdict = fit_verdict(sets["train"]["accuracy"], heldout["accuracy"], sets["train"]["log_loss"],
                                 heldout["log_loss"], val_losses[:epoch],
                              "validation" if "val" in sets else "test")["verdict"]
        metrics = {"train": sets["train"], "val": sets.get("val"), "test": sets["test"],
                   "fit": {"verdict": verdict, "loss_gap": heldout["log_loss"] - sets["train"]["log_loss"]}}
        rows[epoch] = row_from(metrics, val_losses[:epoch])
        rows[epoch]["seconds"] = result.history[epoch - 1].elapsed - scored_before[epoch]
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
                        help="training images, a stratified sample of what the validation split leaves (as the app's knob)")
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
    print(f"data: {dataset.source}; 10% of {len(dataset.y_train)} training images held out for validation, "
          f"{args.train_size or 'all the rest'} trained on; {len(dataset.y_test)} test images")
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
        col = lambda key, rows=rows: [r[key] for r in rows]  # noqa: E731
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
