"""Streamlit pieces more than one page shows: the live run monitor (queue, progress,
curves, Stop), a finished run's results and settings, and the empty states that offer a
next step.

The monitor is a ``st.fragment`` that redraws every second while anything is queued or
running, so only it redraws, on whichever page the user opens: the training lives in the
worker. Its run list and the shown run's history are the server's shared reads
(``state.runs``, ``state.history``): one store read per second for every session together.
On a shared server (``sessions``) a session's buttons act only on its own runs.
User text (run names, error messages) is shown with ``st.text`` or in widget labels that
Streamlit does not render as Markdown, never inside Markdown.
"""

import string

import streamlit as st

from kmnist_core.config import LABELS, config_from_dict, differences, too_short
from kmnist_core.hardware import worker_count
from kmnist_core.status import ACTIVE, Status
from kmnist_core.store import RunNotFoundError, StoreError, stall_note, stalled

from . import charts, compare, jobs, sessions, state

REFRESH_SECONDS = 1.0
DATA_FIX = (
    "Point the app at the official KMNIST files and restart it, e.g. "
    "`KMNIST_DATA_DIR=/path/to/kmnist streamlit run app.py` with a folder holding "
    "kmnist-{train,test}-{imgs,labels}.npz (from https://github.com/rois-codh/kmnist)."
)
RECOVERING = "recovering — restarting the background worker…"
RECOVERING_DETAIL = ("Its training process stopped; the new worker marks this run interrupted, keeps its "
                     "finished epochs and goes on with the queue.")
STALLED_DETAIL = ("Its training process is alive but has not moved, so the runs queued after it wait. If it "
                  "was paused (Ctrl-Z in a terminal), resume it with `fg`; if it hangs, stop it.")


def literal(text) -> str:
    """User text to place inside Markdown, shown literally: every ASCII punctuation mark
    backslash-escaped, so "**b**", "![x](url)", ":red[x]" or a link stay plain characters."""
    return "".join(f"\\{ch}" if ch in string.punctuation else ch for ch in str(text))


def data_problem(message: str) -> None:
    st.error(f"KMNIST data is not available: {message}")  # our message; paths come from the admin's env
    st.info(DATA_FIX)


def duration(seconds) -> str:
    if seconds is None:
        return "…"
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def offer_quick_training(run_store, why: str) -> None:
    """The empty state: say what is missing and offer the one-click next step."""
    st.info(why)
    left, right = st.columns(2)
    if left.button("Quick-train a small model (about 15 s)", type="primary", key="quick_train"):
        try:
            st.session_state[state.FOCUS_KEY] = jobs.submit_quick(run_store, **state.queue_as())
            state.changed(run_store)
        except sessions.SessionLimitError as error:
            left.warning(str(error))
    right.page_link("pages/train.py", label="Or choose a variant on the Train page", icon=":material/tune:")


def polled(run_store, body) -> None:
    """Draw ``body(runs)`` (all runs, newest first) in a fragment that redraws every second
    while any run is queued or running (``state.runs`` revives the worker if it is missing)."""
    active_at_start = any(run.status in ACTIVE for run in state.runs(run_store))

    @st.fragment(run_every=REFRESH_SECONDS if active_at_start else None)
    def fragment():
        try:
            runs = state.runs(run_store)  # a damaged database says so here, mid-poll; revives the worker
            body(runs)
        except StoreError as error:  # also an unusable training.lock, met by the worker checks
            state.store_problem(error, run_store.home)
            return
        if active_at_start and not any(run.status in ACTIVE for run in runs):
            st.rerun()  # all done: redraw the whole page once (new results, no more polling)

    fragment()


