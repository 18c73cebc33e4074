"""Draw (or upload) a character and see what each trained model reads in it."""

import streamlit as st
from streamlit_drawable_canvas import st_canvas

from explorer import charts, compare, monitor, state
from kmnist_core.classes import CLASSES
from kmnist_core.preprocess import EmptyImageError, ImageError, prepare, read_image, to_kmnist

CANVAS_SIZE = 280  # ten canvas pixels per KMNIST pixel
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

picked = st.multiselect("Models to ask (one, or several side by side)", list(models),
                        default=[compare.most_accurate(models.values()).id], max_selections=compare.MAX_RUNS,
                        format_func=lambda run_id: compare.run_label(models[run_id]))

drawing_column, preview_column = st.columns([3, 2])
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
            sample = None if canvas.image_data is None else prepare(canvas.image_data)
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

if sample is not None and picked:
    with st.spinner("Loading the models…"):
        from kmnist_core.inference import ModelLoadError, top_k  # TensorFlow, only here

    st.subheader("Predictions")
    for start in range(0, len(picked), 3):
        for column, run_id in zip(st.columns(3), picked[start:start + 3]):
            with column:
                run = models[run_id]
                st.text(compare.run_label(run))
                try:
                    probabilities = state.predictor(run_store, run_id)(sample[None])[0]
                except ModelLoadError as error:
                    st.error("This model cannot be used:")
                    st.text(str(error))
                    continue
                top = top_k(probabilities, 3)
                st.markdown(f"Reads **{top[0]['hiragana']}** ({top[0]['romaji']}) "
                            f"with {top[0]['probability']:.0%} confidence")
                st.plotly_chart(charts.probability_figure(top), key=f"probabilities_{run_id}")
elif sample is not None:
    st.info("Pick at least one model above to read the character.")
