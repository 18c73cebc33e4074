"""Sweep: a parameter's whole curve, with seeds. Pick a sweep and watch its curve fill in
as its runs finish; start a new one below."""

import streamlit as st

from explorer import charts, monitor, sessions, state
from explorer import sweeps as view
from kmnist_core.checks import ParameterError
from kmnist_core.config import LABELS, PARAMETERS, config_from_dict, too_short
from kmnist_core.sweep import MAX_RUNS, SWEEPABLE, best_sentence, loss_accuracy_sentence, summarise

state.enter_through_app("pages/sweep.py")

PICK_KEY = "sweep_pick"
NOTICE_KEY = "sweep_notice"


def key(field) -> str:
    return f"sweep_{field}"


def form_values() -> dict:
    return {field: st.session_state[key(field)] for field in view.FORM_FIELDS}


def new_example() -> None:
    """Callback (parameter changed): values worth trying for the new parameter, written
    the way it is read (a dropout sweep's values make no sense for epochs)."""
    st.session_state[key("values")] = SWEEPABLE[st.session_state[key("param")]].example


def start() -> None:
    """Button callback: queue the sweep from the widgets' values at the click."""
    data, _ = state.dataset()
    form = form_values()
    try:
        view.to_configs(form, None if data is None else len(data.y_train))
        st.session_state[PICK_KEY] = view.submit(state.store(), form, **state.queue_as())
        st.session_state[NOTICE_KEY] = None
        state.changed(state.store())
    except ParameterError as error:
        st.session_state[NOTICE_KEY] = f"Not queued: {view.problem_text(error)}"
    except sessions.SessionLimitError as error:
        st.session_state[NOTICE_KEY] = str(error)


def show(run_store, sweep) -> None:
    """The picked sweep, redrawn every second while anything trains."""
    def body(runs):
        mine = [run for run in runs if run.sweep_id == sweep.id]
        rows = summarise(mine, sweep.param, sweep.values)
        st.text(view.progress_text(mine))
        if any(row["finished"] for row in rows):
            finished = sum(row["finished"] for row in rows)
            st.plotly_chart(charts.sweep_figure(rows, sweep.param), key=f"sweep_figure_{sweep.id}_{finished}")
        else:
            st.info("The curve appears as the runs finish: one point per value after its first seed, then the "
                    "± std band as more seeds come in. Training goes on while you switch pages.")
        st.dataframe(view.table_rows(rows, sweep.param), hide_index=True)
        sentence = best_sentence(rows, sweep.param)
        if sentence:
            st.text(sentence)
            disagreement = loss_accuracy_sentence(rows, sweep.param)
            if disagreement:
                st.text(disagreement)
            short = too_short(config_from_dict(mine[0].config)) if sweep.param != "epochs" else None
            if short:  # the form warned before the sweep; the result is where it is read
                st.caption(f"Read this curve with care: {short}")
        waiting = view.queued_ids(mine, state.owner())
        if waiting:
            queued = "the queued run" if len(waiting) == 1 else f"the {len(waiting)} queued runs"
            st.button(f"Cancel {queued} of this sweep", key=f"cancel_sweep_{sweep.id}",
                      icon=":material/cancel:", on_click=monitor.cancel_runs, args=(run_store, waiting),
                      help="The run already training goes on; stop it from the Train page.")
        with st.expander(f"The {len(mine)} runs"):
            for run in mine:
                st.text(f"#{run.id} {run.name} — {run.status}")

    monitor.polled(run_store, body)


st.title("Sweep")
st.caption("A sweep trains one configuration for several values of one parameter, with a few seeds each, and "
           "draws train and held-out accuracy and loss against it: where held-out loss is lowest is the value to "
           "keep — if that dip is wider than the ± std band, which shows how much of a difference is the luck of "
           "a seed (one seed per value shows none). Over training images "
           "it is the learning curve.")
run_store = state.store()
data, data_problem = state.dataset()
if data_problem:
    monitor.data_problem(data_problem)

sweeps = {sweep.id: sweep for sweep in run_store.list_sweeps()}
if sweeps:
    newest = next(iter(sweeps))
    state.keep(PICK_KEY, lambda sweep_id: sweep_id if sweep_id in sweeps else newest, lambda: newest)
    picked = st.selectbox("Sweep", list(sweeps), key=PICK_KEY, format_func=lambda sweep_id: view.label(sweeps[sweep_id]))
    show(run_store, sweeps[picked])
else:
    st.info("No sweeps yet: start one below. A dropout sweep of the overfit network (4 values × 2 seeds) takes a "
            "few minutes on two cores.")

st.header("New sweep")
for field, value in view.defaults().items():  # the learner's form, kept across pages
    state.keep(key(field), lambda kept: kept, lambda value=value: value)
left, right = st.columns(2)
variant = left.selectbox(PARAMETERS["variant"].label, view.variants(), key=key("variant"),
                         help="Every run starts from this preset; only the swept parameter and the seed differ.")
param = right.selectbox("Parameter", list(SWEEPABLE), key=key("param"), format_func=LABELS.get, on_change=new_example,
                        help="The setting whose curve to draw.")
st.text_input("Values", key=key("values"), placeholder=SWEEPABLE[param].example,
              help=f"{PARAMETERS[param].help} Allowed: {PARAMETERS[param].allowed()}. Separate values with commas "
                   f"(1e-4 works); for hidden layer sizes each value is a network written as on the Train form "
                   f"(512, 256) and values are separated by semicolons: 64; 256; 1024.")
left, right = st.columns(2)
# No min_value/max_value on these two: the browser would show an out-of-range number while
# sending the last good one; the core's check names the limit instead.
left.number_input("Seeds per value", step=1, key=key("seeds"),
                  help=f"Each value is trained with this many seeds (the preset's seed, then the next ones); "
                       f"mean ± std over them. At most {MAX_RUNS} runs per sweep.")
right.number_input("Epochs per run", step=1, key=key("epochs"),
                   placeholder=f"the preset's {view.preset_epochs(variant)}", disabled=param == "epochs",
                   help="Empty: the preset's. Fewer epochs make a quicker sweep; the overfitting the study is "
                        "about shows after about 20.")

form = form_values()
configs = None
try:
    configs = view.to_configs(form, None if data is None else len(data.y_train))
except ParameterError as error:
    st.error(f"Cannot start this sweep: {view.problem_text(error)}")
if configs:
    st.caption(view.plan_text(form, configs))
    warning = too_short(configs[0]) if form["param"] != "epochs" else None  # over epochs, short runs are the point
    if warning:
        st.warning(warning)
if st.session_state.get(NOTICE_KEY):
    st.warning(st.session_state[NOTICE_KEY])
st.button("Start sweep", key="start_sweep", type="primary", icon=":material/play_arrow:", on_click=start,
          disabled=configs is None or bool(data_problem))
