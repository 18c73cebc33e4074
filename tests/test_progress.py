"""The training progress bar (tqdm, fed the trainer's own ``Progress`` records)."""

import io

from kmnist_core.cli import main
from kmnist_core.progress import ProgressBar
from kmnist_core.records import Progress


def test_the_bar_shows_the_trainers_epoch_step_loss_and_eta():
    out = io.StringIO()
    bar = ProgressBar(file=out, mininterval=0)
    bar.show(Progress(epoch=1, epochs=2, step=5, steps=10, fit_loss=1.25, eta=None))
    bar.show(Progress(epoch=2, epochs=2, step=10, steps=10, fit_loss=0.5, eta=3.4, fold="2/5"))
    bar.close()
    frames = out.getvalue().replace("\r", "\n").splitlines()
    assert any(f.startswith(" 25%|") and f.endswith("| epoch 1/2 step 5/10 loss 1.250 ETA …") for f in frames)
    assert frames[-1].startswith("100%|") and frames[-1].endswith("| fold 2/5 epoch 2/2 step 10/10 loss 0.500 ETA 3s")
    assert bar.bar is None  # the next training gets a bar of its own


def test_a_cli_training_ends_its_bar_before_the_result_line(home, synthetic_dir, capsys):
    assert main(["--data-dir", str(synthetic_dir), "train", "--variant", "overfit", "--hidden-units", "16",
                 "--epochs", "2"]) == 0
    captured = capsys.readouterr()
    lines = captured.err.replace("\r", "\n").splitlines()
    bar = [line for line in lines if "|" in line and "epoch" in line]
    assert bar and bar[-1].startswith("100%|") and "epoch 2/2" in bar[-1]
    assert "run 1 completed" in lines  # the worker's log line on a line of its own, not after the bar
    assert captured.out.startswith("run 1 completed: test accuracy")
