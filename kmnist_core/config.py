"""Training configurations and the variant presets of the regularization study.

A preset is just a dict of defaults; every field can be overridden per run, and
``make_config`` validates the result before anything is trained or stored.
"""

import dataclasses
from dataclasses import dataclass, field

from .checks import ParameterError, check_choice, check_float, check_int

FAMILIES = ("dense", "cnn", "bn_cnn")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "adadelta")
SCHEDULES = ("constant", "cosine", "onecycle")


@dataclass(frozen=True)
class TrainConfig:
    variant: str = "combined"
    family: str = "dense"
    hidden_units: tuple = (512, 512)
    dropout: float = 0.0  # after every hidden layer
    input_dropout: float = 0.0  # on the pixels, before the first layer
    l1: float = 0.0
    l2: float = 0.0
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    schedule: str = "constant"
    label_smoothing: float = 0.0
    augment: bool = False
    mixed_precision: bool = False  # bfloat16 compute, float32 weights: faster convolutions on AVX-512 CPUs
    full_train: bool = False  # train on train+validation (the `final` variant)
    val_fraction: float = 0.1
    kfold: int = 0  # 0: one hold-out split; k >= 2: k-fold cross-validation
    seed: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Variant:
    name: str
    summary: str  # one sentence a learner reads next to the preset
    overrides: dict = field(default_factory=dict)


_STUDY = dict(family="dense", hidden_units=(512, 512), epochs=50, batch_size=64, learning_rate=1e-3)

VARIANTS = {
    v.name: v
    for v in (
        Variant("underfit", "Too little capacity: one layer of 8 units cannot fit even the training set.",
                dict(_STUDY, hidden_units=(8,), epochs=10)),
        Variant("overfit", "A large unregularized network trained long: it memorises the training set "
                           "and its validation loss climbs.", dict(_STUDY)),
        Variant("dropout", "The overfit network with dropout: 20% of the pixels and 50% of "
                           "the hidden units dropped at random on every step.",
                dict(_STUDY, dropout=0.5, input_dropout=0.2)),
        Variant("l1l2", "The overfit network with L1 and L2 weight penalties.",
                dict(_STUDY, l1=1e-5, l2=1e-3)),
        Variant("combined", "Dropout and L1/L2 together.",
                dict(_STUDY, dropout=0.5, input_dropout=0.2, l1=1e-5, l2=1e-3)),
        Variant("final", "The combined configuration retrained on the whole training split "
                         "(train + validation), then scored on test.",
                dict(_STUDY, dropout=0.5, input_dropout=0.2, l1=1e-5, l2=1e-3, full_train=True)),
        Variant("best", "Beyond the study: a batch-normalized CNN with handwriting augmentation "
                        "and a one-cycle learning-rate schedule.",
                dict(family="bn_cnn", hidden_units=(), dropout=0.2, epochs=20, batch_size=64,
                     learning_rate=3e-3, optimizer="adamw", schedule="onecycle",
                     label_smoothing=0.1, augment=True, mixed_precision=True, full_train=True)),
    )
}
STUDY_ORDER = ("underfit", "overfit", "dropout", "l1l2", "combined", "final")


def preset(variant: str) -> dict:
    """The preset's values for every field (what a Reset button returns to)."""
    check_choice("variant", variant, tuple(VARIANTS))
    return TrainConfig(variant=variant, **VARIANTS[variant].overrides).to_dict()


def make_config(variant: str = "combined", **overrides) -> TrainConfig:
    """The preset for ``variant`` with ``overrides`` applied, validated as a whole."""
    check_choice("variant", variant, tuple(VARIANTS))
    known = {f.name for f in dataclasses.fields(TrainConfig)} - {"variant"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ParameterError(f"unknown parameter {unknown[0]!r}; allowed: {', '.join(sorted(known))}")
    values = dict(VARIANTS[variant].overrides)
    values.update({k: v for k, v in overrides.items() if v is not None})
    if not isinstance(values.get("hidden_units", ()), (list, tuple)):
        raise ParameterError(f"hidden_units must be a list of 1 to 8 layer sizes, got {values['hidden_units']!r}")
    if "hidden_units" in values:
        values["hidden_units"] = tuple(values["hidden_units"])
    config = TrainConfig(variant=variant, **values)
    validate(config)
    return config


def validate(config: TrainConfig) -> TrainConfig:
    check_choice("variant", config.variant, tuple(VARIANTS))
    check_choice("family", config.family, FAMILIES)
    check_choice("optimizer", config.optimizer, OPTIMIZERS)
    check_choice("schedule", config.schedule, SCHEDULES)
    fewest = 1 if config.family == "dense" else 0  # a CNN may go straight from features to classes
    if not isinstance(config.hidden_units, tuple) or not fewest <= len(config.hidden_units) <= 8:
        raise ParameterError(f"hidden_units must be {fewest} to 8 layer sizes for family "
                             f"{config.family!r}, got {config.hidden_units!r}")
    for units in config.hidden_units:
        check_int("hidden_units", units, 1, 4096)
    check_float("dropout", config.dropout, 0.0, 1.0, high_inclusive=False)
    check_float("input_dropout", config.input_dropout, 0.0, 1.0, high_inclusive=False)
    check_float("l1", config.l1, 0.0, 0.1)
    check_float("l2", config.l2, 0.0, 0.1)
    check_int("epochs", config.epochs, 1, 1000)
    check_int("batch_size", config.batch_size, 1, 8192)
    check_float("learning_rate", config.learning_rate, 0.0, 10.0, low_inclusive=False)
    check_float("label_smoothing", config.label_smoothing, 0.0, 0.5, high_inclusive=False)
    check_float("val_fraction", config.val_fraction, 0.0, 0.5, low_inclusive=False)
    check_int("seed", config.seed, 0, 2**32 - 1)
    kfold = check_int("kfold", config.kfold, 0, 20)
    if kfold == 1:
        raise ParameterError("kfold must be 0 (one hold-out split) or in [2, 20], got 1")
    for flag in ("augment", "full_train", "mixed_precision"):
        if not isinstance(getattr(config, flag), bool):
            raise ParameterError(f"{flag} must be True or False, got {getattr(config, flag)!r}")
    return config


def config_from_dict(values: dict) -> TrainConfig:
    """Rebuild a stored configuration (JSON turns tuples into lists)."""
    values = dict(values)
    values["hidden_units"] = tuple(values.get("hidden_units", ()))
    return validate(TrainConfig(**values))
