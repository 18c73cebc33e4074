"""Streamlit caches and session helpers shared by the pages.

Caches hold what is slow to make and safe to share between sessions (the dataset, sample
tiles, loaded models); ``st.session_state`` holds only what a user is doing in the UI
(form values, the run being watched, the canvas generation). Run state itself always
comes from the store, so every tab and every page sees the same truth.
"""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

from kmnist_core.checks import ParameterError
from kmnist_core.data import DataFileError, DataUnavailableError, examples_per_class, load_kmnist
from kmnist_core.hardware import worker_count
from kmnist_core.status import ACTIVE, WITH_MODEL, Status
from kmnist_core.store import RunStore, StoreError, default_home

from . import jobs, sessions
from .charts import tile

FOCUS_KEY = "focus_run"  # the run an empty-state panel is watching
VIEW_KEY = "train_view"  # the run picked in the Train page's run selector
FOLLOW_KEY = "train_follow"  # the picker follows the run in training (set by watch, cleared by a pick)
OWNER_KEY = "session_owner"  # this browser session's token, stored with every run it queues
# First-layer pictures: 8 units, 4 a row, so each tile shows large enough to tell the L1/L2
# runs' faded borders from the overfit run's noise without zooming (16 in rows of 8 did not).
FIRST_LAYER_UNITS, FIRST_LAYER_COLUMNS = 8, 4
SHARED_READ_SECONDS = 1.0  # longest that one read of the run list serves every session (= the poll period)


@st.cache_resource(show_spinner=False)
def _store(home: str) -> RunStore:
    return RunStore(home)


STORE_FIX = (
    "To start afresh, move the folder `{home}` aside (or set KMNIST_HOME to a new folder) and "
    "reload this page. Move the whole folder, not only runs.sqlite: its run folders belong to "
    "that database, and a new database would reuse their run numbers."
)


def store_if_usable() -> RunStore | None:
    """The run store, or None when it cannot be used, without a word: for a page that
    works without it (Home shows the data and the classes whatever the store's state)."""
    try:
        return _checked_store(str(default_home()))
    except StoreError:
        return None


def store() -> RunStore:
    """The run store. When it cannot be used (a damaged runs.sqlite, an unusable
    KMNIST_HOME) the page says why and what to do, then stops: no traceback, and nothing
    broken stays cached, so the next page load after the fix works."""
    home = str(default_home())
    try:
        worker_count()  # a bad KMNIST_WORKERS: said here once, not as a traceback on every poll
    except ParameterError as error:
        st.error(f"The app cannot start trainings: {error}. Fix it and restart the app.")
        st.stop()
    try:
        return _checked_store(home)
    except StoreError as error:
        store_problem(error, home)
        st.stop()


def _checked_store(home: str) -> RunStore:
    """The cached store if its database still reads, else one opened afresh (the file may
    have been moved aside or replaced since); StoreError when that fails too."""
    try:
        run_store = _store(home)
        run_store.check()
        return run_store
    except StoreError:
        _store.clear()
        run_store = _store(home)
        run_store.check()
        return run_store


def store_problem(error: StoreError, home) -> None:
    st.error(f"The run store cannot be used: {error}")
    st.info(STORE_FIX.format(home=home))


@st.cache_resource(show_spinner="Loading KMNIST…")
def _dataset(data_dir):
    """cache_resource, not cache_data: the arrays are shared read-only instead of being
    copied into every rerun (the full set is ~55 MB)."""
    dataset = load_kmnist(data_dir)
    for array in (dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test):
        array.setflags(write=False)
    return dataset


def dataset():
    """(Dataset, None), or (None, message) when the data cannot be loaded."""
    try:
        return _dataset(jobs.data_dir()), None
    except (DataUnavailableError, DataFileError) as error:
        return None, str(error)


@st.cache_data(show_spinner=False)
def class_examples(data_dir, per_class=5, seed=0) -> dict:
    """{class index: (per_class, 28, 28)} real training images of each class."""
    data = _dataset(data_dir)
    return examples_per_class(data.x_train, data.y_train, per_class, seed)


