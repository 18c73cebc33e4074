"""Plotly figures and image tiles for the app. Plain data in, figures out: no Streamlit,
no TensorFlow, so the pages stay thin and these are testable on their own.

Every label drawn here that comes from a user (run names) goes in as plain text: plotly
renders a subset of HTML in legends and titles, so names are escaped first."""

import html
import string

import numpy as np
import plotly.graph_objects as go
from plotly.colors import hex_to_rgb, qualitative
from plotly.subplots import make_subplots

from kmnist_core.classes import CLASSES

PALETTE = qualitative.Plotly
KANA = [c.hiragana for c in CLASSES]
KANA_LABELS = [f"{c.hiragana} {c.romaji}" for c in CLASSES]


CURVE_CAPTION = (
    "**How to read these curves.** *train* (solid) and *validation* (dashed) are the model scored after "
    "each epoch exactly as it will be used: dropout off, no L1/L2 penalty — *train* on a fixed sample of "
    "1,000 of its training images. A widening gap between them is memorising; validation loss turning "
    "back up is overfitting. *as trained* (dotted) is the loss Keras minimised during the epoch, with "
    "dropout on and the penalty added: for regularized runs it sits above the clean training loss, which "
    "is the price of regularization, not a worse fit. Runs trained on all training images (final) have no "
    "validation split: their dashed curve is the *test* split, read only for the fit verdict, never to choose "
    "anything."
)
SERIES = (  # (record field, split shown in the legend, line style)
    ("train_{}", "train", "solid"),
    ("val_{}", "validation", "dash"),
    ("fit_{}", "as trained", "dot"),
)


def literal(text) -> str:
    """User text to place inside Markdown, shown literally: every ASCII punctuation mark
    backslash-escaped, so "**b**", "![x](url)", ":red[x]" or a link stay plain characters."""
    return "".join(f"\\{ch}" if ch in string.punctuation else ch for ch in str(text))


def plain(text) -> str:
    """A user's text as plotly shows it literally (no tags, no links)."""
    return html.escape(str(text), quote=False)


def curves_figure(series, height=340, marks=None, heldout=None, colour_keys=None) -> go.Figure:
    """Loss and accuracy per epoch, side by side (see ``CURVE_CAPTION``).

    ``series`` is a list of (label, history) with history a list of ``EpochRecord``. One
    colour per run, so several runs overlay readably on the Compare page. ``marks`` maps
    a label to {"best": epoch} for runs whose early stopping restored an epoch; ``heldout``
    a label to the split its held-out curve was measured on, when not "validation"
    (``verdict.heldout_split``). ``colour_keys``, one per series: series with the same key
    share a colour (a lab's seeds of one setting), so the settings, not the seeds, stand apart.
    """
    figure = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Accuracy"), horizontal_spacing=0.1)
    accuracies = []
    keys = list(colour_keys) if colour_keys is not None else list(range(len(series)))
    for (label, history), key in zip(series, keys):
        colour = PALETTE[list(dict.fromkeys(keys)).index(key) % len(PALETTE)]
        epochs = [record.epoch for record in history]
        for column, metric in ((1, "loss"), (2, "accuracy")):
            for pattern, split, dash in SERIES:
                values = [getattr(record, pattern.format(metric)) for record in history]
                if all(v is None for v in values):
                    continue  # full-train runs have no validation split; old runs no clean train
                if column == 2:
                    accuracies += [v for v in values if v is not None]
                if pattern == "val_{}":
                    split = (heldout or {}).get(label, split)
                name = plain(f"{label} {split}".strip())
                figure.add_trace(go.Scatter(
                    x=epochs, y=values, mode="lines+markers" if dash != "dot" else "lines", name=name,
                    legendgroup=name, showlegend=column == 1, line=dict(color=colour, dash=dash),
                    marker=dict(size=5), opacity=0.55 if dash == "dot" else 1.0,
                ), row=1, col=column)
        best = (marks or {}).get(label, {}).get("best")
        if best:
            for column in (1, 2):
                figure.add_vline(x=best, line=dict(color=colour, width=1, dash="dashdot"), row=1, col=column)
    last = max((record.epoch for _, history in series for record in history), default=0)
    figure.update_xaxes(title_text="epoch", rangemode="tozero", tickformat="d",
                        dtick=None if last > 10 else 1)  # no "epoch 1.5" on a new run
    figure.update_yaxes(rangemode="tozero", row=1, col=1)
    if accuracies:  # zoomed to the data: a 0-100% axis hides the train/validation gap
        low = max(0.0, min(accuracies) - 0.02)
        figure.update_yaxes(range=[low, min(1.0, max(accuracies)) + 0.01], tickformat=".0%", row=1, col=2)
    figure.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10),
                         legend=dict(orientation="h", y=-0.25))
    return figure


