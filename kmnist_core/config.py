"""Training configurations, their parameters' constraints, and the study's presets.

Every parameter is declared once, in ``PARAMETERS``: its type and range (validation,
the CLI's help and the form's widget limits all read it), the label the form shows and
one sentence on what it does. A preset is a dict of overrides; ``make_config`` applies a
learner's changes and validates the whole, reporting every problem at once.
"""

import dataclasses
from dataclasses import dataclass, field

from .checks import ParameterError, check_choice, check_float, check_int, number_text, range_text

FAMILIES = ("dense", "cnn", "bn_cnn")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "adadelta")
SCHEDULES = ("constant", "cosine", "onecycle")
PRECISIONS = ("auto", True, False)
MAX_LAYERS, MAX_UNITS = 8, 4096
# bn_cnn's convolution blocks: (filters, conv-BN-ReLU layers), max-pooled between blocks,
# global-average-pooled after the last. Data, so benchmarks/recipes.py can try others
# and the exported script (kmnist_core/export.py) builds the same network. 16 filters at
# 28x28, not 32: those layers were a third of an AVX2 epoch; with 22 epochs instead of 20,
# `best` trains in 0.79x the time there at the same accuracy (docs/performance.md, item 3).
BN_CNN_BLOCKS = ((16, 2), (64, 2), (128, 2))
# The augmentation's ranges, each drawn uniformly per image: shift (± fraction of the side),
# rotation (± turns) and zoom (± fraction of the size). Milder than the 0.10 / 0.03 (~11°) / 0.10
# first used: every stronger distortion tried cost accuracy on kmnist-mini's 6,000 images
# (README "What was tried for `best`", benchmarks/benchmark.py --recipe v1,mild).
AFFINE_RANGES = (0.07, 0.02, 0.07)


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
    ema: float = 0.0  # momentum of the weights' moving average the model ends with; 0 = off
    augment: bool = False
    patience: int = 0  # early stopping: epochs without a better validation loss; 0 = off
    train_size: int = 0  # training images used (stratified sample); 0 = all
    mixed_precision: str | bool = False  # "auto": bfloat16 where the hardware has it natively
    full_train: bool = False  # train on train+validation (the `final` variant)
    val_fraction: float = 0.1
    kfold: int = 0  # 0: one hold-out split; k >= 2: k-fold cross-validation
    seed: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def draws_dropout(self) -> bool:
        """Whether a training step draws dropout masks: it decides how much of the step XLA
        may compile (``training.xla_plan``) and so what the step costs (``estimate.cost_kind``)."""
        return bool(self.dropout or self.input_dropout)


@dataclass(frozen=True)
class Parameter:
    """One field's constraint and how a learner meets it. ``off`` is a value allowed
    outside the range that switches the feature off (0 = no early stopping)."""

    kind: str  # "int", "float", "bool", "choice" or "units"
    label: str
    help: str
    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True
    high_inclusive: bool = True
    choices: tuple = ()
    off: int | None = None

    def check(self, name, value):
        """The value, normalised; raises ParameterError naming ``name`` and the range."""
        if self.kind == "choice":
            return check_choice(name, value, self.choices)
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise ParameterError([(name, f"must be True or False, got {value!r}")])
            return value
        if self.kind == "units":
            return check_units(name, value)
        if self.off is not None and value == self.off and not isinstance(value, bool):
            return value
        check = check_int if self.kind == "int" else check_float
        extra = {} if self.kind == "int" else dict(low_inclusive=self.low_inclusive, high_inclusive=self.high_inclusive)
        try:
            return check(name, value, self.low, self.high, **extra)
        except ParameterError as error:
            if self.off is None or "must be in" not in str(error):
                raise
            raise ParameterError([(name, f"must be {self.allowed()}, got {number_text(value)}")]) from None

    def allowed(self) -> str:
        """The allowed values in words, for --help and error hints."""
        if self.kind == "choice":
            return "one of " + ", ".join(str(c) for c in self.choices)
        if self.kind == "bool":
            return "on or off"
        if self.kind == "units":
            return f"up to {MAX_LAYERS} comma-separated layer sizes in [1, {MAX_UNITS}]"
        text = range_text(self.low, self.high, self.low_inclusive, self.high_inclusive)
        return text if self.off is None else f"{self.off} (off) or {text}"


