"""Training time and peak memory of every preset at full KMNIST scale, on this machine.

    python benchmarks/full_scale.py [--epochs N] [--only overfit,best] [--uncapped overfit] [--no-plain]

Users who load full KMNIST train on 54,000 images (60,000 with no validation split), 9x
kmnist-mini. Only kmnist-mini is on these machines, so it is tiled x10 (60,000 train /
10,000 test, the official file layout) into a temporary folder, deleted afterwards: for
TIMING ONLY. A tiled set repeats every image ten times, so no accuracy is printed.

Each preset trains in its own process through the command users run
(``python -m kmnist_core train --variant X``), so its peak memory (the child's own
``ru_maxrss``) is clean. ``--epochs N`` caps the epochs to keep a loaded host's budget;
the full preset's time is then projected from the measured epochs (epoch 1 traces the
graph, so it is counted apart) and labelled so. Printed per preset: the expected time the
Train page shows before starting (``kmnist_core.estimate``: the rough per-family figure,
and the one from the earlier runs of this benchmark when there are some), and the ETA
the progress bar showed at the end of epoch 1 against the time the rest really took.

Beside each preset, right after it, a plain Keras ``fit`` of the same network on the same
folder (``benchmarks/plain_fit.py``: Keras's defaults, a validation pass per epoch) trains
in a process of its own for as many epochs: the engine's s/epoch against plain Keras's, and
their ratio (the goal: at most 0.5). On a shared host the load moves between the two, so
their CPU seconds (whole process: imports and data loading included in both) are printed
too, and every row names the load average at its start and end.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from kmnist_core import estimate, hardware
from kmnist_core.config import STUDY_ORDER, make_config
from kmnist_core.status import Status
from kmnist_core.store import RunStore

from conftest import write_tiled_folder

PRESETS = (*STUDY_ORDER, "best")
FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
EPOCH_1_ETA = re.compile(r"epoch 1/(\d+) step (\d+)/\2(?: loss \S+)? ETA (\d+)s")


def run_child(variant, command) -> tuple:
    """(stdout, stderr, rusage) of ``command`` run in a process of its own: its own peak
    memory and CPU seconds, not all children's."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if returncode:
        raise RuntimeError(f"{variant}: exit {returncode}: {stderr[-2000:]}")
    return stdout, stderr, usage


def train_in_child(home, data_dir, variant, epochs) -> dict:
    """Train one preset through the CLI in a process of its own; returns its run id, the
    ETA shown at the end of epoch 1, the child's peak resident memory and CPU seconds."""
    command = [sys.executable, "-m", "kmnist_core", "--home", str(home), "--data-dir", str(data_dir),
               "train", "--variant", variant, "--json"] + (["--epochs", str(epochs)] if epochs else [])
    stdout, stderr, usage = run_child(variant, command)
    etas = EPOCH_1_ETA.findall(stderr)
    return {"id": json.loads(stdout)["id"], "eta_after_epoch_1": float(etas[-1][2]) if etas else None,
            "peak_mib": usage.ru_maxrss / 1024, "cpu": usage.ru_utime + usage.ru_stime}


def plain_fit_in_child(data_dir, variant, epochs) -> dict:
    """A plain Keras ``fit`` of the preset's network for ``epochs`` (benchmarks/plain_fit.py)."""
    load = os.getloadavg()[0]
    command = [sys.executable, str(ROOT / "benchmarks" / "plain_fit.py"), "--data-dir", str(data_dir),
               "--variant", variant, "--epochs", str(epochs)]
    stdout, _, usage = run_child(f"{variant} (plain fit)", command)
    ends = json.loads(stdout.splitlines()[-1])["epoch_ends"]
    return {"first": ends[0], "per_epoch": float(np.diff(ends).mean()) if len(ends) > 1 else ends[0],
            "cpu": usage.ru_utime + usage.ru_stime, "load": (load, os.getloadavg()[0])}


def measure(home, data_dir, variant, cap, available, plain) -> dict:
    """Train ``variant`` (capped at ``cap`` epochs if given) and compare with what the
    Train page would have said before it started."""
    store = RunStore(home)
    config = make_config(variant)
    images = estimate.train_images(config, available)
    earlier = store.list_runs(statuses=(Status.COMPLETED,))
    rough, _ = estimate.estimate(config, images, [])
    informed, basis = estimate.estimate(config, images, earlier)
    epochs = min(cap, config.epochs) if cap else config.epochs
    load, began = os.getloadavg()[0], time.perf_counter()
    child = train_in_child(home, data_dir, variant, epochs if epochs < config.epochs else None)
    wall = time.perf_counter() - began  # the whole command: start-up, data, training, scoring, saving
    run = store.get(child["id"])
    times = [record.elapsed for record in run.history]
    epoch_times = np.diff(times) if len(times) > 1 else np.array(times)
    steady = float(epoch_times.mean())
    full = times[0] + steady * (config.epochs - 1)  # epoch 1 traces the graph: counted apart
    eta = child["eta_after_epoch_1"]
    rest = run.metrics["train_seconds"] - times[0]
    return {"variant": variant, "precision": run.runtime["precision"], "images": run.metrics["train_images"],
            "epochs": f"{len(times)}/{config.epochs}", "first": times[0], "per_epoch": steady,
            "trained": run.metrics["train_seconds"], "full": full, "projected": len(times) < config.epochs,
            "rough": rough, "informed": informed if basis.startswith("from") else None,
            "eta_error": eta / rest - 1 if eta and len(times) > 1 else None,
            "peak_mib": child["peak_mib"], "load": (load, os.getloadavg()[0]),
            "spread": (float(epoch_times.min()), float(epoch_times.max())),
            "finishing": run.finished_at - run.progress.updated_at,  # scoring and saving after the last batch
            "cpu": child["cpu"], "wall": wall, "plain": plain_fit_in_child(data_dir, variant, len(times)) if plain else None}


