"""A study's report: what was asked, how each run was trained, what it scored, what the runs
conclude and how to retrain every one of them — as Markdown, or as one HTML file that opens
offline with its figures.

The content is built once, as a list of blocks (heading, paragraph, table, code, figure),
and rendered twice, so the two formats cannot disagree. Figures are plotly JSON specs built
here from the stored numbers, and the HTML inlines plotly.js read from the installed plotly
package's file: the engine (and the CLI's ``report``) writes the same file as the app
without importing plotly. Every number is the store's, formatted, never recomputed
(tests/test_report.py checks that).
"""

import html
import json
import os
import shlex
import time
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from . import conclusions
from .checks import ParameterError
from .classes import CLASSES
from .config import PARAMETERS, config_from_dict, preset, setting_text
from .labs import LABS, answer, first_layer_stats
from .significance import seed_summary
from .status import WITH_MODEL
from .sweep import mean_std_text
from .verdict import heldout_split, verdict_line

SETTINGS = ("variant", "family", "hidden_units", "dropout", "input_dropout", "l1", "l2", "epochs", "batch_size", "learning_rate",
            "optimizer", "schedule", "label_smoothing", "ema", "augment", "patience", "train_size", "full_train",
            "val_fraction", "kfold", "mixed_precision", "seed")
SCORE_COLUMNS = ("run", "status", "test accuracy", "macro F1", "Cohen's kappa", "test loss", "held-out − train loss",
                 "epochs", "seconds")


@dataclass(frozen=True)
class Block:
    kind: str  # "h1", "h2", "p", "note", "table", "code", "figure"
    text: str = ""
    header: tuple = ()
    rows: tuple = ()
    figure: dict | None = None


MARKDOWN_SPECIAL = set("\\`*_[]<>|#!~&")


def _md(text) -> str:
    """Text as Markdown shows it literally: the characters that would start emphasis, a link,
    an image, HTML, a table cell or a heading are escaped; numbers stay readable."""
    return "".join(f"\\{ch}" if ch in MARKDOWN_SPECIAL else ch for ch in str(text))


def retrain_command(run) -> str:
    """The CLI command that trains ``run`` again: its variant and every setting that differs
    from that preset (and the data folder it was trained on)."""
    config, base = config_from_dict(run.config).to_dict(), preset(run.variant)
    words = ["python", "-m", "kmnist_core"]
    if run.data_dir:
        words += ["--data-dir", run.data_dir]
    words += ["train", "--variant", run.variant]
    for name in PARAMETERS:
        value = config[name]
        if name == "variant" or value == base[name]:
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            words.append(flag if value else f"--no-{name.replace('_', '-')}")
        elif name == "mixed_precision":
            continue  # "auto" has no flag; True/False are the bools above
        elif isinstance(value, (list, tuple)):
            words += [flag, ",".join(map(str, value))]
        else:
            words += [flag, repr(value) if isinstance(value, float) else str(value)]
    return shlex.join(words)


def _percent(value) -> str:
    return "" if value is None else f"{value:.2%}"


def _number(value, spec=".4f") -> str:
    return "" if value is None else f"{value:{spec}}"


def _label(run) -> str:
    return f"#{run.id} {run.name}"


def build(store, study_id, evidence=None) -> list:
    """The report of study ``study_id`` as blocks. ``evidence``: (test labels, run id ->
    stored test probabilities), for the sentences that pair predictions image by image
    (McNemar); without it they are left out."""
    study = store.get_study(study_id)
    runs = [store.get(run.id) for run in store.study_runs(study_id)]  # with their history
    scored = [run for run in runs if run.status in WITH_MODEL and "test" in (run.metrics or {})]
    blocks = [Block("h1", study.name), Block("p", study.purpose),
              Block("note", f"Study #{study.id} ({study.kind}), created {_when(study.created_at)}; {len(runs)} runs, "
                            f"{len(scored)} with test scores. Report written {_when(time.time())}.")]
    lab = LABS.get(study.lab) if study.lab else None
    if study.prediction:
        blocks.append(Block("p", f"Prediction, chosen before the runs started: {study.prediction}"))
    if lab:
        result = answer(lab, runs, evidence)
        blocks += [Block("h2", "Answer"), Block("p", result.text)]
        if result.supported:
            match = "matches" if result.supported == study.prediction else "differs from"
            blocks.append(Block("p", f"The runs support: {result.supported} (this {match} the prediction)."))
        if result.caveat:
            blocks.append(Block("p", result.caveat))
        blocks.append(Block("p", f"What to try next: {lab.next_steps}"))
    blocks += _settings(runs) + _scores(runs, scored) + _conclusions(scored, evidence)
    blocks += _curves(scored) + _weights(scored) + _confusions(scored) + _provenance(runs)
    return blocks


