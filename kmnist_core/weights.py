"""What L1, L2 and dropout do to the weights, as a few numbers per layer.

A learner reads that L1 "drives weights to zero" and L2 "keeps them small"; these functions
measure it on the run itself. ``layer_stats`` summarises every Dense and Conv2D kernel
(biases and batch-norm scales are left out: the penalties in ``models.build_model`` act on
kernels only) and is cheap enough to call at every epoch end; its result is plain
floats/ints/lists, so it is stored as JSON with the run. ``first_layer_images`` shows the
first layer's weights as pictures, and ``describe`` puts the numbers in one sentence.

No Streamlit or plotly here: the app draws, this module only measures.
"""

import itertools
import math

import keras
import numpy as np

from .checks import ParameterError, check_choice, check_int

NEAR_ZERO = 1e-3  # |w| below this counts as "near zero"; the UI states the threshold
# Fixed |w| histogram edges, two per decade from 1e-5 to 1, identical for every layer, run and
# epoch so that histograms can be compared and stacked without rebinning. Written as decimal
# literals so that 1e-3 (NEAR_ZERO) is an exact edge: the bins below it add up to the
# near-zero count. counts[0] holds |w| < HIST_EDGES[0] (underflow), counts[i] holds
# HIST_EDGES[i-1] <= |w| < HIST_EDGES[i], counts[-1] holds |w| >= HIST_EDGES[-1] (overflow),
# so the counts always add up to the number of finite weights.
HIST_EDGES = (1e-5, 3.16e-5, 1e-4, 3.16e-4, 1e-3, 3.16e-3, 1e-2, 3.16e-2, 1e-1, 3.16e-1, 1.0)
HIST_BINS = len(HIST_EDGES) + 1
_NEAR_ZERO_EDGE = HIST_EDGES.index(NEAR_ZERO)


def _ceiling_edges(dtype):
    """The edges in ``dtype``, each rounded up to the nearest representable value when
    rounding went down, so that ``x < edge`` in that dtype means exactly x < the decimal edge."""
    edges = np.asarray(HIST_EDGES, dtype=dtype)
    low = edges.astype(np.float64) < np.asarray(HIST_EDGES)
    edges[low] = np.nextafter(edges[low], dtype(np.inf))
    return edges


_EDGES_BY_DTYPE = {np.float32: _ceiling_edges(np.float32), np.float64: _ceiling_edges(np.float64)}


def _edges(dtype):
    return _EDGES_BY_DTYPE[dtype]
_IMAGE_SIDE = 28


def histogram_labels() -> list:
    """One short label per histogram bin ('<1e-05', '1e-05–3.16e-05', …, '≥1'), for axes."""
    edges = [f"{edge:g}" for edge in HIST_EDGES]
    return [f"<{edges[0]}", *(f"{lo}–{hi}" for lo, hi in itertools.pairwise(edges)), f"≥{edges[-1]}"]


def kernel_layers(model) -> list:
    """The Dense and Conv2D layers of ``model`` in build order, nested models included."""
    if not isinstance(model, keras.Model):
        raise ParameterError(f"model must be a Keras model, got {type(model).__name__}")
    found = []

    def walk(layer):
        if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D)):
            found.append(layer)
        for inner in getattr(layer, "layers", ()) if isinstance(layer, keras.Model) else ():
            walk(inner)

    for layer in model.layers:
        walk(layer)
    for layer in found:
        if not layer.built:
            raise ParameterError(f"model must be built (layer {layer.name!r} has no weights yet); "
                                 f"call it on an input or give it an Input first")
    return found


def _kind(layer) -> str:
    return "conv" if isinstance(layer, keras.layers.Conv2D) else "dense"


def _kernel(layer) -> np.ndarray:
    kernel = layer.kernel
    if hasattr(kernel, "numpy"):  # a variable: no __array__ round trip (and its NumPy 2 warning)
        return np.asarray(kernel.numpy())
    return np.asarray(keras.ops.convert_to_numpy(kernel))


