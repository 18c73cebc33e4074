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

from . import native_logs
from . import sweep as sweeping
from .checks import ModelLoadError, ParameterError
from .classes import CLASSES
from .config import PARAMETERS, VARIANTS, check_against_data, make_config, parse_units
from .data import DATA_DIR_ENV, TFDS_DIR_ENV, default_data_dir, load_kmnist, load_tfds
from .errors import KmnistError, one_line
from .stall import recent_startups
from .status import WITH_MODEL, Status, stall_note, stalled
from .store import HOME_ENV, RunStore, StoreError
from .study import QUICK_STUDY, QUICK_STUDY_NAME, VARIANTS_STUDY, enqueue_study, run_times, seconds_text, study_configs
from .worker import RAY_ADDRESS_ENV, train_each, train_until_done

# What a user can cause and fix, said in one line: our own errors, the store's, and the
# operating system's about real files (a folder that cannot be created, a full disk).
EXPECTED_ERRORS = (KmnistError, OSError)
SIGPIPE_EXIT = 141  # 128 + SIGPIPE: what a shell reports for a Unix tool whose reader left


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
    train.add_argument("--variant", default="combined",
                       help=f"one of: {', '.join(VARIANTS)} (default: combined); or all: the study's six variants, "
                            f"each with its own preset, as one study; or quick: the quick study (six variants on "
                            f"{QUICK_STUDY['train_size']:,} images for {QUICK_STUDY['epochs']} epochs)")
    train.add_argument("--name", help="a label for the run (default: named from its settings)")
    _add_config_arguments(train)
    train.add_argument("--json", action="store_true", help="print the finished run as JSON")
    train.add_argument("--ray", metavar="ADDRESS", help="train on the Ray cluster at ADDRESS (e.g. auto, "
                                                        "10.0.0.5:6379); default: $KMNIST_RAY_ADDRESS, else here")

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
    export.add_argument("--force", action="store_true", help="replace files (or links) of the same names in that folder")

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

    studies = commands.add_parser("studies", help="list studies (Quick study, all variants, labs, sweeps), newest first")
    studies.add_argument("--json", action="store_true")
    study = commands.add_parser("study", help="one study: its question and its runs with status and scores")
    study.add_argument("study", type=int, help="a study id (from `studies`)")
    study.add_argument("--json", action="store_true")
    report = commands.add_parser("report", help="write a study's report: HTML (opens offline, with figures) or Markdown")
    report.add_argument("study", type=int, help="a study id (from `studies`)")
    report.add_argument("--to", required=True, help="the file to write; its suffix chooses the format: .html or .md")
    report.add_argument("--force", action="store_true", help="replace the file if it exists")

    commands.add_parser(
        "recover", help="rebuild the run database from the run folders (nothing is deleted)",
        description="Index every run folder the database does not list (settings, status, history, study, sweep). "
                    "A damaged runs.sqlite is first moved aside as runs.sqlite.damaged-<time>, never deleted.")

    return parser


def _use_ray(args) -> None:
    """``--ray`` as ``KMNIST_RAY_ADDRESS`` for this process and the workers it starts."""
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


def run() -> None:
    """The console entry point (``python -m kmnist_core``, ``kmnist``): ``main`` with
    TensorFlow's C++ start-up notes kept off the terminal (``native_logs``)."""
    native_logs.silence_for_this_process()
    sys.exit(main())


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_request:  # --help, or a one-line usage error already printed
        return int(exit_request.code or 0)
    try:
        code = COMMANDS[args.command](args)
        sys.stdout.flush()  # a reader that left (`runs | head`) shows here, not at the interpreter's exit
        return code
    except BrokenPipeError:
        return _reader_left()
    except EXPECTED_ERRORS as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2 if isinstance(error, ParameterError) else 1


def _reader_left() -> int:
    """The reader of our output closed the pipe (``runs | head -5``): leave quietly, as
    Unix tools do. stdout now points at /dev/null, so the interpreter's last flush of what
    is still buffered cannot fail again (the recipe of Python's signal module docs)."""
    with suppress(OSError, ValueError):  # ValueError: no file descriptor (a test's captured stdout)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return SIGPIPE_EXIT


def _store(args) -> RunStore:
    store = RunStore(args.home)
    store.reconcile()
    return store