PARAMETERS = {
    "variant": Parameter("choice", "Variant preset", "The study's starting points; every setting below can be changed.",
                         choices=()),  # filled in below, once VARIANTS exists
    "family": Parameter("choice", "Architecture", "dense: fully connected layers on the 784 pixels; cnn: two "
                        "convolutions; bn_cnn: a batch-normalized six-convolution network.", choices=FAMILIES),
    "hidden_units": Parameter("units", "Hidden layer sizes", "Units per fully connected hidden layer, e.g. 512, 512 "
                              "(empty: none, for the CNN families). More units, more capacity to memorise."),
    "dropout": Parameter("float", "Dropout (hidden layers)", "Share of hidden units switched off at random on every "
                         "training step, so no unit can rely on another; all are on when the model is scored.",
                         0.0, 1.0, high_inclusive=False),
    "input_dropout": Parameter("float", "Input dropout (pixels)", "Share of pixels blanked at random on every training "
                               "step: the network must read partly erased characters.", 0.0, 1.0, high_inclusive=False),
    "l1": Parameter("float", "L1 penalty", "Adds L1 × Σ|w| to the loss: pushes many weights to (near) zero "
                    "(sparse weights).", 0.0, 0.1),
    "l2": Parameter("float", "L2 penalty", "Adds L2 × Σw² to the loss: keeps every weight small (smooth weights).",
                    0.0, 0.1),
    "epochs": Parameter("int", "Epochs", "Passes over the training images: too few and the model underfits, many "
                        "without regularization and it memorises.", 1, 1000),
    "batch_size": Parameter("int", "Batch size", "Images per weight update: small batches give noisier steps (a mild "
                            "regularizer) and slower epochs.", 1, 8192),
    "learning_rate": Parameter("float", "Learning rate", "Size of each weight update: too large and the loss jumps "
                               "about, too small and training crawls.", 0.0, 1.0, low_inclusive=False),
    "optimizer": Parameter("choice", "Optimizer", "How gradients become weight updates (Adam adapts the step per "
                           "weight; AdamW adds weight decay).", choices=OPTIMIZERS),
    "schedule": Parameter("choice", "Learning-rate schedule", "constant; cosine: decays to ~0; onecycle: warms up "
                          "for 20% of the steps, then decays.", choices=SCHEDULES),
    "label_smoothing": Parameter("float", "Label smoothing", "Trains towards e.g. 90% on the true class instead of "
                                 "100% (at 0.1): discourages over-confident predictions.", 0.0, 0.5,
                                 high_inclusive=False),
    "ema": Parameter("float", "Weight averaging (EMA)", "The model ends with a moving average of its weights over "
                     "the last steps (momentum 0.99: ~100 steps) instead of the last step's: smooths out the "
                     "noise of the final updates (0: off).", 0.9, 0.9999, off=0),
    "augment": Parameter("bool", "Data augmentation", "Every epoch each training image is shifted, rotated and zoomed "
                         "a little at random: more varied data, less memorising."),
    "patience": Parameter("int", "Early stopping patience", "Stop once validation loss has not improved for this "
                          "many epochs and keep the best epoch's weights (0: off).", 1, 1000, off=0),
    "train_size": Parameter("int", "Training images", "How many training images to use, a stratified sample "
                            "(0: all). Less data, more overfitting, faster epochs.", 100, 10_000_000, off=0),
    "mixed_precision": Parameter("choice", "Precision", "auto: bfloat16 where the CPU or GPU computes it natively, "
                                 "float32 elsewhere; True/False force it.", choices=PRECISIONS),
    "full_train": Parameter("bool", "Train on train + validation", "No validation split: the final model learns "
                            "from every training image and is judged on test."),
    "val_fraction": Parameter("float", "Validation share", "Share of the training images held out to draw the "
                              "validation curve.", 0.0, 0.5, low_inclusive=False),
    "kfold": Parameter("int", "k (folds)", "k-fold cross-validation: k models on k splits, mean ± std of their "
                       "scores (k times slower; 0: off).", 2, 20, off=0),
    "seed": Parameter("int", "Seed", "Fixes the random start, shuffling and dropout masks: the same seed gives the "
                      "same run; other seeds show how much of a difference is chance.", 0, 2**32 - 1),
}


