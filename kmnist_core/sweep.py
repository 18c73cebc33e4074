"""Sweeps: a parameter's whole curve, with seeds.

A sweep trains one configuration (a variant's preset plus shared settings) for several
values of one parameter, and several seeds each. Its runs are queued like any others,
grouped under the sweep's id; ``summarise`` turns the finished ones into one row per
value with mean ± std over seeds of train and held-out accuracy and loss — the
validation curve, or the learning curve when the parameter is ``train_size``.

How values are written (the CLI's ``--values`` and the app's form read the same):
numbers separated by commas (``0, 0.2, 0.4, 0.6``; ``1e-5`` works). For
``hidden_units`` one value is a whole network, written as on the Train form (layer sizes
separated by commas), and values are separated by semicolons: ``64; 256; 1024`` is three
one-hidden-layer networks, ``256, 256; 512, 512`` two two-layer ones. Semicolons also
separate the values of the other parameters.

The runs are queued seed by seed (every value with the first seed, then every value
with the next), so the whole curve appears early and its spread fills in after.
"""

import dataclasses
import math
import re
from dataclasses import dataclass

from .checks import MAX_NAME, ParameterError, check_choice, check_int
from .config import LABELS, PARAMETERS, VARIANTS, TrainConfig, describe, make_config, parse_units, preset
from .significance import seed_summary
from .status import ACTIVE, Status
from .verdict import loss_accuracy_disagreement

MAX_RUNS = 40  # per sweep: 40 runs of the overfit preset are ~15 minutes on kmnist-mini and 2 cores
MAX_SEEDS = 10
MIN_VALUES = 2  # one value is a point, not a curve


@dataclass(frozen=True)
class Sweepable:
    """How one parameter is swept: an example of values worth trying (in the spelling
    ``parse_values`` reads) and whether its axis turns logarithmic when the values span
    two decades or more (penalties from 1e-5 to 1e-2 crowd into one corner otherwise)."""

    example: str
    log: bool = False


SWEEPABLE = {
    "dropout": Sweepable("0, 0.2, 0.4, 0.6"),
    "input_dropout": Sweepable("0, 0.1, 0.2, 0.3"),
    "l1": Sweepable("0, 1e-5, 1e-4, 1e-3", log=True),
    "l2": Sweepable("0, 1e-4, 1e-3, 1e-2", log=True),
    "train_size": Sweepable("500, 1000, 2000, 4000", log=True),
    "hidden_units": Sweepable("64; 256; 1024", log=True),
    "epochs": Sweepable("5, 10, 20, 40"),
}
SWEEP_LABELS = {**LABELS, "param": "Parameter", "values": "Values", "seeds": "Seeds"}
HELDOUT_NAMES = {"val": "validation", "test": "test"}


def parse_values(param, text) -> list:
    """The values written in ``text`` (see the module's docstring), not yet range-checked;
    raises ParameterError when some cannot be read."""
    values, problems = _read_values(param, text)
    if problems:
        raise ParameterError(problems)
    return values


def _read_values(param, text) -> tuple:
    """(the values that could be read, [problems with the rest]): a sweep's error then
    names the unreadable values and the out-of-range ones together."""
    check_choice("param", param, tuple(SWEEPABLE))
    text = str(text).strip()
    example = SWEEPABLE[param].example
    if param == "hidden_units":
        parts = text.split(";")
        if len(parts) == 1 and "," in text:
            return [], [("values", f"of hidden_units are separated by semicolons (commas separate the layers of "
                                   f"one network): e.g. {example} for three one-layer networks; got {text[:40]!r}")]
        values: list = []
        problems: list = []
        for part in parts:
            try:
                values.append(parse_units(part))
            except ParameterError as error:
                problems += [p for p in error.problems if p not in problems]
        return values, problems
    values = []
    bad: list[str] = []
    for part in (part.strip() for part in re.split(r"[;,]", text)) if text else ():
        number = _number(part, PARAMETERS[param].kind)
        (bad if number is None else values).append(part if number is None else number)
    if bad or not text:
        shown = ", ".join(repr(part[:20]) for part in bad) if bad else "nothing"
        return values, [("values", f"must be numbers separated by commas, e.g. {example}; got {shown}")]
    return values, []