def seed_band_figure(groups, height=340) -> go.Figure:
    """Validation and clean training loss per epoch as mean ± std over runs that differ
    only by seed: how much of a curve is the setting and how much the luck of the draw."""
    figure = make_subplots(rows=1, cols=2, subplot_titles=("Loss (mean ± std over seeds)", "Accuracy"),
                           horizontal_spacing=0.1)
    for number, (label, histories) in enumerate(groups.items()):
        colour = PALETTE[number % len(PALETTE)]
        epochs = min(len(history) for history in histories)
        x = list(range(1, epochs + 1))
        for column, metric in ((1, "loss"), (2, "accuracy")):
            for pattern, split, dash in SERIES[:2]:
                values = np.array([[getattr(r, pattern.format(metric)) for r in history[:epochs]]
                                   for history in histories], dtype=float)
                if np.isnan(values).all():
                    continue
                mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
                name = plain(f"{label} {split}")
                figure.add_trace(go.Scatter(x=x + x[::-1], y=list(mean + std) + list((mean - std)[::-1]),
                                            fill="toself", line=dict(width=0), fillcolor=colour, opacity=0.2,
                                            hoverinfo="skip", showlegend=False), row=1, col=column)
                figure.add_trace(go.Scatter(x=x, y=mean, mode="lines", name=name, legendgroup=name,
                                            showlegend=column == 1, line=dict(color=colour, dash=dash)),
                                 row=1, col=column)
    figure.update_xaxes(title_text="epoch", tickformat="d")
    figure.update_yaxes(tickformat=".0%", row=1, col=2)
    figure.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25))
    return figure


def weights_figure(series, height=320) -> go.Figure:
    """The first layer's ‖w‖ and share of near-zero weights per epoch, one colour per run.
    ``series``: (label, history) with each record's ``weights`` from ``layer_stats``."""
    from kmnist_core.weights import NEAR_ZERO

    figure = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                           subplot_titles=("First layer ‖w‖", f"Share of weights with |w| < {NEAR_ZERO:g}"))
    for number, (label, history) in enumerate(series):
        points = [(record.epoch, record.weights[0]) for record in history if record.weights]
        if not points:
            continue
        colour = PALETTE[number % len(PALETTE)]
        for column, key in ((1, "l2_norm"), (2, "near_zero")):
            figure.add_trace(go.Scatter(x=[e for e, _ in points], y=[stats[key] for _, stats in points],
                                        mode="lines+markers", name=plain(label), legendgroup=plain(label),
                                        showlegend=column == 1, line=dict(color=colour), marker=dict(size=4)),
                             row=1, col=column)
    figure.update_xaxes(title_text="epoch", tickformat="d")
    figure.update_yaxes(rangemode="tozero", row=1, col=1)
    figure.update_yaxes(tickformat=".1%", rangemode="tozero", row=1, col=2)  # shares of 1-2%: no repeated ticks
    figure.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.3))
    return figure