@dataclass
class LoadedModel:
    model: object  # keras.Model, loaded with safe_mode
    predict: Callable  # compiled forward pass: (N, 28, 28) -> (N, 10)


@st.cache_resource(show_spinner="Loading the model…", max_entries=8)
def _loaded(path: str, signature: tuple) -> LoadedModel:
    """Streamlit caches only a value that was returned: a ModelLoadError is raised again
    on the next call, so a damaged file is retried, not remembered."""
    from kmnist_core.inference import load_model, make_predictor  # TensorFlow: only pages that predict

    model = load_model(path)
    return LoadedModel(model, make_predictor(model))


def _file_signature(path) -> tuple:
    """(inode, size, mtime): a retrained, replaced, truncated or repaired model file gets a
    new cache entry; None when it is missing (the loader says so)."""
    try:
        info = path.stat()
        return info.st_ino, info.st_size, info.st_mtime_ns
    except OSError:
        return None


def loaded(run_store: RunStore, run_id: int) -> LoadedModel:
    """A run's model and its fast predict function. Raises ModelLoadError."""
    path = run_store.model_path(run_id)
    return _loaded(str(path), _file_signature(path))


def warm_up_in_background(run_store: RunStore, run_id: int) -> None:
    """Import TensorFlow, load ``run_id``'s model and trace its forward pass and
    explanations in a thread, as soon as the Draw page opens: the first stroke is then
    read without waiting for any of it. Failures are left for the foreground to report."""
    path = run_store.model_path(run_id)
    key = (str(path), _file_signature(path))
    if key in _warming:
        return
    _warming.add(key)

    def warm():
        try:
            from kmnist_core.explain import warm_up

            warm_up(_loaded(*key).model)
        except Exception:  # the page shows the reason when it asks for the model
            _warming.discard(key)

    threading.Thread(target=warm, daemon=True, name="warm-up").start()


_warming = set()  # (model path, file signature) already warmed or warming in this process


@st.cache_resource(show_spinner="Indexing the training images for look-alikes…", max_entries=8)
def _neighbours(path: str, signature: tuple, data_dir):
    from kmnist_core.explain import NeighbourIndex

    data = _dataset(data_dir)
    return NeighbourIndex.build(_loaded(path, signature).model, data.x_train, data.y_train)


def neighbours(run_store: RunStore, run_id: int):
    """The run's index of training images in its penultimate layer (built once per model)."""
    path = run_store.model_path(run_id)
    return _neighbours(str(path), _file_signature(path), jobs.data_dir())


@st.cache_resource(show_spinner="Measuring how far real characters sit from the training images…", max_entries=8)
def _familiar_limits(path: str, signature: tuple, data_dir):
    from kmnist_core import familiar

    data = _dataset(data_dir)
    return familiar.calibrate(_neighbours(path, signature, data_dir), data.x_train, data.x_test)


def strangeness(run_store: RunStore, run_id: int, sample) -> float:
    """How far ``sample`` is from every training image, over how far real held-out
    characters are (``kmnist_core.familiar``): above 1, unlike every class the model knows."""
    from kmnist_core import familiar

    path, data_dir = run_store.model_path(run_id), jobs.data_dir()
    signature = _file_signature(path)
    index = _neighbours(str(path), signature, data_dir)
    limits = _familiar_limits(str(path), signature, data_dir)
    return float(familiar.strangeness(index, _dataset(data_dir).x_train, sample[None], limits)[0])


@st.cache_data(show_spinner="Mapping the test images…", max_entries=24)
def _embedding(path: str, signature: tuple, data_dir, method: str):
    from kmnist_core import explain

    data = _dataset(data_dir)
    features = explain.embed(_loaded(path, signature).model, data.x_test)
    return explain.projection(features, method=method), float(explain.silhouette(features, data.y_test))


def embedding(run_store: RunStore, run_id: int, method: str):
    """(2-D points of the test images, silhouette score in the full penultimate space)."""
    path = run_store.model_path(run_id)
    return _embedding(str(path), _file_signature(path), jobs.data_dir(), method)


