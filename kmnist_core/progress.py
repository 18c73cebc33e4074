"""A training's progress as a tqdm bar: on the terminal for the CLI, as the notebook's own
widget for the Python API (``tqdm.auto``). tqdm fits the bar to the terminal's width and
throttles its redraws; what is ours is the text: epoch, step, the loss Keras minimises and
the trainer's own ETA (which leaves out the first batch's graph tracing, unlike a rate
measured here). When the output is not a terminal (a log file, a pipe, CI) there is no bar
to redraw: each epoch's end is one plain line instead of a run of carriage returns."""

import sys
from contextlib import suppress

from tqdm.std import tqdm

from .status import Status

TICKS = 1000  # the bar counts thousandths of the training


class ProgressBar:
    """Fed ``Progress`` records, from this process's training or from the store (a run the
    background worker trains). One tqdm bar per training: ``close`` ends it, and the next
    ``show`` starts a new one, so a sweep's runs each get their own."""

    def __init__(self, tqdm_class=tqdm, **options):
        self.tqdm_class = tqdm_class
        self.options = {"bar_format": "{percentage:3.0f}%|{bar:30}| {desc}", "mininterval": 0.2, **options}
        self.bar = None
        file = self.options.get("file") or sys.stderr
        self.plain_lines = tqdm_class is tqdm and not (hasattr(file, "isatty") and file.isatty())
        self.last_line = None

    def show(self, progress):
        fold = f"fold {progress.fold} " if progress.fold else ""
        loss = "" if progress.fit_loss is None else f" loss {progress.fit_loss:.3f}"
        eta = "…" if progress.eta is None else f"{progress.eta:.0f}s"
        self._draw(round(progress.fraction * TICKS),
                   f"{fold}epoch {progress.epoch}/{progress.epochs} step {progress.step}/{progress.steps}{loss} ETA {eta}",
                   force=progress.step == progress.steps)

    def show_state(self, run):
        if run.status == Status.QUEUED:
            self._draw(0, "queued: another training is running", force=True)
        elif run.progress:
            self.show(run.progress)

    def _draw(self, ticks, text, force):
        if self.plain_lines:  # the moments a bar would be forced to show: epoch ends, queued
            if force and text != self.last_line:
                self.last_line = text
                self.write(f"{ticks * 100 // TICKS:3d}% {text}")
            return
        with suppress(OSError):  # a hung-up terminal (SIGHUP) must not fail the training
            if self.bar is None:
                self.bar = self.tqdm_class(total=TICKS, **self.options)
            self.bar.set_description_str(text, refresh=False)
            self.bar.update(ticks - self.bar.n)  # redrawn at most every mininterval
            if force:
                self.bar.refresh()

    def write(self, message):
        """A line of its own, above the bar (tqdm clears it and draws it again below)."""
        with suppress(OSError):
            self.tqdm_class.write(message, file=self.options.get("file") or sys.stderr)

    def close(self):
        self.last_line = None
        if self.bar is not None:
            with suppress(OSError):
                self.bar.close()
            self.bar = None
