"""A study's report for the app's download buttons: the engine's report (kmnist_core.report)
with the Compare page's conclusion sentences added. The one place the report calls them."""

from kmnist_core import report

from . import compare


def conclusions(scored) -> list:
    """The sentences Compare draws from these runs (scored, with metrics)."""
    return [compare.loss_gap_summary(scored)] if len(scored) >= 2 else []


def text(store, study_id, data, suffix) -> str:
    """The report of study ``study_id`` as ".html" or ".md", on the app's loaded ``data``."""
    evidence = None if data is None else (data.y_test, lambda run_id: store.load_array(run_id, "test_proba"))
    return report.render(report.build(store, study_id, evidence, conclude=conclusions), suffix)


def file_name(study_id, suffix) -> str:
    return f"kmnist-study-{study_id}-report{suffix}"


MIME = {".html": "text/html", ".md": "text/markdown"}
