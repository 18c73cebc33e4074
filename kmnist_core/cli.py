"""``python -m kmnist_core``: the same engine as the app, from a terminal or a script.

Every command validates its arguments before touching the store, and fails with one line
on stderr and a non-zero exit code. Every command first reconciles runs left "running" by
a trainer that died (``RunStore.reconcile``).
"""

import argparse
import json
import os
import sys
import time
from contextlib import suppress

from . import sweep as sweeping
from .checks import ModelLoadError, ParameterError
from .classes import CLASSES
from .config import PARAMETERS, VARIANTS, check_against_data, make_config, parse_units
from .data import DATA_DIR_ENV, TFDS_DIR_ENV, DataFileError, DataUnavailableError, default_data_dir, load_kmnist, load_tfds
from .preprocess import ImageError
from .status import WITH_MODEL, Status
from .store import HOME_ENV, RunStore, StoreError, stall_note, stalled

EXPECTED_ERRORS = (ParameterError, DataUnavailableError, DataFileError, StoreError, ModelLoadError, ImageError,
                   ValueError, OSError)
WORKER_GRACE = 5.0  # seconds a started worker has to take the training lock before another is started


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of argparse's usage block
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m kmnist_core", description=__doc__.splitlines()[0])
    parser.add_argument("--home", help=f"run store folder (default: ${HOME_ENV} or ./runs)")
    parser.add_argument("--data-dir", help=f"folder with the official KMNIST files (default: ${DATA_DIR_ENV}, else "
                                           f"../shared/data/kmnist-mini beside the project, else tensorflow-datasets)")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = commands.add_parser("train", help="train a variant and store the run")
    train.add_argument("--variant", default="combined", help=f"one of: {', '.join(VARIANTS)} (default: combined)")
    train.add_argument("--name", help="a label for the run (default: named from its settings)")
    _add_config_arguments(train)
    train.add_argument("--json", action="store_true", help="print the finished run as JSON")
    _add_ray_argument(train)

    sweep = commands.add_parser(
        "sweep", help="train one configuration for several values of one parameter, with seeds",
        description="Queue one run per value and seed (validated as a whole first), then train them here, or "
                    "follow the background worker that trains them. Ctrl-C stops the run in progress and "
                    "cancels the rest.")
    sweep.add_argument("--variant", default="overfit",
                       help=f"the preset every run starts from, one of: {', '.join(VARIANTS)} (default: overfit, "
                            f"the unregularized network, where regularization shows its effect)")
    sweep.add_argument("--param", required=True, help=f"the parameter to sweep: {', '.join(sweeping.SWEEPABLE)}")
    sweep.add_argument("--values", required=True,
                       help="its values, separated by commas (e.g. 0,0.2,0.4,0.6 or 0,1e-5,1e-4); for "
                            "--param hidden_units one network per value, values separated by semicolons and "
                            "layers by commas (e.g. '64;256;1024' or '256,256;512,512')")
    sweep.add_argument("--seeds", type=int, default=1,
                       help=f"runs per value, with seeds --seed, --seed + 1, … (default 1, at most {sweeping.MAX_SEEDS}; "
                            f"{sweeping.MAX_RUNS} runs per sweep)")
    _add_config_arguments(sweep)
    sweep.add_argument("--json", action="store_true", help="print the sweep's runs and summary as JSON")

    sweeps = commands.add_parser("sweeps", help="list sweeps, or one sweep's summary per value")
    sweeps.add_argument("sweep", nargs="?", type=int, help="a sweep id (default: list every sweep)")
    sweeps.add_argument("--json", action="store_true")

    evaluate = commands.add_parser("evaluate", help="score a stored model on the test split")
    evaluate.add_argument("run", help="run id or exact name")
    evaluate.add_argument("--tfds", action="store_true",
                          help="score on tensorflow-datasets' KMNIST test split (all 10,000 images) instead "
                               "of the data the run was trained on")
    evaluate.add_argument("--json", action="store_true")

    runs = commands.add_parser("runs", help="list stored runs")
    output = runs.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true")
    output.add_argument("--csv", action="store_true", help="the runs table as CSV (settings and scores)")

    export = commands.add_parser("export", help="write a run's model, history, metrics, script and TensorBoard events")
    export.add_argument("run", help="run id or exact name")
    export.add_argument("--to", required=True, help="folder to write into (created if missing)")

    predict = commands.add_parser("predict", help="read a character from a PNG/JPG")
    predict.add_argument("run", help="run id or exact name")
    predict.add_argument("image", help="path to an image of one character, any size")
    predict.add_argument("--json", action="store_true")

    data = commands.add_parser("data", help="where the data comes from and counts per class")
    data.add_argument("--json", action="store_true")

    for name, text in (("stop", "stop a running run or cancel a queued one"), ("delete", "delete a run and its files")):
        command = commands.add_parser(name, help=text)
        command.add_argument("run", help="run id or exact name")
    rename = commands.add_parser("rename", help="rename a run")
    rename.add_argument("run", help="run id or exact name")
    rename.add_argument("name")

    worker = commands.add_parser("worker", help="train queued runs in the background (the app starts this)")
    worker.add_argument("--idle-exit", type=float, default=30.0, help="seconds to wait for new runs before exiting")
    _add_ray_argument(worker)
    return parser


