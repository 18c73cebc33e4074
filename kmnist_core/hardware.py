"""What this machine offers a training: native bfloat16 or not, and how many cores.

bfloat16 halves the memory traffic of convolutions on CPUs that compute it natively
(AVX-512 BF16, AMX) and on recent GPUs; elsewhere TensorFlow emulates it, which measured
6.5x slower than float32 on an AVX2-only host. So "auto" means bfloat16 only where native.
oneDNN (TensorFlow's CPU kernels) can be capped below what the CPU offers with
``ONEDNN_MAX_CPU_ISA``; capped below AVX512_CORE_BF16 it emulates bfloat16 whatever the
flags say, so the cap is read too (and is how an AVX2-only host is imitated).
"""

import os
from pathlib import Path

from .checks import ParameterError, check_int, range_text

NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
WORKERS_ENV = "KMNIST_WORKERS"  # trainings side by side; at most one per usable core
# oneDNN's ISA levels below AVX512_CORE_BF16: no native bfloat16 dot products.
ISAS_WITHOUT_BF16 = frozenset({"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI"})


def _cpuinfo_field(prefixes, cpuinfo=None):
    """The value of the first /proc/cpuinfo line starting with one of ``prefixes``."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return None
    for line in cpuinfo.splitlines():
        if line.startswith(prefixes):
            return line.split(":", 1)[1].strip()
    return None


def cpu_flags(cpuinfo: str | None = None) -> frozenset:
    """The CPU feature flags (x86 "flags", Arm "Features"); empty where unknown."""
    return frozenset((_cpuinfo_field(("flags", "Features"), cpuinfo) or "").split())


def cpu_name(cpuinfo: str | None = None) -> str:
    return _cpuinfo_field(("model name",), cpuinfo) or "unknown CPU"


def native_bfloat16(flags=None, gpu_bf16: bool | None = None, max_isa: str | None = None) -> bool:
    """True when bfloat16 compute is native here: a CPU flag oneDNN is allowed to use
    (``max_isa``: the ``ONEDNN_MAX_CPU_ISA`` cap, read from the environment when None),
    or a GPU that has it."""
    flags = cpu_flags() if flags is None else frozenset(flags)
    max_isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "") if max_isa is None else max_isa
    if flags & NATIVE_BF16_FLAGS and max_isa.strip().upper() not in ISAS_WITHOUT_BF16:
        return True
    return _gpu_bfloat16() if gpu_bf16 is None else gpu_bf16


def _gpu_bfloat16() -> bool:
    """Ampere (compute capability 8.0) and newer compute bfloat16 natively."""
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if capability and capability >= (8, 0):
            return True
    return False


def choose_precision(setting, flags=None, gpu_bf16: bool | None = None, max_isa: str | None = None) -> str:
    """"bfloat16" or "float32" for a config's ``mixed_precision`` ("auto", True, False)."""
    if setting == "auto":
        return "bfloat16" if native_bfloat16(flags, gpu_bf16, max_isa) else "float32"
    return "bfloat16" if setting else "float32"


def usable_cores() -> int:
    """Cores this process may run on (affinity, cgroup-pinned containers), not the host's."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def worker_count(value=None, cores: int | None = None) -> int:
    """How many trainings may run side by side: ``KMNIST_WORKERS`` (default 1), an integer
    from 1 to the usable cores. One by default: one at a time gives the first result in
    about half the time, and each extra trainer holds its own TensorFlow and data (what
    side by side gains: benchmarks/parallel_workers.py). Each process reads it, so the
    app, its workers and the CLI agree when they share an environment."""
    text = str(os.environ.get(WORKERS_ENV, "") if value is None else value).strip()
    if not text:
        return 1
    low, high = 1, usable_cores() if cores is None else cores
    try:
        return check_int(WORKERS_ENV, int(text) if text.isascii() and text.isdigit() else text, low, high)
    except ParameterError:
        raise ParameterError([(WORKERS_ENV, f"must be an integer in {range_text(low, high)} (at most one "
                                            f"training per usable core), got {text!r}")]) from None


def training_threads(workers: int | None = None, cores: int | None = None) -> int:
    """TensorFlow intra-op threads for one training: the usable cores split between the
    trainings that run side by side (``worker_count``; more threads than cores only adds
    switching)."""
    cores = usable_cores() if cores is None else cores
    workers = worker_count(cores=cores) if workers is None else workers
    return max(1, cores // max(1, workers))


def configure_threads(workers: int | None = None) -> int:
    """Size TensorFlow's thread pools for this machine and the trainings beside this one
    (``workers``, default ``worker_count()``); returns the intra-op count. Must run before
    TensorFlow executes its first op; later calls leave the pools as they are."""
    import tensorflow as tf

    threads = training_threads(workers)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)  # two measured no faster
    except RuntimeError:
        return tf.config.threading.get_intra_op_parallelism_threads() or threads
    return threads
