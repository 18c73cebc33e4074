import dataclasses

import pytest

from kmnist_core.checks import ParameterError
from kmnist_core.config import (
    LABELS,
    PARAMETERS,
    STUDY_ORDER,
    VARIANTS,
    TrainConfig,
    config_from_dict,
    describe,
    differences,
    make_config,
    parse_units,
    preset,
)
from kmnist_core.hardware import choose_precision, cpu_flags, training_threads


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
    (dict(learning_rate=0), r"learning_rate must be in \(0, 1\]"),
    (dict(learning_rate=float("inf")), r"learning_rate must be a finite number"),
    (dict(family="rnn"), r"family must be one of 'dense', 'cnn', 'bn_cnn'; got 'rnn'"),
    (dict(optimizer="lbfgs"), r"optimizer must be one of"),
    (dict(kfold=1), r"kfold must be 0 \(off\) or \[2, 20\], got 1"),
    (dict(hidden_units=()), r"hidden_units must hold at least one layer size for family 'dense'"),
    (dict(hidden_units=(8,) * 9), r"hidden_units must be a list of at most 8 layer sizes"),
    (dict(train_size=50), r"train_size must be 0 \(off\) or \[100, 10000000\], got 50$"),  # not 1e+07
    (dict(seed=-1), r"seed must be in \[0, 4294967295\], got -1$"),  # not 4.29497e\+09
    (dict(l2=0.5), r"l2 must be in \[0, 0.1\], got 0.5$"),
    (dict(patience=-1), r"patience must be 0 \(off\) or \[1, 1000\], got -1"),
    (dict(mixed_precision="yes"), r"mixed_precision must be one of 'auto', True, False"),
    (dict(mixed_precision=1), r"mixed_precision must be one of 'auto', True, False; got 1"),
    (dict(hidden_units=(0,)), r"hidden_units must be in \[1, 4096\]"),
    (dict(augment="yes"), r"augment must be True or False"),
    (dict(momentum=0.9), r"momentum is not a parameter"),
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


def test_every_problem_is_reported_at_once_with_names_or_labels():
    with pytest.raises(ParameterError) as caught:
        make_config("overfit", dropout=1.5, l2=-1, epochs=0)
    error = caught.value
    assert [name for name, _ in error.problems] == ["dropout", "l2", "epochs"]
    assert str(error).count(";") == 2 and "\n" not in str(error)
    labelled = error.describe(LABELS)
    assert "Dropout (hidden layers) must be in [0, 1), got 1.5" in labelled and "L2 penalty must be" in labelled


def test_every_field_has_a_constraint_label_and_help():
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(PARAMETERS) == fields
    for name, parameter in PARAMETERS.items():
        assert parameter.label and parameter.help.endswith("."), name


def test_a_run_is_named_from_what_differs_from_its_preset():
    assert describe(make_config("dropout")) == "dropout"
    assert describe(make_config("dropout", l1=0.0, dropout=0.3, epochs=8)) == "dropout · dropout 0.3 · epochs 8"
    assert describe(make_config("overfit", hidden_units=(256,), augment=True)) == "overfit · hidden units 256 · augment on"
    assert differences(make_config("combined", l1=0.0, l2=0.0)) == [("l1", 1e-5, 0.0), ("l2", 1e-4, 0.0)]


def test_hidden_units_parse_from_text_or_say_how():
    assert parse_units(" 512, 256 ") == (512, 256) and parse_units("") == ()
    for bad in ("512, lots", "1.5", "١٢", "-3"):
        with pytest.raises(ParameterError, match="hidden_units must be layer sizes separated by commas"):
            parse_units(bad)


def test_precision_auto_is_only_bfloat16_where_native(monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert make_config("best").mixed_precision == "auto"
    assert choose_precision("auto", flags={"avx2", "avx512f"}, gpu_bf16=False) == "float32"
    assert choose_precision("auto", flags={"avx2", "avx512_bf16"}, gpu_bf16=False) == "bfloat16"
    assert choose_precision("auto", flags={"amx_bf16"}, gpu_bf16=False) == "bfloat16"
    assert choose_precision("auto", flags=set(), gpu_bf16=True) == "bfloat16"
    assert choose_precision(True, flags=set(), gpu_bf16=False) == "bfloat16"
    assert choose_precision(False, flags={"amx_bf16"}, gpu_bf16=False) == "float32"
    assert cpu_flags("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n") == {"fpu", "avx2", "avx512_bf16"}


def test_a_onednn_cap_below_bf16_means_float32(monkeypatch):
    """ONEDNN_MAX_CPU_ISA=AVX2 (how an AVX2-only host is imitated) makes oneDNN emulate
    bfloat16 on a CPU that has it: "auto" must then pick float32."""
    native = {"avx2", "avx512f", "avx512_bf16", "amx_bf16"}
    for isa in ("AVX2", "avx2", "SSE41", "AVX", "AVX2_VNNI", "AVX512_CORE", "AVX512_CORE_VNNI"):
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", isa)
        assert choose_precision("auto", flags=native, gpu_bf16=False) == "float32", isa
        assert choose_precision("auto", flags=native, gpu_bf16=True) == "bfloat16"  # a GPU is no oneDNN CPU
    for isa in ("AVX512_CORE_BF16", "AVX512_CORE_AMX", "ALL", ""):
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", isa)
        assert choose_precision("auto", flags=native, gpu_bf16=False) == "bfloat16", isa
    assert choose_precision(True, flags=native, gpu_bf16=False, max_isa="AVX2") == "bfloat16"  # forced stays forced


def test_threads_follow_the_usable_cores(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7})
    assert training_threads() == 8 and training_threads(workers=2) == 4 and training_threads(workers=16) == 1
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {3})
    assert training_threads() == 1
