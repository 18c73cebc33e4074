"""The training progress bar (tqdm, fed the trainer's own ``Progress`` records)."""

import io

from kmnist_core.cli import main
from kmnist_core.progress import ProgressBar
from kmnist_core.records import Progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_bar_shows_the_trainers_epoch_step_loss_and_eta():
    out = Terminal()
    bar = ProgressBar(file=out, mininterval=0)
    bar.show(Progress(epoch=1, epochs=2, step=5, steps=10, fit_loss=1.25, eta=None))
    bar.show(Progress(epoch=2, epochs=2, step=10, steps=10, fit_loss=0.5, eta=3.4, fold="2/5"))
    bar.close()
    frames = out.getvalue().replace("\r", "\n").splitlines()
    assert any(f.startswith(" 25%|") and f.endswith("| epoch 1/2 step 5/10 loss 1.250 ETA …") for f in frames)
    assert frames[-1].startswith("100%|") and frames[-1].endswith("| fold 2/5 epoch 2/2 step 10/10 loss 0.500 ETA 3s")
    assert bar.bar is None  # the next training gets a bar of its own


def test_off_a_terminal_each_epoch_is_one_plain_line():
    """In a log file or a pipe a bar's carriage returns pile up on one line, and its
    last frame came out twice."""
    out = io.StringIO()
    bar = ProgressBar(file=out, mininterval=0)
    for epoch in (1, 2):
        for step in (5, 10, 10):  # the store repeats the last record while the epoch is scored
            bar.show(Progress(epoch=epoch, epochs=2, step=step, steps=10, fit_loss=0.5, eta=1.0))
    bar.close()
    assert "\r" not in out.getvalue()
    assert out.getvalue().splitlines() == [" 50% epoch 1/2 step 10/10 loss 0.500 ETA 1s",
                                           "100% epoch 2/2 step 10/10 loss 0.500 ETA 1s"]


def test_a_cli_training_ends_its_bar_before_the_result_line(home, synthetic_dir, capsys):
    assert main(["--data-dir", str(synthetic_dir), "train", "--variant", "overfit", "--hidden-units", "16",
                 "--epochs", "2"]) == 0
    captured = capsys.readouterr()  # not a terminal: plain lines
    lines = captured.err.splitlines()
    epochs = [line for line in lines if "% epoch" in line]
    assert [line.split(" step")[0] for line in epochs] == [" 50% epoch 1/2", "100% epoch 2/2"]
    assert "run 1 completed" in lines  # the worker's log line on a line of its own, not after the bar
    assert captured.out.startswith("run 1 completed: test accuracy")
