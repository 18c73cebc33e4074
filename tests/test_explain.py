"""Explanations: hand-built models where only one region can matter (so the right map is
known), a model trained briefly on real kmnist-mini images (so the maps are checked
against what the model does when ink is removed), shapes, ranges and refusals."""

import gc
import weakref

import keras
import numpy as np
import pytest

from kmnist_core import explain
from kmnist_core.checks import ParameterError
from kmnist_core.config import make_config
from kmnist_core.data import load_kmnist
from kmnist_core.inference import make_predictor
from kmnist_core.models import build_model
from kmnist_core.training import train_model

REGION = (slice(8, 14), slice(14, 20))  # a 6x6 square, aligned with the occlusion grid
CLASS = 2


def _square(image=None):
    image = np.zeros((28, 28), np.float32) if image is None else image.astype(np.float32).copy()
    image[REGION] = 255.0
    return image


def _outside(margin):
    """True for pixels more than ``margin`` pixels away from REGION."""
    mask = np.ones((28, 28), bool)
    rows, cols = REGION
    mask[max(0, rows.start - margin):rows.stop + margin, max(0, cols.start - margin):cols.stop + margin] = False
    return mask


@pytest.fixture(scope="module")
def data(mini_dir):
    return load_kmnist(mini_dir)


@pytest.fixture(scope="module")
def region_model():
    """A dense model whose class-2 logit is (4/36) x the ink in REGION and every other
    logit is 0: ink anywhere else cannot change what it says."""
    model = build_model(make_config("overfit", hidden_units=(4,)))
    hidden, output = model.layers[-2], model.get_layer("probabilities")
    kernel = np.zeros((784, 4), np.float32)
    inside = np.zeros((28, 28), bool)
    inside[REGION] = True
    kernel[inside.ravel(), 0] = 4.0 / 36
    hidden.set_weights([kernel, np.zeros(4, np.float32)])
    weights = np.zeros((4, 10), np.float32)
    weights[0, CLASS] = 1.0
    output.set_weights([weights, np.zeros(10, np.float32)])
    return model


@pytest.fixture(scope="module")
def blob_cnn():
    """A cnn whose first filter fires only inside solid ink (a 3x3 mean above 0.8, so not
    on 1-pixel strokes), passed through unchanged by the second conv; class 7's logit is
    the sum of that channel. Only a solid blob can be evidence for class 7."""
    model = build_model(make_config("overfit", family="cnn", hidden_units=(4,)))
    conv1, conv2 = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    kernel, bias = np.zeros((3, 3, 1, 32), np.float32), np.zeros(32, np.float32)
    kernel[..., 0, 0], bias[0] = 1.0 / 9, -0.8
    conv1.set_weights([kernel, bias])
    kernel = np.zeros((3, 3, 32, 64), np.float32)
    kernel[1, 1, 0, 0] = 1.0
    conv2.set_weights([kernel, np.zeros(64, np.float32)])
    hidden = model.layers[-2]
    weights = np.zeros((12 * 12 * 64, 4), np.float32)
    weights[0::64, 0] = 1.0  # channel 0 of every pooled position
    hidden.set_weights([weights, np.zeros(4, np.float32)])
    weights = np.zeros((4, 10), np.float32)
    weights[0, 7] = 1.0
    model.get_layer("probabilities").set_weights([weights, np.zeros(10, np.float32)])
    return model


@pytest.fixture(scope="module")
def trained(data):
    """A small dense model trained for 3 epochs on real images (~3 s)."""
    config = make_config("overfit", hidden_units=(128,), epochs=3, batch_size=128)
    return train_model(config, data.x_train, data.y_train).model


