import pytest

from kmnist_core.checks import ParameterError
from kmnist_core.config import STUDY_ORDER, VARIANTS, config_from_dict, make_config, preset


def test_every_preset_is_valid_and_round_trips():
    for name in VARIANTS:
        config = make_config(name)
        assert config.variant == name
        assert config_from_dict(config.to_dict()) == config


def test_presets_differ_in_the_way_their_names_say():
    overfit, dropout, l1l2, combined, final = (make_config(v) for v in STUDY_ORDER[1:])
    assert (overfit.dropout, overfit.l1, overfit.l2) == (0, 0, 0)
    assert dropout.dropout > 0 and dropout.l2 == 0
    assert l1l2.dropout == 0 and l1l2.l1 > 0 and l1l2.l2 > 0
    assert combined.dropout > 0 and combined.l2 > 0 and not combined.full_train
    assert final.full_train and (final.dropout, final.l2) == (combined.dropout, combined.l2)
    underfit = make_config("underfit")
    assert sum(underfit.hidden_units) < sum(overfit.hidden_units) // 10


def test_overrides_apply_and_none_means_preset():
    config = make_config("overfit", dropout=0.25, l2=1e-4, epochs=3, family="cnn", batch_size=None)
    assert (config.dropout, config.l2, config.epochs, config.family) == (0.25, 1e-4, 3, "cnn")
    assert config.batch_size == preset("overfit")["batch_size"]


@pytest.mark.parametrize("overrides, message", [
    (dict(dropout=1.5), r"dropout must be in \[0, 1\), got 1.5"),
    (dict(dropout=1.0), r"dropout must be in \[0, 1\)"),
    (dict(l2=-1), r"l2 must be in \[0, 0.1\], got -1"),
    (dict(l1=5.0), r"l1 must be in \[0, 0.1\]"),
    (dict(epochs=0), r"epochs must be in \[1, 1000\], got 0"),
    (dict(epochs=2.5), r"epochs must be an integer"),
    (dict(batch_size=0), r"batch_size must be in"),
    (dict(learning_rate=0), r"learning_rate must be in \(0, 10\]"),
    (dict(learning_rate=float("inf")), r"learning_rate must be a finite number"),
    (dict(family="rnn"), r"family must be one of 'dense', 'cnn', 'bn_cnn'; got 'rnn'"),
    (dict(optimizer="lbfgs"), r"optimizer must be one of"),
    (dict(kfold=1), r"kfold must be 0 .* or in \[2, 20\]"),
    (dict(hidden_units=()), r"hidden_units must be 1 to 8 layer sizes"),
    (dict(hidden_units=(0,)), r"hidden_units must be in \[1, 4096\]"),
    (dict(augment="yes"), r"augment must be True or False"),
    (dict(momentum=0.9), r"unknown parameter 'momentum'"),
])
def test_bad_parameters_name_the_parameter_and_range(overrides, message):
    with pytest.raises(ParameterError, match=message):
        make_config("combined", **overrides)


def test_unknown_variant_lists_the_allowed_ones():
    with pytest.raises(ParameterError, match=r"variant must be one of 'underfit', .*'final'.*got 'nope'"):
        make_config("nope")
    with pytest.raises(ParameterError, match="variant"):
        preset("nope")


def test_preset_returns_every_field_for_a_reset_button():
    values = preset("dropout")
    assert values["dropout"] == VARIANTS["dropout"].overrides["dropout"]
    assert {"epochs", "batch_size", "learning_rate", "family", "l1", "l2", "seed"} <= set(values)
