"""Streamlit pieces more than one page shows: the live run monitor (queue, progress,
curves, Stop) and the empty states that offer a next step. A finished run's results,
settings and downloads are ``explorer.results``.

The monitor is a ``st.fragment`` that redraws every second while anything is queued or
running, so only it redraws, on whichever page the user opens: the training lives in the
worker. Its run list and the shown run's history are the server's shared reads
(``state.runs``, ``state.history``): one store read per second for every session together.
On a shared server (``sessions``) a session's buttons act only on its own runs.
User text (run names, error messages) is shown with ``st.text`` or in widget labels that
Streamlit does not render as Markdown, never inside Markdown.
"""


import streamlit as st

from kmnist_core.hardware import worker_count
from kmnist_core.stall import recent_startups
from kmnist_core.status import ACTIVE, Status, stall_note, stalled
from kmnist_core.store import RunNotFoundError, StoreError
from kmnist_core.study import about_text
from kmnist_core.study import seconds_text as duration

from . import charts, jobs, results, sessions, state

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


def data_problem(message: str) -> None:
    st.error(f"KMNIST data is not available: {message}")  # our message; paths come from the admin's env
    st.info(DATA_FIX)


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
        training = [run.id for run in runs if run.status == Status.RUNNING]
        if st.session_state.get(state.FOLLOW_KEY) and training and shown in by_id \
                and by_id[shown].status != Status.RUNNING:  # what was queued waits, or has ended: show the live one
            shown = min(training)
        # Assigned on every poll, not only when missing: the browser keeps showing the label it
        # was last sent ("#1 … — running" after the run finished, the old name after a rename)
        # unless the value is set again along with the new labels.
        st.session_state[state.VIEW_KEY] = shown = shown if shown in by_id else runs[0].id
        interruption_notice(runs, shown=shown)
        queue(run_store, runs, shown=shown)
        st.selectbox("Show run", list(by_id), key=state.VIEW_KEY, on_change=state.stop_following,
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
        row = st.container(horizontal=True, vertical_alignment="center")  # a button never squeezed to "C…"
        if run.status == Status.RUNNING:
            doing = training_state(run_store, run)
            row.text(f"▶ #{run.id} {run.name} — {doing}")
            if run.stop_requested:
                row.caption("stopping…")
            elif not sessions.may_change(run, owner):
                row.caption("another session's")
            elif doing != RECOVERING and run.id != shown:  # the picked run has its own Stop below
                row.button("Stop", key=f"queue_stop_{run.id}", on_click=stop_run, args=(run_store, run.id))
        else:
            row.text(f"○ #{run.id} {run.name} — queued")
            if sessions.may_change(run, owner):
                row.button("Cancel", key=f"cancel_{run.id}", on_click=stop_run, args=(run_store, run.id))
            else:
                row.caption("another session's")
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
    if silent := stalled(run, startups=recent_startups(state.runs(run_store), run)):
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
        st.warning(f"Run #{found.id} {charts.literal(found.name)} — {results.interruption_text(found)} {results.queue_after(found, runs)}")


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
        results.show(run_store, run, runs)
    results.settings(run)
    if run.status not in ACTIVE:
        results.downloads(run_store, run)
        results.manage(run_store, run)


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
        if silent := stalled(run, startups=recent_startups(state.runs(run_store), run)):
            st.warning(f"Run #{run.id} is {stall_note(silent)}. {STALLED_DETAIL}")
        progress_bar(run)
        stop_control(run_store, run)
    if compact:
        return
    history = state.history(run_store, run.id)
    if history:
        results.curves(run, history)
    else:
        st.caption("The curves appear after the first epoch.")


def progress_bar(run) -> None:
    progress = run.progress
    if progress:
        fold = f"fold {progress.fold} · " if progress.fold else ""
        text = (f"{fold}epoch {progress.epoch}/{progress.epochs} · step {progress.step}/{progress.steps} · "
                f"{duration(progress.elapsed)} elapsed · {about_text(progress.eta)} left")
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


