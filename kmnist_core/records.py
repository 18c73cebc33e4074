"""The two records a training emits, used unchanged from the training callback to the
store, the CLI's progress bar and the app's charts.

``EpochRecord`` is one point on the learning curves. Its train figures are a clean
evaluation (dropout off, no L1/L2 penalty) on a fixed sample of the training images, so
they compare like for like with the validation figures; ``fit_loss``/``fit_accuracy``
are what the optimiser saw during the epoch (dropout on, penalty added, averaged over a
changing model), kept as a second series because the difference is itself a lesson.
"""

from dataclasses import asdict, dataclass, fields


class _Record:
    """Plain-dict round trip for the store's JSON and rows; unknown keys are dropped, so a
    record written by another version still reads."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict):
        known = {f.name for f in fields(cls)}
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
    updated_at: float | None = None  # time.time() of the store write: how long since it moved (store.stalled)
    writes: int = 0  # store writes so far in this training: its usual pace, elapsed / writes

    @property
    def fraction(self) -> float:
        return min(1.0, ((self.epoch - 1) * self.steps + self.step) / max(1, self.epochs * self.steps))