def _when(timestamp) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))


def _settings(runs) -> list:
    if not runs:
        return []
    configs = [config_from_dict(run.config).to_dict() for run in runs]
    shared = [name for name in SETTINGS if len({json.dumps(c[name]) for c in configs}) == 1]
    differing = [name for name in SETTINGS if name not in shared]
    blocks = [Block("h2", "Settings"), Block("table", header=("setting shared by every run", "value"),
                                             rows=tuple((PARAMETERS[n].label, setting_text(n, configs[0][n]))
                                                        for n in shared))]
    if differing:
        blocks.append(Block("table", header=("run", "variant", *(PARAMETERS[n].label for n in differing)),
                            rows=tuple((_label(run), run.variant, *(setting_text(n, c[n]) for n in differing))
                                       for run, c in zip(runs, configs))))
    return blocks


def _scores(runs, scored) -> list:
    rows = []
    for run in runs:
        metrics = run.metrics or {}
        test, fit = metrics.get("test", {}), metrics.get("fit", {})
        rows.append((_label(run), str(run.status), _percent(test.get("accuracy")), _number(test.get("macro_f1")),
                     _number(test.get("kappa")), _number(test.get("log_loss")), _number(fit.get("loss_gap")),
                     str(metrics.get("epochs_done", "")), _number(metrics.get("train_seconds"), ".1f")))
    blocks = [Block("h2", "Scores (test split)"), Block("table", header=SCORE_COLUMNS, rows=tuple(rows)),
              Block("note", "Held-out − train loss: validation loss minus the clean training loss (test loss for "
                            "runs trained on every training image); a large gap is memorising.")]
    if scored:
        blocks.append(Block("h2", "Verdicts"))
        blocks += [Block("p", f"{_label(run)}: {verdict_line(run.metrics['fit'])}") for run in scored]
    return blocks


def _conclusions(scored, evidence) -> list:
    """Compare's sentences (``kmnist_core.conclusions``: drawn across comparable runs only,
    seeds with their spread), then each setting trained with several seeds: mean ± std."""
    sentences = []
    if len(scored) >= 2:
        sentences += [conclusions.set_apart_sentence(scored), conclusions.loss_gap_summary(scored)]
        if evidence:
            sentences.append(conclusions.ranking_sentence(evidence[0], scored, evidence[1]))
        sentences.append(conclusions.loss_accuracy_sentence(scored, *(evidence or ())))
    for group in conclusions.settings_groups(scored):
        if len(group) < 2:
            continue
        accuracy = seed_summary([100 * run.metrics["test"]["accuracy"] for run in group])
        gap = seed_summary([run.metrics["fit"]["loss_gap"] for run in group])
        sentences.append(f"{conclusions.group_name(group)} ({', '.join(f'#{run.id}' for run in group)}): test "
                         f"accuracy {mean_std_text(accuracy, '.2f')} %, held-out − train loss {mean_std_text(gap)} "
                         f"(mean ± std over seeds: the luck of training).")
    sentences = [sentence for sentence in sentences if sentence]
    if not any(len(group) > 1 for group in conclusions.settings_groups(scored)):
        sentences.append("Each setting was trained with one seed: a difference between runs may be the luck of a "
                         "seed. Train 2–3 seeds of each before trusting a small gap.")
    return [Block("h2", "Conclusions")] + [Block("p", sentence) for sentence in sentences]


def _curves(scored) -> list:
    if not scored:
        return []
    rows = []
    for run in scored:
        losses = [(r.epoch, r.val_loss) for r in run.history if r.val_loss is not None]
        best = min(losses, key=lambda pair: pair[1]) if losses else None
        rows.append((_label(run), str(len(run.history)), _number(best[1]) if best else "", str(best[0]) if best else "",
                     _number(losses[-1][1]) if losses else "", heldout_split(run.config)))
    return [Block("h2", "Learning curves"), Block("figure", figure=curves_spec(scored)),
            Block("table", header=("run", "epochs", "lowest held-out loss", "at epoch", "last held-out loss", "held-out split"),
                  rows=tuple(rows))]


