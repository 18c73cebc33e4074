"""Compare 2–6 finished runs: scores and settings side by side, curves, confusion
matrices, per-class F1, verdicts and each run's most confident mistakes."""

import pandas as pd
import streamlit as st

from explorer import charts, compare, monitor, results, state
from kmnist_core import conclusions, export, reference, significance
from kmnist_core.classes import CLASSES
from kmnist_core.status import ACTIVE
from kmnist_core.verdict import heldout_split

state.enter_through_app("pages/compare.py")

st.title("Compare")
run_store = state.store()
every_run = run_store.list_runs()
runs = {run.id: run for run in every_run if compare.scored(run)}

if len(runs) < 2:
    coming = sum(run.status in ACTIVE for run in every_run)
    monitor.offer_quick_training(
        run_store,
        "Comparing needs at least two trained runs" + (f"; there is {len(runs)} so far." if runs else
                                                        ", and there is none yet.")
        + (f" {coming} more {'is' if coming == 1 else 'are'} training or waiting (below): this page fills in "
           f"as they finish." if coming else
           " Train the study's variants on the Train page (**Train all variants** or **Quick study**), or start "
           "a quick one here."),
    )
    monitor.live_monitor(run_store, st.session_state.get(state.FOCUS_KEY))
    st.stop()

PICKED_KEY = "compare_picked"  # kept across pages, runs finishing and runs deleted elsewhere
state.keep(PICKED_KEY, lambda ids: [run_id for run_id in ids if run_id in runs][:compare.MAX_RUNS],
           lambda: compare.default_selection(every_run))
picked = st.multiselect("Runs to compare (2 to 6)", list(runs), key=PICKED_KEY, max_selections=compare.MAX_RUNS,
                        format_func=lambda run_id: compare.run_label(runs[run_id]))
if len(picked) < 2:
    st.info("Pick at least two runs.")
    st.stop()
chosen = [run_store.get(run_id) for run_id in picked]  # with their per-epoch history
labels = [compare.run_label(run) for run in chosen]

st.header("Scores")
data, problem = state.dataset()
if problem:
    monitor.data_problem(problem)
    st.stop()
for sentence in (conclusions.loss_gap_summary(chosen),
                 conclusions.ranking_sentence(data.y_test, chosen, lambda run_id: run_store.load_array(run_id, "test_proba")),
                 conclusions.loss_accuracy_sentence(chosen, data.y_test,
                                                    lambda run_id: run_store.load_array(run_id, "test_proba"))):
    if sentence:
        st.text(sentence)
set_apart = conclusions.set_apart_sentence(chosen)
if set_apart:
    st.info(set_apart)
st.dataframe(
    compare.table_rows(chosen), hide_index=True,
    column_config={"test acc %": st.column_config.NumberColumn(format="%.1f")}
    | {name: st.column_config.NumberColumn(format="%.3f") for name in
       ("macro F1", "kappa", "test loss", "held-out − train loss")},
)
st.caption("Held-out = the validation split, or the test split for runs trained on all training "
           "images (final). A large gap means the model memorised its training images.")
st.download_button("Download every run's settings and scores (CSV)", export.runs_csv(run_store.list_runs()),
                   "kmnist-runs.csv", mime="text/csv", key="dl_runs", icon=":material/download:")
for study_id in sorted({run.study_id for run in chosen if run.study_id is not None}):
    results.report_buttons(run_store, study_id, data, f"study #{study_id}'s report")

st.header("Settings")
rows, differing = compare.settings_rows(chosen)
settings_table = pd.DataFrame(rows).style.map(lambda _: "background-color: rgba(255, 200, 0, 0.3)", subset=differing)
st.dataframe(settings_table.format(lambda value: f"{value:g}" if isinstance(value, float) else value),  # 1e-05, not 0.000010
             hide_index=True)
st.caption("Highlighted: the settings that differ between these runs — " + (", ".join(differing) or "none") + ".")

st.header("Is the difference real?")
# A: the unregularized run (or the least accurate); B: the most accurate other run, so
# "fixed by B" reads as what regularization bought.
by_accuracy = sorted(chosen, key=lambda run: -run.metrics["test"]["accuracy"])
baseline_run = compare.unregularized(chosen) or by_accuracy[-1]
better_run = next(run for run in by_accuracy if run.id != baseline_run.id)
left, right = st.columns(2)
first = left.selectbox("Run A", picked, index=picked.index(baseline_run.id), key="paired_a",
                       format_func=lambda run_id: compare.run_label(runs[run_id]))
