"""A finished run on the Train page: its scores, verdict, curves, settings, downloads,
rename and delete, and the reports of its study. The live part (queue, progress, Stop)
is ``explorer.monitor``, which shows this once a run has ended."""


import streamlit as st

from kmnist_core.config import LABELS, config_from_dict, differences, too_short
from kmnist_core.status import Status
from kmnist_core.store import StoreError
from kmnist_core.study import run_time_text
from kmnist_core.verdict import heldout_split, verdict_line

from . import charts, compare, report, sessions, state


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


def curves(run, history) -> None:
    best = (run.metrics or {}).get("best_epoch")
    st.plotly_chart(charts.curves_figure([("", history)], marks={"": {"best": best}} if best else None,
                                         heldout={"": heldout_split(run.config)}),
                    key=f"curves_{run.id}_{run.status}")
    if spikes := compare.l1_spike_note([run]):
        st.caption(spikes)
    with st.expander("How to read these curves"):
        st.markdown(charts.CURVE_CAPTION)


def show(run_store, run, runs) -> None:
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
        st.caption(results_caption(run))


def results_caption(run) -> str:
    """How a scored run was trained, in one line under its results."""
    metrics, precision = run.metrics, (run.runtime or {}).get("precision", "float32")
    params = "?" if run.params is None else f"{run.params:,}"
    return (f"{metrics.get('epochs_done')} epochs on {metrics.get('train_images', '?')} training images · "
            f"{run_time_text(run)} · {params} parameters · {precision} · data: {run.data_source}")


def scores(run) -> None:
    metrics = run.metrics
    test = metrics["test"]
    if "cv" in metrics:
        cv = metrics["cv"]
        st.markdown(f"**{metrics['kfold']}-fold cross-validation** (validation folds, mean ± std)")
        tiles([("CV accuracy", compare.cv_text(cv["accuracy"])),
               ("CV macro F1", compare.cv_text(cv["macro_f1"], percent=False)),
               ("CV kappa", compare.cv_text(cv["kappa"], percent=False))], per_row=1)
        st.caption(f"Test scores below are from the best fold's model (fold {metrics['best_fold']}).")
    tiles([("Test accuracy", f"{test['accuracy']:.1%}"), ("Macro F1", f"{test['macro_f1']:.3f}"),
           ("Cohen's kappa", f"{test['kappa']:.3f}"), ("Test loss", f"{test['log_loss']:.3f}")])
    if metrics.get("stopped_early"):
        st.caption(f"Early stopping ended training at epoch {metrics['epochs_done']} and restored the weights "
                   f"of epoch {metrics['best_epoch']} (lowest validation loss; the dash-dot line).")
    show_verdict(run)


def tiles(scores, per_row=2) -> None:
    """Score tiles, ``per_row`` abreast: four abreast in the run column were cut to "8…" on
    an 800-px screen (a classroom projector), and "91.2% ± 0.4%" needs a row of its own."""
    for start in range(0, len(scores), per_row):
        for column, (label, value) in zip(st.columns(per_row), scores[start:start + per_row]):
            column.metric(label, value)


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
    node = charts.literal(f"{runtime.get('node_ip', '?')} ({str(runtime.get('node_id', '?'))[:8]})")
    cpu = f", {charts.literal(runtime['cpu'])}" if runtime.get("cpu") else ""
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

    run_store = _run_store
    run = run_store.get(run_id)
    files = {"-history.csv": export.history_csv(run.history).encode(),
             "-history.json": export.history_json(run.history).encode(),
             "-metrics.json": export.metrics_json(run).encode(),
             ".py": export.standalone_script(run.config, run=run).encode()}
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


def report_buttons(run_store, study_id, data, what) -> None:
    """Download buttons for a study's report, HTML (opens offline) and Markdown."""
    row = st.container(horizontal=True)  # side by side where they fit, one under the other where not
    for suffix, kind in zip(report.MIME, ("HTML, opens offline", "Markdown")):
        row.download_button(f"Download {what} ({kind})", report.text(run_store, study_id, data, suffix),
                            report.file_name(run_store, study_id, suffix), mime=report.MIME[suffix],
                            key=f"report_{study_id}{suffix}", icon=":material/download:")


def show_verdict(run) -> None:
    """The verdict in a box coloured by its grade; runs stored before verdicts were graded
    ("good fit", "overfitting", "underfitting" and an older sentence) read the same way."""
    fit = run.metrics["fit"]
    box = {"good fit": st.success, "starting to overfit": st.info}.get(fit["verdict"], st.warning)
    box(verdict_line(fit))
    short = too_short(config_from_dict(run.config)) if fit["verdict"] == "good fit" else None
    if short:  # the Train form warned before the run; the verdict is where the lesson is read
        st.caption(f"Read this “good fit” with care: {short}")
