"""Train: pick a preset, adjust it, queue it; watch the run learn, stop it, read its results."""

import streamlit as st

from explorer import form, jobs, monitor, sessions, state
from kmnist_core import estimate
from kmnist_core.checks import ParameterError
from kmnist_core.config import PARAMETERS, STUDY_ORDER, VARIANTS, check_against_data, describe, off_word, setting_text, too_short
from kmnist_core.status import Status
from kmnist_core.study import QUICK_STUDY, QUICK_STUDY_NAME, VARIANTS_STUDY, about_text, study_configs

state.enter_through_app("pages/train.py")

NOTICE_KEY = "train_notice"  # what the last button did, shown once above the buttons
SHARED_KEY = "study_shared"  # the toggle: "Train all variants" with this form's training settings
SHARED = ("epochs", "batch_size", "learning_rate", "train_size", "seed")


def the_study():
    """The study's configs: each variant's own preset, or with this form's training
    settings when the learner asked for that on purpose."""
    values = form.remember()
    shared = {name: values[name] for name in SHARED} if st.session_state.get(SHARED_KEY) else {}
    return study_configs(**shared)


def queue_runs(make_configs, what: str, rendered_variant=None, study=None) -> None:
    """Button callback: queue ``make_configs()`` unless this session queued the same a moment
    ago. The configs are built here, from the widgets' values at the click (a value typed
    and clicked away from in one go arrives with the click, after the page last ran).

    ``rendered_variant`` is the preset the form on screen belonged to. A click that arrives
    before the page has redrawn after a preset change carries the old preset's values with
    the new preset's name: nothing is queued, the new preset's values are loaded, and the
    learner is asked to look and press again. ``study`` (kind, name, purpose) queues them as one study."""
    if rendered_variant is not None and st.session_state[form.widget_key("variant")] != rendered_variant:
        form.reset()
        st.session_state[NOTICE_KEY] = ("Not queued: the form was still switching presets. These are the "
                                        f"{st.session_state[form.widget_key('variant')]} preset's settings; "
                                        "check them and press Start again.")
        return
    try:
        configs = make_configs()
        data, _ = state.dataset()
        if data is not None:  # the study's shared training images too, not only the form's run
            check_against_data(configs, len(data.y_train))
    except ParameterError as error:
        st.session_state[NOTICE_KEY] = f"Not queued: {form.problem_text(error)}"
        return
    if not form.first_time_queueing(configs[0]):
        st.session_state[NOTICE_KEY] = f"Not queued again: {what} with these settings was queued a moment ago."
        return
    run_store = state.store()
    try:
        ids = jobs.submit(run_store, configs, what=what, study=study, **state.queue_as())
    except sessions.SessionLimitError as error:
        st.session_state[NOTICE_KEY] = str(error)
        return
    state.changed(run_store)
    state.watch(ids[0])
    st.session_state[NOTICE_KEY] = None


def value_text(name, values=None) -> str:
    """The preset's value (or ``values``') as a learner reads it: on/off, "all", "off"."""
    return setting_text(name, (values or preset)[name])


def widget(name, column=st, **extra):
    """The widget for one parameter, its limits and tooltip read from ``PARAMETERS``."""
    parameter = PARAMETERS[name]
    key, label, text = form.widget_key(name), parameter.label, f"{parameter.help} Preset: {value_text(name)}."
    if parameter.off is not None:  # a bare 0 in the box must not read as "no training images"
        label = f"{label} ({parameter.off} = {off_word(name)})"
    if parameter.kind == "choice":
        return column.selectbox(label, parameter.choices, key=key, help=text, **extra)
    if parameter.kind == "bool":
        return column.toggle(label, key=key, help=text, **extra)
    if parameter.kind == "units":
        return column.text_input(label, key=key, help=text, **extra)
    # No min_value/max_value: the browser would keep showing an out-of-range number while
    # silently sending the last good one; the core's check names the limit instead.
    if parameter.kind == "int":
        return column.number_input(label, step=1, key=key, help=text, **extra)
    return column.number_input(label, key=key, help=text, format="%.2g" if parameter.high <= 0.1 else "%.3g",
                               step=extra.pop("step", 0.05), **extra)


st.title("Train")
run_store = state.store()
data, data_problem = state.dataset()
if data_problem:
    monitor.data_problem(data_problem)

QUERY_KEY = "train_applied_query"  # the URL parameters already loaded into the form
query = state.link_query()
if query and query != st.session_state.get(QUERY_KEY):
    st.session_state[QUERY_KEY] = query
    loaded, problems = form.from_query(query)
    form.load(loaded)
    if problems:
        st.warning(f"Part of the link was not applied (the preset's value is used instead): "
                   f"{form.problem_text(ParameterError(problems))}")
current = form.init()
preset = form.defaults(current["variant"])
form_column, run_column = st.columns([2, 3], gap="large")

