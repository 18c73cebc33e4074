"""Labs: one question at a time. Predict, train the few runs that answer it (one click,
about two minutes), and read the answer from your own runs."""

import streamlit as st

from explorer import charts, monitor, results, sessions, state
from explorer import labs as view
from kmnist_core.checks import ParameterError
from kmnist_core.labs import LABS, NOT_SHOWN, SHOWN, WAITING, group_runs
from kmnist_core.sweep import summarise

state.enter_through_app("pages/labs.py")

PICK_KEY = "lab_pick"
NOTICE_KEY = "lab_notice"


def prediction_key(lab_id) -> str:
    return f"lab_prediction_{lab_id}"


def start(lab_id) -> None:
    """Button callback: queue the lab with the prediction picked at the click."""
    try:
        view.submit(state.store(), lab_id, st.session_state.get(prediction_key(lab_id)), **state.queue_as())
        st.session_state[NOTICE_KEY] = None
        st.session_state[prediction_key(lab_id)] = None  # another attempt asks for a fresh prediction
        state.changed(state.store())
    except ParameterError:
        st.session_state[NOTICE_KEY] = "Pick your prediction first: it is the point of the lab."
    except sessions.SessionLimitError as error:
        st.session_state[NOTICE_KEY] = str(error)


def chart(lab, runs, run_store) -> None:
    """The one view that answers the lab's question."""
    groups = group_runs(lab, runs)
    done = [run for group in groups.values() for run in group]
    if not done:
        st.caption("The chart appears as the first runs finish.")
        return
    if lab.view == "learning_curve":
        plain = [run for run in done if run.variant == "overfit"]
        st.plotly_chart(charts.sweep_figure(summarise(plain, "train_size"), "train_size"),
                        key=f"lab_chart_{lab.id}_{len(done)}")
        st.caption("The unregularized network's learning curve; the dropout run's figures are in the answer.")
    elif lab.view == "seeds":
        st.plotly_chart(charts.seed_band_figure({label: [run.history for run in group]
                                                 for label, group in groups.items() if group}),
                        key=f"lab_chart_{lab.id}_{len(done)}")
    else:
        st.plotly_chart(charts.curves_figure([(run.name, run.history) for run in done],
                                             colour_keys=[label for label, group in groups.items() for _ in group]),
                        key=f"lab_chart_{lab.id}_{len(done)}")
    if lab.view == "weights":
        from kmnist_core.inference import ModelLoadError  # TensorFlow: only for the pictures

        for column, run in zip(st.columns(len(done)), done):
            with column:
                st.text(run.name)
                try:
                    picture, _, count = state.first_layer_picture(run_store, run.id)
                    st.image(picture, output_format="PNG", width="stretch",
                             caption=f"{count} strongest first-layer units (grey = 0)")
                except ModelLoadError as error:
                    st.caption(f"No picture: {error}")


def show(run_store, lab, study) -> None:
    """The learner's attempt: prediction, progress, chart and answer, redrawn while it trains."""
    st.text(f"Your prediction, chosen before the runs started: {study.prediction}")

    def body(runs):
        mine = view.with_history(view.study_runs(runs, study.id), lambda run_id: state.history(run_store, run_id))
        st.text(view.progress_text(mine))
        chart(lab, mine, run_store)
        data, _ = state.dataset()
        evidence = None if data is None else (data.y_test, lambda run_id: run_store.load_array(run_id, "test_proba"))
        result = view.read(lab.id, mine, evidence)
        if result.status == SHOWN:
            st.success(result.text)
        elif result.status == NOT_SHOWN:
            st.warning(result.text)
            st.info(result.caveat)
        else:
            st.caption(result.text)
        matched = view.prediction_matched(result, study)
        if matched:
            st.text(f"Your runs support: {result.supported}. {matched}")
        if result.status != WAITING:
            st.markdown(f"**What to try next:** {lab.next_steps}")
        if mine and all(run.finished for run in mine):
            results.report_buttons(run_store, study.id, data, "the report")

    monitor.polled(run_store, body)


st.title("Labs")
st.caption("Each lab asks one question about regularization. Predict the answer first, then one click trains the "
           "few runs that answer it (about two minutes on two cores), and the answer is read from your own runs, "
           "with their numbers. Labs are stored: leave and come back any time.")
run_store = state.store()
data, data_problem = state.dataset()
if data_problem:
    monitor.data_problem(data_problem)

tried = view.attempts(run_store)
lines = view.overview(tried, state.runs(run_store))
# A new session (a reload) opens on the lab last started, in progress or answered: not always the first.
latest = max((studies[0] for studies in tried.values() if studies), key=lambda study: study.id, default=None)
first_lab = latest.lab if latest else next(iter(LABS))
state.keep(PICK_KEY, lambda picked: picked if picked in LABS else first_lab, lambda: first_lab)
lab_id = st.selectbox("Lab", list(LABS), key=PICK_KEY, format_func=lines.get)
lab = LABS[lab_id]
st.header(lab.title)
st.markdown(f"**{lab.question}**")
if tried[lab_id]:
    show(run_store, lab, tried[lab_id][0])
    if not all(run.finished for run in run_store.study_runs(tried[lab_id][0].id)):
        st.caption("Once these runs finish you can try the lab again, with a fresh prediction.")
        st.stop()
    st.subheader("Try it again")
st.radio("Your prediction (before anything trains)", lab.choices, index=None, key=prediction_key(lab_id))
runs_text = f"{len(lab.configs())} runs" + (f", {lab.seeds} seeds each setting" if lab.seeds > 1 else "")
st.caption(f"Queues {runs_text}: " + "; ".join(arm.label for arm in lab.arms) + ".")
if st.session_state.get(NOTICE_KEY):
    st.warning(st.session_state[NOTICE_KEY])
st.button("Start the lab", key=f"start_lab_{lab_id}", type="primary", icon=":material/science:", on_click=start,
          args=(lab_id,), disabled=bool(data_problem) or st.session_state.get(prediction_key(lab_id)) is None,
          help="Pick a prediction first.")
