"""Draw (or upload) a character and see what each trained model reads in it."""

import streamlit as st
from streamlit_drawable_canvas import st_canvas

from explorer import charts, compare, monitor, state
from kmnist_core import familiar
from kmnist_core.classes import CLASSES
from kmnist_core.preprocess import EmptyImageError, ImageError, prepare, read_image, to_kmnist

state.enter_through_app("pages/draw.py")

CANVAS_SIZE = 280  # ten canvas pixels per KMNIST pixel
UNSURE = 0.5  # below this top probability the card says the model is unsure
METHODS = {"Occlusion": "occlusion", "Integrated gradients": "integrated_gradients"}
GRAD_CAM = "Grad-CAM"
EXPLAIN_HELP = ("Occlusion: hide each patch of the sample in turn and see how much the top class loses. "
                "Integrated gradients: add up the gradient from a blank image to the sample. Grad-CAM (CNNs): "
                "which regions of the last convolution's maps drive the class.")
HISTORICAL_NOTE = (
    "KMNIST holds kuzushiji: the cursive forms of these kana in books from before 1900, often quite unlike "
    "today's printed kana (see the real samples). A modern お or れ may be read as another class: the models "
    "learnt the historical shapes."
)


def clear_canvas():
    st.session_state["canvas_generation"] = st.session_state.get("canvas_generation", 0) + 1


st.title("Draw")
run_store = state.store()
data, problem = state.dataset()
st.caption(HISTORICAL_NOTE)

with st.expander("What to draw — real examples of each class from the training data", expanded=False):
    if problem:
        monitor.data_problem(problem)
    else:
        for column, kana, strip in zip(st.columns(10), CLASSES, state.sample_strip(per_class=2, columns=1)):
            column.markdown(f"<div style='text-align:center'><span style='font-size:1.8rem'>{kana.hiragana}"
                            f"</span><br>{kana.romaji}</div>", unsafe_allow_html=True)
            column.image(charts.enlarge(strip, 3), width="stretch", output_format="PNG")

models = {run.id: run for run in state.model_runs(run_store)}
if not models:
    monitor.offer_quick_training(run_store, "There is no trained model to read your drawing yet.")
    monitor.live_monitor(run_store, st.session_state.get(state.FOCUS_KEY))
    st.stop()

PICKED_KEY = "draw_picked"  # kept across pages: the learner comes back from Compare to the models they chose
default_model = compare.most_accurate(models.values()).id
state.keep(PICKED_KEY, lambda ids: [run_id for run_id in ids if run_id in models][:compare.MAX_RUNS],
           lambda: [default_model])
state.warm_up_in_background(run_store, (st.session_state[PICKED_KEY] or [default_model])[0])  # while the learner draws
picked = st.multiselect("Models to ask (one, or several side by side)", list(models), key=PICKED_KEY,
                        max_selections=compare.MAX_RUNS, format_func=lambda run_id: compare.run_label(models[run_id]))
if not picked:
    st.info("Pick a model above to read your drawing.")

# 2:1, so the 280-px canvas fits its column on an 800-px screen with the sidebar open
# (3:2 left it 271 px: clipped on its right edge).
drawing_column, preview_column = st.columns([2, 1])
with drawing_column:
    source = st.segmented_control("Input", ["Draw", "Upload"], default="Draw", key="draw_source") or "Draw"
    sample, prompt, problem = None, None, None
    if source == "Draw":
        pen = st.slider("Pen width", 8, 40, 18, help="18 px on this 280 px canvas is about a KMNIST stroke.")
        canvas = st_canvas(stroke_width=pen, stroke_color="#000000", background_color="#FFFFFF",
                           width=CANVAS_SIZE, height=CANVAS_SIZE, return_image_data=True,
                           key=f"canvas_{st.session_state.get('canvas_generation', 0)}")
        st.button("Clear", on_click=clear_canvas, icon=":material/ink_eraser:")
        try:
            sample = None if canvas.image_data is None else prepare(canvas.image_data, background="light")
        except EmptyImageError:
            sample = None
        if sample is None:
            prompt = "Draw a character on the canvas: one of the ten above."
    else:
        # No type= filter: Streamlit would reject other files silently and keep showing the
        # previous one; read_image names what is wrong with the file actually chosen.
        upload = st.file_uploader("A picture of one character (PNG, JPEG, GIF, BMP or WebP)",
                                  help="Dark ink on light paper or light on dark; any size up to 10 MB.")
        if upload is None:
            prompt = "Upload a picture of one character."
        else:
            try:
                sample = to_kmnist(read_image(upload.getvalue()))
            except ImageError as error:
                problem = f"Cannot read this file: {error}"