def _weights(scored) -> list:
    """The first layer at the last epoch: what L1 (near-zero share) and L2 (‖w‖) act on."""
    rows = []
    for run in scored:
        first = first_layer_stats(run)
        if first:
            rows.append((_label(run), _percent(first["near_zero"]), _number(first["l2_norm"], ".2f"),
                         _number(first["mean_abs"], ".5f")))
    if not rows:
        return []
    return [Block("h2", "First-layer weights (last epoch)"),
            Block("table", header=("run", "share with |w| < 0.001", "‖w‖", "mean |w|"), rows=tuple(rows))]


def _confusions(scored) -> list:
    blocks = [Block("h2", "Confusion matrices (test)")] if scored else []
    for run in scored:
        matrix = run.metrics["test"]["confusion"]
        blocks += [Block("p", f"{_label(run)}: rows are the true class, columns what the run read."),
                   Block("figure", figure=confusion_spec(matrix, _label(run))),
                   Block("table", header=("true \\ read", *(c.hiragana for c in CLASSES)),
                         rows=tuple((f"{c.hiragana} {c.romaji}", *map(str, row)) for c, row in zip(CLASSES, matrix)))]
    return blocks


HOST_FACTS = (("cpu", "CPU"), ("threads", "threads"), ("precision", "precision"), ("node_ip", "Ray node"))


def host_text(runtime) -> str:
    """Where a run trained, in words ("CPU Intel Xeon, threads 2, precision bfloat16"): the
    host's facts only, so runs on one machine share one line (a run's start-up seconds differ)."""
    return ", ".join(f"{label} {runtime[key]}" for key, label in HOST_FACTS if key in runtime)


def _provenance(runs) -> list:
    sources = sorted({run.data_source for run in runs if run.data_source})
    hosts = sorted({host_text(run.runtime) for run in runs if run.runtime} - {""})
    blocks = [Block("h2", "Data and host"),
              Block("p", "Data: " + ("; ".join(sources) or "not recorded") + "."),
              Block("p", "Trained on: " + ("; ".join(hosts) or "not recorded") + "."),
              Block("h2", "Retrain any run")]
    for run in runs:
        blocks += [Block("p", _label(run)), Block("code", retrain_command(run))]
    return blocks


# -- figures: plotly JSON specs --------------------------------------------------------------------
def curves_spec(runs) -> dict:
    """Validation (dashed) and clean training (solid) loss and accuracy per epoch, one colour per run."""
    palette = ("#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692", "#B6E880")
    traces = []
    for number, run in enumerate(runs):
        colour = palette[number % len(palette)]
        epochs = [record.epoch for record in run.history]
        for axis, metric in (("", "loss"), ("2", "accuracy")):
            for split, dash in (("train", "solid"), ("val", "dash")):
                values = [getattr(record, f"{split}_{metric}") for record in run.history]
                if all(value is None for value in values):
                    continue
                name = html.escape(f"{_label(run)} {heldout_split(run.config) if split == 'val' else split}", quote=False)
                traces.append({"type": "scatter", "mode": "lines", "x": epochs, "y": values, "name": name,
                               "legendgroup": name, "showlegend": axis == "", "xaxis": f"x{axis}",
                               "yaxis": f"y{axis}", "line": {"color": colour, "dash": dash}})
    layout = {"height": 420, "margin": {"l": 40, "r": 10, "t": 30, "b": 40},
              "xaxis": {"domain": [0, 0.45], "title": {"text": "epoch"}},
              "xaxis2": {"domain": [0.55, 1], "title": {"text": "epoch"}},
              "yaxis": {"title": {"text": "loss"}, "rangemode": "tozero"},
              "yaxis2": {"title": {"text": "accuracy"}, "anchor": "x2", "tickformat": ".0%"},
              "legend": {"orientation": "h", "y": -0.25}}
    return {"data": traces, "layout": layout}


def confusion_spec(matrix, title) -> dict:
    labels = [f"{c.hiragana} {c.romaji}" for c in CLASSES]
    return {"data": [{"type": "heatmap", "z": matrix, "x": labels, "y": labels, "colorscale": "Blues", "reversescale": True,
                      "text": matrix, "texttemplate": "%{text}", "showscale": False}],
            "layout": {"title": {"text": html.escape(title, quote=False)}, "height": 420, "width": 460,
                       "yaxis": {"autorange": "reversed", "title": {"text": "true"}},
                       "xaxis": {"title": {"text": "read as"}}, "margin": {"l": 60, "r": 10, "t": 40, "b": 50}}}


