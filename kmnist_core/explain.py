"""Why a model read a drawing as it did: saliency maps, Grad-CAM, and the model's own
view of the data (penultimate-layer embeddings, nearest training images, 2-D maps).

Every model here is one of ours (``models.build_model``): raw (N, 28, 28) pixels in
[0, 255] in, a final Dense layer named "probabilities" out. No Streamlit or plotly: the
functions return arrays, the app draws them.

Which score each method explains, for class c:

- occlusion and integrated gradients: log p(c | image), computed from the logits (the
  input of the final softmax), so a model that is 99.99% sure still shows which strokes
  it leans on instead of a flat map of rounding errors;
- Grad-CAM: the class logit itself, as in Selvaraju et al. (2017).

All maps are the positive evidence *for* class c, scaled so their maximum is 1 (an
all-zero map means nothing in the image supported c). Both saliency methods replace ink
with black (the background), so they can only credit strokes that are there, never a
stroke that is missing.

The first call for a model traces its compiled functions (a second or so); later calls
reuse them. They are cached per model object and dropped with it.
"""

import os
import time
import weakref
from dataclasses import dataclass, field

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from .checks import ParameterError, check_choice, check_int
from .classes import NUM_CLASSES

METHODS = ("occlusion", "integrated_gradients")
PROJECTIONS = ("pca", "tsne")
OUTPUT_LAYER = "probabilities"
SIDE = 28
PATCH, STRIDE = 6, 2  # occlusion: a 6x6 black square every 2 pixels, 144 positions in one batch
IG_STEPS = 32  # integrated gradients: points on the straight path from a black image
TSNE_PCA_DIMS = 50  # t-SNE runs on the first 50 principal components (standard; faster)
TSNE_ITERATIONS = 500  # 250 exaggerated + 250 free: half scikit-learn's default, maps as clear


# -- input checks ------------------------------------------------------------------------
def _check_sample(sample, name="sample") -> np.ndarray:
    array = np.asarray(sample)
    if array.shape != (SIDE, SIDE) or not np.issubdtype(array.dtype, np.number):
        raise ParameterError(f"{name} must be one image of shape (28, 28) with pixel values in [0, 255], "
                             f"got {'shape ' + str(array.shape) if array.dtype != object else type(sample).__name__}")
    array = array.astype(np.float32)
    if not np.all(np.isfinite(array)):
        raise ParameterError(f"{name} must have pixel values in [0, 255] (white ink on black), got NaN or infinity")
    if array.min() < 0 or array.max() > 255:
        raise ParameterError(f"{name} must have pixel values in [0, 255] (white ink on black), "
                             f"got values in [{array.min():g}, {array.max():g}]")
    return array


def _check_images(images, name="images") -> np.ndarray:
    array = np.asarray(images)
    if array.ndim != 3 or array.shape[1:] != (SIDE, SIDE) or not np.issubdtype(array.dtype, np.number):
        raise ParameterError(f"{name} must be an array of shape (N, 28, 28), got shape {array.shape}")
    return array.astype(np.float32, copy=False)


def _check_class(class_index):
    if class_index is None:
        return -1  # the model's top class, chosen inside the compiled function
    return check_int("class_index", class_index, 0, NUM_CLASSES - 1)


def _check_model(model) -> keras.Model:
    if not isinstance(model, keras.Model):
        raise ParameterError(f"model must be a Keras model, got {type(model).__name__}")
    try:
        output = model.get_layer(OUTPUT_LAYER)
    except ValueError:
        output = None
    if (output is None or not isinstance(output, keras.layers.Dense) or output.units != NUM_CLASSES
            or tuple(model.input_shape[1:]) != (SIDE, SIDE)):
        raise ParameterError(f"model must be a KMNIST classifier of ours: input (28, 28) and a final "
                             f"Dense layer named {OUTPUT_LAYER!r} with {NUM_CLASSES} units")
    return model


# -- compiled functions, cached per model ---------------------------------------------------
_EXPLAINERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _explainer(model) -> "_Explainer":
    model = _check_model(model)
    found = _EXPLAINERS.get(model)
    if found is None:
        found = _EXPLAINERS[model] = _Explainer(model)
    return found


def _occlusion_masks(patch=PATCH, stride=STRIDE) -> np.ndarray:
    starts = list(range(0, SIDE - patch + 1, stride))
    if starts[-1] != SIDE - patch:
        starts.append(SIDE - patch)  # cover the last rows and columns too
    masks = np.zeros((len(starts) ** 2, SIDE, SIDE), np.float32)
    for i, (top, left) in enumerate((t, c) for t in starts for c in starts):
        masks[i, top:top + patch, left:left + patch] = 1.0
    return masks