with form_column:
    variant = st.selectbox(PARAMETERS["variant"].label, list(VARIANTS), key=form.widget_key("variant"),
                           on_change=form.reset, help="Choosing a preset resets every setting below to its values.")
    st.caption(VARIANTS[variant].summary)
    widget("family")
    widget("hidden_units")
    left, right = st.columns(2)
    widget("dropout", left)
    widget("input_dropout", right)
    widget("l1", left, step=1e-5)
    widget("l2", right, step=1e-4)
    widget("epochs", left)
    widget("batch_size", right)
    widget("learning_rate", left, step=1e-4)
    widget("train_size", right)
    with st.expander("More: early stopping, augmentation, seed, optimizer, weight averaging, k-fold"):
        left, right = st.columns(2)
        widget("patience", left)
        widget("seed", right)
        widget("optimizer", left)
        widget("schedule", right)
        widget("label_smoothing", left, step=0.05)
        widget("ema", left, step=0.001)
        widget("augment", right)
        use_kfold = right.toggle("k-fold CV", key=form.widget_key("use_kfold"),
                                 help=PARAMETERS["kfold"].help.replace("; 0: off)", ")") + f" Preset: {value_text('kfold')}.")
        widget("kfold", left, disabled=not use_kfold)

    values = form.remember()
    shared = form.to_query(values)
    if shared != st.query_params.to_dict():
        st.query_params.from_dict(shared)
        st.session_state[QUERY_KEY] = shared  # our own write, not a link to load
    changed = form.changed(values)
    st.caption("Changed from the preset: " + "; ".join(changed) if changed else "All settings are the preset's.")
    st.caption("The page's address holds these settings: copy it to share or bookmark this setup.")

    config = None
    try:
        config = form.to_config(values)
        if data is not None:
            check_against_data([config], len(data.y_train))
    except ParameterError as error:
        config = None
        st.error(f"Cannot train with these settings: {form.problem_text(error)}")
    if config is not None:
        warning = too_short(config)
        if warning:
            st.warning(warning)
        if data is not None:
            images = estimate.train_images(config, len(data.y_train))
            seconds, basis = estimate.estimate(config, images,
                                               [run for run in state.runs(run_store) if run.status == Status.COMPLETED])
            up_to = "up to " if basis == estimate.ROUGH_BASIS else ""
            st.caption(f"Expected training time on this machine: {up_to}{about_text(seconds)} ({basis}).")
            if seconds > estimate.LONG:
                fewer_images, fewer_epochs = estimate.within(config, images, seconds)
                st.warning(f"This run would take about {monitor.duration(seconds)} here. To have it under "
                           f"{estimate.LONG / 60:.0f} minutes, lower **{PARAMETERS['train_size'].label}** to "
                           f"{fewer_images:,} (from {images:,}) or **Epochs** to {fewer_epochs}.")
        st.caption(f"Will be stored as variant {config.variant}, named from what differs from its preset:")
        st.text(describe(config))

    if st.session_state.get(NOTICE_KEY):
        st.info(st.session_state[NOTICE_KEY])
    st.button("Start training", key="start_training", type="primary", icon=":material/play_arrow:", wrap=True,
              on_click=queue_runs, args=(lambda: [form.to_config(form.remember())], "this run", variant),
              disabled=config is None or bool(data_problem))
    st.button("Train all variants", key="train_all", icon=":material/playlist_add:", wrap=True,
              on_click=queue_runs, args=(the_study, "the study", None, VARIANTS_STUDY), disabled=bool(data_problem),
              help=f"Queues {' → '.join(STUDY_ORDER)}, each with its own preset (architecture, regularization "
                   f"and epochs), as the study defines them.")
    state.keep(SHARED_KEY, bool, lambda: False)  # kept across page switches
    with_form_settings = st.toggle(
        "…with this form's training settings", key=SHARED_KEY, wrap=True,  # one line was cut short beside its help
        help="Off: every variant keeps its own preset. On: this form's epochs, batch size, learning rate, training "
             "images and seed apply to all six (each keeps its own architecture and regularization).")
    if with_form_settings:
        st.caption("All six with " + ", ".join(f"{PARAMETERS[name].label.lower()} {value_text(name, values)}"
                                                for name in SHARED) + ".")
    st.button("Quick study (1–2 minutes)", key="quick_study", icon=":material/bolt:", wrap=True,
              on_click=queue_runs, args=(lambda: study_configs(**QUICK_STUDY), "the quick study", None, QUICK_STUDY_NAME),
              disabled=bool(data_problem),
              help=f"The six variants on {QUICK_STUDY['train_size']:,} training images for "
                   f"{QUICK_STUDY['epochs']} epochs: small enough to finish in a minute or two on two cores, "
                   f"large enough that overfitting and what regularization does to it still show.")
    st.button("Reset to preset", key="reset_form", on_click=form.reset, icon=":material/restart_alt:", wrap=True)
    st.page_link("pages/sweep.py", label="Sweep a setting", icon=":material/ssid_chart:",
                 help="Train one setting over its whole range, a few seeds per value, and see its curve.")

with run_column:
    monitor.run_browser(run_store)