def _add_ray_argument(parser) -> None:
    parser.add_argument("--ray", metavar="ADDRESS", help="train on the Ray cluster at ADDRESS (e.g. auto, "
                                                         "10.0.0.5:6379); default: $KMNIST_RAY_ADDRESS, else here")


def _use_ray(args) -> None:
    """``--ray`` as ``KMNIST_RAY_ADDRESS`` for this process and the workers it starts."""
    from .worker import RAY_ADDRESS_ENV

    if args.ray:
        os.environ[RAY_ADDRESS_ENV] = args.ray


def _add_config_arguments(parser) -> None:
    """One option per ``TrainConfig`` field, typed and explained from ``PARAMETERS`` (the
    same constraints validation and the app's form read). Unset options keep the preset's."""
    types = {"int": int, "float": float, "choice": str, "units": str}
    for name, parameter in PARAMETERS.items():
        if name == "variant":
            continue
        flag = "--" + name.replace("_", "-")
        text = f"{parameter.help} Allowed: {parameter.allowed()}.".replace("%", "%%")
        if parameter.kind == "bool" or name == "mixed_precision":  # precision: auto unless forced
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            parser.add_argument(flag, type=types[parameter.kind], help=text)


NATIVE_LOGS_ENV = "KMNIST_NATIVE_LOGS"  # set to 1 to see TensorFlow's C++ start-up messages


def run() -> None:
    """The console entry point (``python -m kmnist_core``, ``kmnist``): ``main`` with
    TensorFlow's C++ start-up notes (oneDNN, CUDA probing on a CPU machine) kept off the
    terminal. They are written to file descriptor 2 before any log level applies, so fd 2
    goes to /dev/null while Python's own stderr — progress bars, errors, tracebacks —
    keeps the terminal."""
    if not os.environ.get(NATIVE_LOGS_ENV):
        sys.stderr = os.fdopen(os.dup(2), "w", buffering=1)
        quiet = os.open(os.devnull, os.O_WRONLY)
        os.dup2(quiet, 2)
        os.close(quiet)
    sys.exit(main())


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_request:  # --help, or a one-line usage error already printed
        return exit_request.code
    try:
        return COMMANDS[args.command](args)
    except EXPECTED_ERRORS as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"error: {message}", file=sys.stderr)
        return 2 if isinstance(error, ParameterError) else 1


def _store(args) -> RunStore:
    store = RunStore(args.home)
    store.reconcile()
    return store