@pytest.mark.parametrize("method", explain.METHODS)
def test_saliency_finds_the_one_region_that_matters(region_model, data, method):
    sample = _square(data.x_test[3])  # real strokes everywhere, plus the square
    blanked = sample.copy()
    blanked[REGION] = 0
    before, after = make_predictor(region_model)(np.stack([sample, blanked]))[:, CLASS]
    assert before > 0.8 and after == pytest.approx(0.1, abs=1e-3)  # occluding it: p drops to chance

    heat = explain.saliency(region_model, sample, method=method)
    assert heat.shape == (28, 28) and heat.dtype == np.float32
    assert heat.min() >= 0 and heat.max() == pytest.approx(1.0)
    assert heat[REGION].mean() > 0.3
    # Strokes outside cannot matter: zero there (occlusion blurs by at most one 6x6 patch).
    margin = 5 if method == "occlusion" else 0
    assert heat[_outside(margin)].max() < 1e-3
    assert heat[REGION].mean() > 20 * heat[_outside(0)].mean()


def test_a_saved_and_reloaded_model_gives_the_same_maps(region_model, blob_cnn, tmp_path):
    """The app explains models it loads from the store (safe mode), not the trained object."""
    from kmnist_core.inference import load_model

    sample = _square()
    for name, model in (("dense", region_model), ("cnn", blob_cnn)):
        model.save(tmp_path / f"{name}.keras")
        loaded = load_model(tmp_path / f"{name}.keras")
        assert np.allclose(explain.saliency(loaded, sample), explain.saliency(model, sample), atol=1e-5)
        assert explain.penultimate(loaded).output.shape[-1] == 4
    assert np.allclose(explain.grad_cam(loaded, sample), explain.grad_cam(blob_cnn, sample), atol=1e-5)


@pytest.mark.parametrize("method", explain.METHODS)
def test_a_class_with_no_evidence_gets_an_empty_map(region_model, method):
    heat = explain.saliency(region_model, _square(), class_index=5, method=method)
    assert heat.shape == (28, 28) and not heat.any()


def test_grad_cam_finds_the_blob_not_the_strokes(blob_cnn):
    sample = np.zeros((28, 28), np.float32)
    sample[3, 2:26] = sample[2:26, 4] = sample[22, 2:26] = 255  # thin strokes
    sample = _square(sample)
    assert make_predictor(blob_cnn)(sample[None]).argmax() == 7
    cam = explain.grad_cam(blob_cnn, sample)
    assert cam.shape == (28, 28) and cam.min() >= 0 and cam.max() == pytest.approx(1.0)
    peak = np.unravel_index(cam.argmax(), cam.shape)
    assert REGION[0].start <= peak[0] < REGION[0].stop and REGION[1].start <= peak[1] < REGION[1].stop
    assert cam[_outside(1)].max() < 1e-3  # the strokes are not evidence


@pytest.mark.parametrize("method", explain.METHODS)
def test_removing_the_salient_ink_costs_more_than_removing_other_ink(trained, data, method):
    """Deletion check on a real model: erase the 15% of ink pixels the map ranks highest,
    or as many ink pixels it ranks lowest; the first must hurt the prediction more."""
    proba = make_predictor(trained)(data.x_test[:40])
    right = np.flatnonzero(proba.argmax(axis=1) == data.y_test[:40])[:12]
    salient_drop, other_drop = [], []
    for i in right:
        sample = data.x_test[i].astype(np.float32)
        heat = explain.saliency(trained, sample, method=method)
        ink = np.flatnonzero(sample.ravel() > 64)
        order = ink[np.argsort(-heat.ravel()[ink], kind="stable")]
        count = max(1, int(0.15 * len(ink)))
        erased = []
        for chosen in (order[:count], order[-count:]):
            copy = sample.ravel().copy()
            copy[chosen] = 0
            erased.append(copy.reshape(28, 28))
        base, top, low = make_predictor(trained)(np.stack([sample, *erased]))[:, data.y_test[i]]
        salient_drop.append(base - top)
        other_drop.append(base - low)
    assert np.mean(salient_drop) > 2 * np.mean(other_drop) and np.mean(salient_drop) > 0.1


