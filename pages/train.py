"""Train: pick a preset, adjust it, queue it; watch the run learn, stop it, read its results."""

import streamlit as st

from kmnist_core import app_state, jobs, ui
from kmnist_core.checks import ParameterError
from kmnist_core.config import FAMILIES, STUDY_ORDER, VARIANTS

st.title("Train")
run_store = app_state.store()
data, data_problem = app_state.dataset()
if data_problem:
    ui.data_problem(data_problem)

app_state.init_form()
key = app_state.widget_key
form_column, run_column = st.columns([2, 3], gap="large")

with form_column:
    variant = st.selectbox("Variant preset", list(VARIANTS), key=app_state.VARIANT_KEY,
                           on_change=app_state.reset_form,
                           help="Choosing a preset resets every setting below to its values.")
    st.caption(VARIANTS[variant].summary)
    preset = jobs.form_defaults(variant)

    def hint(field):
        return f"Preset value: {preset[field]}"

    st.selectbox("Architecture", FAMILIES, key=key("family"), help=hint("family") +
                 " · dense: fully connected; cnn: two conv layers; bn_cnn: batch-normalized CNN")
    st.text_input("Hidden layer sizes", key=key("hidden_units"), help=hint("hidden_units") +
                  " · comma-separated, e.g. 512, 512; empty for none (CNN families)")
    left, right = st.columns(2)
    left.number_input("Dropout (hidden layers)", min_value=0.0, max_value=1.0, step=0.05,
                      key=key("dropout"), help=hint("dropout"))
    right.number_input("Input dropout (pixels)", min_value=0.0, max_value=1.0, step=0.05,
                       key=key("input_dropout"), help=hint("input_dropout"))
    left.number_input("L1 penalty", min_value=0.0, step=1e-5, format="%.1e", key=key("l1"), help=hint("l1"))
    right.number_input("L2 penalty", min_value=0.0, step=1e-4, format="%.1e", key=key("l2"), help=hint("l2"))
    left.number_input("Epochs", min_value=1, step=1, key=key("epochs"), help=hint("epochs"))
    right.number_input("Batch size", min_value=1, step=16, key=key("batch_size"), help=hint("batch_size"))
    left.number_input("Learning rate", min_value=0.0, step=1e-4, format="%.1e", key=key("learning_rate"),
                      help=hint("learning_rate"))
    use_kfold = right.toggle("k-fold CV", key=key("use_kfold"),
                             help="k-fold cross-validation: train k models on k splits of the training images and report mean ± std (k times slower).")
    right.number_input("k (folds)", min_value=2, step=1, key=key("k"), disabled=not use_kfold)

    form = app_state.remember_form()
    changed = [f"{field} {preset[field]} → {form[field]}" for field in jobs.FORM_FIELDS
               if form[field] != preset[field] and (field != "k" or form["use_kfold"])]
    st.caption("Changed from the preset: " + "; ".join(changed) if changed else "All settings are the preset's.")

    config = study = None
    try:
        config = jobs.config_from_form(variant, form)
        study = jobs.study_configs(form)
    except ParameterError as error:
        st.error(f"Cannot train with these settings: {error}")

    st.button("Start training", key="start_training", type="primary", on_click=app_state.start_training,
              disabled=config is None or bool(data_problem), icon=":material/play_arrow:")
    st.button("Train all variants", key="train_all", on_click=app_state.start_study,
              disabled=study is None or bool(data_problem), icon=":material/playlist_add:",
              help=f"Queues {' → '.join(STUDY_ORDER)}, each with its own architecture and "
                   f"regularization and this form's epochs, batch size, learning rate and k-fold setting.")
    st.button("Reset to preset", key="reset_form", on_click=app_state.reset_form, icon=":material/restart_alt:")

with run_column:
    ui.run_browser(run_store, app_state.VIEW_KEY)
