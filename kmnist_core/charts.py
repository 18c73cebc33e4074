"""Plotly figures and image tiles for the app. Plain data in, figures out: no Streamlit,
no TensorFlow, so the pages stay thin and these are testable on their own."""

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from .classes import CLASSES

PALETTE = qualitative.Plotly
KANA = [c.hiragana for c in CLASSES]
KANA_LABELS = [f"{c.hiragana} {c.romaji}" for c in CLASSES]


def _last_epoch(series) -> int:
    return max((h["epoch"] for _, history in series for h in history), default=0)


def curves_figure(series, height=340) -> go.Figure:
    """Loss and accuracy per epoch, side by side; train solid, validation dashed.

    ``series`` is a list of (label, history) with history the store's per-epoch dicts.
    One colour per run, so several runs overlay readably on the Compare page.
    """
    figure = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Accuracy"), horizontal_spacing=0.1)
    for number, (label, history) in enumerate(series):
        colour = PALETTE[number % len(PALETTE)]
        epochs = [h["epoch"] for h in history]
        for column, metric in ((1, "loss"), (2, "accuracy")):
            for split, key, dash in (("train", metric, "solid"), ("validation", f"val_{metric}", "dash")):
                values = [h.get(key) for h in history]
                if all(v is None for v in values):
                    continue  # full-train runs have no validation split
                name = f"{label} {split}".strip()
                figure.add_trace(go.Scatter(
                    x=epochs, y=values, mode="lines+markers", name=name, legendgroup=name,
                    showlegend=column == 1, line=dict(color=colour, dash=dash), marker=dict(size=5),
                ), row=1, col=column)
    figure.update_xaxes(title_text="epoch", rangemode="tozero", tickformat="d",
                        dtick=None if _last_epoch(series) > 10 else 1)  # no "epoch 1.5" on a new run
    figure.update_yaxes(rangemode="tozero", row=1, col=1)
    figure.update_yaxes(range=[0, 1], tickformat=".0%", row=1, col=2)
    figure.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10),
                         legend=dict(orientation="h", y=-0.25))
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
    figure.update_yaxes(autorange="reversed", title_text="true")
    figure.update_xaxes(title_text="predicted", tickangle=0)
    figure.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40 if title else 10, b=10))
    return figure


def per_class_f1_figure(series, height=340) -> go.Figure:
    """Grouped bars of F1 per class; ``series`` is a list of (label, per_class list)."""
    figure = go.Figure()
    for number, (label, per_class) in enumerate(series):
        figure.add_trace(go.Bar(x=KANA_LABELS, y=[c["f1"] for c in per_class], name=label,
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