def cmd_train(args) -> int:
    _use_ray(args)
    overrides = {name: getattr(args, name) for name in PARAMETERS if name != "variant"}
    if overrides["hidden_units"] is not None:
        overrides["hidden_units"] = parse_units(overrides["hidden_units"])
    config = make_config(args.variant, **overrides)
    data_dir = args.data_dir or default_data_dir()  # stored as used: a worker elsewhere trains on the same
    dataset = load_kmnist(data_dir)  # fail fast, before anything is stored
    store = _store(args)
    store.trainer_active()  # an unusable lock file is said now, before a run is queued that nothing could train
    run_id = store.create_run(config, name=args.name, data_dir=data_dir, data_source=dataset.source)
    print(f"run {run_id}: {config.variant} ({config.family}) on {dataset.source}", file=sys.stderr)
    try:
        _train_until_done(store, run_id, {store.get(run_id).data_dir: dataset})
    except KeyboardInterrupt:  # a second Ctrl-C (or SIGTERM, SIGHUP): leave at once
        store.request_stop(run_id)  # if the first has not been acted on yet
        print(_left_at_once(store.get(run_id)), file=sys.stderr)
        return 130
    run = store.get(run_id)
    if args.json:
        print(json.dumps(_run_summary(run, store), indent=2))
    else:
        print(_result_line(run))
    return 0 if run.status in WITH_MODEL else 1


def _train_until_done(store, run_id, datasets):
    """Train our run in this process when it is next in the queue and nobody else trains.
    Otherwise follow it while the background worker trains the queue in order: runs queued
    before ours are the worker's, since training them here would hold this terminal, and a
    Ctrl-C, hostage to them. The first SIGINT, SIGTERM or SIGHUP cancels our run if it is
    still queued, or stops it after the current batch (epochs and model kept); a second
    raises KeyboardInterrupt to leave at once."""
    from .worker import drain_queue, ensure_worker, ray_address, stop_on_signals

    bar = _ProgressBar()
    asked, worker_started = False, float("-inf")
    with stop_on_signals() as stop:
        try:
            while not (run := store.get(run_id)).finished:
                if stop.is_set() and not asked:  # here, not in the handler: this loop writes the store
                    asked = True
                    store.request_stop(run_id)  # cancelled if still queued, else stopped after its batch
                elif run.status == Status.RUNNING:
                    store.reconcile()  # the worker training it may die too
                elif ray_address():  # the cluster trains it: a dispatcher sends it there
                    if time.monotonic() - worker_started > WORKER_GRACE:
                        ensure_worker(store, idle_exit=1.0)
                        worker_started = time.monotonic()
                elif not stop.is_set():
                    held = drain_queue(store, until_run=run_id, datasets=datasets, on_progress=bar.show,
                                       stop=stop, log=lambda m: print(m, file=sys.stderr))
                    if held and store.get(run_id).finished:
                        break
                    if held and time.monotonic() - worker_started > WORKER_GRACE:  # not our turn
                        ensure_worker(store, idle_exit=1.0)  # runs queued before ours are the worker's
                        worker_started = time.monotonic()
                bar.show_state(store.get(run_id))
                time.sleep(0.5)
        finally:
            bar.close()
    # A worker started while we held the last free training slot gave up at once, so runs queued
    # meanwhile (from the app) would wait for the next page load: hand them on now.
    ensure_worker(store, idle_exit=1.0)


def _train_each(store, run_ids, datasets, on_finished=None):
    """``_train_until_done`` for several runs in turn (a sweep), calling ``on_finished(run)``
    after each. A run that ends stopped or cancelled (Ctrl-C, SIGTERM, a Stop in the app)
    cancels those still queued: the learner asked the sweep to end."""
    for position, run_id in enumerate(run_ids):
        _train_until_done(store, run_id, datasets)
        run = store.get(run_id)
        if on_finished:
            on_finished(run)
        if run.status in (Status.STOPPED, Status.CANCELLED):
            for later in run_ids[position + 1:]:
                store.request_stop(later)
            break


def cmd_sweep(args) -> int:
    overrides = {name: getattr(args, name) for name in PARAMETERS if name != "variant"}
    if overrides["hidden_units"] is not None:
        overrides["hidden_units"] = parse_units(overrides["hidden_units"])
    configs = sweeping.sweep_configs(args.variant, args.param, args.values, args.seeds, **overrides)
    data_dir = args.data_dir or default_data_dir()
    dataset = load_kmnist(data_dir)  # fail fast, before anything is stored
    check_against_data(configs, len(dataset.y_train))
    data_dir = None if data_dir is None else os.path.abspath(data_dir)
    store = _store(args)
    sweep_id = sweeping.enqueue_sweep(store, args.variant, args.param, args.values, args.seeds, data_dir=data_dir,
                                      data_source=dataset.source, **overrides)
    sweep = store.get_sweep(sweep_id)
    run_ids = [run.id for run in store.sweep_runs(sweep_id)]
    print(f"sweep {sweep_id}: {sweeping.title(sweep)}: {len(run_ids)} runs on {dataset.source}", file=sys.stderr)
    _train_each(store, run_ids, {data_dir: dataset}, on_finished=lambda run: print(_result_line(run), file=sys.stderr))
    runs = store.sweep_runs(sweep_id)
    _print_sweep(store, sweep, runs, args.json)
    return 0 if all(run.status == Status.COMPLETED for run in runs) else 1


