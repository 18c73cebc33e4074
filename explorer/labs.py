"""What the Labs page and Home show and queue, as plain data: a lab queued as a study with
the learner's prediction (under the session's share of a shared server), the learner's
attempts at each lab, their progress in words, and the answer read from their runs. A lab
is a stored study, so it survives reloads and restarts. No Streamlit here."""

import dataclasses

from kmnist_core.labs import LABS, WAITING, answer, check_prediction, enqueue_lab

from . import jobs
from .sweeps import progress_text


def submit(store, lab_id, prediction, owner, data_source) -> int:
    """Queue lab ``lab_id`` with the learner's ``prediction`` (required: one of the lab's
    choices) for session ``owner`` and wake the worker; the study id. ParameterError
    without a prediction, SessionLimitError over the session's share: nothing queued."""
    lab = LABS[lab_id]
    check_prediction(lab, prediction)
    configs = lab.configs()
    jobs.check_room(store, owner, len(configs), f"the {lab.title} lab")
    study_id, _ = enqueue_lab(store, lab, prediction, data_dir=jobs.data_dir(), data_source=data_source, owner=owner)
    jobs.wake_worker(store)
    return study_id


def attempts(store) -> dict:
    """{lab id: [its studies, newest first]} for every lab (empty when never tried)."""
    found = {lab_id: [] for lab_id in LABS}
    for study in store.list_studies(kind="lab"):
        if study.lab in found:
            found[study.lab].append(study)
    return found


def study_runs(runs, study_id) -> list:
    """The study's runs among ``runs`` (a listing, newest first), in queue order."""
    return sorted((run for run in runs if run.study_id == study_id), key=lambda run: run.id)


def with_history(runs, history) -> list:
    """The runs with their epochs (``history(run_id)``): the answers read the curves."""
    return [dataclasses.replace(run, history=history(run.id)) for run in runs]


def status_line(lab_id, study, runs) -> str:
    """One line for Home and the lab picker: where the learner's latest attempt is."""
    title = LABS[lab_id].title
    if study is None:
        return f"{title}: not tried yet"
    if any(not run.finished for run in runs):
        return f"{title}: {progress_text(runs)}"
    return f"{title}: answered — {progress_text(runs)}"


def overview(tried, runs) -> dict:
    """{lab id: the status line of its latest attempt}, from ``attempts`` and a run listing."""
    lines = {}
    for lab_id, studies in tried.items():
        latest = studies[0] if studies else None
        lines[lab_id] = status_line(lab_id, latest, study_runs(runs, latest.id) if latest else [])
    return lines


def read(lab_id, runs, evidence=None):
    """The lab's answer from its runs (with history)."""
    return answer(LABS[lab_id], runs, evidence)


def prediction_matched(result, study) -> str | None:
    if result.status == WAITING or result.supported is None:
        return None
    if result.supported == study.prediction:
        return "Your prediction matches what your runs show."
    return f"Your prediction was: {study.prediction}. Your runs show otherwise."
