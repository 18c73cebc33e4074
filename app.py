"""KMNIST Explorer: `streamlit run app.py`.

This file is the Home page (what KMNIST is, its ten classes, where the data comes from)
and the navigation to the others. It must open fast, so nothing here imports
TensorFlow; only the Draw page loads models.
"""

# pandas first, before anything is drawn: plotly and st.dataframe import it lazily, and a
# click on another page during that first import stops the script mid-import, leaving a
# half-initialised module ("partially initialized module 'pandas'") for every later chart.
import pandas  # noqa: F401
import streamlit as st

from explorer import charts, labs, monitor, state
from kmnist_core.classes import CLASSES
from kmnist_core.study import QUICK_STUDY

ATTRIBUTION = (
    '"KMNIST Dataset" (created by CODH), adapted from "Kuzushiji Dataset" (created by NIJL '
    "and others), doi:10.20676/00000341, licensed under "
    "[CC BY-SA 4.0](https://creativecommons.org/licenses/by-sa/4.0/). "
    "Tarin Clanuwat et al., *Deep Learning for Classical Japanese Literature*, 2018, "
    "[arXiv:1812.01718](https://arxiv.org/abs/1812.01718)."
)


def lab_progress():
    """Where the learner is in each guided lab (they are stored studies: this survives restarts)."""
    st.page_link("pages/labs.py", label="Or take a guided lab: predict, train, read the answer",
                 icon=":material/science:")
    run_store = state.store_if_usable()  # Home needs no run store; the other pages say what is wrong
    if run_store is None:
        return
    lines = labs.overview(labs.attempts(run_store), state.runs(run_store)).values()
    st.text("\n".join(f"· {line}" for line in lines))


def home():
    st.title("KMNIST Explorer")
    st.markdown(
        "Learn by doing how **regularization** shapes a neural network. **Kuzushiji-MNIST** "
        "holds 28×28 greyscale images of ten hiragana written in *kuzushiji*, the cursive "
        "style of pre-modern Japanese books — most readers of modern Japanese cannot read it. "
        "It is a drop-in replacement for MNIST digits, and harder: the same kana was written "
        "in many shapes, so models overfit easily."
    )
    st.markdown(
        "**Train** an underfitting, an overfitting and four regularized variants and watch them "
        "learn · **Compare** their scores, curves, weights and mistakes, and whether a difference is "
        "real · **Sweep** one setting over its whole range · **Draw** a character and see what each "
        "model reads, and why."
    )
    data, problem = state.dataset()
    if problem:
        monitor.data_problem(problem)
        return
    st.page_link("pages/train.py", label="Start: train the study's variants", icon=":material/arrow_forward:")
    st.caption(f"A first step there: **Quick study** trains all six variants on {QUICK_STUDY['train_size']:,} "
               f"images for {QUICK_STUDY['epochs']} epochs, a minute or two, enough to see one memorise and the "
               f"others hold back. Or pick one variant, change a setting and press **Start training**.")
    lab_progress()

    st.header("The ten classes")
    st.caption("Each column: the modern hiragana, its romaji, and real samples from the training split.")
    strips = state.sample_strip(per_class=4)
    for row in (CLASSES[:5], CLASSES[5:]):
        for column, kana in zip(st.columns(5), row):
            column.markdown(f"<div style='font-size:2.6rem;line-height:1.1'>{kana.hiragana}</div>"
                            f"<b>{kana.romaji}</b> · class {kana.index} · {kana.codepoint}",
                            unsafe_allow_html=True)
            column.image(charts.enlarge(strips[kana.index], 2), width="stretch", output_format="PNG")

    st.header("The data")
    counts = data.class_counts()
    st.markdown(f"Loaded from **{data.source}**: {len(data.y_train):,} training and "
                f"{len(data.y_test):,} test images.")
    st.dataframe(
        {"class": [c.label for c in CLASSES], "train": counts["train"], "test": counts["test"]},
        hide_index=True,
    )
    st.caption("KMNIST is published by the ROIS-DS Center for Open Data in the Humanities (CODH) at "
               "https://github.com/rois-codh/kmnist. The full set has 60,000 training and 10,000 test "
               "images, 6,000 and 1,000 per class; a smaller set such as kmnist-mini keeps the official "
               "files' layout. Set KMNIST_DATA_DIR to choose the folder.")
    st.subheader("License")
    st.markdown(ATTRIBUTION)


st.set_page_config(page_title="KMNIST Explorer", page_icon="📜", layout="wide")
PAGES = {
    "pages/train.py": st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    "pages/compare.py": st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    "pages/sweep.py": st.Page("pages/sweep.py", title="Sweep", icon=":material/ssid_chart:"),
    "pages/labs.py": st.Page("pages/labs.py", title="Labs", icon=":material/science:"),
    "pages/draw.py": st.Page("pages/draw.py", title="Draw", icon=":material/draw:"),
}
navigation = st.navigation([st.Page(home, title="Home", icon=":material/home:", default=True), *PAGES.values()])
state.arrived_through_app()
deep_link = state.pending_deep_link()
if deep_link and deep_link[0] in PAGES:
    state.keep_link_query(deep_link[1])  # switch_page clears the address's query: the page reads it here
    st.switch_page(PAGES[deep_link[0]])
navigation.run()