class _Explainer:
    """The sub-models and traced functions of one model. Holds the model's layers, not the
    model object, so the cache entry goes when the model does."""

    def __init__(self, model):
        output = model.get_layer(OUTPUT_LAYER)
        self.features = keras.Model(model.inputs[0], output.input, name="penultimate")
        self.dimension = int(output.input.shape[-1])
        self.kernel, self.bias = output.kernel, output.bias
        self.block = _last_conv_block(model)
        self._gradcam = self._occlusion = self._ig = None
        self._embed = tf.function(
            lambda images: tf.cast(self.features(images, training=False), tf.float32),
            input_signature=[tf.TensorSpec([None, SIDE, SIDE], tf.float32)], reduce_retracing=True,
        )

    def logits(self, features):
        features = tf.cast(features, tf.float32)
        return tf.matmul(features, tf.convert_to_tensor(self.kernel)) + tf.convert_to_tensor(self.bias)

    def log_probs(self, images):
        return tf.nn.log_softmax(self.logits(self.features(images, training=False)))

    @staticmethod
    def _chosen(scores, class_index):
        """class_index, or the top class of the first row when it is -1."""
        top = tf.argmax(scores[0], output_type=tf.int32)
        return tf.where(class_index < 0, top, class_index)

    def occlusion(self, sample, class_index):
        if self._occlusion is None:
            masks = tf.constant(_occlusion_masks())
            coverage = tf.reduce_sum(masks, axis=0)

            @tf.function(input_signature=[tf.TensorSpec([SIDE, SIDE], tf.float32), tf.TensorSpec([], tf.int32)])
            def run(image, chosen):
                batch = tf.concat([image[None], image[None] * (1.0 - masks)], axis=0)
                scores = self.log_probs(batch)
                chosen = self._chosen(scores, chosen)
                drop = tf.nn.relu(scores[0, chosen] - scores[1:, chosen])  # how much less sure
                return tf.tensordot(drop, masks, axes=1) / coverage

            self._occlusion = run
        return self._occlusion(sample, class_index).numpy()

    def integrated_gradients(self, sample, class_index):
        if self._ig is None:
            alphas = tf.constant((np.arange(IG_STEPS, dtype=np.float32) + 0.5) / IG_STEPS)

            @tf.function(input_signature=[tf.TensorSpec([SIDE, SIDE], tf.float32), tf.TensorSpec([], tf.int32)])
            def run(image, chosen):
                # Row 0 is the image itself (to pick the top class), then the path from black.
                path = tf.concat([image[None], alphas[:, None, None] * image[None]], axis=0)
                with tf.GradientTape() as tape:
                    tape.watch(path)
                    scores = self.log_probs(path)
                    chosen = self._chosen(tf.stop_gradient(scores), chosen)
                    target = tf.reduce_sum(scores[1:, chosen])
                gradients = tape.gradient(target, path)[1:]
                return tf.nn.relu(image * tf.reduce_mean(gradients, axis=0))

            self._ig = run
        return self._ig(sample, class_index).numpy()

    def grad_cam(self, sample, class_index):
        if self._gradcam is None:
            block_model = keras.Model(self.features.inputs[0], [self.block.output, self.features.output])

            @tf.function(input_signature=[tf.TensorSpec([SIDE, SIDE], tf.float32), tf.TensorSpec([], tf.int32)])
            def run(image, chosen):
                with tf.GradientTape() as tape:
                    activations, features = block_model(image[None], training=False)
                    tape.watch(activations)  # bfloat16 under mixed precision: cast after
                    logits = self.logits(features)
                    chosen = self._chosen(tf.stop_gradient(logits), chosen)
                    target = logits[0, chosen]
                gradients = tf.cast(tape.gradient(target, activations), tf.float32)
                activations = tf.cast(activations, tf.float32)
                weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)  # one per channel
                return tf.nn.relu(tf.reduce_sum(activations * weights, axis=-1))[0]

            self._gradcam = run
        return self._gradcam(sample, class_index).numpy()


def _last_conv_block(model) -> keras.layers.Layer | None:
    """The last Conv2D layer, taken after the BatchNormalization and activation layers
    that directly follow it (bn_cnn: conv -> BN -> ReLU): the block's rectified output is
    what the classifier reads. None for models without convolutions (dense)."""
    layers = model.layers
    convs = [i for i, layer in enumerate(layers) if isinstance(layer, keras.layers.Conv2D)]
    if not convs:
        return None
    index = convs[-1]
    while index + 1 < len(layers) and isinstance(
            layers[index + 1], (keras.layers.BatchNormalization, keras.layers.Activation, keras.layers.ReLU)):
        index += 1
    return layers[index]


