"""Compare 2–6 finished runs: scores, curves, confusion matrices, per-class F1, verdicts
and each run's most confident mistakes."""

import streamlit as st

from kmnist_core import app_state, charts, compare, ui
from kmnist_core.classes import CLASSES

st.title("Compare")
run_store = app_state.store()
runs = {run.id: run for run in run_store.list_runs() if compare.scored(run)}

if len(runs) < 2:
    ui.offer_quick_training(
        run_store,
        "Comparing needs at least two trained runs" + (f"; there is {len(runs)} so far." if runs else
                                                        ", and there is none yet.")
        + " Train the study's variants on the Train page (**Train all variants**), or start a quick one here.",
    )
    ui.live_monitor(run_store, st.session_state.get(app_state.FOCUS_KEY), compact=True)
    st.stop()

picked = st.multiselect(
    "Runs to compare (2 to 6)", list(runs), default=compare.default_selection(runs.values()),
    format_func=lambda run_id: compare.run_label(runs[run_id]), max_selections=compare.MAX_RUNS,
)
if len(picked) < 2:
    st.info("Pick at least two runs.")
    st.stop()
chosen = [run_store.get(run_id) for run_id in picked]  # with their per-epoch history
labels = [compare.run_label(run) for run in chosen]

st.header("Scores")
st.dataframe(
    compare.table_rows(chosen), hide_index=True,
    column_config={name: st.column_config.NumberColumn(format="%.1f") for name in
                   ("test accuracy %", "train−held-out accuracy gap %")}
    | {name: st.column_config.NumberColumn(format="%.3f") for name in
       ("macro F1", "Cohen's kappa", "test loss", "held-out−train loss gap")},
)
st.caption("Held-out = the validation split, or the test split for runs trained on all training "
           "images (final). A large gap means the model memorised its training images.")

st.header("Verdicts")
for run in chosen:
    st.markdown(f"**{compare.run_label(run)}**")
    ui.show_verdict(run)

st.header("Learning curves")
st.plotly_chart(charts.curves_figure(list(zip(labels, [run.history for run in chosen])), height=420))

st.header("Confusion matrices (test)")
for start in range(0, len(chosen), 3):
    for column, run, label in zip(st.columns(3), chosen[start:start + 3], labels[start:start + 3]):
        column.plotly_chart(charts.confusion_figure(run.metrics["test"]["confusion"], label, compact=True),
                            key=f"confusion_{run.id}")

st.header("F1 per class (test)")
st.plotly_chart(charts.per_class_f1_figure([(label, run.metrics["test"]["per_class"])
                                            for label, run in zip(labels, chosen)]))

st.header("Most confident mistakes (test)")
data, problem = app_state.dataset()
if problem:
    ui.data_problem(problem)
    st.stop()
for run, label in zip(chosen, labels):
    st.markdown(f"**{label}**")
    ui.mistakes_gallery(run_store, data, run)
st.caption("Each image: true class → predicted class, with the model's confidence. "
           f"Classes: {' · '.join(c.label for c in CLASSES)}")