with preview_column:
    st.markdown("**What the model sees** (28×28, like a KMNIST sample)")
    if problem:
        st.warning(problem)
        st.text(f"File: {upload.name}")
    elif sample is None:
        st.info(prompt)
    else:
        st.image(charts.enlarge(sample, 8), width=224, output_format="PNG")



def reading(run_id, method):
    """One model's card: what it reads, why (a heat map over the sample), and the training
    images it finds most alike."""
    run = models[run_id]
    st.text(compare.run_label(run))
    try:
        model = state.loaded(run_store, run_id)
    except ModelLoadError as error:
        st.error("This model cannot be used:")
        st.text(str(error))
        return
    top = top_k(model.predict(sample[None])[0], 3)
    st.markdown(f"Reads **{top[0]['hiragana']}** ({top[0]['romaji']}) with {top[0]['probability']:.1%} confidence")
    unusual = data is not None and state.strangeness(run_store, run_id, sample) > 1
    if unusual:  # beside the confidence it qualifies
        st.warning(f"Unlike every character it learnt: farther from all its training images (in pixels or in its "
                   f"last hidden layer) than {familiar.QUANTILE:.0%} of real characters it never saw. It must still "
                   f"name one of ten classes: {top[0]['probability']:.0%} confidence is not correctness.")
    st.plotly_chart(charts.probability_figure(top), key=f"probabilities_{run_id}")
    if method == GRAD_CAM and not explain.supports_grad_cam(model.model):
        heat, how = explain.saliency(model.model, sample), "occlusion: Grad-CAM needs a convolutional layer"
    elif method == GRAD_CAM:
        heat, how = explain.grad_cam(model.model, sample), "Grad-CAM"
    else:
        heat, how = explain.saliency(model.model, sample, method=METHODS[method]), method.lower()
    st.image(explain.overlay(sample, heat, scale=6), output_format="PNG", width=168,
             caption=f"What drove {top[0]['hiragana']} ({how}): bright = strong evidence")
    if data is not None:
        indices, _ = state.neighbours(run_store, run_id).nearest(sample, k=5)
        st.image([charts.enlarge(data.x_train[i], 2) for i in indices], width=56, output_format="PNG",
                 caption=[CLASSES[data.y_train[i]].hiragana for i in indices])
        st.caption("Looks like these training images (nearest in the model's last hidden layer).")
    if not unusual and top[0]["probability"] < UNSURE and data is not None:
        runner_up = top[1]
        st.warning(f"Unsure: under {UNSURE:.0%} for any class. The runner-up is {runner_up['hiragana']} "
                   f"({runner_up['romaji']}); real examples of it:")
        st.image(charts.enlarge(state.sample_strip(per_class=4)[runner_up["class"]], 2), output_format="PNG")


if sample is not None and picked:
    with st.spinner("Loading TensorFlow and the models…"):
        from kmnist_core import explain
        from kmnist_core.inference import ModelLoadError, top_k  # TensorFlow, only here

    st.subheader("Predictions")
    method = st.segmented_control("Explain with", [*METHODS, GRAD_CAM], default="Occlusion",
                                  key="explain_method", help=EXPLAIN_HELP) or "Occlusion"
    per_row = min(3, len(picked))  # one model's card the page's width, not a third of it
    for start in range(0, len(picked), per_row):
        for column, run_id in zip(st.columns(per_row), picked[start:start + per_row]):
            with column:
                reading(run_id, method)
elif sample is not None:
    st.info("Pick at least one model above to read the character.")