def _number(text, kind):
    """int or float from ``text`` (an int parameter takes '2e3' as 2000), None when it is
    not a finite number. Non-integral numbers for int parameters are left to the range check."""
    try:
        return int(text) if kind == "int" else float(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return None
    if not math.isfinite(number):
        return None
    return int(number) if kind == "int" and number.is_integer() else number


def sweep_configs(variant, param, values, seeds=1, **overrides) -> list:
    """Every run's validated ``TrainConfig``, in queue order (seed by seed, values in
    order). ``values`` is a list or text (``parse_values``); ``overrides`` are settings
    shared by every run (None = the preset's; ``seed`` is the first seed). Raises one
    ParameterError listing every problem, so nothing is queued from a half-valid sweep."""
    overrides = {name: value for name, value in overrides.items() if value is not None}
    problems = []

    def collect(check, *args, **kwargs):
        try:
            return check(*args, **kwargs)
        except ParameterError as error:
            problems.extend(p for p in error.problems if p not in problems)
            return None

    collect(check_choice, "variant", variant, tuple(VARIANTS))
    if collect(check_choice, "param", param, tuple(SWEEPABLE)) is None:
        collect(_check_seeds, seeds)
        raise ParameterError(problems)
    if isinstance(values, (list, tuple)):
        parsed, unreadable = list(values), []
    else:
        parsed, unreadable = _read_values(param, values)
        problems += unreadable
    if not unreadable and len(parsed) < MIN_VALUES:
        problems.append(("values", f"must hold at least {MIN_VALUES} values to draw a curve, got {len(parsed)}"))
    checked, out_of_range = [], []
    for value in parsed:
        try:
            checked.append(PARAMETERS[param].check(param, value))
        except ParameterError as error:
            out_of_range += error.problems
    problems += _merged(out_of_range)
    if param == "train_size" and 0 in checked:  # "0 = all images" has no place on a learning curve
        problems.append(("train_size", "must be a number of images in a sweep (0, meaning all of them, has no "
                                       "place on the curve); got 0"))
        checked = [value for value in checked if value != 0]
    unique = list(dict.fromkeys(checked))
    if len(unique) < len(checked):
        twice = sorted({value_text(param, v) for v in checked if checked.count(v) > 1})
        problems.append(("values", f"must differ from each other; repeated: {', '.join(twice)}"))
    seeds = collect(_check_seeds, seeds)
    if seeds and len(parsed) * seeds > MAX_RUNS:
        problems.append(("", f"a sweep queues at most {MAX_RUNS} runs: {len(parsed)} values × {seeds} seeds make "
                             f"{len(parsed) * seeds}; use fewer values or seeds"))
    if param in overrides:
        problems.append((param, "is the swept parameter: give its values as the sweep's values, not as a shared setting"))
    if overrides.get("kfold"):
        problems.append(("kfold", "must be 0 (off) in a sweep: its seeds give the spread, and k-fold would train "
                                  "every run k times"))
    shared = {name: value for name, value in overrides.items() if name != param}
    if not unique:
        collect(make_config, variant, **shared)  # still name every bad shared setting
    ordered = sorted(unique) if PARAMETERS[param].kind != "units" else unique
    first_seed = shared.pop("seed", TrainConfig.seed)
    first_seed = collect(PARAMETERS["seed"].check, "seed", first_seed) or 0
    configs = [collect(make_config, variant, **shared, **{param: value, "seed": first_seed + number})
               for number in range(seeds or 1) for value in ordered]
    if problems:
        raise ParameterError(problems)
    return configs


def _merged(problems) -> list:
    """"l1 must be in [0, 0.1], got 1" and "…, got 2" as one "l1 must be in [0, 0.1], got 1, 2"."""
    merged: dict[tuple, list] = {}
    for name, text in problems:
        rule, _, got = text.rpartition(", got ")
        merged.setdefault((name, rule or text), []).append(got if rule else None)
    return [(name, rule if None in gots else f"{rule}, got {', '.join(dict.fromkeys(gots))}")
            for (name, rule), gots in merged.items()]


def _check_seeds(seeds) -> int:
    return check_int("seeds", seeds, 1, MAX_SEEDS)


def run_name(config, param, seeds, room=0) -> str:
    """A sweep run's name, e.g. "overfit · epochs 10 · dropout 0.4 · seed 1": the variant,
    what else differs from its preset, then always the swept value and (with several
    seeds) the seed, even where they equal the preset's. Past the store's 80 characters
    the shared settings give way ("…"), never the value or the seed; ``room`` (the
    sweep's longest value-and-seed text) makes every run of a sweep give way alike."""
    base = preset(config.variant)
    shared = describe(dataclasses.replace(config, **{param: _as_field(param, base[param]), "seed": base["seed"]}))
    tail = _tail(config, param, seeds)
    parts = shared.split(" · ")
    while len(" · ".join(parts)) + 3 + max(len(tail), room) > MAX_NAME and len(parts) > 1:
        parts = [*parts[:-2 if parts[-1] == "…" else -1], "…"]
    return f"{' · '.join(parts)} · {tail}"[:MAX_NAME]


def _tail(config, param, seeds) -> str:
    """ "dropout 0.4 · seed 1": what tells a sweep's runs apart."""
    text = f"{param.replace('_', ' ')} {value_text(param, getattr(config, param), short=True)}"
    return text + (f" · seed {config.seed}" if seeds > 1 or config.seed != preset(config.variant)["seed"] else "")


def _as_field(param, value):
    return tuple(value) if param == "hidden_units" else value


def enqueue_sweep(store, variant, param, values, seeds=1, data_dir=None, data_source=None, owner=None,
                  **overrides) -> int:
    """Validate the whole sweep (``sweep_configs``), then store it and queue its runs in
    one transaction (``store.create_run`` says what ``data_source`` and ``owner`` mean);
    returns the sweep's id."""
    configs = sweep_configs(variant, param, values, seeds, **overrides)
    swept = list(dict.fromkeys(getattr(config, param) for config in configs))
    shared = {name: value for name, value in overrides.items() if value is not None}
    room = max(len(_tail(config, param, seeds)) for config in configs)
    return store.create_sweep(param, swept, seeds, variant, [(c, run_name(c, param, seeds, room)) for c in configs],
                              overrides=shared, data_dir=data_dir, data_source=data_source, owner=owner)


def title(sweep) -> str:
    """A stored sweep in words: "overfit, epochs 10: dropout 0, 0.2, 0.4, 0.6 × 2 seeds"."""
    shared = "".join(f", {name.replace('_', ' ')} {value_text(name, value, short=True)}"
                     for name, value in sweep.overrides.items())
    separator = "; " if sweep.param == "hidden_units" else ", "
    seeds = f" × {sweep.seeds} seeds" if sweep.seeds > 1 else ""
    return (f"{sweep.variant}{shared}: {sweep.param.replace('_', ' ')} "
            f"{separator.join(value_text(sweep.param, value) for value in sweep.values)}{seeds}")


def value_text(param, value, short=False) -> str:
    """A swept value as people read it: 0.4, 1e-05, 2000, or "256, 256" for a network
    ("256-256" when ``short``, as run names spell layers)."""
    if param == "hidden_units" or isinstance(value, (list, tuple)):
        return ("-" if short else ", ").join(str(units) for units in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _key(param, value):
    return tuple(value) if param == "hidden_units" else value


def summarise(runs, param, values=None) -> list:
    """One row per value of ``param`` among ``runs`` (a sweep's runs), in ``values``'
    order when given (values without runs yet get a row too), else in ascending order:

    {"value", "label", "runs", "finished", "active", "heldout" ("val" or "test"),
     "train_accuracy", "heldout_accuracy", "train_loss", "heldout_loss": seed_summary
     dicts ({"mean", "std", "n"}, None before a run finished), "best": bool}.

    Only completed runs count (a stopped run's model is partly trained). Held-out is the
    validation split, or test for runs trained on every training image (full_train). The
    best row is the one with the lowest mean held-out loss."""
    groups: dict = {}
    for run in runs:
        value = (run.config or {}).get(param)
        if value is not None:
            groups.setdefault(_key(param, value), []).append(run)
    keys = [_key(param, value) for value in values] if values is not None else sorted(groups)
    rows: list[dict] = []
    for key in keys:
        group = groups.get(key, [])
        done = [run for run in group if run.status == Status.COMPLETED and _scores(run)]
        heldout = _scores(done[0])[1] if done else None
        row: dict = {"value": list(key) if isinstance(key, tuple) else key, "label": value_text(param, key),
               "runs": len(group), "finished": len(done), "active": sum(run.status in ACTIVE for run in group),
               "heldout": heldout, "best": False}
        for name, split, metric in (("train_accuracy", 0, "accuracy"), ("heldout_accuracy", 1, "accuracy"),
                                    ("train_loss", 0, "log_loss"), ("heldout_loss", 1, "log_loss")):
            numbers = [_scores(run)[2 * split][metric] for run in done]
            row[name] = seed_summary(numbers) if numbers else None
        rows.append(row)
    scored = [row for row in rows if row["heldout_loss"]]
    if scored:
        min(scored, key=lambda row: row["heldout_loss"]["mean"])["best"] = True
    return rows


def _scores(run):
    """(train scores, held-out name, held-out scores), or None without them."""
    metrics = run.metrics or {}
    heldout = "val" if "val" in metrics else "test"
    if "accuracy" not in metrics.get("train", {}) or "accuracy" not in metrics.get(heldout, {}):
        return None
    return metrics["train"], heldout, metrics[heldout]


def best_sentence(rows, param) -> str | None:
    """ "Lowest mean validation loss at Dropout (hidden layers) 0.4: 0.351 ± 0.012 over 2
    seeds." — or None before any value has a finished run. The lowest is never crowned
    alone when the sweep cannot tell it from the next: with one seed per value the luck
    of a seed is not measured at all, and with several, a runner-up closer than the seeds'
    spread is named beside it."""
    best = next((row for row in rows if row["best"]), None)
    if best is None:
        return None
    loss = best["heldout_loss"]
    lead = f"Lowest mean {HELDOUT_NAMES[best['heldout']]} loss at {LABELS[param]} {best['label']}: {loss['mean']:.3f}"
    others = sorted((row for row in rows if row["heldout_loss"] and row is not best),
                    key=lambda row: row["heldout_loss"]["mean"])
    if loss["std"] is None:
        if not others:
            return f"{lead} (one seed)."
        return (f"{lead} (one seed). One seed per value does not measure the luck of a seed, which can move "
                f"this loss more than the gap to the next value ({LABELS[param]} {others[0]['label']}: "
                f"{others[0]['heldout_loss']['mean']:.3f}): sweep 2–3 seeds per value before keeping it.")
    lead += f" ± {loss['std']:.3f} over {loss['n']} seeds"
    runner = others[0]["heldout_loss"] if others else None
    if runner and runner["mean"] - loss["mean"] < max(loss["std"], runner["std"] or 0.0):
        return (f"{lead}, but {LABELS[param]} {others[0]['label']} ({mean_std_text(runner)}) is within the "
                f"seeds' spread of it: these seeds cannot tell the two apart.")
    return f"{lead}."


def loss_accuracy_sentence(rows, param) -> str | None:
    """Why the starred value (lowest mean held-out loss) is not the most accurate, with the
    numbers, when that happens (seen: a dropout sweep at 10 epochs starred 0.6, its least
    accurate value); None otherwise. Means over each value's finished seeds."""
    scored = [row for row in rows if row["heldout_loss"] and row["heldout_accuracy"]]
    best = next((row for row in scored if row["best"]), None)
    if best is None:
        return None
    top = max(scored, key=lambda row: row["heldout_accuracy"]["mean"])
    if top["heldout_accuracy"]["mean"] <= best["heldout_accuracy"]["mean"]:
        return None

    def figures(row):
        return f"{LABELS[param]} {row['label']}", row["heldout_loss"]["mean"], row["heldout_accuracy"]["mean"]

    return loss_accuracy_disagreement(figures(best), figures(top), HELDOUT_NAMES[best["heldout"]])


def mean_std_text(summary, spec=".3f") -> str:
    """ "0.912 ± 0.004", "0.912" for one seed, "" for none."""
    if not summary:
        return ""
    text = f"{summary['mean']:{spec}}"
    return text if summary["std"] is None else f"{text} ± {summary['std']:{spec}}"
