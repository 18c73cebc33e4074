"""Many users on one server: every run the app queues carries its session's token and the
data the app loaded; with KMNIST_SHARED=1 a session may change only its own runs and queue
only its share; and sessions polling together share one store read."""

import os

import pytest

from explorer import sessions, state
from kmnist_core.config import make_config
from kmnist_core.data import load_kmnist
from kmnist_core.runner import DataMismatchError, run_dataset

from app_support import app, app_home, app_runs, no_worker, texts, trained_home  # noqa: F401
from browser import data_dir

OTHER = "another-sessions-token"


@pytest.fixture
def shared(monkeypatch):
    monkeypatch.setenv(sessions.SHARED_ENV, "1")


def buttons(page) -> list:
    return [button.key for button in page.button]


def test_each_session_stamps_its_runs_with_its_own_token_and_the_data_it_loaded(app_home, monkeypatch):
    no_worker(monkeypatch)
    first, second = app("pages/train.py"), app("pages/train.py")
    for page in (first, second):
        page.button(key="start_training").click().run()
    runs = sorted(app_home.list_runs(), key=lambda run: run.id)
    tokens = [page.session_state[state.OWNER_KEY] for page in (first, second)]
    assert [run.owner for run in runs] == tokens and tokens[0] != tokens[1]
    assert all(len(token) >= 16 for token in tokens)
    assert {run.data_source for run in runs} == {load_kmnist(data_dir()).source}


def test_a_run_queued_from_the_app_is_not_trained_on_other_data(app_home, monkeypatch, tmp_path):
    """The folder the server was given now leads to other files: the run says so and is not
    trained on them (it used to train on whatever it found)."""
    no_worker(monkeypatch)
    link = tmp_path / "kmnist"
    os.symlink(data_dir(), link)
    monkeypatch.setenv("KMNIST_DATA_DIR", str(link))
    app("pages/train.py").button(key="start_training").click().run()
    run = app_home.list_runs()[0]
    other = tmp_path / "other"  # another folder of KMNIST files (here the same ones, linked)
    other.mkdir()
    for name in os.listdir(data_dir()):
        os.symlink(os.path.join(os.path.realpath(data_dir()), name), other / name)
    link.unlink()
    os.symlink(other, link)
    with pytest.raises(DataMismatchError, match="queue it again"):
        run_dataset(run)


def test_a_shared_server_caps_what_one_session_has_waiting(app_home, monkeypatch, shared):
    no_worker(monkeypatch)
    page = app("pages/train.py")
    page.button(key="train_all").click().run()  # the study: six runs, one session's whole share
    assert len(app_home.list_runs()) == sessions.SESSION_LIMIT == 6
    page.button(key="start_training").click().run()
    assert f"each session may have at most {sessions.SESSION_LIMIT} at once" in texts(page.info)
    assert "already has 6 waiting or training" in texts(page.info)
    assert len(app_home.list_runs()) == 6  # nothing queued
    app("pages/train.py").button(key="start_training").click().run()  # another session has its own share
    assert len(app_home.list_runs()) == 7

    sweep = app("pages/sweep.py")  # the default sweep is 8 runs: refused whole, with the reason
    sweep.button(key="start_sweep").click().run()
    assert "this sweep would add 8 runs" in texts(sweep.warning)
    assert len(app_home.list_runs()) == 7 and not app_home.list_sweeps()


def test_without_shared_mode_nothing_is_capped(app_home, monkeypatch):
    no_worker(monkeypatch)
    page = app("pages/train.py")
    page.button(key="train_all").click().run()
    page.button(key="start_training").click().run()
    assert len(app_home.list_runs()) == 7


def test_a_shared_server_lets_a_session_change_only_its_own_runs(app_runs, monkeypatch, shared):
    no_worker(monkeypatch)
    theirs = app_runs.create_run(make_config("underfit"), owner=OTHER)
    page = app("pages/train.py")
    page.button(key="start_training").click().run()
    mine = app_runs.list_runs()[0].id
    assert f"cancel_{mine}" in buttons(page) and f"cancel_{theirs}" not in buttons(page)
    assert "another session's" in texts(page.caption)
    assert "cancel_queue" not in buttons(page)  # only one queued run is this session's

    finished = app_runs.list_runs(statuses=("completed",))[0]  # the CLI's: no session owns it
    page.selectbox(key="train_view").set_value(finished.id).run()
    assert f"delete_{finished.id}" not in buttons(page) and f"rename_button_{finished.id}" not in buttons(page)
    assert "No rename or delete: another session queued it" in texts(page.caption)

    token = page.session_state[state.OWNER_KEY]  # and refused where it is done, whatever the browser sends
    for action in (lambda run_id: sessions.request_stop(app_runs, run_id, token),
                   lambda run_id: sessions.rename(app_runs, run_id, "mine now", token),
                   lambda run_id: sessions.delete(app_runs, run_id, token)):
        for run_id in (theirs, finished.id):
            with pytest.raises(sessions.NotYoursError, match="only that session may"):
                action(run_id)
    assert app_runs.get(theirs).status == "queued" and app_runs.get(finished.id).name == finished.name
    page.button(key=f"cancel_{mine}").click().run()
    assert app_runs.get(mine).status == "cancelled"


def test_without_shared_mode_every_session_may_change_every_run(app_runs, monkeypatch):
    no_worker(monkeypatch)
    theirs = app_runs.create_run(make_config("underfit"), owner=OTHER)
    finished = app_runs.list_runs(statuses=("completed",))[0]
    page = app("pages/train.py")
    assert f"cancel_{theirs}" in buttons(page)
    page.selectbox(key="train_view").set_value(finished.id).run()
    assert f"delete_{finished.id}" in buttons(page)


def test_sessions_polling_together_share_one_read_and_see_their_own_changes_at_once(app_home, monkeypatch):
    no_worker(monkeypatch)
    reads = []
    list_runs = app_home.list_runs
    monkeypatch.setattr(app_home, "list_runs", lambda *a, **k: reads.append(1) or list_runs(*a, **k))
    run_id = app_home.create_run(make_config("underfit"))
    for _ in range(20):  # twenty sessions' polls while nothing changes
        assert state.runs(app_home)[0].status == "queued"
    assert len(reads) == 1
    app_home.request_stop(run_id)  # written elsewhere (the CLI): seen at the next poll
    assert state.runs(app_home)[0].status == "cancelled" and len(reads) == 2

    monkeypatch.setattr(state, "_signature", lambda run_store: "a write the file times cannot tell apart")
    state.runs(app_home)
    app_home.rename(run_id, "renamed")
    state.changed(app_home)  # what every button that changes the store calls
    assert state.runs(app_home)[0].name == "renamed"