def live_monitor(run_store, run_id=None) -> None:
    """The queue and one run's progress (an empty state's quick training), kept up to date."""
    def body(runs):
        interruption_notice(runs, shown=run_id)
        queue(run_store, runs, shown=run_id)
        if run_id is not None:
            run = next((r for r in runs if r.id == run_id), None)
            if run is None:
                st.info(f"Run #{run_id} no longer exists.")
            elif run.status == Status.RUNNING:
                running(run_store, run, compact=True)
            elif run.status == Status.QUEUED:
                queued(run_store, run, runs)
            else:
                st.success(f"Run #{run.id} finished ({run.status}).")

    polled(run_store, body)


def run_browser(run_store) -> None:
    """The Train page's right side: the queue, a run picker and the picked run, all inside
    the fragment so the picker's statuses and the run view come from the same read."""
    def body(runs):
        if not runs:
            st.info("No runs yet. Adjust the settings and press **Start training**, or **Train all "
                    "variants** to queue the whole study. Training goes on in the background while "
                    "you switch pages or close the tab.")
            return
        by_id = {run.id: run for run in runs}
        shown = st.session_state.get(state.VIEW_KEY)
        # Assigned on every poll, not only when missing: the browser keeps showing the label it
        # was last sent ("#1 … — running" after the run finished, the old name after a rename)
        # unless the value is set again along with the new labels.
        st.session_state[state.VIEW_KEY] = shown = shown if shown in by_id else runs[0].id
        interruption_notice(runs, shown=shown)
        queue(run_store, runs, shown=shown)
        st.selectbox("Show run", list(by_id), key=state.VIEW_KEY,
                     format_func=lambda run_id: f"#{run_id} {by_id[run_id].name} — {by_id[run_id].status}")
        run_view(run_store, by_id[st.session_state[state.VIEW_KEY]], runs)

    polled(run_store, body)


def queue(run_store, runs, shown) -> None:
    active = sorted((run for run in runs if run.status in ACTIVE), key=lambda r: r.id)
    if not active:
        return
    side_by_side = worker_count()
    at_a_time = "one training at a time" if side_by_side == 1 else f"{side_by_side} trainings at a time"
    st.markdown(f"**Queue** — {at_a_time}, oldest first")
    owner = state.owner()
    for run in active:
        left, right = st.columns([4, 1])
        if run.status == Status.RUNNING:
            doing = training_state(run_store, run)
            left.text(f"▶ #{run.id} {run.name} — {doing}")
            if run.stop_requested:
                right.caption("stopping…")
            elif not sessions.may_change(run, owner):
                right.caption("another session's")
            elif doing != RECOVERING and run.id != shown:  # the picked run has its own Stop below
                right.button("Stop", key=f"queue_stop_{run.id}", on_click=stop_run, args=(run_store, run.id))
        else:
            left.text(f"⏱ #{run.id} {run.name} — queued")
            if sessions.may_change(run, owner):
                right.button("Cancel", key=f"cancel_{run.id}", on_click=stop_run, args=(run_store, run.id))
            else:
                right.caption("another session's")
    waiting = [run.id for run in active if run.status == Status.QUEUED and sessions.may_change(run, owner)]
    if len(waiting) > 1:
        mine = " of this session's" if sessions.shared() else ""
        st.button("Cancel the rest of the queue", key="cancel_queue", icon=":material/cancel:",
                  on_click=cancel_runs, args=(run_store, waiting),
                  help=f"Cancels every queued run{mine} shown above; the run already training goes on (its Stop "
                       f"button stops it).")
    if sessions.shared():
        st.caption(f"This server is shared: each session may stop or cancel only the runs it queued, and have at "
                   f"most {sessions.SESSION_LIMIT} waiting or training at once.")


def training_state(run_store, run) -> str:
    if state.recovering(run_store, run):
        return RECOVERING
    if silent := stalled(run):
        return stall_note(silent)
    progress = run.progress
    return f"training, epoch {progress.epoch}/{progress.epochs}" if progress else "training, starting"


def stop_run(run_store, run_id) -> None:
    """Button callback: stop or cancel a run as this session (refused, with a toast saying
    why, for another session's run on a shared server, whatever the browser sent)."""
    try:
        sessions.request_stop(run_store, run_id, state.owner())
    except StoreError as error:  # not this session's, deleted meanwhile, or a read-only store
        st.toast(str(error))
    state.changed(run_store)