@st.cache_data(show_spinner=False, max_entries=32)
def _first_layer_picture(path: str, signature: tuple):
    from kmnist_core.inference import load_model
    from kmnist_core.weights import first_layer_images, weight_grid

    images, kind = first_layer_images(load_model(path), count=FIRST_LAYER_UNITS)
    return weight_grid(images, columns=FIRST_LAYER_COLUMNS, upscale=3 if kind == "dense" else 10), kind, len(images)


def first_layer_picture(run_store: RunStore, run_id: int):
    """(uint8 picture of the first layer's strongest units or filters (up to
    FIRST_LAYER_UNITS), "dense" | "conv", how many it shows). Raises ModelLoadError."""
    path = run_store.model_path(run_id)
    return _first_layer_picture(str(path), _file_signature(path))


def owner() -> str:
    """This browser session's owner token (random, made on first use, kept while the tab
    lives; a reload is a new session)."""
    if OWNER_KEY not in st.session_state:
        st.session_state[OWNER_KEY] = sessions.new_owner()
    return st.session_state[OWNER_KEY]


def queue_as() -> dict:
    """Who queues and on what data: the keyword arguments of every submission from the app.
    The source is that of the dataset this server loaded, so the runner refuses to train a
    run on other data (files replaced since, or a worker that finds something else)."""
    data, _ = dataset()
    return {"owner": owner(), "data_source": None if data is None else data.source}


_shared_reads = {}  # (what, store home, ...) -> (time.monotonic() of the read, store signature, result)
_shared_lock = threading.Lock()


def _signature(run_store: RunStore) -> tuple:
    """What changes when anyone writes the store or a trainer starts or stops: the size, time
    and inode of the database and its write-ahead log, and which training slots are held
    (the listing reconciles on them). Two stats and a lock probe per slot, no SQLite connection."""
    files = []
    for path in (run_store.db_path, run_store.db_path.with_name(f"{run_store.db_path.name}-wal")):
        try:
            info = path.stat()
            files.append((info.st_ino, info.st_size, info.st_mtime_ns))
        except OSError:
            files.append(None)
    try:
        trainer = () if run_store.read_only else tuple(run_store.held_slots())
    except StoreError:  # an unusable lock file: the listing says so
        trainer = None
    return tuple(files), trainer


def _read_shared(run_store: RunStore, key, read):
    """``read()``, or its result for every session of this server while the store is
    unchanged and at most SHARED_READ_SECONDS old: 20 sessions polling each second cost
    about one store read per change, not 20 per second. The result is shared between
    sessions: read it, never change it."""
    with _shared_lock:  # a session that finds the entry stale reads; the others wait for it
        now, signature = time.monotonic(), _signature(run_store)
        cached = _shared_reads.get(key)
        if cached and cached[1] == signature and now - cached[0] < SHARED_READ_SECONDS:
            return cached[2]
        for stale in [k for k, (at, _, _) in _shared_reads.items() if now - at >= SHARED_READ_SECONDS]:
            del _shared_reads[stale]
        result = read()
        _shared_reads[key] = (now, signature, result)
        return result


def runs(run_store: RunStore) -> list:
    """Every run, newest first, at most SHARED_READ_SECONDS old. Each fresh read also
    reconciles orphans and, while anything is queued or running, revives the worker if it
    is missing (once per server, not once per session and poll)."""
    def read():
        found = run_store.list_runs()
        if any(run.status in ACTIVE for run in found):
            jobs.wake_worker(run_store)
        return found

    return _read_shared(run_store, ("runs", str(run_store.home)), read)


def history(run_store: RunStore, run_id: int) -> list:
    """A run's epochs, at most SHARED_READ_SECONDS old (every session watching a training
    run redraws its curves each second)."""
    return _read_shared(run_store, ("history", str(run_store.home), run_id), lambda: run_store.get(run_id).history)


def changed(run_store: RunStore) -> None:
    """Forget the shared reads of ``run_store`` after this server changed it, so the session
    that queued, stopped, renamed or deleted a run sees that at once, even when the file
    times cannot tell the write apart (two writes within the file system's clock tick)."""
    with _shared_lock:
        for key in [k for k in _shared_reads if k[1] == str(run_store.home)]:
            del _shared_reads[key]


