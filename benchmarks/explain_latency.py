"""How long the explanations take, per method and model family, on this machine.

    KMNIST_DATA_DIR=../shared/data/kmnist-mini python benchmarks/explain_latency.py [--reps 40]

For each family (dense = the `combined` preset, cnn, bn_cnn = the `best` preset with its
mixed precision) a model is trained for one epoch on real kmnist-mini images through
``train_model`` (latency does not depend on how well it is trained, but the model is
built exactly as a run builds it). Then, on real test images:
- saliency (occlusion, integrated gradients) and Grad-CAM: the first call (which traces
  the compiled function) and p50/p95 over --reps calls on different images;
- the neighbour index over all training images (build time, one query), and
- PCA, t-SNE and silhouette on the penultimate embeddings of --tsne test images.
"""

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from kmnist_core import explain
from kmnist_core.config import make_config
from kmnist_core.data import load_kmnist
from kmnist_core.training import configure_threads, train_model

FAMILIES = {
    "dense": lambda: make_config("combined", epochs=1),
    "cnn": lambda: make_config("combined", family="cnn", hidden_units=(128,), epochs=1),
    "bn_cnn": lambda: make_config("best", epochs=1),
}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def timed(call, images):
    """(first call in ms, p50 ms, p95 ms): the first call traces, the rest reuse."""
    start = time.perf_counter()
    call(images[0])
    first = time.perf_counter() - start
    times = []
    for image in images[1:]:
        start = time.perf_counter()
        call(image)
        times.append(time.perf_counter() - start)
    return 1000 * first, 1000 * np.percentile(times, 50), 1000 * np.percentile(times, 95)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="KMNIST folder (default: $KMNIST_DATA_DIR)")
    parser.add_argument("--families", default="dense,cnn,bn_cnn")
    parser.add_argument("--reps", type=int, default=40, help="timed calls per method after the first")
    parser.add_argument("--tsne", default="1000,2000", help="test-set sizes for the 2-D maps")
    args = parser.parse_args()

    configure_threads()
    data = load_kmnist(args.data_dir)
    print(f"CPU: {cpu_model()} ({os.cpu_count()} cores); TensorFlow {tf.__version__}; "
          f"intra-op threads {tf.config.threading.get_intra_op_parallelism_threads()}")
    print(f"data: {data.source}; {len(data.x_train)} train / {len(data.x_test)} test images")
    print(f"load average at start: {os.getloadavg()[0]:.1f} (other processes on these cores slow every figure)")
    rng = np.random.default_rng(0)
    samples = data.x_test[rng.choice(len(data.x_test), args.reps + 1, replace=False)]
    sizes = [int(n) for n in args.tsne.split(",") if n]

    for family in args.families.split(","):
        config = FAMILIES[family]()
        model = train_model(config, data.x_train, data.y_train).model
        print(f"\n{family}: preset {config.variant}, {model.count_params():,} parameters, "
              f"mixed precision {config.mixed_precision}, penultimate d={explain.penultimate(model).output.shape[-1]}")
        twin = keras.models.clone_model(model)  # same graph, nothing traced yet
        print(f"  warm_up (traces every method once, e.g. when the app loads a model): {explain.warm_up(twin):.2f} s")
        print(f"  {'method':<22} {'first (trace)':>14} {'p50':>9} {'p95':>9}")
        methods = {
            "occlusion": lambda s, m=model: explain.saliency(m, s, method="occlusion"),
            "integrated_gradients": lambda s, m=model: explain.saliency(m, s, method="integrated_gradients"),
        }
        if explain.supports_grad_cam(model):
            methods["grad_cam"] = lambda s, m=model: explain.grad_cam(m, s)
        for name, call in methods.items():
            first, p50, p95 = timed(call, samples)
            print(f"  {name:<22} {first:>11.0f} ms {p50:>6.1f} ms {p95:>6.1f} ms")

        index = explain.NeighbourIndex.build(model, data.x_train, data.y_train)
        first, p50, p95 = timed(lambda s, i=index: i.nearest(s, k=5), samples)
        print(f"  neighbour index: build over {len(data.x_train)} training images {index.build_seconds:.2f} s; "
              f"nearest(k=5) p50 {p50:.1f} ms, p95 {p95:.1f} ms")
        for n in sizes:
            start = time.perf_counter()
            embeddings = explain.embed(model, data.x_test[:n])
            embed_s = time.perf_counter() - start
            start = time.perf_counter()
            explain.projection(embeddings, "pca")
            pca_s = time.perf_counter() - start
            start = time.perf_counter()
            mapped = explain.projection(embeddings, "tsne")
            tsne_s = time.perf_counter() - start
            start = time.perf_counter()
            full = explain.silhouette(embeddings, data.y_test[:n])
            silhouette_s = time.perf_counter() - start
            flat = explain.silhouette(mapped, data.y_test[:n], metric="euclidean")
            print(f"  {n} test images: embed {embed_s:.2f} s, PCA {pca_s:.2f} s, t-SNE {tsne_s:.1f} s, "
                  f"silhouette {silhouette_s:.2f} s (full space {full:.3f}, on the t-SNE map {flat:.3f})")
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
