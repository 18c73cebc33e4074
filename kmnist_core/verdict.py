"""The fit verdict a learner reads first, read from a run's curves, and the sentences that
explain what the curves show (why the lowest loss need not be the most accurate).

Plain numbers in, plain text out: no scikit-learn or TensorFlow, so any page, the report
and the labs can use it."""

import math
from dataclasses import dataclass

UNDERFIT_TRAIN_ACCURACY = 0.90  # a dense net fits KMNIST's training images to >99%
NOT_LEARNING_ACCURACY = 0.20  # below this on its training images a model is near chance (10%): not learning


@dataclass(frozen=True)
class Grade:
    """One step of the overfitting scale: held-out loss ended less than ``below`` above its
    lowest point (0.24 = 24%), read as ``verdict``, for the reason ``meaning``."""

    verdict: str
    below: float
    meaning: str


# The one scale every run is read on, its boundaries declared here once. Measured on
# kmnist-mini (benchmarks/study_spread.py, 25-30 epochs): dropout and combined end 1-8%
# above their lowest validation loss, overfit 42-52%; a rise under 10% is within what a
# held-out loss wobbles from epoch to epoch.
FIT_GRADES = (
    Grade("good fit", 0.10, "its held-out loss stays near its lowest"),
    Grade("starting to overfit", 0.25, "its held-out loss has turned up while it keeps fitting its training "
                                       "images: the first sign of memorising"),
    Grade("overfitting", 0.50, "its held-out loss climbs while it keeps fitting its training images: "
                               "it memorises them"),
    Grade("strongly overfitting", math.inf, "its held-out loss has climbed far above its lowest: it memorises its "
                                            "training images and grows sure of its mistakes"),
)
UNDERFITTING = "underfitting"
VERDICTS = (UNDERFITTING, *(grade.verdict for grade in FIT_GRADES))  # old runs stored three of these


def curve_rise(losses) -> tuple:
    """(rise, epoch of the lowest loss, last epoch) of a held-out loss curve (one value per
    epoch, None where none was measured): how far the last value ended above the lowest,
    0.24 = +24%. (None, None, None) without a value."""
    points = [(epoch, loss) for epoch, loss in enumerate(losses, start=1) if loss is not None]
    if not points:
        return None, None, None
    lowest_epoch, lowest = min(points, key=lambda point: point[1])
    last_epoch, last = points[-1]
    return (last / lowest - 1 if lowest > 0 else 0.0), lowest_epoch, last_epoch


def grade_of(rise) -> int:
    """The index in ``FIT_GRADES`` of a held-out loss ``rise``."""
    return next(number for number, grade in enumerate(FIT_GRADES) if rise < grade.below)