def cancel_runs(run_store, run_ids) -> None:
    """Button callback: cancel the queued runs the user saw (one already started is left alone)."""
    for run_id in run_ids:
        try:
            sessions.request_stop(run_store, run_id, state.owner())
        except (RunNotFoundError, sessions.NotYoursError):
            pass  # deleted meanwhile, or not this session's: nothing of ours to cancel
    state.changed(run_store)


def interruption_text(run) -> str:
    """What was lost, from the record the trainer wrote when it found the run orphaned."""
    last = (run.interruption or {}).get("last_epoch", 0)
    kept = f"History kept up to epoch {last}." if last else "No epoch had finished, so no history was kept."
    return f"Interrupted: the training process stopped (server restart or crash). {kept}"


def queue_after(run, runs) -> str:
    """What became of the runs that were waiting when ``run`` was found orphaned."""
    by_id = {r.id: r for r in runs}
    waiting = [by_id[i] for i in (run.interruption or {}).get("waiting", []) if i in by_id]
    resumed = [r.id for r in waiting if r.status != Status.CANCELLED]
    cancelled = [f"#{r.id}" for r in waiting if r.status == Status.CANCELLED]
    said = ([f"The queue resumed with run #{resumed[0]}."] if resumed else []) + \
           ([f"The rest of the queue was cancelled: {', '.join(cancelled)}."] if cancelled else [])
    return " ".join(said) or "Nothing else was waiting in the queue."


def interruption_notice(runs, shown=None) -> None:
    """Which run a crash cut short, how much of it was kept and what became of the queue,
    until the user queues something new: the run picker may be showing another run, and
    the queue may have drained before anyone looked. Not repeated for the run ``shown``,
    whose own view says the same."""
    if not runs:
        return
    active = [run for run in runs if run.status in ACTIVE]
    since = min(run.created_at for run in active) if active else runs[0].created_at
    found = next((run for run in runs if run.status == Status.INTERRUPTED and run.finished_at >= since), None)
    if found and found.id != shown:
        st.warning(f"Run #{found.id} {literal(found.name)} — {interruption_text(found)} {queue_after(found, runs)}")


def run_view(run_store, run, runs) -> None:
    """One run as the picker shows it: status, progress or results, and its settings."""
    st.subheader(f"Run #{run.id}", anchor=False)
    st.text(run.name)
    st.caption(f"{run.variant} · {run.config['family']} · status: {run.status}")
    if run.status == Status.QUEUED:
        queued(run_store, run, runs)
    elif run.status == Status.RUNNING:
        running(run_store, run, compact=False)
    else:
        results(run_store, run, runs)
    settings(run)
    if run.status not in ACTIVE:
        downloads(run_store, run)
        manage(run_store, run)


def queued(run_store, run, runs) -> None:
    ahead = runs_ahead(run, runs, worker_count())
    if not ahead and jobs.worker_starting(run_store):
        st.info("Next in line: the background trainer is starting (loading TensorFlow takes about 10–20 s).")
        return
    where = {0: "next in line", 1: "1 run ahead of it"}.get(ahead, f"{ahead} runs ahead of it")
    st.info(f"Queued, {where}: it starts by itself; you can leave this page.")


def runs_ahead(run, runs, slots) -> int:
    """How many runs must finish before queued ``run`` starts: the queue is trained in
    order, ``slots`` at a time, so the runs training now and those queued before it,
    less the slots that leaves free."""
    training = sum(r.status == Status.RUNNING for r in runs)
    waiting = sum(r.status == Status.QUEUED and r.id < run.id for r in runs)
    return max(0, training + waiting - (slots - 1))