def kernel_stats(kernel, name="kernel", kind="dense") -> dict:
    """The summary of one kernel array; ``layer_stats`` applies it to every layer.

    Why these numbers: ‖w‖ (the L2 norm) is what an L2 penalty shrinks; the share of
    weights below NEAR_ZERO is what an L1 penalty raises; mean |w| is the typical size
    (the quantity L1 penalises); the histogram shows the whole distribution on fixed bins. Non-finite weights (a run
    that diverged) are counted in ``non_finite`` and left out of the rest, so the result
    stays valid JSON.
    """
    check_choice("kind", kind, ("dense", "conv"))
    kernel = np.asarray(kernel)
    if kernel.size == 0 or not (np.issubdtype(kernel.dtype, np.floating) or np.issubdtype(kernel.dtype, np.integer)):
        raise ParameterError(f"kernel must be a non-empty array of numbers, got {kernel.dtype} {kernel.shape}")
    # float32 (what Keras keeps, even under mixed precision) stays float32: a float64 copy of
    # the 400k-weight first layer costs more than all the counting below.
    dtype = np.float32 if kernel.dtype.itemsize <= 4 and np.issubdtype(kernel.dtype, np.floating) else np.float64
    magnitudes = np.abs(kernel.astype(dtype, copy=False)).ravel()
    finite = np.isfinite(magnitudes)
    non_finite = int(magnitudes.size - np.count_nonzero(finite))
    if non_finite:
        magnitudes = magnitudes[finite]
    count = int(magnitudes.size)
    # One count per edge (a vectorised compare each) is ~10× faster than searchsorted/histogram;
    # differences of the cumulative counts give the bins.
    below = np.array([np.count_nonzero(magnitudes < edge) for edge in _edges(dtype)], dtype=np.int64)
    histogram = np.diff(below, prepend=0, append=count)
    near_zero = int(below[_NEAR_ZERO_EDGE])
    return {
        "name": str(name),
        "kind": kind,
        "shape": [int(d) for d in kernel.shape],
        "size": int(kernel.size),
        "l2_norm": float(math.sqrt(np.einsum("i,i->", magnitudes, magnitudes, dtype=np.float64))) if count else None,
        "mean_abs": float(magnitudes.mean(dtype=np.float64)) if count else None,
        "max_abs": float(magnitudes.max()) if count else None,
        "near_zero": near_zero / count if count else None,
        "histogram": [int(c) for c in histogram],
        "non_finite": non_finite,
    }


def layer_stats(model) -> list:
    """One dict per Dense/Conv2D kernel of ``model``, first layer first.

    Keys: name, kind ("dense" | "conv"), shape, size, l2_norm (‖w‖), mean_abs, max_abs,
    near_zero (share of weights with |w| < NEAR_ZERO), histogram (counts on HIST_EDGES,
    see there), non_finite. A few dozen numbers per layer (~0.9 kB of JSON per epoch for the
    784-512-512-10 network): meant to be called at every epoch end, which costs ~4 ms
    there against ~0.7-1.4 s of training per epoch (benchmarks/weights_overhead.py).
    """
    return [kernel_stats(_kernel(layer), layer.name, _kind(layer)) for layer in kernel_layers(model)]


def first_layer_images(model, count=16) -> tuple:
    """(images, kind): the first hidden layer's weights as float pictures, strongest first.

    Dense first layer ("dense"): each unit's 784 incoming weights reshaped to 28×28, i.e.
    the pixel pattern that unit responds to; the ``count`` units with the largest ‖w‖,
    shape (count, 28, 28). Unregularized, they stay close to their random start (noise);
    under L1/L2 the rarely inked outer pixels fade to zero and stroke-like blobs remain.
    Conv first layer ("conv"): its 3×3 filters (one input channel), the ``count`` with the
    largest ‖w‖, shape (count, 3, 3). Fewer units/filters than ``count`` gives all of them.
    Map them to pixels with ``weight_grid``.
    """
    check_int("count", count, 1, 4096)
    layers = kernel_layers(model)
    if not layers:
        raise ParameterError("model must have a Dense or Conv2D layer to show")
    first = layers[0]
    kernel = _kernel(first).astype(np.float32)
    if _kind(first) == "conv":
        if kernel.ndim != 4 or kernel.shape[2] != 1:
            raise ParameterError(f"the first conv layer must read one image channel, got kernel shape {kernel.shape}")
        images = np.moveaxis(kernel[:, :, 0, :], -1, 0)  # (filters, kh, kw)
        kind = "conv"
    else:
        if kernel.shape[0] != _IMAGE_SIDE * _IMAGE_SIDE:
            raise ParameterError(f"the first dense layer must read the 28×28 pixels (784 inputs), "
                                 f"got {kernel.shape[0]} inputs")
        images = kernel.T.reshape(-1, _IMAGE_SIDE, _IMAGE_SIDE)  # row-major, as Flatten does
        kind = "dense"
    norms = np.sqrt(np.einsum("nij,nij->n", images.astype(np.float64), images.astype(np.float64)))
    order = np.argsort(-norms, kind="stable")[:count]
    return images[order], kind