def seconds(value) -> str:
    return f"{value:.0f} s"


def table(rows) -> str:
    lines = ["| preset | precision | train images | epochs run | epoch 1 | s/epoch after (min–max) | trained | full preset "
             "| Train page said (rough) | (from earlier runs) | ETA error after epoch 1 | after the last batch | peak memory "
             "| load avg |", "|---" * 14 + "|"]
    for r in rows:
        full = seconds(r["full"]) + (" (projected)" if r["projected"] else "")
        informed = "—" if r["informed"] is None else seconds(r["informed"])
        eta = "—" if r["eta_error"] is None else f"{r['eta_error']:+.0%}"
        per_epoch = f"{r['per_epoch']:.1f} s ({r['spread'][0]:.1f}–{r['spread'][1]:.1f})"
        lines.append(f"| {r['variant']} | {r['precision']} | {r['images']:,} | {r['epochs']} | {r['first']:.1f} s "
                     f"| {per_epoch} | {r['trained']:.0f} s | {full} | {seconds(r['rough'])} | {informed} | {eta} "
                     f"| {r['finishing']:.0f} s | {r['peak_mib']:.0f} MiB | {r['load'][0]:.1f} → {r['load'][1]:.1f} |")
    return "\n".join(lines)


def plain_table(rows) -> str:
    """The engine against a plain Keras ``fit`` of the same network, same epochs, one after the other."""
    lines = ["| preset | epochs | engine: epoch 1 | engine: s/epoch after | plain fit: epoch 1 | plain fit: s/epoch after "
             "| ratio (s/epoch after) | ratio (epoch 1 + after) | CPU s engine / plain (whole process) "
             "| load avg engine | load avg plain |", "|---" * 11 + "|"]
    for r in rows:
        p = r["plain"]
        whole = (r["first"] + r["per_epoch"]) / (p["first"] + p["per_epoch"])
        lines.append(f"| {r['variant']} | {r['epochs'].split('/')[0]} | {r['first']:.1f} s | {r['per_epoch']:.1f} s "
                     f"| {p['first']:.1f} s | {p['per_epoch']:.1f} s | {r['per_epoch'] / p['per_epoch']:.2f} "
                     f"| {whole:.2f} | {r['cpu']:.0f} / {p['cpu']:.0f} "
                     f"| {r['load'][0]:.1f} → {r['load'][1]:.1f} | {p['load'][0]:.1f} → {p['load'][1]:.1f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=0, help="cap every preset at N epochs (0: the preset's own)")
    parser.add_argument("--only", help=f"comma-separated presets (default: {','.join(PRESETS)})")
    parser.add_argument("--uncapped", default="", help="comma-separated presets to train for all their epochs "
                                                        "even with --epochs (checks the projection)")
    parser.add_argument("--no-plain", action="store_true", help="skip the plain Keras fit beside each preset")
    args = parser.parse_args()
    presets = args.only.split(",") if args.only else PRESETS
    uncapped = set(filter(None, args.uncapped.split(",")))
    flags = " ".join(f for f in FLAGS if f in hardware.cpu_flags()) or f"none of {', '.join(FLAGS)}"
    print(f"machine: {hardware.cpu_name()}, flags: {flags}, {hardware.usable_cores()} usable cores, "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())} (host shared with other jobs)")
    with tempfile.TemporaryDirectory(prefix="kmnist-mini-tiled-x10-TIMING-ONLY-") as scratch:
        data_dir, home = Path(scratch) / "data", Path(scratch) / "home"
        write_tiled_folder(data_dir)
        print(f"data: kmnist-mini tiled x10 to 60,000 train / 10,000 test images in {data_dir} — timing only, "
              f"no accuracy is measured on it\n", flush=True)
        rows = []
        for variant in presets:
            print(f"training {variant} …", file=sys.stderr, flush=True)
            rows.append(measure(home, data_dir, variant, None if variant in uncapped else args.epochs, 60_000,
                                plain=not args.no_plain))
            print(table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
            if not args.no_plain:
                print(plain_table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    print(table(rows))
    study = [r for r in rows if r["variant"] in STUDY_ORDER]
    if study:
        print(f"\nthe study's presets here ({', '.join(r['variant'] for r in study)}): "
              f"{sum(r['full'] for r in study) / 60:.1f} min of training "
              f"({'projected' if any(r['projected'] for r in study) else 'measured'}); "
              f"{sum(r['wall'] for r in study) / 60:.1f} min for their commands as run, from start-up to saved model")
    if not args.no_plain:
        print("\n" + plain_table(rows))
    print(f"\nfull preset: measured, or projected from the epochs run (epoch 1 + the later epochs' mean × the "
          f"rest); ETA error: the ETA shown when epoch 1 ended vs the time the later epochs took; after the last batch: "
          f"scoring (test split, fit verdict) and saving the model; load average "
          f"(1 min) at the start and end of each run: the host is shared with other jobs, and an ETA cannot "
          f"foresee their load; ended "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


if __name__ == "__main__":
    main()