def running(run_store, run, compact) -> None:
    if state.recovering(run_store, run):
        st.warning(f"Run #{run.id} is {RECOVERING} {RECOVERING_DETAIL}")
    else:
        if silent := stalled(run):
            st.warning(f"Run #{run.id} is {stall_note(silent)}. {STALLED_DETAIL}")
        progress_bar(run)
        stop_control(run_store, run)
    if compact:
        return
    history = state.history(run_store, run.id)
    if history:
        curves(run, history)
    else:
        st.caption("The curves appear after the first epoch.")


def curves(run, history) -> None:
    best = (run.metrics or {}).get("best_epoch")
    st.plotly_chart(charts.curves_figure([("", history)], marks={"": {"best": best}} if best else None),
                    key=f"curves_{run.id}_{run.status}")
    with st.expander("How to read these curves"):
        st.markdown(charts.CURVE_CAPTION)


def progress_bar(run) -> None:
    progress = run.progress
    if progress:
        fold = f"fold {progress.fold} · " if progress.fold else ""
        text = (f"{fold}epoch {progress.epoch}/{progress.epochs} · step {progress.step}/{progress.steps} · "
                f"{duration(progress.elapsed)} elapsed · about {duration(progress.eta)} left")
        st.progress(progress.fraction, text=text)
    else:
        st.progress(0.0, text="Starting: loading data and building the model…")


def stop_control(run_store, run) -> None:
    if run.stop_requested:
        st.warning("Stopping after the current batch; the epochs so far and the model are kept.")
    elif sessions.may_change(run, state.owner()):
        st.button("Stop", key=f"stop_{run.id}", icon=":material/stop_circle:", on_click=stop_run,
                  args=(run_store, run.id))
    else:
        st.caption(f"No Stop button: {sessions.NOT_YOURS}.")


def results(run_store, run, runs) -> None:
    """A finished run: scores, verdict, curves and confusion matrix."""
    if run.status == Status.INTERRUPTED:
        st.warning(f"{interruption_text(run)} {queue_after(run, runs)}")
    elif run.status == Status.FAILED:
        st.error("This run failed:")
        st.text(run.error or "")
    elif run.status == Status.CANCELLED:
        st.info("Cancelled before it started.")
    elif run.status == Status.STOPPED:
        st.warning("Stopped by request: the scores below are those of the partly trained model.")
    metrics = run.metrics or {}
    if compare.scored(run):
        scores(run)
    elif run.status == Status.STOPPED:
        st.info("Stopped before the first fold finished, so there are no scores.")
    history = state.history(run_store, run.id)
    if history:
        curves(run, history)
    if compare.scored(run):
        st.plotly_chart(charts.confusion_figure(metrics["test"]["confusion"], "Confusion matrix (test)"),
                        key=f"confusion_{run.id}")
        precision = (run.runtime or {}).get("precision", "float32")
        st.caption(f"{metrics.get('epochs_done')} epochs on {metrics.get('train_images', '?')} training images in "
                   f"{duration(metrics.get('train_seconds'))} · {run.params:,} parameters · {precision} · "
                   f"data: {run.data_source}")


def scores(run) -> None:
    metrics = run.metrics
    test = metrics["test"]
    if "cv" in metrics:
        cv = metrics["cv"]
        st.markdown(f"**{metrics['kfold']}-fold cross-validation** (validation folds, mean ± std)")
        a, b, c = st.columns(3)
        a.metric("CV accuracy", compare.cv_text(cv["accuracy"]))
        b.metric("CV macro F1", compare.cv_text(cv["macro_f1"], percent=False))
        c.metric("CV kappa", compare.cv_text(cv["kappa"], percent=False))
        st.caption(f"Test scores below are from the best fold's model (fold {metrics['best_fold']}).")
    a, b, c, d = st.columns(4)
    a.metric("Test accuracy", f"{test['accuracy']:.1%}")
    b.metric("Macro F1", f"{test['macro_f1']:.3f}")
    c.metric("Cohen's kappa", f"{test['kappa']:.3f}")
    d.metric("Test loss", f"{test['log_loss']:.3f}")
    if metrics.get("stopped_early"):
        st.caption(f"Early stopping ended training at epoch {metrics['epochs_done']} and restored the weights "
                   f"of epoch {metrics['best_epoch']} (lowest validation loss; the dash-dot line).")
    show_verdict(run)