@pytest.mark.parametrize("family", ["cnn", "bn_cnn"])
def test_maps_of_the_convolutional_families(family, data):
    overrides = dict(family=family, hidden_units=(16,) if family == "cnn" else ())
    model = build_model(make_config("combined", **overrides))
    sample = data.x_test[0]
    for heat in (explain.saliency(model, sample), explain.saliency(model, sample, method="integrated_gradients"),
                 explain.grad_cam(model, sample), explain.grad_cam(model, sample, class_index=9)):
        assert heat.shape == (28, 28) and heat.dtype == np.float32
        assert np.all(np.isfinite(heat)) and heat.min() >= 0 and heat.max() <= 1
    assert explain.supports_grad_cam(model)


def test_warm_up_traces_everything_so_later_calls_are_fast(data):
    model = build_model(make_config("combined", family="cnn", hidden_units=(16,)))
    assert explain.warm_up(model) > 0
    explainer = explain._explainer(model)
    assert all(f is not None for f in (explainer._occlusion, explainer._ig, explainer._gradcam))
    traced = [f.experimental_get_tracing_count() for f in (explainer._occlusion, explainer._ig, explainer._gradcam)]
    explain.saliency(model, data.x_test[5], class_index=3)
    explain.saliency(model, data.x_test[5], method="integrated_gradients")
    explain.grad_cam(model, data.x_test[6])
    assert [f.experimental_get_tracing_count() for f in (explainer._occlusion, explainer._ig, explainer._gradcam)] == traced


def test_mixed_precision_model_is_explained(data):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_model(make_config("best"))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    sample = data.x_test[1]
    for heat in (explain.saliency(model, sample, method="integrated_gradients"), explain.grad_cam(model, sample)):
        assert heat.shape == (28, 28) and np.all(np.isfinite(heat)) and 0 <= heat.min() <= heat.max() <= 1
    assert explain.embed(model, data.x_test[:3]).dtype == np.float32


def test_overlay_is_an_enlarged_rgb_image(data):
    sample = data.x_test[0]
    heat = np.zeros((28, 28), np.float32)
    heat[:14] = 1.0
    image = explain.overlay(sample, heat, scale=8)
    assert image.shape == (224, 224, 3) and image.dtype == np.uint8
    untouched = image[200:, :, :]  # heat 0 there: the plain (dimmed) sample, grey
    assert np.array_equal(untouched[..., 0], untouched[..., 1]) and untouched.max() > 0
    hot = image[:100].reshape(-1, 3).astype(int)
    assert (hot[:, 0] - hot[:, 2]).mean() > 50  # coloured (warm) where the map is high
    assert explain.overlay(sample, heat, scale=3).shape == (84, 84, 3)


def test_penultimate_is_the_last_hidden_layer_and_feeds_the_output(data):
    for overrides, dimension in ((dict(hidden_units=(64, 32)), 32),
                                 (dict(family="cnn", hidden_units=(16,)), 16),
                                 (dict(family="bn_cnn", hidden_units=()), 128)):
        model = build_model(make_config("combined", **overrides))
        assert explain.penultimate(model).output.shape[-1] == dimension
        features = explain.embed(model, data.x_test[:5], batch=2)
        assert features.shape == (5, dimension) and features.dtype == np.float32
        kernel, bias = model.get_layer("probabilities").get_weights()
        logits = features @ kernel + bias
        softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
        softmax /= softmax.sum(axis=1, keepdims=True)
        assert np.allclose(softmax, make_predictor(model)(data.x_test[:5]), atol=1e-5)


def test_a_training_image_is_its_own_nearest_neighbour(trained, data):
    index = explain.NeighbourIndex.build(trained, data.x_train, data.y_train)
    assert index.features.shape == (6000, 128)
    assert np.allclose(np.linalg.norm(index.features, axis=1), 1, atol=1e-5)
    for i in (0, 1234, 5999):
        indices, distances = index.nearest(data.x_train[i], k=5)
        assert indices.shape == distances.shape == (5,)
        assert indices[0] == i and distances[0] == pytest.approx(0, abs=1e-5)
        assert np.all(np.diff(distances) >= 0) and np.all(distances <= 2)
    # Mostly neighbours of the same class: the features are what the classifier separates.
    indices, _ = index.search(explain.embed(trained, data.x_test[:200]), k=1)
    assert np.mean(data.y_train[indices[:, 0]] == data.y_test[:200]) > 0.6
    assert index.search(index.features[:3], k=6000)[0].shape == (3, 6000)


