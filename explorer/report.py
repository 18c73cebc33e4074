"""A study's report for the app's download buttons (``kmnist_core.report``), on the data the
app loaded, so its McNemar sentences pair the runs' stored test predictions."""

from kmnist_core import report

MIME = {".html": "text/html", ".md": "text/markdown"}


def text(store, study_id, data, suffix) -> str:
    """The report of study ``study_id`` as ".html" or ".md"."""
    evidence = None if data is None else (data.y_test, lambda run_id: store.load_array(run_id, "test_proba"))
    return report.render(report.build(store, study_id, evidence), suffix)


def file_name(study_id, suffix) -> str:
    return f"kmnist-study-{study_id}-report{suffix}"