def settings(run) -> None:
    """What this run was trained with, and what differs from its preset."""
    config = config_from_dict(run.config)
    changed = differences(config)
    title = "Settings" + (f" — {len(changed)} changed from the {run.variant} preset" if changed else "")
    with st.expander(title):
        st.dataframe([{"setting": LABELS.get(name, name), "value": str(value)} for name, value in config.to_dict().items()],
                     hide_index=True, width="stretch")
        if changed:  # named as the form names them ("Hidden layer sizes", not hidden_units)
            st.caption("Changed: " + "; ".join(f"{LABELS.get(name, name)} {old} → {new}" for name, old, new in changed))
        where = trained_on(run.runtime)
        if where:
            st.caption(where)


def trained_on(runtime) -> str | None:
    """Where a run trained on a Ray cluster (``runtime["executor"] == "ray"``): the node's
    address and id, its cores and CPU; None for a run trained by the app's own workers."""
    runtime = runtime or {}
    if runtime.get("executor") != "ray":
        return None
    node = literal(f"{runtime.get('node_ip', '?')} ({str(runtime.get('node_id', '?'))[:8]})")
    cpu = f", {literal(runtime['cpu'])}" if runtime.get("cpu") else ""
    return f"Trained on the Ray cluster: node {node}, {runtime.get('cpus', '?')} CPU(s) reserved{cpu}"


# A model file larger than this is not held in memory to be offered as a download (an 8 × 4096
# dense net is ~1.5 GB with its optimizer state; `best` is ~3.5 MB); the page says where it is instead.
MAX_DOWNLOAD_BYTES = 64 * 1024**2


@st.cache_resource(max_entries=4, show_spinner=False)  # at most 4 × 64 MB held
def _run_files(_run_store, home: str, run_id: int, finished_at: float, name: str) -> dict:
    """{file suffix: bytes} for one finished run, made once per run (and per rename: the
    metrics and script carry the name). A finished run's files never change, and the view
    redraws every second while anything trains: the same bytes each time give each button
    the same link (a link computed at click time, as a deferred download makes it, is
    revoked by each redraw, and a click just before one downloaded nothing). ``home`` keys
    the cache (``_run_store``, unhashed, is the store at that home)."""
    from kmnist_core import export

    run_store, stem = _run_store, f"kmnist-run-{run_id}"
    run = run_store.get(run_id)
    files = {"-history.csv": export.history_csv(run.history).encode(),
             "-history.json": export.history_json(run.history).encode(),
             "-metrics.json": export.metrics_json(run).encode(),
             ".py": export.standalone_script(run.config, run=run, filename=f"{stem}.py").encode()}
    model = run_store.model_path(run_id)
    if model.is_file() and model.stat().st_size <= MAX_DOWNLOAD_BYTES:
        files[".keras"] = model.read_bytes()
    return files