second = right.selectbox("Run B", picked, index=picked.index(better_run.id), key="paired_b",
                         format_func=lambda run_id: compare.run_label(runs[run_id]))
proba_a, proba_b = run_store.load_array(first, "test_proba"), run_store.load_array(second, "test_proba")
paired = conclusions.paired_difference(data.y_test, proba_a, proba_b)
if first == second:
    st.info("Pick two different runs.")
elif paired is None:
    st.caption("These runs' stored test predictions are missing or from another test split.")
else:
    st.text(significance.sentence(f"#{first} {runs[first].name}", f"#{second} {runs[second].name}", paired))
    (st.info if conclusions.only_seed_differs(runs[first], runs[second]) else st.caption)(
        compare.training_luck_note(runs[first], runs[second], seeds_shown=bool(compare.seed_groups(chosen))))
    st.caption(f"McNemar's exact test on the {paired['n']:,} test images both runs read: only the images "
               f"where they disagree count (A right and B wrong: {paired['only_a_right']}, B right and A "
               f"wrong: {paired['only_b_right']}). Below p = {significance.ALPHA}, a gap this size rarely "
               f"comes from which test images were drawn; above it, treat the two runs as equal.")
    left, right = st.columns([2, 3])
    left.plotly_chart(charts.confusion_difference_figure(
        runs[first].metrics["test"]["confusion"], runs[second].metrics["test"]["confusion"], "B − A (test)"),
        key="confusion_difference")
    fixed, broken = compare.fixed_and_broken(data.y_test, proba_a, proba_b)
    for box, title, found in ((right, f"Fixed by B: A wrong, B right ({paired['only_b_right']} in all)", fixed),
                              (right, f"Broken by B: A right, B wrong ({paired['only_a_right']} in all)", broken)):
        box.markdown(f"**{title}**")
        if found:
            box.image([charts.enlarge(data.x_test[f["index"]], 2) for f in found], width=56, output_format="PNG",
                      caption=[f"{f['true'].split()[0]} A:{f['a'].split()[0]} B:{f['b'].split()[0]}" for f in found])
        else:
            box.caption("None.")
    st.caption("In the B − A matrix blue means B put more images in that cell (on the diagonal: more right), red "
               "fewer. Gallery captions: the true class, then what A and B read.")

st.header("Verdicts")
for run in chosen:
    st.text(compare.run_label(run))
    results.show_verdict(run)

groups = compare.seed_groups(chosen)
if groups:
    st.header("Seeds: the setting vs the luck of the draw")
    st.plotly_chart(charts.seed_band_figure({label: [run.history for run in group] for label, group in groups.items()}))
    for label, group in groups.items():
        summary = significance.seed_summary([run.metrics["test"]["accuracy"] for run in group])
        st.text(f"{label}: test accuracy {summary['mean']:.1%} ± {summary['std']:.1%} (mean ± std over "
                f"{summary['n']} seeds)")

st.header("Learning curves")
marks = {label: {"best": run.metrics.get("best_epoch")} for label, run in zip(labels, chosen)
         if run.metrics.get("stopped_early")}
st.plotly_chart(charts.curves_figure(list(zip(labels, [run.history for run in chosen])), height=420, marks=marks,
                                     heldout={label: heldout_split(run.config) for label, run in zip(labels, chosen)}))
with st.expander("How to read these curves"):
    st.markdown(charts.CURVE_CAPTION)

st.header("Confusion matrices (test)")
for start in range(0, len(chosen), 3):
    for column, run, label in zip(st.columns(3), chosen[start:start + 3], labels[start:start + 3]):
        column.plotly_chart(charts.confusion_figure(run.metrics["test"]["confusion"], label, compact=True),
                            key=f"confusion_{run.id}")

st.header("F1 per class (test)")
st.plotly_chart(charts.per_class_f1_figure([(label, run.metrics["test"]["per_class"])
                                            for label, run in zip(labels, chosen)]))