def weight_histogram_figure(series, height=320) -> go.Figure:
    """Histograms of the first layer's |w| (fixed bins, log counts), one per run, their bars
    side by side and opaque (overlaid translucent bars blended into one colour), the legend
    above the plot, clear of the axis title."""
    from kmnist_core.weights import histogram_labels

    labels = histogram_labels()
    figure = go.Figure()
    for number, (label, stats) in enumerate(series):
        figure.add_trace(go.Bar(x=labels, y=stats["histogram"], name=plain(label),
                                marker_color=PALETTE[number % len(PALETTE)]))
    figure.update_layout(barmode="group", bargap=0.15, height=height, margin=dict(l=10, r=10, t=40, b=10),
                         yaxis=dict(type="log", title="weights"), xaxis=dict(title="first-layer |w|"),
                         legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0))
    return figure


def _class_matrix_layout(figure, title, height) -> go.Figure:
    """Rows are the true class (top to bottom), columns the prediction."""
    figure.update_yaxes(autorange="reversed", title_text="true")
    figure.update_xaxes(title_text="predicted", tickangle=0)
    figure.update_layout(title=plain(title), height=height, margin=dict(l=10, r=10, t=40 if title else 10, b=10))
    return figure


def confusion_figure(confusion, title="", height=360, compact=False) -> go.Figure:
    """Counts on a colour scale of the row share (recall), so rare and common classes read
    alike; rows are the true class, columns the prediction, labelled in hiragana (without
    romaji when ``compact``, for matrices shown three abreast)."""
    counts = np.asarray(confusion, dtype=int)
    totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    labels = KANA if compact else KANA_LABELS
    figure = go.Figure(go.Heatmap(
        z=share, x=labels, y=labels, text=counts, texttemplate="%{text}",
        colorscale="Blues", zmin=0, zmax=1, showscale=False,
        hovertemplate="true %{y}<br>predicted %{x}<br>%{text} images (%{z:.0%} of the row)<extra></extra>",
    ))
    return _class_matrix_layout(figure, title, height)


def confusion_difference_figure(confusion_a, confusion_b, title="", height=380) -> go.Figure:
    """B − A per cell: blue where B puts more images (on the diagonal: more right), red
    where it puts fewer, white where the two runs agree."""
    difference = np.asarray(confusion_b, dtype=int) - np.asarray(confusion_a, dtype=int)
    peak = max(1, int(np.abs(difference).max()))
    figure = go.Figure(go.Heatmap(
        z=difference, x=KANA, y=KANA, text=difference, texttemplate="%{text:+d}", zmid=0, zmin=-peak, zmax=peak,
        colorscale="RdBu", showscale=False,
        hovertemplate="true %{y}, predicted %{x}<br>B − A: %{z:+d} images<extra></extra>",
    ))
    return _class_matrix_layout(figure, title, height)


def embedding_figure(points, labels, title="", height=360) -> go.Figure:
    """A 2-D map of test images' penultimate-layer activations, one colour per class;
    selecting points shows their images below the chart."""
    figure = go.Figure()
    for index, kana in enumerate(CLASSES):
        chosen = np.flatnonzero(np.asarray(labels) == index)
        figure.add_trace(go.Scattergl(
            x=points[chosen, 0], y=points[chosen, 1], mode="markers", name=f"{kana.hiragana} {kana.romaji}",
            marker=dict(size=4, color=PALETTE[index % len(PALETTE)]), customdata=chosen,
            hovertemplate=f"{kana.hiragana} ({kana.romaji}), test image %{{customdata}}<extra></extra>",
        ))
    figure.update_xaxes(showticklabels=False)
    figure.update_yaxes(showticklabels=False)
    figure.update_layout(title=plain(title), height=height, margin=dict(l=10, r=10, t=40 if title else 10, b=10),
                         legend=dict(orientation="h", y=-0.1), dragmode="select")
    return figure


