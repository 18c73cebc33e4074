"""Streamlit pieces more than one page shows: the live run monitor (progress, curves,
Stop), a finished run's results, the queue, and the empty states that offer a next step.

The monitor is a ``st.fragment`` that re-reads the store every second while anything is
queued or running, so only it redraws, and it keeps redrawing whichever tab or page the
user opens: the training itself lives in the background worker.
"""

import streamlit as st

from . import app_state, charts, compare, jobs
from .store import INTERRUPTED, RunNotFoundError, StoreError

ACTIVE = ("queued", "running")
REFRESH_SECONDS = 1.0
DATA_FIX = (
    "Point the app at the official KMNIST files and restart it, e.g. "
    "`KMNIST_DATA_DIR=/path/to/kmnist streamlit run app.py` with a folder holding "
    "kmnist-{train,test}-{imgs,labels}.npz (from https://github.com/rois-codh/kmnist)."
)

RECOVERING = "recovering — restarting the background worker…"
RECOVERING_DETAIL = ("Its training process stopped; the new worker marks this run interrupted, keeps its "
                     "finished epochs and goes on with the queue.")


def data_problem(message: str) -> None:
    st.error(f"KMNIST data is not available: {message}")
    st.info(DATA_FIX)


def duration(seconds) -> str:
    seconds = int(round(seconds or 0))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def offer_quick_training(run_store, why: str) -> None:
    """The empty state: say what is missing and offer the one-click next step."""
    st.info(why)
    left, right = st.columns(2)
    if left.button("Quick-train a small model (about 15 s)", type="primary", key="quick_train"):
        st.session_state[app_state.FOCUS_KEY] = jobs.submit_quick(run_store)
    right.page_link("pages/train.py", label="Or choose a variant on the Train page", icon=":material/tune:")


def polled(run_store, body) -> None:
    """Draw ``body(active_runs)`` in a fragment that redraws every second while any run
    is queued or running, and revives the worker if it is missing."""
    active_at_start = bool(run_store.list_runs(statuses=ACTIVE))

    @st.fragment(run_every=REFRESH_SECONDS if active_at_start else None)
    def fragment():
        try:
            run_store.check()  # the page checked it once; a poll can outlive that by hours
        except StoreError as error:
            app_state.store_problem(error, run_store.home)
            return
        active = run_store.list_runs(statuses=ACTIVE)
        if active:
            jobs.wake_worker(run_store)  # revives the queue if its worker died or idled out
        body(active)
        if active_at_start and not active:
            st.rerun()  # all done: redraw the whole page once (new results, no more polling)

    fragment()


def live_monitor(run_store, run_id=None, compact=False) -> None:
    """The queue and one run (an empty state's quick training), kept up to date."""
    def body(active):
        interruption_notice(run_store, active, shown=run_id)
        queue(run_store, active, shown=run_id)
        if run_id is not None:
            run_view(run_store, run_id, compact)

    polled(run_store, body)


def run_browser(run_store, view_key) -> None:
    """The Train page's right side: the queue, a run picker and the picked run, all inside
    the fragment so statuses in the picker stay current too."""
    def body(active):
        runs = run_store.list_runs()
        if not runs:
            st.info("No runs yet. Adjust the settings and press **Start training**, or **Train all "
                    "variants** to queue the whole study. Training goes on in the background while "
                    "you switch pages or close the tab.")
            return
        labels = {run.id: f"#{run.id} {run.name} — {status_text(run)}" for run in runs}
        if st.session_state.get(view_key) not in labels:
            st.session_state[view_key] = runs[0].id
        interruption_notice(run_store, active, shown=st.session_state[view_key])
        queue(run_store, active, shown=st.session_state[view_key])
        shown = st.selectbox("Show run", list(labels), format_func=labels.get, key=view_key)
        run_view(run_store, shown)

    polled(run_store, body)