def cmd_train(args) -> int:
    _use_ray(args)
    overrides = {name: getattr(args, name) for name in PARAMETERS if name != "variant"}
    if overrides["hidden_units"] is not None:
        overrides["hidden_units"] = parse_units(overrides["hidden_units"])
    if args.variant in STUDY_VARIANTS:
        return _train_study(args, overrides)
    config = make_config(args.variant, **overrides)
    data_dir = args.data_dir or default_data_dir()  # stored as used: a worker elsewhere trains on the same
    dataset = load_kmnist(data_dir)  # fail fast, before anything is stored
    check_against_data([config], len(dataset.y_train))
    store = _store(args)
    store.trainer_active()  # an unusable lock file is said now, before a run is queued that nothing could train
    run_id = store.create_run(config, name=args.name, data_dir=data_dir, data_source=dataset.source)
    print(f"run {run_id}: {config.variant} ({config.family}) on {dataset.source}", file=sys.stderr)
    try:
        train_until_done(store, run_id, {store.get(run_id).data_dir: dataset})
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


STUDY_VARIANTS = {"all": VARIANTS_STUDY, "quick": QUICK_STUDY_NAME}  # --variant: the study it queues


def _train_study(args, overrides) -> int:
    """``train --variant all`` or ``quick``: the study's variants queued as one study, then
    trained here (or followed, as a sweep's runs are)."""
    study = STUDY_VARIANTS[args.variant]
    if args.name:
        raise ParameterError([("--name", f"names one run; the runs of --variant {args.variant} are named from their "
                                         f"settings")])
    shared = {**(QUICK_STUDY if args.variant == "quick" else {}), **{k: v for k, v in overrides.items() if v is not None}}
    configs = study_configs(**shared)
    data_dir = args.data_dir or default_data_dir()
    dataset = load_kmnist(data_dir)  # fail fast, before anything is stored
    check_against_data(configs, len(dataset.y_train))
    data_dir = None if data_dir is None else os.path.abspath(data_dir)
    store = _store(args)
    store.trainer_active()
    study_id, run_ids = enqueue_study(store, *study, configs, data_dir=data_dir, data_source=dataset.source)
    print(f"study {study_id}: {store.get_study(study_id).name}: {len(run_ids)} runs on {dataset.source}", file=sys.stderr)
    train_each(store, run_ids, {data_dir: dataset}, on_finished=lambda run: print(_result_line(run), file=sys.stderr))
    _print_study(store, store.get_study(study_id), args.json)
    return 0 if all(store.get(run_id).status == Status.COMPLETED for run_id in run_ids) else 1


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
    train_each(store, run_ids, {data_dir: dataset}, on_finished=lambda run: print(_result_line(run), file=sys.stderr))
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


def cmd_studies(args) -> int:
    store = _store(args)
    listed = []
    for study in store.list_studies():
        runs = store.study_runs(study.id)
        listed.append({"id": study.id, "kind": study.kind, "name": study.name, "purpose": study.purpose,
                       "lab": study.lab, "prediction": study.prediction, "created_at": study.created_at,
                       "runs": len(runs), "completed": sum(run.status == Status.COMPLETED for run in runs)})
    if args.json:
        print(json.dumps(listed, indent=2, ensure_ascii=False))
    elif not listed:
        print("no studies yet: try `python -m kmnist_core train --variant quick`")
    else:
        print(f"{'id':>4}  {'kind':<8}  {'done':>7}  {'created':<16}  name")
        for entry in listed:
            created = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry["created_at"]))
            print(f"{entry['id']:>4}  {entry['kind']:<8}  {entry['completed']:>3}/{entry['runs']:<3}  {created:<16}  "
                  f"{entry['name']}")
    return 0


def cmd_study(args) -> int:
    store = _store(args)
    _print_study(store, store.get_study(args.study), args.json)
    return 0


def _print_study(store, study, as_json) -> None:
    runs = store.study_runs(study.id)
    if as_json:
        print(json.dumps({"id": study.id, "kind": study.kind, "name": study.name, "purpose": study.purpose,
                          "lab": study.lab, "prediction": study.prediction, "created_at": study.created_at,
                          "sweep_id": study.sweep_id, "runs": [_run_summary(run, store) for run in runs]},
                         indent=2, ensure_ascii=False))
        return
    print(f"study {study.id}: {study.name} ({study.kind})")
    print(f"  {study.purpose}")
    if study.prediction:
        print(f"  prediction: {study.prediction}")
    print(f"{'id':>4}  {'variant':<9} {'status':<11} {'test acc':>8} {'F1':>6} {'kappa':>6}  {'verdict':<13} name")
    for run in runs:
        metrics = run.metrics or {}
        test = metrics.get("test", {})
        print(f"{run.id:>4}  {run.variant:<9} {run.status:<11} {_fmt(test.get('accuracy')):>8} "
              f"{_fmt(test.get('macro_f1')):>6} {_fmt(test.get('kappa')):>6}  "
              f"{metrics.get('fit', {}).get('verdict', ''):<13} {run.name}")