def _to_unit(heat) -> np.ndarray:
    heat = np.nan_to_num(np.asarray(heat, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    heat = np.maximum(heat, 0.0)
    peak = float(heat.max()) if heat.size else 0.0
    return heat / peak if peak > 0 else np.zeros_like(heat)


def _to_image_grid(cam: np.ndarray) -> np.ndarray:
    """A Grad-CAM map (h, w) onto the 28x28 pixel grid. Unpadded 3x3 convolutions (cnn:
    24x24) shrink the map without moving its centre, so it is padded back; pooled maps
    (bn_cnn: 7x7) are resized bilinearly, each cell covering its own square of pixels."""
    height, width = cam.shape
    shrink = SIDE - height
    if height == width and 0 <= shrink <= 8 and shrink % 2 == 0:
        return np.pad(cam, shrink // 2, mode="edge")
    resized = tf.image.resize(cam[..., None], (SIDE, SIDE), method="bilinear")
    return resized.numpy()[..., 0]


# -- explanations ----------------------------------------------------------------------------
def saliency(model, sample, class_index=None, method="occlusion") -> np.ndarray:
    """A (28, 28) float32 map in [0, 1]: the strokes that drove class ``class_index``
    (default: the model's top class) for one (28, 28) sample of raw pixels in [0, 255].

    "occlusion": black out a 6x6 square at each of 144 positions (one batch) and record how
    much log p(class) falls; each pixel gets the mean fall of the squares covering it.
    "integrated_gradients": gradients of log p(class) along 32 images from black to the
    sample (one batch), times the sample's pixels; only the positive part is kept."""
    check_choice("method", method, METHODS)
    explainer = _explainer(model)
    image, chosen = tf.constant(_check_sample(sample)), tf.constant(_check_class(class_index), tf.int32)
    if method == "occlusion":
        return _to_unit(explainer.occlusion(image, chosen))
    return _to_unit(explainer.integrated_gradients(image, chosen))


def warm_up(model) -> float:
    """Trace every explanation function of ``model`` now (0.3-1.5 s on 2 cores) so the
    first map a learner asks for takes tens of milliseconds, not a second. Returns the
    seconds it took. Call it where the app loads a model, as ``make_predictor`` does."""
    start = time.perf_counter()
    blank = np.zeros((SIDE, SIDE), np.float32)
    for method in METHODS:
        saliency(model, blank, method=method)
    if supports_grad_cam(model):
        grad_cam(model, blank)
    embed(model, blank[None])
    return time.perf_counter() - start


def supports_grad_cam(model) -> bool:
    """True for the convolutional families (cnn, bn_cnn)."""
    return _explainer(model).block is not None


def grad_cam(model, sample, class_index=None) -> np.ndarray:
    """Grad-CAM (28, 28) map in [0, 1] over the last convolution block of a cnn or bn_cnn
    model, for ``class_index`` (default: the top class).

    A dense model has no convolution to look at: it raises ParameterError (one line)
    rather than returning None, so a caller cannot mistake "no map" for "nothing
    mattered"; ask ``supports_grad_cam(model)`` first to hide the option instead."""
    explainer = _explainer(model)
    if explainer.block is None:
        raise ParameterError(f"grad_cam needs a convolutional model (family cnn or bn_cnn); {model.name!r} "
                             f"has no Conv2D layer: use saliency() instead")
    image, chosen = tf.constant(_check_sample(sample)), tf.constant(_check_class(class_index), tf.int32)
    return _to_unit(_to_image_grid(explainer.grad_cam(image, chosen)))


def _heat_palette() -> np.ndarray:
    """256 RGB colours from dark purple through red and orange to pale yellow (an
    inferno-like ramp: ordered in lightness, readable by colour-blind viewers)."""
    anchors = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], np.float32)
    positions = np.linspace(0, 1, len(anchors))
    ramp = np.linspace(0, 1, 256)
    return np.stack([np.interp(ramp, positions, anchors[:, c]) for c in range(3)], axis=1)


_PALETTE = _heat_palette()


def overlay(sample, heat, scale=8, alpha=0.8) -> np.ndarray:
    """uint8 RGB (28*scale, 28*scale, 3): the sample enlarged, its ink dimmed to grey (white
    on black as in the dataset), with the heat map painted over it in colour, opaque where
    the map is high and clear where it is 0, so the strokes stay readable underneath."""
    from PIL import Image

    image = _check_sample(sample)
    heat = np.asarray(heat, np.float32)
    if heat.shape != (SIDE, SIDE) or not np.all(np.isfinite(heat)):
        raise ParameterError(f"heat must be a finite (28, 28) map, got shape {heat.shape}")
    check_int("scale", scale, 1, 40)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ParameterError(f"alpha must be a number in [0, 1], got {alpha!r}")
    size = SIDE * scale
    grey = 0.55 * np.kron(image, np.ones((scale, scale), np.float32))[..., None].repeat(3, axis=2)
    smooth = np.asarray(Image.fromarray(np.clip(heat, 0, 1)).resize((size, size), Image.Resampling.BILINEAR))
    smooth = np.clip(smooth, 0.0, 1.0)
    colour = _PALETTE[np.round(128 + smooth * 127).astype(np.int64)]  # the bright half of the ramp
    weight = (alpha * np.sqrt(smooth))[..., None]  # weak evidence still shows, faintly
    return np.clip(np.round(grey * (1 - weight) + colour * weight), 0, 255).astype(np.uint8)


# -- the model's view of the data -----------------------------------------------------------------
def penultimate(model) -> keras.Model:
    """A sub-model from the image to the input of the final Dense layer "probabilities":
    the features the classifier separates linearly (last hidden layer, or the pooled
    convolution features of a CNN without hidden layers). Shares the model's weights."""
    return _explainer(model).features


def embed(model, images, batch=512) -> np.ndarray:
    """Penultimate features (N, d) float32 for (N, 28, 28) raw images, ``batch`` at a time
    through one compiled function."""
    explainer = _explainer(model)
    images = _check_images(images)
    check_int("batch", batch, 1, 8192)
    parts = [explainer._embed(tf.constant(images[i:i + batch])).numpy() for i in range(0, len(images), batch)]
    return np.concatenate(parts) if parts else np.zeros((0, explainer.dimension), np.float32)


def _unit_rows(features) -> np.ndarray:
    features = np.asarray(features, np.float32)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, 1e-12)  # an all-zero row stays zero (distance 1 to all)