def queue(run_store, active, shown) -> None:
    if not active:
        return
    st.markdown("**Queue** — one training at a time, oldest first")
    for run in sorted(active, key=lambda r: r.id):
        left, right = st.columns([4, 1])
        if run.status == "running":
            state = training_state(run_store, run)
            left.markdown(f":material/play_arrow: **#{run.id} {run.name}** — {state}")
            if run.stop_requested:
                right.caption("stopping…")
            elif state != RECOVERING and run.id != shown:  # the picked run has its own Stop below
                right.button("Stop", key=f"queue_stop_{run.id}", on_click=run_store.request_stop, args=(run.id,))
        else:
            left.markdown(f":material/schedule: #{run.id} {run.name} — queued")
            right.button("Cancel", key=f"cancel_{run.id}", on_click=run_store.request_stop, args=(run.id,))
    queued = [run.id for run in active if run.status == "queued"]
    if len(queued) > 1:
        st.button("Cancel the rest of the queue", key="cancel_queue", icon=":material/cancel:",
                  on_click=cancel_runs, args=(run_store, queued),
                  help="Cancels every queued run shown above; the run already training goes on (its Stop button stops it).")


def training_state(run_store, run) -> str:
    if app_state.recovering(run_store, run):
        return RECOVERING
    progress = run.progress or {}
    return f"training, epoch {progress['epoch']}/{progress['epochs']}" if progress else "training, starting"


def cancel_runs(run_store, run_ids) -> None:
    """Button callback: cancel the queued runs the user saw (one already started is left alone)."""
    for run_id in run_ids:
        try:
            run_store.request_stop(run_id)
        except RunNotFoundError:
            pass  # deleted meanwhile: nothing left to cancel


def interrupted(run) -> bool:
    """A run whose training process died (server restart, crash, kill): the next worker
    marks it failed with an error starting with INTERRUPTED. The app names it for what it is."""
    return run.status == "failed" and (run.error or "").startswith(INTERRUPTED)


def status_text(run) -> str:
    return "interrupted" if interrupted(run) else run.status


def interruption_text(run) -> str:
    """What was lost, from the kept history (``run`` as ``store.get`` returns it)."""
    last = max((h["epoch"] for h in run.history), default=0)
    kept = f"History kept up to epoch {last}." if last else "No epoch had finished, so no history was kept."
    return f"Interrupted: the training process stopped (server restart or crash). {kept}"


def queue_after(run, runs) -> str:
    """What became of the runs that were waiting when the new worker found ``run``
    orphaned (``finished_at`` is that moment): resumed, cancelled, or nothing waited."""
    waiting = sorted((r for r in runs if r.id != run.id and not interrupted(r)
                      and r.created_at <= run.finished_at
                      and (r.finished_at is None or r.finished_at >= run.finished_at)),
                     key=lambda r: (r.started_at or float("inf"), r.id))
    resumed = [r.id for r in waiting if r.status != "cancelled"]
    cancelled = [f"#{r.id}" for r in waiting if r.status == "cancelled"]
    said = ([f"The queue resumed with run #{resumed[0]}."] if resumed else []) + \
           ([f"The rest of the queue was cancelled: {', '.join(cancelled)}."] if cancelled else [])
    return " ".join(said) or "Nothing else was waiting in the queue."


def interruption_notice(run_store, active, shown=None) -> None:
    """Which run a crash cut short, how much of it was kept and what became of the queue,
    until the user queues something new: the run picker may be showing another run, and
    the queue may have drained before anyone looked. Not repeated for the run ``shown``,
    whose own view says the same."""
    runs = run_store.list_runs()
    if not runs:
        return
    since = min(run.created_at for run in active) if active else runs[0].created_at
    found = next((run for run in runs if interrupted(run) and run.finished_at >= since), None)
    if found and found.id != shown:
        run = run_store.get(found.id)
        st.warning(f"Run #{run.id} {run.name} — {interruption_text(run)} {queue_after(run, runs)}")