def test_projections_and_silhouette(trained, data):
    embeddings = explain.embed(trained, data.x_test[:120])
    labels = data.y_test[:120]
    for method in explain.PROJECTIONS:
        mapped = explain.projection(embeddings, method, seed=0)
        assert mapped.shape == (120, 2) and np.all(np.isfinite(mapped))
    assert np.allclose(explain.projection(embeddings, "tsne", seed=0), mapped)  # same seed, same map
    full = explain.silhouette(embeddings, labels)
    assert -1 <= full <= 1 and full > explain.silhouette(embeddings, np.random.default_rng(0).permutation(labels))
    assert -1 <= explain.silhouette(mapped, labels, metric="euclidean") <= 1


def test_the_cache_goes_with_the_model():
    model = build_model(make_config("overfit", hidden_units=(8,)))
    explain.saliency(model, np.zeros((28, 28)))
    explain.embed(model, np.zeros((2, 28, 28)))
    assert model in explain._EXPLAINERS
    alive = weakref.ref(model)
    del model
    gc.collect()
    assert alive() is None  # the cached functions did not keep the model alive


def _one_line(error):
    assert "\n" not in str(error.value)
    return str(error.value)


def test_invalid_inputs_get_one_line_messages(region_model):
    good = np.zeros((28, 28))
    cases = [
        (lambda: explain.saliency(region_model, np.zeros((1, 28, 28))), r"sample must be one image of shape \(28, 28\)"),
        (lambda: explain.saliency(region_model, good + 300), r"pixel values in \[0, 255\]"),
        (lambda: explain.saliency(region_model, np.full((28, 28), np.nan)), r"pixel values in \[0, 255\]"),
        (lambda: explain.saliency(region_model, "drawing"), "sample must be one image"),
        (lambda: explain.saliency(region_model, good, method="lime"), "method must be one of 'occlusion'"),
        (lambda: explain.saliency(region_model, good, class_index=10), r"class_index must be in \[0, 9\]"),
        (lambda: explain.grad_cam(region_model, good), "grad_cam needs a convolutional model"),
        (lambda: explain.saliency(keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(),
                                                    keras.layers.Dense(10)]), good),
         "model must be a KMNIST classifier of ours"),
        (lambda: explain.saliency("model.keras", good), "model must be a Keras model"),
        (lambda: explain.embed(region_model, good), r"images must be an array of shape \(N, 28, 28\)"),
        (lambda: explain.overlay(good, np.zeros((14, 14))), r"heat must be a finite \(28, 28\) map"),
        (lambda: explain.overlay(good, good, alpha=2), r"alpha must be a number in \[0, 1\]"),
        (lambda: explain.projection(np.zeros((10, 4)), "umap"), "method must be one of 'pca', 'tsne'"),
        (lambda: explain.projection(np.zeros((2, 4))), r"embeddings must be an \(N, d\) array with N >= 3"),
        (lambda: explain.silhouette(np.random.rand(10, 3), np.zeros(10)), "silhouette needs 2 to N-1 distinct labels"),
        (lambda: explain.silhouette(np.random.rand(10, 3), np.zeros(9)), "labels must hold one label per row"),
    ]
    for call, message in cases:
        with pytest.raises(ParameterError, match=message) as error:
            call()
        _one_line(error)
    assert not explain.supports_grad_cam(region_model)
    index = explain.NeighbourIndex(np.eye(3, dtype=np.float32))
    for call, message in [(lambda: index.search(np.eye(3), k=0), r"k must be in \[1, 3\]"),
                          (lambda: index.search(np.eye(2), k=1), r"embeddings must have shape \(M, 3\)"),
                          (lambda: index.nearest(good), "built without a model")]:
        with pytest.raises(ParameterError, match=message) as error:
            call()
        _one_line(error)