def published_figure(runs, published, height=420) -> go.Figure:
    """The chosen runs' test accuracy beside the published KMNIST results, each dot labelled
    with the test set it was measured on (never one measurement). Dots, not bars: the axis
    starts near the lowest score, and bars cut off there would exaggerate the differences."""
    rows = [(f"{p.model}{' *' if p.old_version else ''}", p.accuracy, "published: full test set, 10,000 images")
            for p in published]
    rows += [(plain(label), accuracy, plain(f"this app: {test_set}")) for label, accuracy, test_set in runs]
    rows.sort(key=lambda row: row[1])
    figure = go.Figure()
    for test_set in dict.fromkeys(row[2] for row in rows):
        chosen = [row for row in rows if row[2] == test_set]
        figure.add_trace(go.Scatter(
            x=[row[1] for row in chosen], y=[row[0] for row in chosen], mode="markers+text", name=test_set,
            text=[f"{row[1]:.2%}" for row in chosen], textposition="middle left", cliponaxis=False,
            marker=dict(size=12, color=(
                "#9aa5b1" if test_set.startswith("published") else PALETTE[len(figure.data) % len(PALETTE)])),
        ))
    low = min((row[1] for row in rows), default=0.8)
    room = max(0.06, 0.25 * (1.0 - low))  # for the lowest dot's label, on its left
    figure.update_xaxes(range=[max(0.0, low - room), 1.005], tickformat=".0%", title_text="test accuracy",
                        showgrid=True)
    figure.update_yaxes(categoryorder="array", categoryarray=[row[0] for row in rows], showgrid=True)
    figure.update_layout(height=height, margin=dict(l=10, r=10, t=10, b=10), legend=dict(orientation="h", y=-0.2))
    return figure


def per_class_f1_figure(series, height=340) -> go.Figure:
    """Grouped bars of F1 per class; ``series`` is a list of (label, per_class list)."""
    figure = go.Figure()
    for number, (label, per_class) in enumerate(series):
        figure.add_trace(go.Bar(x=KANA_LABELS, y=[c["f1"] for c in per_class], name=plain(label),
                                marker_color=PALETTE[number % len(PALETTE)]))
    figure.update_layout(barmode="group", height=height, yaxis=dict(range=[0, 1], title="F1"),
                         margin=dict(l=10, r=10, t=10, b=10), legend=dict(orientation="h", y=-0.2))
    return figure


def probability_figure(top, height=150) -> go.Figure:
    """Horizontal probability bars for a top-k list from ``inference.top_k``, best on top."""
    labels = [f"{t['hiragana']} {t['romaji']}" for t in top]
    values = [t["probability"] for t in top]
    figure = go.Figure(go.Bar(
        x=values, y=labels, orientation="h", text=[f"{v:.1%}" for v in values],
        textposition="auto", marker_color=PALETTE[0], hoverinfo="skip",
    ))
    figure.update_xaxes(range=[0, 1], tickformat=".0%")
    figure.update_yaxes(autorange="reversed", tickfont=dict(size=18))
    figure.update_layout(height=height, margin=dict(l=10, r=10, t=10, b=10))
    return figure


def enlarge(image, factor=4) -> np.ndarray:
    """Nearest-neighbour upscaling: a 28×28 sample shown big stays crisp, not blurred."""
    return np.kron(np.asarray(image, dtype=np.uint8), np.ones((factor, factor), np.uint8))


def tile(images, columns, gap=2) -> np.ndarray:
    """Images (N, H, W) in a grid with dark gaps, as one array: one image element instead
    of N keeps galleries quick to send and lay out."""
    images = np.asarray(images, dtype=np.uint8)
    count, height, width = images.shape
    rows = -(-count // columns)
    grid = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap), 40, np.uint8)
    for index, image in enumerate(images):
        top, left = divmod(index, columns)
        grid[top * (height + gap): top * (height + gap) + height,
             left * (width + gap): left * (width + gap) + width] = image
    return grid