def cmd_sweeps(args) -> int:
    store = _store(args)
    if args.sweep is not None:
        sweep = store.get_sweep(args.sweep)
        _print_sweep(store, sweep, store.sweep_runs(sweep.id), args.json)
        return 0
    listed = []
    for sweep in store.list_sweeps():
        runs = store.sweep_runs(sweep.id)
        rows = sweeping.summarise(runs, sweep.param, sweep.values)
        best = next((row["label"] for row in rows if row["best"]), None)
        listed.append({"id": sweep.id, "title": sweeping.title(sweep), "runs": len(runs),
                       "completed": sum(run.status == Status.COMPLETED for run in runs), "best": best})
    if args.json:
        print(json.dumps(listed, indent=2))
    elif not listed:
        print("no sweeps yet: try `python -m kmnist_core sweep --param dropout --values 0,0.2,0.4,0.6 --seeds 2`")
    else:
        print(f"{'id':>4}  {'done':>7}  {'best':<10} sweep")
        for entry in listed:
            print(f"{entry['id']:>4}  {entry['completed']:>3}/{entry['runs']:<3}  {entry['best'] or '':<10} "
                  f"{entry['title']}")
    return 0


def _print_sweep(store, sweep, runs, as_json) -> None:
    rows = sweeping.summarise(runs, sweep.param, sweep.values)
    if as_json:
        print(json.dumps({"sweep": sweep.id, "param": sweep.param, "values": sweep.values, "seeds": sweep.seeds,
                          "variant": sweep.variant, "overrides": sweep.overrides, "rows": rows,
                          "runs": [_run_summary(run, store) for run in runs]}, indent=2))
        return
    heldout = sweeping.HELDOUT_NAMES[next((row["heldout"] for row in rows if row["heldout"]), "val")]
    width = max(len(sweep.param), *(len(row["label"]) + 2 for row in rows))
    print(f"sweep {sweep.id}: {sweeping.title(sweep)}")
    columns = ("train acc", f"{heldout} acc", "train loss", f"{heldout} loss")
    print(f"{sweep.param:<{width}}  {'seeds':>5}" + "".join(f"  {name:<15}" for name in columns).rstrip())
    for row in rows:
        label = row["label"] + (" *" if row["best"] else "")
        cells = (row[key] for key in ("train_accuracy", "heldout_accuracy", "train_loss", "heldout_loss"))
        print((f"{label:<{width}}  {row['finished']:>2}/{row['runs']:<2}"
               + "".join(f"  {sweeping.mean_std_text(cell):<15}" for cell in cells)).rstrip())
    print(sweeping.best_sentence(rows, sweep.param) or "No run has finished yet.")
    if any(row["best"] for row in rows):
        print(f"* lowest mean {heldout} loss; mean ± std over the seeds that finished")


def _left_at_once(run) -> str:
    if run.status == Status.RUNNING:
        return f"run {run.id}: left at once; the background worker is stopping it"
    return _result_line(run)