def weight_grid(images, columns=8, gap=2, upscale=1, gap_value=255) -> np.ndarray:
    """Tile float weight images into one uint8 picture, symmetric around zero.

    Grey (128) is a zero weight; white (255) is +max and black (1) is −max, where max is
    the largest |w| over *all* images, so tiles are comparable (a faint tile is a weak unit)
    and a weight pushed to zero by L1/L2 shows as flat grey. Gaps (``gap`` pixels of
    ``gap_value``, white by default) keep unregularized, noise-like tiles apart; a grey gap
    would vanish into them. ``upscale`` repeats each pixel (a 3×3 filter is too small to
    see otherwise) without the blur of browser resampling.
    """
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 3 or images.shape[0] == 0:
        raise ParameterError(f"images must have shape (count, height, width), got {images.shape}")
    if not np.all(np.isfinite(images)):
        raise ParameterError("images must hold finite weights only")
    columns = check_int("columns", columns, 1, 256)
    gap = check_int("gap", gap, 0, 16)
    upscale = check_int("upscale", upscale, 1, 64)
    gap_value = check_int("gap_value", gap_value, 0, 255)
    peak = float(np.max(np.abs(images)))
    scaled = images / peak if peak > 0 else np.zeros_like(images)
    pixels = np.rint(128 + 127 * scaled).astype(np.uint8)
    if upscale > 1:
        pixels = pixels.repeat(upscale, axis=1).repeat(upscale, axis=2)
    count, height, width = pixels.shape
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    grid = np.full((rows * height + (rows - 1) * gap, columns * width + (columns - 1) * gap), gap_value, np.uint8)
    for index, tile in enumerate(pixels):
        top, left = (index // columns) * (height + gap), (index % columns) * (width + gap)
        grid[top:top + height, left:left + width] = tile
    return grid


def _percent(share) -> str:
    """62%, 3.1%, 0.04% — never '0%' or '100%' unless it is exactly that."""
    if share in (0, 1):
        return f"{share:.0%}"
    if share >= 0.995:
        return f"{share:.1%}" if share < 0.9995 else ">99.9%"
    if share >= 0.1:
        return f"{share:.0%}"
    if share >= 0.001:
        return f"{share:.1%}"
    return "<0.1%"


def _regularization_text(regularization) -> str:
    """'with L1 1e-05 and L2 0.001', 'with dropout 0.5 but no weight penalty', …"""
    if regularization is None:
        return ""
    if hasattr(regularization, "to_dict"):
        regularization = regularization.to_dict()
    if not isinstance(regularization, dict):
        raise ParameterError(f"regularization must be a TrainConfig or its dict, got {type(regularization).__name__}")
    names = (("l1", "L1"), ("l2", "L2"), ("dropout", "dropout"), ("input_dropout", "pixel dropout"))
    used = []
    for key, label in names:
        value = regularization.get(key) or 0
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ParameterError(f"regularization[{key!r}] must be a number, got {value!r}")
        if value:
            used.append((key, f"{label} {value:g}"))
    if not used:
        return "without weight penalties or dropout"
    listed = [text for _, text in used]
    text = "with " + (listed[0] if len(listed) == 1 else ", ".join(listed[:-1]) + " and " + listed[-1])
    if not any(key in ("l1", "l2") for key, _ in used):
        text += " but no weight penalty"
    return text


def describe(stats_first_layer, regularization=None, baseline=None, baseline_name="baseline") -> str:
    """One factual sentence on a run's first layer, from its ``layer_stats(...)[0]``.

    ``regularization``: the run's config (a TrainConfig or its dict; l1, l2, dropout and
    input_dropout are read) to say what the run used. ``baseline``: another run's first-layer
    stats (e.g. the unregularized overfit run) to set the numbers beside. The sentence
    reports measurements only; why they differ is for the learner (and the page) to say.
    E.g. "Trained with L1 1e-05 and L2 0.001, 13% of the first layer's 401,408 weights have
    |w| < 0.001; ‖w‖ 12.3, mean |w| 0.014 (overfit: 1.4%, ‖w‖ 29.4)."
    """
    _check_stats("stats_first_layer", stats_first_layer)
    if baseline is not None:
        _check_stats("baseline", baseline)
        if not isinstance(baseline_name, str) or not baseline_name.strip():
            raise ParameterError(f"baseline_name must be a non-empty string, got {baseline_name!r}")
    stats = stats_first_layer
    how = _regularization_text(regularization)
    layer = "first layer" if stats["kind"] == "dense" else "first conv layer"
    finite = stats["size"] - stats["non_finite"]
    if finite == 0:
        return f"Every one of the {layer}'s {stats['size']:,} weights is NaN or infinite: the run diverged."
    sentence = (f"{_percent(stats['near_zero'])} of the {layer}'s {stats['size']:,} weights have "
                f"|w| < {NEAR_ZERO:g}; ‖w‖ {stats['l2_norm']:.3g}, mean |w| {stats['mean_abs']:.2g}")
    if how:
        sentence = f"Trained {how}, {sentence}"
    else:
        sentence = sentence[0].upper() + sentence[1:]
    if baseline is not None and baseline["near_zero"] is not None:
        sentence += (f" ({baseline_name.strip()}: {_percent(baseline['near_zero'])}, "
                     f"‖w‖ {baseline['l2_norm']:.3g})")
    if stats["non_finite"]:
        sentence += f"; {stats['non_finite']:,} weights are NaN or infinite"
    return sentence + "."


_STATS_KEYS = ("kind", "size", "l2_norm", "mean_abs", "near_zero", "non_finite")


def _check_stats(name, stats):
    if not isinstance(stats, dict) or any(key not in stats for key in _STATS_KEYS):
        raise ParameterError(f"{name} must be one layer's dict from layer_stats(model), got {type(stats).__name__}")
