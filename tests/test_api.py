"""The Python API for notebooks: the CLI's validation and store, figures from the app."""

import pytest

from kmnist_core import api
from kmnist_core.checks import ParameterError
from kmnist_core.cli import main
from kmnist_core.store import RunStore

from conftest import write_npz_folder

TINY = dict(hidden_units="16", epochs=2, learning_rate=0.003)


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory):
    """Two tiny runs trained once for the module, in a store of their own ($KMNIST_HOME)."""
    data = write_npz_folder(tmp_path_factory.mktemp("data"))
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KMNIST_HOME", str(home))
        plain = api.train("overfit", data_dir=data, progress=False, **TINY)
        dropped = api.train("dropout", name="with dropout", data_dir=data, progress=False, **TINY)
        yield home, (plain, dropped)


@pytest.fixture
def two_runs(trained_home):
    return trained_home[1]


def test_runs_trained_here_are_the_stores_and_the_clis(trained_home, capsys):
    home, (plain, dropped) = trained_home
    assert plain.status == "completed" and plain.config["hidden_units"] == [16] and len(plain.history) == 2
    assert [run.id for run in RunStore(home).list_runs()] == [dropped.id, plain.id]
    assert main(["evaluate", "with dropout", "--json"]) == 0  # the CLI finds it by name, in the same store
    assert f'"run": {dropped.id}' in capsys.readouterr().out
    assert api.get_run("with dropout").history == dropped.history


def test_bad_settings_raise_the_clis_message_and_store_nothing(home, synthetic_dir, capsys):
    with pytest.raises(ParameterError) as raised:
        api.train("overfit", data_dir=synthetic_dir, dropout=1.5, epochs=0)
    assert main(["--data-dir", str(synthetic_dir), "train", "--variant", "overfit", "--dropout", "1.5",
                 "--epochs", "0"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {raised.value}"
    with pytest.raises(ParameterError, match=r"train_size must be at most 180 for this data"):
        api.train("overfit", data_dir=synthetic_dir, train_size=190)  # 200 images, 20 held out
    assert RunStore(home).list_runs() == []


def test_compare_pairs_the_two_runs_test_predictions(two_runs):
    plain, dropped = two_runs
    result = api.compare(plain, dropped.id)
    assert result["n"] == 50 and (result["a"], result["b"]) == (plain.id, dropped.id)
    assert result["accuracy_a"] == pytest.approx(plain.metrics["test"]["accuracy"])
    assert result["sentence"].startswith(f"#{plain.id} {plain.name}")


def test_the_figures_are_the_apps_with_the_runs_labels(two_runs):
    from explorer import notebook as figures

    plain, dropped = two_runs
    names = {trace.name for trace in figures.curves(plain, "with dropout").data}
    assert f"#{dropped.id} with dropout validation" in names and f"#{plain.id} {plain.name} train" in names
    assert figures.confusion(dropped).data[0].z.shape == (10, 10)
    assert len(figures.weights(plain, dropped).data) == 4  # ‖w‖ and near-zero share per run
    with pytest.raises(ValueError, match="at least one run"):
        figures.curves()