def check_units(name, value) -> tuple:
    if not isinstance(value, (list, tuple)) or len(value) > MAX_LAYERS:
        raise ParameterError([(name, f"must be a list of at most {MAX_LAYERS} layer sizes, got {value!r}")])
    return tuple(check_int(name, units, 1, MAX_UNITS) for units in value)


def parse_units(text) -> tuple:
    """'512, 256' -> (512, 256); '' -> () (no hidden layer: the CNN families may go straight
    from their pooled features to the classes). One parser for the CLI and the form."""
    if not str(text).strip():
        return ()
    parts = [part.strip() for part in str(text).split(",")]
    if not all(part.isascii() and part.isdigit() for part in parts):
        raise ParameterError([("hidden_units", f"must be layer sizes separated by commas, e.g. 512, 256; got {text!r}")])
    return tuple(int(part) for part in parts)


@dataclass(frozen=True)
class Variant:
    name: str
    summary: str  # one sentence a learner reads next to the preset
    overrides: dict = field(default_factory=dict)
    shows_after: int = 0  # epochs before its lesson shows on the curves (measured; 0: any)


# The study's network and its presets, chosen from the spread over seeds on kmnist-mini
# (benchmarks/study_spread.py; README "The study"): at 30 epochs overfit's validation loss
# has risen 46-52% from its best (epoch 4), overfitting on the verdict's graded scale, while dropout
# and dropout + L1/L2 stay a good fit; L2 1e-4 fits as well as overfit and shrinks its loss gap.
_STUDY = dict(family="dense", hidden_units=(512, 512), epochs=30, batch_size=64, learning_rate=1e-3)

VARIANTS = {
    v.name: v
    for v in (
        Variant("underfit", "Too little capacity: one layer of 8 units cannot fit even the training set.",
                dict(_STUDY, hidden_units=(8,), epochs=10)),
        Variant("overfit", "A large unregularized network trained long: it memorises the training set "
                           "and its validation loss climbs.", dict(_STUDY), shows_after=20),  # crossed at 13-14
        Variant("dropout", "The overfit network with dropout: 30% of the pixels and 50% of "
                           "the hidden units dropped at random on every step.",
                dict(_STUDY, dropout=0.5, input_dropout=0.3)),
        Variant("l1l2", "The overfit network with L1 and L2 weight penalties.",
                dict(_STUDY, l1=1e-5, l2=1e-4)),
        Variant("combined", "Dropout and L1/L2 together.",
                dict(_STUDY, dropout=0.5, input_dropout=0.3, l1=1e-5, l2=1e-4)),
        Variant("final", "The combined configuration retrained on the whole training split "
                         "(train + validation), then scored on test.",
                dict(_STUDY, dropout=0.5, input_dropout=0.3, l1=1e-5, l2=1e-4, full_train=True)),
        Variant("best", "Beyond the study: a batch-normalized CNN with handwriting augmentation "
                        "and a one-cycle learning-rate schedule.",
                dict(family="bn_cnn", hidden_units=(), dropout=0.2, epochs=22, batch_size=64,
                     learning_rate=3e-3, optimizer="adamw", schedule="onecycle",
                     label_smoothing=0.1, augment=True, mixed_precision="auto", full_train=True)),
    )
}
STUDY_ORDER = ("underfit", "overfit", "dropout", "l1l2", "combined", "final")
PARAMETERS["variant"] = dataclasses.replace(PARAMETERS["variant"], choices=tuple(VARIANTS))
LABELS = {name: parameter.label for name, parameter in PARAMETERS.items()}
PRECISION_WORDS = {"auto": "auto", True: "bfloat16", False: "float32"}


def off_word(name) -> str:
    """What a parameter's ``off`` value means: every training image, or the feature off."""
    return "all" if name == "train_size" else "off"


