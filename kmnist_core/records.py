"""The records the store keeps and every front end reads: a run, its study and sweep, and
the two records a training emits (used unchanged from the training callback to the
store, the CLI's progress bar and the app's charts).

``EpochRecord`` is one point on the learning curves. Its train figures are a clean
evaluation (dropout off, no L1/L2 penalty) on a fixed sample of the training images, so
they compare like for like with the validation figures; ``fit_loss``/``fit_accuracy``
are what the optimiser saw during the epoch (dropout on, penalty added, averaged over a
changing model), kept as a second series because the difference is itself a lesson.
"""

import time
from dataclasses import asdict, dataclass, field, fields

from .status import FINISHED, Status


class _Record:
    """Plain-dict round trip for the store's JSON and rows; unknown keys are dropped, so a
    record written by another version still reads."""

    def to_dict(self) -> dict:
        return asdict(self)  # type: ignore[call-overload]  # every subclass is a dataclass

    @classmethod
    def from_dict(cls, values: dict):
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in values.items() if k in known})


@dataclass
class EpochRecord(_Record):
    epoch: int  # 1-based; k-fold runs continue the count across folds
    train_loss: float | None = None
    train_accuracy: float | None = None
    val_loss: float | None = None  # held-out: the validation split, or test for runs without one (full_train)
    val_accuracy: float | None = None
    fit_loss: float | None = None
    fit_accuracy: float | None = None
    elapsed: float | None = None  # seconds since the training started
    weights: list | None = None  # per-layer weight statistics (kmnist_core.weights)


@dataclass
class Progress(_Record):
    """Where a running training is: written to the store twice a second, read by the
    progress bars. ``eta`` leaves out the first batch's graph tracing (see training).
    ``updated_at`` and ``writes`` are set by the writer, so a paused or hung trainer shows."""

    epoch: int  # 1-based, the epoch in progress
    epochs: int
    step: int  # batches done in this epoch
    steps: int  # batches per epoch
    fit_loss: float | None = None
    fit_accuracy: float | None = None
    elapsed: float = 0.0
    eta: float | None = None  # seconds left; None until there is a rate to trust
    fold: str | None = None  # "2/5" during k-fold cross-validation
    updated_at: float | None = None  # time.time() of the store write: how long since it moved (status.stalled)
    writes: int = 0  # store writes so far in this training: its usual pace, elapsed / writes

    @property
    def fraction(self) -> float:
        return min(1.0, ((self.epoch - 1) * self.steps + self.step) / max(1, self.epochs * self.steps))



@dataclass
class Run:
    id: int
    name: str
    variant: str
    status: Status
    config: dict
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    data_dir: str | None = None
    data_source: str | None = None
    params: int | None = None
    metrics: dict | None = None
    progress: Progress | None = None
    error: str | None = None
    stop_requested: bool = False
    runtime: dict | None = None  # how it was trained: precision, threads, CPU
    interruption: dict | None = None  # {"last_epoch", "waiting": [run ids queued then]}
    sweep_id: int | None = None  # the sweep it belongs to (kmnist_core.sweep), if any
    slot: int | None = None  # the training slot whose trainer claimed it (None: slot 0)
    owner: str | None = None  # the app session that queued it (None: the CLI)
    study_id: int | None = None  # the study it was queued in, if any
    history: list = field(default_factory=list)  # EpochRecord per finished epoch (``get`` only)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def duration(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.finished_at or time.time()) - self.started_at


@dataclass
class Sweep(_Record):
    """One configuration trained for several ``values`` of ``param``, ``seeds`` seeds each
    (``overrides``: the settings shared by all its runs, on top of ``variant``'s preset)."""

    id: int
    param: str
    values: list
    seeds: int
    variant: str
    overrides: dict
    created_at: float


@dataclass
class Study(_Record):
    """Runs queued together (Quick study, Train all variants, a lab, a sweep): they share
    data, training images, epochs and seeds, so they are comparable by construction, and
    the study's conclusions are drawn across them only."""

    id: int
    kind: str  # "quick" | "variants" | "lab" | "sweep" | "custom"
    name: str  # what the learner sees, e.g. "Quick study", "Lab: dropout"
    purpose: str  # the question it answers
    created_at: float
    lab: str | None = None  # the lab's id when kind == "lab"
    prediction: str | None = None  # the learner's prediction, chosen before the runs started
    owner: str | None = None  # the app session that queued it (None: the CLI or a notebook)
    sweep_id: int | None = None  # when kind == "sweep"


STUDY_KINDS = ("quick", "variants", "lab", "sweep", "custom")