@dataclass
class NeighbourIndex:
    """The training images as the model sees them: unit-length penultimate features, and
    cosine distance (1 - cos, in [0, 2]) to find the images a sample looks like.

    Build once per model (``NeighbourIndex.build``) and cache it with the model; a query
    is one forward pass plus one (N, d) matrix-vector product."""

    features: np.ndarray  # (N, d) float32, rows of unit length
    labels: np.ndarray | None = None  # (N,) when given: the training labels
    model: keras.Model | None = field(default=None, repr=False, compare=False)
    build_seconds: float = 0.0
    norms: np.ndarray | None = None  # (N,) float32: each row's length before it was made unit

    @classmethod
    def build(cls, model, images, labels=None, batch=512) -> "NeighbourIndex":
        start = time.perf_counter()
        images = _check_images(images)
        if len(images) == 0:
            raise ParameterError("images must hold at least one image to index")
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != (len(images),):
                raise ParameterError(f"labels must hold one label per image ({len(images)}), got shape {labels.shape}")
        raw = embed(model, images, batch)
        return cls(_unit_rows(raw), labels, model, time.perf_counter() - start, np.linalg.norm(raw, axis=1))

    def search(self, embeddings, k=5):
        """For (M, d) query embeddings: (M, k) indices and (M, k) cosine distances, nearest first."""
        queries = np.asarray(embeddings, np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.features.shape[1]:
            raise ParameterError(f"embeddings must have shape (M, {self.features.shape[1]}), got {queries.shape}")
        k = check_int("k", k, 1, len(self.features))
        distances = np.clip(1.0 - _unit_rows(queries) @ self.features.T, 0.0, 2.0)
        part = np.argpartition(distances, k - 1, axis=1)[:, :k] if k < len(self.features) else \
            np.tile(np.arange(len(self.features)), (len(queries), 1))
        order = np.take_along_axis(distances, part, axis=1).argsort(axis=1, kind="stable")
        indices = np.take_along_axis(part, order, axis=1)
        return indices, np.take_along_axis(distances, indices, axis=1)

    def farthest_from_all(self, embeddings) -> np.ndarray:
        """For (M, d) raw query embeddings: each one's Euclidean distance to the nearest
        training image (cosine ignores how strongly a layer fires; a stray shape can point
        like a character while firing far harder)."""
        if self.norms is None:
            raise ParameterError("this index was built without feature lengths; build it with NeighbourIndex.build")
        queries = np.asarray(embeddings, np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.features.shape[1]:
            raise ParameterError(f"embeddings must have shape (M, {self.features.shape[1]}), got {queries.shape}")
        lengths = np.linalg.norm(queries, axis=1, keepdims=True)
        squared = lengths ** 2 + self.norms[None] ** 2 - 2 * (queries @ self.features.T) * self.norms[None]
        return np.sqrt(np.maximum(squared, 0.0).min(axis=1))

    def nearest(self, sample, k=5):
        """The k training images nearest one (28, 28) sample: (indices (k,), distances (k,))."""
        if self.model is None:
            raise ParameterError("this index was built without a model; use search() with embeddings")
        image = _check_sample(sample)
        indices, distances = self.search(embed(self.model, image[None]), k)
        return indices[0], distances[0]


def _check_embeddings(embeddings, least=3) -> np.ndarray:
    array = np.asarray(embeddings)
    if array.ndim != 2 or len(array) < least or array.shape[1] < 1 or not np.issubdtype(array.dtype, np.number):
        raise ParameterError(f"embeddings must be an (N, d) array with N >= {least}, got shape {array.shape}")
    array = array.astype(np.float32)
    if not np.all(np.isfinite(array)):
        raise ParameterError("embeddings must be finite (no NaN or infinity)")
    return array


def projection(embeddings, method="pca", seed=0, normalise=True, iterations=TSNE_ITERATIONS) -> np.ndarray:
    """A 2-D map (N, 2) of (N, d) embeddings with scikit-learn: "pca" (linear, instant) or
    "tsne" (neighbourhoods kept, distances between clusters not meaningful). Rows are
    scaled to unit length first by default, the geometry ``NeighbourIndex`` uses.
    t-SNE takes seconds (see benchmarks/explain_latency.py): compute it once per model and
    image set and cache it."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    check_choice("method", method, PROJECTIONS)
    check_int("seed", seed, 0, 2**32 - 1)
    check_int("iterations", iterations, 250, 10000)
    features = _check_embeddings(embeddings, least=3 if method == "pca" else 5)
    if normalise:
        features = _unit_rows(features)
    if method == "pca":
        components = min(2, features.shape[1])
        mapped = PCA(n_components=components, random_state=seed).fit_transform(features)
        if components < 2:
            mapped = np.hstack([mapped, np.zeros((len(mapped), 1))])
        return mapped.astype(np.float32)
    if features.shape[1] > TSNE_PCA_DIMS and len(features) > TSNE_PCA_DIMS:
        features = PCA(n_components=TSNE_PCA_DIMS, random_state=seed).fit_transform(features)
    perplexity = float(min(30.0, (len(features) - 1) / 3))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", max_iter=iterations,
                random_state=seed)
    # One OpenMP thread: on 2 busy cores (TensorFlow's pools, a training run) two threads
    # spin-waiting on each other made t-SNE 10-20x slower (2,000 images: 29 s against 5 s).
    with threadpool_limits(1):
        return tsne.fit_transform(features).astype(np.float32)


def silhouette(embeddings, labels, metric="cosine", sample_size=None, seed=0) -> float:
    """Mean silhouette of the classes in ``embeddings``, in [-1, 1] (higher: each class sits
    in its own tight region).

    Pass the FULL penultimate embeddings (metric cosine, the index's geometry): that is the
    space the classifier separates. A 2-D projection is accepted too (use
    metric="euclidean") but then it scores the drawing, not the model: t-SNE does not keep
    distances between clusters and PCA in 2-D drops most of the variance."""
    from sklearn.metrics import silhouette_score

    check_choice("metric", metric, ("cosine", "euclidean"))
    features = _check_embeddings(embeddings)
    labels = np.asarray(labels)
    if labels.shape != (len(features),):
        raise ParameterError(f"labels must hold one label per row of embeddings ({len(features)}), got shape {labels.shape}")
    classes = len(np.unique(labels))
    if not 2 <= classes < len(features):
        raise ParameterError(f"silhouette needs 2 to N-1 distinct labels, got {classes} for {len(features)} rows")
    if sample_size is not None:
        sample_size = check_int("sample_size", sample_size, 3, 10**6)
        sample_size = sample_size if sample_size < len(features) else None
    return float(silhouette_score(features, labels, metric=metric, sample_size=sample_size, random_state=seed))