def cmd_report(args) -> int:
    from . import report

    suffix = os.path.splitext(args.to)[1].lower()
    report.check_target(args.to, suffix, args.force)  # before any work: a bad name loses nothing
    store = _store(args)
    runs = store.study_runs(store.get_study(args.study).id)
    evidence = None
    with suppress(*EXPECTED_ERRORS):  # without the data the report reads scores only (no McNemar)
        dataset = load_kmnist(args.data_dir or (runs[0].data_dir if runs else None))
        if runs and dataset.source == runs[0].data_source:
            evidence = (dataset.y_test, lambda run_id: store.load_array(run_id, "test_proba"))
    path = report.write(report.render(report.build(store, args.study, evidence), suffix), args.to, args.force)
    print(path)
    return 0


def _left_at_once(run) -> str:
    if run.status == Status.RUNNING:
        return f"run {run.id}: left at once; the background worker is stopping it"
    return _result_line(run)


def cmd_evaluate(args) -> int:
    from .inference import make_predictor
    from .metrics import classification_metrics
    from .runner import run_dataset

    store = _store(args)
    run = store.get(store.resolve(args.run))
    if args.tfds and args.data_dir:
        raise ParameterError("give either --data-dir or --tfds, not both")
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
          f"{'epochs':>6} {'training':>10} {'in all':>10}  name")
    for run in runs:
        test = (run.metrics or {}).get("test", {})
        status = "stalled" if stalled(run, now, recent_startups(runs, run)) else run.status
        training, in_all = run_times(run)
        print(f"{run.id:>4} {run.sweep_id or '':>5}  {run.variant:<9} {status:<11} "
              f"{_fmt(test.get('accuracy')):>8} {_fmt(test.get('macro_f1')):>6} {_fmt(test.get('kappa')):>6} "
              f"{(run.metrics or {}).get('epochs_done', ''):>6} {_seconds(training):>10} {_seconds(in_all):>10}  {run.name}")
    if any(run.sweep_id for run in runs):
        print("sweep: the sweep a run belongs to (`sweeps ID` summarises it)")
    for run in runs:
        if silent := stalled(run, now, recent_startups(runs, run)):
            print(f"run {run.id} {stall_note(silent)}")
    return 0


def _fmt(value):
    return "" if value is None else f"{value:.3f}"


def _seconds(value) -> str:
    return "" if value is None else seconds_text(value)


def cmd_predict(args) -> int:
    from .preprocess import read_image_file, to_kmnist

    store = _store(args)
    run = store.get(store.resolve(args.run))
    run_id = _refuse_cancelled(run).id
    # The picture before TensorFlow: a 25-megapixel one takes ~100 MB while it is reduced (preprocess.
    # LARGE_DECODE), beside Python alone rather than on top of TensorFlow and the model (~850 MB).
    sample = to_kmnist(read_image_file(args.image))  # checks size and kind before reading
    from .inference import make_predictor, top_k

    predict = make_predictor(_run_model(store, run))
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
    written = export_run(store, store.resolve(args.run), args.to, force=args.force)
    for path in written:
        print(path)
    return 0


def _run_model(store, run):
    """The run's model, or one line naming the run and why not; asked before any data is
    read (``predict`` reads its small picture first, and only refuses a cancelled run before)."""
    from .inference import load_model

    _refuse_cancelled(run)
    try:
        return load_model(store.model_path(run.id))
    except ModelLoadError as error:
        raise ModelLoadError(f"run {run.id} ({run.status}): {error}") from None


def _refuse_cancelled(run):
    if run.status == Status.CANCELLED:
        raise StoreError(f"run {run.id} was cancelled before it started: it has no model")
    return run


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


def cmd_recover(args) -> int:
    store, indexed, moved = RunStore.recover(args.home)
    if moved:
        print(f"moved the damaged database aside: {moved.name}")
    listed = len(store.list_runs())
    print(f"recovered {len(indexed)} run(s) from their folders; {listed} run(s) listed in {store.home}")
    return 0


def _run_summary(run, store) -> dict:
    metrics = run.metrics or {}
    model_path = store.model_path(run.id)
    return {
        "id": run.id, "name": run.name, "variant": run.variant, "status": str(run.status), "sweep_id": run.sweep_id,
        "study_id": run.study_id,
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
    "studies": cmd_studies, "study": cmd_study, "report": cmd_report,
    "data": cmd_data, "export": cmd_export, "stop": cmd_stop, "delete": cmd_delete, "rename": cmd_rename,
    "recover": cmd_recover,
}