# -- rendering ----------------------------------------------------------------------------------
def markdown(blocks) -> str:
    lines = []
    for block in blocks:
        if block.kind in ("h1", "h2"):
            lines += [f"{'#' if block.kind == 'h1' else '##'} {_md(block.text)}", ""]
        elif block.kind in ("p", "note"):
            lines += [_md(block.text) if block.kind == "p" else f"*{_md(block.text)}*", ""]
        elif block.kind == "table":
            lines.append("| " + " | ".join(_md(cell) for cell in block.header) + " |")
            lines.append("|" + "---|" * len(block.header))
            lines += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in block.rows]
            lines.append("")
        elif block.kind == "code":
            lines += ["```sh", block.text, "```", ""]
    return "\n".join(lines)


STYLE = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
         "table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #ccc;padding:.2em .5em;"
         "text-align:right}th{background:#f4f4f4}td:first-child{text-align:left}pre{background:#f6f6f6;"
         "padding:.6em;overflow-x:auto;white-space:pre-wrap}.note{color:#666;font-size:.9em}")


def plotly_js() -> str:
    """The plotly.js bundle of the installed plotly package, read as a file (no import)."""
    spec = find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise OSError("the plotly package is not installed: install requirements.txt to write HTML reports")
    return (Path(spec.submodule_search_locations[0]) / "package_data" / "plotly.min.js").read_text(encoding="utf-8")


def _script_json(value) -> str:
    """JSON safe inside a <script> element: no '</' can close it early."""
    return json.dumps(value, ensure_ascii=False).replace("</", "<\\/")


def to_html(blocks) -> str:
    title = next((block.text for block in blocks if block.kind == "h1"), "KMNIST study")
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{STYLE}</style><script>{plotly_js()}</script></head><body>"]
    figures = 0
    for block in blocks:
        text = html.escape(block.text)
        if block.kind in ("h1", "h2"):
            parts.append(f"<{block.kind}>{text}</{block.kind}>")
        elif block.kind in ("p", "note"):
            parts.append(f"<p class='{block.kind}'>{text}</p>")
        elif block.kind == "table":
            head = "".join(f"<th>{html.escape(cell)}</th>" for cell in block.header)
            body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
                           for row in block.rows)
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif block.kind == "code":
            parts.append(f"<pre><code>{text}</code></pre>")
        elif block.kind == "figure":
            figures += 1
            parts.append(f"<div id='figure-{figures}'></div><script>Plotly.newPlot('figure-{figures}', "
                         f"{_script_json(block.figure['data'])}, {_script_json(block.figure['layout'])}, "
                         f"{{displaylogo: false, responsive: true}});</script>")
    parts.append("</body></html>")
    return "".join(parts)


FORMATS = (".html", ".md")


def render(blocks, suffix) -> str:
    """The report as ``suffix`` says: ".html" or ".md"."""
    _check_suffix(suffix)
    return to_html(blocks) if suffix == ".html" else markdown(blocks)


def _check_suffix(suffix) -> None:
    if suffix not in FORMATS:
        raise ParameterError([("report file", f"must end in .html or .md, got {suffix or 'no suffix'!r}")])


def check_target(path, suffix, force=False) -> None:
    """OSError/ParameterError, before any work, when the report cannot go to ``path``: a suffix
    other than .html/.md, a symbolic link (it could point anywhere), or an existing file
    without ``force``."""
    _check_suffix(suffix)
    path = Path(path)
    if path.is_symlink():
        raise OSError(f"{path} is a symbolic link: give the report a plain file name")
    if path.exists() and not force:
        raise OSError(f"{path} already exists: choose another name, or pass --force to replace it")


def write(text, path, force=False) -> Path:
    """Write the report to ``path`` (see ``check_target``). O_NOFOLLOW and, without
    ``force``, O_EXCL make the checks hold at the moment of writing too."""
    path = Path(path)
    check_target(path, path.suffix.lower(), force)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | (0 if force else os.O_EXCL)
    with os.fdopen(os.open(path, flags, 0o644), "w", encoding="utf-8") as handle:
        handle.write(text)
    return path