def model_runs(run_store: RunStore) -> list:
    """Finished runs with a saved model, newest first: the ones Draw can ask."""
    return [run for run in run_store.list_runs(statuses=WITH_MODEL)
            if run_store.model_path(run.id).is_file()]


_orphan_seen = {}  # (store home, run id) -> time.monotonic() this process first saw it trainerless


def recovering(run_store: RunStore, run) -> bool:
    """True when a 'running' run has had no trainer holding the training lock for longer
    than ``jobs.SPAWN_GRACE``: its worker died, and ``wake_worker`` is starting one that
    will mark it interrupted. A shorter gap is only a worker starting up. The first
    sighting is remembered per server process, so every session and page agrees."""
    key = (str(run_store.home), run.id)
    if run.status != Status.RUNNING or run_store.read_only or run_store.trainer_active():
        _orphan_seen.pop(key, None)
        return False
    first_seen = _orphan_seen.setdefault(key, time.monotonic())
    return time.monotonic() - first_seen >= jobs.SPAWN_GRACE


def sample_strip(per_class=3, columns=None) -> list:
    """One tile of real images per class (in a row, or ``columns`` wide), for the
    reference strip and the class grid."""
    examples = class_examples(jobs.data_dir(), per_class)
    return [tile(examples[index], columns=columns or per_class) for index in sorted(examples)]



def keep(key: str, clean: Callable, initial: Callable) -> None:
    """Ready the widget of ``key`` to show the choice it last held, even after its page was
    left: Streamlit drops a widget's key when its page is not shown, so the choice is also
    copied under a key of its own, and put back before the widget is drawn, through
    ``clean`` (which drops what is gone: a deleted run); ``initial()`` gives the first one.
    The widget then takes no ``default`` or ``index``: one that followed the last choice
    gave the widget a new identity at every change, and the learner's next edit was lost
    (every second change of Compare's runs did not stick)."""
    copy = f"{key}_kept"
    if key in st.session_state:
        value = st.session_state[key]
    else:
        value = st.session_state[copy] if copy in st.session_state else initial()
    st.session_state[key] = st.session_state[copy] = clean(value)


def watch(run_id: int) -> None:
    """Show ``run_id`` in the Train page's picker and in empty-state panels, and follow the
    training from there (``FOLLOW_KEY``) until the learner picks a run by hand."""
    st.session_state[FOCUS_KEY] = run_id
    st.session_state[VIEW_KEY] = run_id
    st.session_state[FOLLOW_KEY] = True


def stop_following() -> None:
    """The learner picked a run by hand: show that one, whatever trains."""
    st.session_state[FOLLOW_KEY] = False


# -- links straight to a page -------------------------------------------------------------------
APP_KEY = "entered_through_app"
DEEP_LINK_KEY = "deep_link"


def arrived_through_app() -> None:
    """Called by app.py on every run, before the page it routes to."""
    st.session_state[APP_KEY] = True


def enter_through_app(page_path: str) -> None:
    """Each page's first line. A link straight to a page (``/train?…``), opened before this
    server has run app.py once, makes Streamlit run the page file alone, with the ``pages/``
    folder as a bare menu and no page config. Send the visit through app.py instead,
    keeping the page and its query parameters for ``pending_deep_link``."""
    if not st.session_state.get(APP_KEY):
        st.session_state[DEEP_LINK_KEY] = (page_path, st.query_params.to_dict())
        st.switch_page("app.py")


def pending_deep_link():
    """(page path, query parameters) of a link that was sent through app.py, once."""
    return st.session_state.pop(DEEP_LINK_KEY, None)


LINK_QUERY_KEY = "link_query"


def keep_link_query(query: dict) -> None:
    st.session_state[LINK_QUERY_KEY] = query


def link_query() -> dict:
    """The page's query parameters: the address's, or those of a link sent through app.py."""
    return st.query_params.to_dict() or st.session_state.pop(LINK_QUERY_KEY, {})