def sweep_figure(rows, param, height=380) -> go.Figure:
    """A sweep's curve (``kmnist_core.sweep.summarise`` rows): train (solid) and held-out
    (dashed) loss and accuracy against the swept value, mean over the seeds with a ± std
    band, and a star on the value with the lowest mean held-out loss. With ``train_size``
    this is the learning curve. Values without a finished run are left out, so the curve
    fills in as runs finish.

    The x-axis is logarithmic for parameters declared so in ``SWEEPABLE`` when the values
    span two decades or more; a 0 among them (no penalty) is then drawn a decade left of
    the smallest other value and labelled 0. Networks of several layers go on a category
    axis in the sweep's order."""
    from kmnist_core.config import LABELS
    from kmnist_core.sweep import HELDOUT_NAMES, SWEEPABLE

    done = [row for row in rows if row["train_loss"] and row["heldout_loss"]]
    figure = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Accuracy"), horizontal_spacing=0.1)
    if not done:
        return figure
    heldout = HELDOUT_NAMES[done[0]["heldout"]]
    x, axis = _sweep_axis([row["value"] for row in done], param, SWEEPABLE[param].log)
    labels = [row["label"] for row in done]
    for column, metric in ((1, "loss"), (2, "accuracy")):
        for number, (split, key, dash) in enumerate((("train", f"train_{metric}", "solid"),
                                                     (heldout, f"heldout_{metric}", "dash"))):
            colour = PALETTE[number]
            means = [row[key]["mean"] for row in done]
            stds = [row[key]["std"] or 0.0 for row in done]
            if any(stds):
                red, green, blue = hex_to_rgb(colour)
                figure.add_trace(go.Scatter(
                    x=list(x) + list(x)[::-1], y=[m + s for m, s in zip(means, stds)] + [m - s for m, s in zip(means, stds)][::-1],
                    mode="lines", fill="toself", fillcolor=f"rgba({red}, {green}, {blue}, 0.18)", line=dict(width=0),
                    hoverinfo="skip", showlegend=False, legendgroup=split,
                ), row=1, col=column)
            hover = [f"{plain(LABELS[param])} {label}<br>{split} {metric} {m:.3f}"
                     + (f" ± {row[key]['std']:.3f}" if row[key]["std"] is not None else "")
                     + f" ({row[key]['n']} seed{'s' if row[key]['n'] != 1 else ''})"
                     for label, m, row in zip(labels, means, done)]
            figure.add_trace(go.Scatter(
                x=x, y=means, mode="lines+markers", name=split, legendgroup=split, showlegend=column == 1,
                line=dict(color=colour, dash=dash), marker=dict(size=6), text=hover, hovertemplate="%{text}<extra></extra>",
            ), row=1, col=column)
        best = [(position, row) for position, row in zip(x, done) if row["best"]]
        for position, row in best:
            figure.add_trace(go.Scatter(
                x=[position], y=[row[f"heldout_{metric}"]["mean"]], mode="markers", name=f"lowest {heldout} loss",
                legendgroup="best", showlegend=column == 1, hoverinfo="skip",
                marker=dict(symbol="star", size=16, color=PALETTE[1], line=dict(color="black", width=1)),
            ), row=1, col=column)
    figure.update_xaxes(title_text=plain(LABELS[param]), **axis)
    figure.update_yaxes(rangemode="tozero", row=1, col=1)
    figure.update_yaxes(tickformat=".0%", row=1, col=2)
    title = "Learning curve" if param == "train_size" else f"{heldout.capitalize()} curve"
    figure.update_layout(title=f"{title}: mean ± std over seeds", height=height,
                         margin=dict(l=10, r=10, t=60, b=10), legend=dict(orientation="h", y=-0.3))
    return figure


def _sweep_axis(values, param, log_allowed) -> tuple:
    """(x positions, x-axis settings) for swept values: numbers on a linear or log axis
    with a tick at every value, or categories for networks of several layers."""
    from kmnist_core.sweep import value_text

    if param == "hidden_units":
        if any(len(value) != 1 for value in values):
            return [value_text(param, value) for value in values], dict(type="category")
        values = [value[0] for value in values]
    positive = [value for value in values if value > 0]
    log = log_allowed and len(positive) >= 2 and max(positive) / min(positive) >= 100
    x = [value if value > 0 or not log else min(positive) / 10 for value in values]
    ticks = dict(tickmode="array", tickvals=x, ticktext=[value_text(param, value) for value in values])
    return x, dict(type="log", **ticks) if log else ticks