st.header("What regularization did to the weights")
from kmnist_core import weights  # Keras: loaded only once there are runs to compare
from kmnist_core.inference import ModelLoadError  # TensorFlow, for the pictures: after the figures

st.plotly_chart(charts.weights_figure(list(zip(labels, [run.history for run in chosen]))))
if spikes := compare.l1_spike_note(chosen):
    st.caption(spikes)
final_stats = [(label, compare.first_layer_stats(run)) for label, run in zip(labels, chosen)]
final_stats = [(label, stats) for label, stats in final_stats if stats]
if final_stats:
    st.plotly_chart(charts.weight_histogram_figure(final_stats))
base = compare.unregularized(chosen)
base_stats = compare.first_layer_stats(base) if base else None
for start in range(0, len(chosen), 2):  # two a row: first-layer tiles large enough to compare
    for column, run, label in zip(st.columns(2), chosen[start:start + 2], labels[start:start + 2]):
        with column:
            st.text(label)
            try:
                picture, kind, count = state.first_layer_picture(run_store, run.id)
                st.image(picture, output_format="PNG", width="stretch",
                         caption=f"{count} strongest first-layer units, as 28×28 pixel weights" if kind == "dense"
                         else f"{count} strongest first-layer 3×3 filters")
            except ModelLoadError as error:
                st.caption(f"No picture: {error}")
            stats = compare.first_layer_stats(run)
            if stats:
                st.caption(weights.describe(stats, run.config, baseline=None if run is base else base_stats,
                                            baseline_name=f"#{base.id}" if base else "baseline"))
st.caption("Grey is a zero weight, white the strongest positive and black the strongest negative. Unregularized "
           "first layers keep their random start (noise). L1/L2 shrink the weights and push many towards zero — "
           "with Adam they hover near zero rather than sit exactly at it — so the weights of pixels that characters never ink "
           "fade to grey and stroke-like patterns remain. Dropout does not shrink weights (they often grow): it "
           "spreads the work over many units.")

st.header("Against the published results")
st.plotly_chart(charts.published_figure(
    [(label, run.metrics["test"]["accuracy"], compare.test_set_label(run)) for label, run in zip(labels, chosen)],
    reference.PUBLISHED))
st.caption(f"Grey: {reference.SOURCE}; * measured on an earlier release of the dataset. Coloured: the runs "
           "here, on their own test split. Different test sets: set them side by side, never read one as the "
           "other's score.")

st.header("What the last hidden layer sees")
if st.toggle("Map the test images through each run's last hidden layer (loads the models)", key="embedding_on"):
    method = st.segmented_control("Projection", ["pca", "tsne"], default="pca", key="embedding_method",
                                  format_func={"pca": "PCA (fast)", "tsne": "t-SNE (slow: 5–15 s per run)"}.get) \
        or "pca"
    for start in range(0, len(chosen), 3):
        for column, run, label in zip(st.columns(3), chosen[start:start + 3], labels[start:start + 3]):
            with column:
                try:
                    points, score = state.embedding(run_store, run.id, method)
                except ModelLoadError as error:
                    st.caption(f"No map: {error}")
                    continue
                event = st.plotly_chart(charts.embedding_figure(points, data.y_test, label), key=f"map_{run.id}",
                                        on_select="rerun", selection_mode=("points", "box", "lasso"))
                st.caption(f"Silhouette {score:.2f} (cosine, in the full layer; 1 = tight, separate classes).")
                chosen_points = [p["customdata"] for p in (event.selection.points if event else [])]
                selected = chosen_points[:: max(1, len(chosen_points) // 10)][:10]  # spread over the selection
                if selected:
                    st.image([charts.enlarge(data.x_test[i], 2) for i in selected], width=56, output_format="PNG",
                             caption=[CLASSES[data.y_test[i]].hiragana for i in selected])
    st.caption("Each dot is a test image, placed by what the run's last hidden layer makes of it; colour is its "
               "true class. Select dots to see their images. Regularized runs usually draw tighter, more separate "
               "clusters: a higher silhouette.")

st.header("Most confident mistakes (test)")
for run, label in zip(chosen, labels):
    st.text(label)
    results.mistakes_gallery(run_store, data, run)
st.caption("Each image: true class → predicted class, with the model's confidence. "
           f"Classes: {' · '.join(c.label for c in CLASSES)}")