def setting_text(name, value) -> str:
    """A setting's value as a learner reads it, on the form and in a report: on/off for a
    switch, "all" or "off" for a zero that means so (not "Training images 0"), the precision
    by its name, layers as "512, 512", thousands separated."""
    if name == "mixed_precision" and value in PRECISION_WORDS:
        return PRECISION_WORDS[value]
    if isinstance(value, bool):
        return "on" if value else "off"
    parameter = PARAMETERS.get(name)
    if parameter is not None and parameter.off is not None and value == parameter.off:
        return off_word(name)
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or "none"
    if isinstance(value, float):
        return f"{value:g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def too_short(config: TrainConfig) -> str | None:
    """A warning when ``config.epochs`` are too few for the overfitting the study is about
    to show (measured on kmnist-mini with benchmarks/study_spread.py); None otherwise."""
    needed = VARIANTS["overfit"].shows_after
    if config.variant in ("underfit", "final", "best") or config.epochs >= needed or config.patience:
        return None
    return (f"{config.epochs} epochs are too few for this lesson: the unregularized network's validation loss "
            f"turns up only after ~{needed} epochs on these images, so at {config.epochs} overfit and its "
            f"regularized versions all look like a good fit. Use {needed} or more to see what regularization prevents.")


def preset(variant: str) -> dict:
    """The preset's values for every field (what a Reset button returns to)."""
    check_choice("variant", variant, tuple(VARIANTS))
    return TrainConfig(variant=variant, **VARIANTS[variant].overrides).to_dict()


def make_config(variant: str = "combined", **overrides) -> TrainConfig:
    """The preset for ``variant`` with ``overrides`` (None = keep the preset's) applied,
    validated as a whole."""
    check_choice("variant", variant, tuple(VARIANTS))
    known = {f.name for f in dataclasses.fields(TrainConfig)} - {"variant"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ParameterError([(unknown[0], f"is not a parameter; allowed: {', '.join(sorted(known))}")])
    values = dict(VARIANTS[variant].overrides)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return validate(TrainConfig(variant=variant, **values))


def images_after_split(config: TrainConfig, available: int) -> int:
    """The training images left for fitting once the validation split is held out (all of
    them when ``full_train``): the most ``train_size`` may ask for."""
    return available if config.full_train else available - round(available * config.val_fraction)


def check_against_data(configs, train_images: int) -> None:
    """Settings only the data can rule out, before anything is queued (Train page, sweeps,
    CLI): a ``train_size`` larger than the training images left after the validation split."""
    problems = []
    for config in configs:
        available = images_after_split(config, train_images)
        if config.train_size > available:
            problem = ("train_size", f"must be at most {available} for this data (the training images left after "
                                     f"the validation split), got {config.train_size}")
            if problem not in problems:
                problems.append(problem)
    if problems:
        raise ParameterError(problems)


def validate(config: TrainConfig) -> TrainConfig:
    """The config with every field checked against ``PARAMETERS`` (and the rules that tie
    fields together); raises one ParameterError listing every problem."""
    problems, values = [], {}
    for name, parameter in PARAMETERS.items():
        try:
            values[name] = parameter.check(name, getattr(config, name))
        except ParameterError as error:
            problems += error.problems
    if "family" in values and "hidden_units" in values and values["family"] == "dense" and not values["hidden_units"]:
        problems.append(("hidden_units", "must hold at least one layer size for family 'dense' "
                                         "(the CNN families may have none)"))
    if values.get("patience") and values.get("full_train"):
        problems.append(("patience", "needs a validation split: turn off full_train or set patience to 0"))
    if problems:
        raise ParameterError(problems)
    return dataclasses.replace(config, **values)


def config_from_dict(values: dict) -> TrainConfig:
    """Rebuild a stored configuration (JSON turns tuples into lists; configs stored before
    a field existed get its default)."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in values.items() if k in known}
    values["hidden_units"] = tuple(values.get("hidden_units", ()))
    return validate(TrainConfig(**values))


NAMING_SKIPS = ("variant", "mixed_precision")  # precision changes speed, not what is learnt


def differences(config: TrainConfig) -> list:
    """[(field, preset value, value)] where ``config`` departs from its variant's preset."""
    base = preset(config.variant)
    return [(name, base[name], value) for name, value in config.to_dict().items()
            if name not in NAMING_SKIPS and value != base[name]]


def describe(config: TrainConfig) -> str:
    """A run name that cannot disagree with its settings: the variant, then what differs
    from its preset ("overfit · dropout 0.3 · epochs 8")."""
    parts = [config.variant] + [f"{name.replace('_', ' ')} {_short(value)}" for name, _, value in differences(config)]
    return " · ".join(parts)


def _short(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return "-".join(str(v) for v in value) or "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