def downloads(run_store, run) -> None:
    """The run to take away: model, history, metrics and a standalone script that retrains
    it with Keras alone. File names come from the run id, never from its name."""
    with st.expander("Take it with you: model, history, metrics, script"):
        stem = f"kmnist-run-{run.id}"
        files = _run_files(run_store, str(run_store.home), run.id, run.finished_at or 0.0, run.name)
        model = run_store.model_path(run.id)
        left, right = st.columns(2)
        if ".keras" in files:
            left.download_button("Model (.keras)", files[".keras"], f"{stem}.keras", key=f"dl_model_{run.id}",
                                 icon=":material/download:")
        elif model.is_file():
            left.caption(f"The model file is {model.stat().st_size / 1e9:.1f} GB, too large to offer here: "
                         f"copy it from `{model}`.")
        right.download_button("History (CSV)", files["-history.csv"], f"{stem}-history.csv",
                              mime="text/csv", key=f"dl_csv_{run.id}", icon=":material/table:")
        left.download_button("History (JSON)", files["-history.json"], f"{stem}-history.json",
                             mime="application/json", key=f"dl_json_{run.id}", icon=":material/data_object:")
        right.download_button("Metrics (JSON)", files["-metrics.json"], f"{stem}-metrics.json",
                              mime="application/json", key=f"dl_metrics_{run.id}", icon=":material/analytics:")
        st.download_button("Standalone training script (Python, Keras only)", files[".py"],
                           f"{stem}.py", mime="text/x-python", key=f"dl_script_{run.id}", icon=":material/code:")
        st.caption(f"The script reads the official KMNIST files from a folder (`python {stem}.py /path/to/kmnist`) "
                   "and retrains this configuration with Keras alone. The model takes raw pixel values 0–255 "
                   "(it rescales inside), like the dataset files. TensorBoard: `tensorboard --logdir "
                   f"{run_store.home}` lists every finished run.")


def manage(run_store, run) -> None:
    """Rename or delete a finished run (this session's own, on a shared server)."""
    owner = state.owner()
    if not sessions.may_change(run, owner):
        st.caption(f"No rename or delete: {sessions.NOT_YOURS}.")
        return
    with st.expander("Rename or delete"):
        name = st.text_input("New name", value=run.name, key=f"rename_{run.id}", max_chars=80)
        left, right = st.columns(2)
        if left.button("Rename", key=f"rename_button_{run.id}"):
            try:
                sessions.rename(run_store, run.id, name, owner)
                state.changed(run_store)
                st.rerun()
            except (StoreError, ValueError) as error:
                st.error(str(error))
        sure = right.checkbox(f"Yes, delete run #{run.id} and its files", key=f"delete_sure_{run.id}")
        if right.button("Delete this run", key=f"delete_{run.id}", icon=":material/delete:", disabled=not sure):
            try:
                sessions.delete(run_store, run.id, owner)
                state.changed(run_store)
                st.toast(f"Run #{run.id} deleted.")
                st.rerun()
            except StoreError as error:
                st.error(str(error))


def mistakes_gallery(run_store, data, run) -> None:
    """One run's most confident test mistakes, or why they cannot be shown. The run's
    scores live in the database, so a lost prediction file only costs this gallery."""
    proba = run_store.load_array(run.id, "test_proba")
    found = compare.mistakes(data.y_test, proba)
    if proba is None:
        st.caption("This run's stored test predictions (test_proba.npy) are missing or damaged, so its "
                   "mistakes cannot be shown; its scores above are unaffected.")
    elif found is None:
        st.caption("No stored test predictions for the currently loaded test split "
                   "(the run was trained on other data).")
    elif not found:
        st.caption("No mistakes on the test split.")
    else:  # one width for every thumbnail, whatever its caption's length
        st.image([charts.enlarge(data.x_test[m["index"]], 3) for m in found], width=84, output_format="PNG",
                 caption=[f"{m['true_label']} → {m['predicted_label']} {m['confidence']:.0%}"
                          + (" (sure, wrong)" if m["sure"] else "") for m in found])
        sure = sum(m["sure"] for m in found)
        if sure:
            st.caption(f"{sure} of these were read with ≥ {compare.SURE_AND_WRONG:.0%} confidence and are still "
                       "wrong: a model can be very sure and wrong; confidence is not correctness.")


def show_verdict(run) -> None:
    fit = run.metrics["fit"]
    box = st.success if fit["verdict"] == "good fit" else st.warning
    box(f"**{fit['verdict'].capitalize()}.** {fit['reason']}")
    short = too_short(config_from_dict(run.config)) if fit["verdict"] == "good fit" else None
    if short:  # the Train form warned before the run; the verdict is where the lesson is read
        st.caption(f"Read this “good fit” with care: {short}")
