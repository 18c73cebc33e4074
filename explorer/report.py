"""A study's report for the app's download buttons (``kmnist_core.report``), on the data the
app loaded, so its McNemar sentences pair the runs' stored test predictions."""

import streamlit as st

from kmnist_core import report
from kmnist_core.labs import LABS

MIME = {".html": "text/html", ".md": "text/markdown"}


def text(store, study_id, data, suffix) -> str:
    """The report of study ``study_id`` as ".html" or ".md", made once per state of its runs.

    Made when the page is drawn, not when the button is clicked: a deferred download is
    computed after the click, and a page that redraws in between (the live monitor polls
    every second) drops the link the browser asked for ("Deferred file … not found"). The
    same bytes keep the same link across redraws."""
    runs = tuple((run.id, run.status.value, run.finished_at, run.name) for run in store.study_runs(study_id))
    return _made(store, str(store.home), study_id, data, data is not None, runs, suffix)


@st.cache_data(max_entries=8, show_spinner="Writing the report…")
def _made(_store, home, study_id, _data, with_data, runs, suffix) -> str:
    evidence = None if _data is None else (_data.y_test, lambda run_id: _store.load_array(run_id, "test_proba"))
    return report.render(report.build(_store, study_id, evidence), suffix)


def file_name(store, study_id, suffix) -> str:
    """"kmnist-dropout-lab-study-7-report.html": which lab, for a folder of hand-ins. Only the
    lab's id goes in (ours, from kmnist_core.labs), never a name a learner typed."""
    lab = store.get_study(study_id).lab
    return f"kmnist-{f'{lab}-lab-' if lab in LABS else ''}study-{study_id}-report{suffix}"