def run_view(run_store, run_id, compact=False) -> None:
    try:
        run = run_store.get(run_id)
    except RunNotFoundError:
        st.info(f"Run #{run_id} no longer exists.")
        return
    if not compact:
        st.subheader(f"Run #{run.id} · {run.name}")
        st.caption(f"{run.variant} · {run.config['family']} · status: **{status_text(run)}**")
    if run.status == "queued":
        waiting = [r.id for r in run_store.list_runs(statuses=ACTIVE) if r.id < run.id]
        ahead = {0: "next in line", 1: "1 run ahead of it"}.get(len(waiting), f"{len(waiting)} runs ahead of it")
        st.info(f"Queued, {ahead}: it starts by itself; you can leave this page.")
    elif run.status == "running":
        running(run_store, run, compact)
    elif compact:
        st.success(f"Run #{run.id} finished ({status_text(run)}).")
    else:
        results(run_store, run)


def running(run_store, run, compact) -> None:
    if app_state.recovering(run_store, run):
        st.warning(f"Run #{run.id} is {RECOVERING} {RECOVERING_DETAIL}")
    else:
        progress_bar(run)
        stop_control(run_store, run)
    if not compact and run.history:
        st.plotly_chart(charts.curves_figure([("", run.history)]), key=f"live_curves_{run.id}")
    elif not compact:
        st.caption("The curves appear after the first epoch.")


def progress_bar(run) -> None:
    progress = run.progress or {}
    if progress:
        fold = f"fold {progress['fold']} · " if progress.get("fold") else ""
        text = (f"{fold}epoch {progress['epoch']}/{progress['epochs']} · step {progress['step']}/"
                f"{progress['steps']} · {duration(progress['elapsed'])} elapsed · ETA {duration(progress['eta'])}")
        st.progress(min(max(progress["fraction"], 0.0), 1.0), text=text)
    else:
        st.progress(0.0, text="Starting: loading data and building the model…")


def stop_control(run_store, run) -> None:
    if run.stop_requested:
        st.warning("Stopping after the current batch; the epochs so far and the model are kept.")
    else:
        st.button("Stop", key=f"stop_{run.id}", icon=":material/stop_circle:",
                  on_click=run_store.request_stop, args=(run.id,))


def results(run_store, run) -> None:
    """A finished run: scores, verdict, curves and confusion matrix."""
    if interrupted(run):
        st.warning(f"{interruption_text(run)} {queue_after(run, run_store.list_runs())}")
    elif run.status == "failed":
        st.error(f"This run failed: {run.error}")
    elif run.status == "cancelled":
        st.info("Cancelled before it started.")
    elif run.status == "stopped":
        st.warning("Stopped by request: the scores below are those of the partly trained model.")
    metrics = run.metrics or {}
    if compare.scored(run):
        scores(run)
    elif run.status == "stopped":
        st.info("Stopped before the first fold finished, so there are no scores.")
    if run.history:
        st.plotly_chart(charts.curves_figure([("", run.history)]), key=f"curves_{run.id}")
    if compare.scored(run):
        st.plotly_chart(charts.confusion_figure(metrics["test"]["confusion"], "Confusion matrix (test)"),
                        key=f"confusion_{run.id}")
        st.caption(f"{metrics.get('epochs_done')} epochs in {duration(metrics.get('train_seconds'))} · "
                   f"{run.params:,} parameters · data: {run.data_source}")


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
    show_verdict(run)


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
    else:
        st.image([charts.enlarge(data.x_test[m["index"]], 3) for m in found],
                 caption=[f"{m['true_label']} → {m['predicted_label']} {m['confidence']:.0%}" for m in found],
                 output_format="PNG")


def show_verdict(run) -> None:
    fit = run.metrics["fit"]
    box = st.success if fit["verdict"] == "good fit" else st.warning
    box(f"**{fit['verdict'].capitalize()}.** {fit['reason']}")