def fit_verdict(train_accuracy, heldout_accuracy, train_loss, heldout_loss, val_losses=(), heldout="validation") -> dict:
    """What the run's curves say, as the dict stored in ``metrics["fit"]``:
    {"verdict", "reason" (a sentence with its numbers), "grade" (index in ``FIT_GRADES``,
    None when underfitting or without a curve), "rise", "since_epoch" (the epoch of the
    lowest held-out loss), "last_epoch", "curve" (the split the curve was read on)}.

    One rule for every run: how far its held-out loss (``val_losses``, one per epoch) rose
    from its lowest and over how many epochs, graded on ``FIT_GRADES`` — the classic sign,
    held-out loss climbing back while training loss keeps falling. ``heldout`` names the
    split the curve was measured on: runs trained on every training image (``final``) are
    read on the test split. A train/held-out gap alone does not decide: on 5,400 images every
    dense network reaches ~100% on its training set, and an underfit model has a small gap
    because it fits nothing well. Underfitting is read from the training figures alone.
    """
    numbers = (f"train loss {train_loss:.3f}, train acc {train_accuracy:.1%}; {heldout} loss {heldout_loss:.3f}, "
               f"{heldout} acc {heldout_accuracy:.1%}")
    rise, since, last = curve_rise(val_losses)
    reading = {"rise": rise, "since_epoch": since, "last_epoch": last, "curve": heldout, "grade": None}
    if train_accuracy < NOT_LEARNING_ACCURACY:
        return reading | {"verdict": UNDERFITTING, "reason": (
            f"Not learning: train accuracy {train_accuracy:.1%}, barely above guessing (10% for ten classes) even "
            f"on its own training images, which capacity does not explain. Check the learning rate first (too "
            f"small to move the weights, or so large that training diverges), then the regularization. {numbers}.")}
    if train_accuracy < UNDERFIT_TRAIN_ACCURACY:
        return reading | {"verdict": UNDERFITTING, "reason": (
            f"Underfitting: train loss {train_loss:.3f} and train accuracy {train_accuracy:.1%} — it cannot fit even "
            f"its own training images (under {UNDERFIT_TRAIN_ACCURACY:.0%}, where a network with room to fit KMNIST "
            f"passes 99%): it needs more capacity, more epochs or less regularization. Its small {heldout} − train loss "
            f"gap ({heldout_loss - train_loss:+.3f}) comes from fitting nothing well, not from generalising. "
            f"{numbers}.")}
    if rise is None:
        return reading | {"verdict": FIT_GRADES[0].verdict, "reason": (
            f"No {heldout} loss was recorded per epoch, so there is no curve to read overfitting from; it fits its "
            f"training images. {numbers}.")}
    grade = grade_of(rise)
    if since == last:
        where = (f"{heldout} loss at its lowest ({_at(val_losses, last):.3f}) in its last epoch, {last}: still "
                 f"falling")
    else:
        where = (f"{heldout} loss {rise:+.0%} since epoch {since} ({_at(val_losses, since):.3f} → "
                 f"{_at(val_losses, last):.3f} at epoch {last}, {last - since} epoch{'s' if last - since != 1 else ''} "
                 f"later) — {FIT_GRADES[grade].meaning}")
    verdict = FIT_GRADES[grade].verdict
    return reading | {"grade": grade, "verdict": verdict,
                      "reason": f"{verdict.capitalize()}: {where}. {_scale(grade)} {numbers}."}


def verdict_line(fit) -> str:
    """A stored verdict as one line of plain text: the reason, which names its verdict first;
    runs stored before verdicts were graded ("good fit", "overfitting", "underfitting" and a
    reason without it) get it put in front."""
    reason = fit.get("reason", "")
    if reason.lower().startswith(fit["verdict"]) or reason.startswith("Not learning"):
        return reason
    return f"{fit['verdict'].capitalize()}. {reason}".strip()


def _at(losses, epoch):
    return losses[epoch - 1]


def _scale(grade) -> str:
    """Where the grade's boundaries lie, so a rise of 24% and one of 26% read as neighbours."""
    low = FIT_GRADES[grade - 1].below if grade else 0.0
    high = FIT_GRADES[grade].below
    span = f"of {low:.0%} or more" if math.isinf(high) else f"of {low:.0%} to {high:.0%}" if grade else f"under {high:.0%}"
    return f"(Scale: a rise {span} reads “{FIT_GRADES[grade].verdict}”.)"


def loss_accuracy_disagreement(lowest_loss, most_accurate, split="validation") -> str:
    """Why the run (or swept value) with the lowest loss is not the most accurate, with the
    numbers: each argument is (label, loss, accuracy). The disagreement is itself a lesson,
    so it is explained wherever both are shown (Compare, Sweep), never left to puzzle over."""
    (low_label, low_loss, low_accuracy), (top_label, top_loss, top_accuracy) = lowest_loss, most_accurate
    return (f"{low_label} has the lowest {split} loss ({low_loss:.3f} vs {top_loss:.3f}) but {top_label} is the "
            f"more accurate ({top_accuracy:.1%} vs {low_accuracy:.1%}). Loss punishes a confident mistake hard and "
            f"counts how sure every answer was; accuracy only counts right or wrong. So {top_label} is right more "
            f"often yet pays more loss: surer of its mistakes or less sure of its right answers. Memorising makes a "
            f"network over-confident in just this way: its loss rises while its accuracy holds.")


def heldout_split(config) -> str:
    """The split a run's held-out curve was measured on: test when it trained on every
    training image (it has no validation split), else validation."""
    return "test" if (config or {}).get("full_train") else "validation"