class _ProgressBar:
    def __init__(self):
        self.last = 0.0

    def show(self, progress):
        """A ``Progress`` from this process's training or from the store (another's)."""
        loss = "" if progress.fit_loss is None else f" loss {progress.fit_loss:.3f}"
        self._draw(progress.fraction, f"epoch {progress.epoch}/{progress.epochs} step {progress.step}/"
                                      f"{progress.steps}{loss} ETA {_eta(progress.eta)}",
                   force=progress.step == progress.steps)

    def show_state(self, run):
        if run.status == Status.QUEUED:
            self._draw(0.0, "queued: another training is running", force=False)
        elif run.progress:
            self.show(run.progress)

    def _draw(self, fraction, text, force):
        now = time.monotonic()
        if not force and now - self.last < 0.2:
            return
        self.last = now
        filled = int(30 * fraction)
        with suppress(OSError):  # a hung-up terminal (SIGHUP) must not fail the training
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {fraction:4.0%} {text}\033[K")
            sys.stderr.flush()

    def log(self, message):
        """A line of its own, below the bar (which starts afresh on the next progress)."""
        self.close()
        print(message, file=sys.stderr)

    def close(self):
        if self.last:
            with suppress(OSError):
                sys.stderr.write("\n")
            self.last = 0.0


def _eta(seconds) -> str:
    return "…" if seconds is None else f"{seconds:.0f}s"


def cmd_evaluate(args) -> int:
    from .inference import make_predictor
    from .metrics import classification_metrics
    from .runner import run_dataset

    store = _store(args)
    run = store.get(store.resolve(args.run))
    if args.tfds and args.data_dir:
        raise ValueError("give either --data-dir or --tfds, not both")
    model = _run_model(store, run)
    # The run's own data by default, so a re-score is comparable with its stored metrics.
    if args.tfds:
        dataset = load_tfds(os.environ.get(TFDS_DIR_ENV))
    else:
        dataset = load_kmnist(args.data_dir) if args.data_dir else run_dataset(run)
    predict = make_predictor(model)
    metrics = classification_metrics(dataset.y_test, predict(dataset.x_test))
    if args.json:
        print(json.dumps({"run": run.id, "data_source": dataset.source, **metrics}, indent=2))
    else:
        print(f"run {run.id} ({run.name}) on {len(dataset.y_test)} test images from {dataset.source}")
        print(f"accuracy {metrics['accuracy']:.4f}  macro F1 {metrics['macro_f1']:.4f}  "
              f"kappa {metrics['kappa']:.4f}  log loss {metrics['log_loss']:.4f}")
        for row in metrics["per_class"]:
            print(f"  {row['class']} {row['label']:<9} precision {row['precision']:.3f} "
                  f"recall {row['recall']:.3f} F1 {row['f1']:.3f}")
    return 0


def cmd_runs(args) -> int:
    store = _store(args)
    runs = store.list_runs()
    if args.csv:
        from .export import runs_csv

        sys.stdout.write(runs_csv(runs))
        return 0
    if args.json:
        print(json.dumps([_run_summary(r, store) for r in runs], indent=2))
        return 0
    if not runs:
        print("no runs yet: try `python -m kmnist_core train --variant combined`")
        return 0
    now = time.time()
    print(f"{'id':>4} {'sweep':>5}  {'variant':<9} {'status':<11} {'test acc':>8} {'F1':>6} {'kappa':>6} "
          f"{'epochs':>6} {'time':>7}  name")
    for run in runs:
        test = (run.metrics or {}).get("test", {})
        status = "stalled" if stalled(run, now) else run.status
        print(f"{run.id:>4} {run.sweep_id or '':>5}  {run.variant:<9} {status:<11} "
              f"{_fmt(test.get('accuracy')):>8} {_fmt(test.get('macro_f1')):>6} {_fmt(test.get('kappa')):>6} "
              f"{(run.metrics or {}).get('epochs_done', ''):>6} {_fmt(run.duration, '.0f', 's'):>7}  {run.name}")
    if any(run.sweep_id for run in runs):
        print("sweep: the sweep a run belongs to (`sweeps ID` summarises it)")
    for run in runs:
        if silent := stalled(run, now):
            print(f"run {run.id} {stall_note(silent)}")
    return 0


def _fmt(value, spec=".3f", suffix=""):
    return "" if value is None else f"{value:{spec}}{suffix}"


def cmd_predict(args) -> int:
    from .inference import make_predictor, top_k
    from .preprocess import read_image_file, to_kmnist

    store = _store(args)
    run_id = store.resolve(args.run)
    model = _run_model(store, store.get(run_id))
    sample = to_kmnist(read_image_file(args.image))  # checks size and kind before reading
    predict = make_predictor(model)
    ranked = top_k(predict(sample[None])[0], 3)
    if args.json:
        print(json.dumps({"run": run_id, "top3": ranked}, indent=2, ensure_ascii=False))
    else:
        for entry in ranked:
            print(f"{entry['hiragana']} ({entry['romaji']:<3}) {entry['probability']:6.1%}")
    return 0


def cmd_export(args) -> int:
    from .export import export_run

    store = _store(args)
    written = export_run(store, store.resolve(args.run), args.to)
    for path in written:
        print(path)
    return 0


def _run_model(store, run):
    """The run's model, or one line naming the run and why not; asked before any data or
    image is read, so nothing is read for a run that has no model to use."""
    from .inference import load_model

    if run.status == Status.CANCELLED:
        raise StoreError(f"run {run.id} was cancelled before it started: it has no model")
    try:
        return load_model(store.model_path(run.id))
    except ModelLoadError as error:
        raise ModelLoadError(f"run {run.id} ({run.status}): {error}") from None


def cmd_data(args) -> int:
    dataset = load_kmnist(args.data_dir)
    counts = dataset.class_counts()
    if args.json:
        print(json.dumps({"source": dataset.source, "counts": counts}, indent=2))
        return 0
    print(f"source: {dataset.source}")
    print(f"train: {len(dataset.y_train)} images, test: {len(dataset.y_test)} images")
    for c in CLASSES:
        print(f"  {c.index} {c.hiragana} {c.romaji:<3} {c.codepoint}  "
              f"train {counts['train'][c.index]:>6}  test {counts['test'][c.index]:>6}")
    return 0


def cmd_stop(args) -> int:
    store = _store(args)
    run_id = store.resolve(args.run)
    print(f"run {run_id}: {store.request_stop(run_id)}")
    return 0


def cmd_delete(args) -> int:
    store = _store(args)
    run_id = store.resolve(args.run)
    store.delete(run_id)
    print(f"run {run_id} deleted")
    return 0


def cmd_rename(args) -> int:
    store = _store(args)
    run_id = store.resolve(args.run)
    store.rename(run_id, args.name)
    print(f"run {run_id} renamed to {args.name.strip()!r}")
    return 0


def cmd_worker(args) -> int:
    from .worker import ray_address, run_worker

    _use_ray(args)
    run_worker(args.home or str(RunStore(None).home), idle_exit=args.idle_exit, address=ray_address())
    return 0


def _run_summary(run, store) -> dict:
    metrics = run.metrics or {}
    model_path = store.model_path(run.id)
    return {
        "id": run.id, "name": run.name, "variant": run.variant, "status": str(run.status), "sweep_id": run.sweep_id,
        "config": run.config, "data_source": run.data_source, "params": run.params, "runtime": run.runtime,
        "created_at": run.created_at, "duration_seconds": run.duration, "error": run.error,
        "test": {k: metrics.get("test", {}).get(k) for k in ("accuracy", "macro_f1", "kappa", "log_loss")},
        "val": {k: metrics.get("val", {}).get(k) for k in ("accuracy", "macro_f1", "kappa", "log_loss")} if "val" in metrics else None,
        "fit": metrics.get("fit"), "cv": metrics.get("cv"), "stalled_seconds": stalled(run),
        "model_path": str(model_path) if model_path.is_file() else None,
    }


def _result_line(run) -> str:
    if run.status == Status.CANCELLED:
        return f"run {run.id} cancelled before it started"
    if run.status == Status.INTERRUPTED:
        return f"run {run.id} interrupted: history kept up to epoch {(run.interruption or {}).get('last_epoch', 0)}"
    if run.status not in WITH_MODEL:
        return f"run {run.id} {run.status}: {run.error or 'no model was trained'}"
    test = (run.metrics or {}).get("test", {})
    return (f"run {run.id} {run.status}: test accuracy {test.get('accuracy', 0):.4f}, "
            f"macro F1 {test.get('macro_f1', 0):.4f}, kappa {test.get('kappa', 0):.4f}")


COMMANDS = {
    "train": cmd_train, "sweep": cmd_sweep, "sweeps": cmd_sweeps, "evaluate": cmd_evaluate, "runs": cmd_runs, "predict": cmd_predict,
    "data": cmd_data, "export": cmd_export, "stop": cmd_stop, "delete": cmd_delete, "rename": cmd_rename, "worker": cmd_worker,
}
