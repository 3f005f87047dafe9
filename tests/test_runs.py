"""minicnn.runs: where a run's files live, the start/resume/overwrite rules, history and config
files, the per-epoch line, the progress bar and Ctrl-C."""
import json
import os
import signal

import pytest

from minicnn import checkpoint, nn
from minicnn.runs import (CtrlC, History, TrainingDiverged, checkpoint_path, epoch_line,
                          load_history, open_run, progress_bar, save_config, save_history,
                          show_progress)

RECORD = {"epoch": 2, "train_loss": 1.23456, "train_accuracy": 0.5, "val_loss": 1.5,
          "val_accuracy": 0.25, "val_top5": 0.9, "seconds": 3.21, "cpu_seconds": 6.0,
          "images_per_second": 1234.4, "lr": 0.05}


def test_checkpoint_path(tmp_path):
    assert checkpoint_path(tmp_path) == os.path.join(str(tmp_path), "last.npz")
    assert checkpoint_path("runs/a") == os.path.join("runs/a", "last.npz")


def test_open_run_rules(tmp_path):
    assert open_run(None) is None
    with pytest.raises(ValueError, match="fit: resume=True needs the run_dir"):
        open_run(None, resume=True)
    with pytest.raises(checkpoint.CheckpointError, match="nothing to resume"):
        open_run(tmp_path / "none", resume=True)
    run = tmp_path / "run"
    assert open_run(run) is None and run.is_dir()             # a fresh run makes its directory
    model = nn.Sequential(nn.Linear(3, 2, rng=0))
    checkpoint.save(checkpoint_path(run), model, epoch=4)
    save_history([RECORD], run)
    with pytest.raises(ValueError, match="already exists; pass resume=True"):
        open_run(run, where="Trainer")
    assert open_run(run, resume=True).epoch == 4
    assert (run / "history.json").exists()
    assert open_run(run, overwrite=True) is None
    assert not (run / "history.json").exists() and not (run / "history.csv").exists()


def test_history_and_config_files(tmp_path):
    rows = [dict(RECORD, epoch=1, val_loss=None), dict(RECORD, extra_metric=7)]
    save_history(rows, tmp_path)
    assert load_history(tmp_path) == rows
    lines = (tmp_path / "history.csv").read_text().splitlines()
    assert lines[0] == ",".join(["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                                 "val_top5", "seconds", "cpu_seconds", "images_per_second", "lr",
                                 "extra_metric"])
    assert lines[1].split(",")[3] == "" and lines[2].endswith(",7")   # None -> empty cell
    save_config({"model": "x", "mean": [1.5]}, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text()) == {"model": "x", "mean": [1.5]}
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]


def test_history_and_training_diverged_carry_their_facts():
    h = History([RECORD])
    assert h == [RECORD] and h.initial_loss is None and h.stopped is None
    err = TrainingDiverged("msg", 2, 3, float("nan"), "runs/a/last.npz")
    assert isinstance(err, FloatingPointError) and str(err) == "msg"
    assert (err.epoch, err.batch, err.checkpoint) == (2, 3, "runs/a/last.npz")


def test_epoch_line():
    assert epoch_line(RECORD, 5) == ("epoch 2/5: train loss 1.2346 acc 0.5000 | val loss 1.5000 "
                                     "acc 0.2500 | 3.2 s, 1234 img/s, lr 0.05")
    no_val = dict(RECORD, val_loss=None, val_accuracy=None, lr=None)
    assert epoch_line(no_val) == "epoch 2: train loss 1.2346 acc 0.5000 | 3.2 s, 1234 img/s, lr ?"


def test_progress_bar(capsys):
    bar = progress_bar(4, 1, "epoch 1/2")
    assert (bar.n, bar.total) == (1, 4)
    show_progress(bar, {"loss": 3.0, "correct": 4, "seen": 8}, 2.0)
    assert bar.n == 2 and set(bar.postfix.split(", ")) == {"loss=0.375", "acc=0.500", "img_s=4"}
    bar.close()


def test_ctrl_c_in_a_distributed_run_is_pending_until_the_ranks_agree():
    """agreed=True: the first Ctrl-C only marks ``pending`` (the distributed step turns it
    into ``requested`` once every rank knows); a second one stops at once."""
    logs = []
    with CtrlC(logs.append, agreed=True) as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.pending and not stop.requested and "saving a checkpoint" in logs[0]
        stop.requested = True                  # what the step does once the ranks agreed
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_becomes_a_request_then_stops_at_once():
    before = signal.getsignal(signal.SIGINT)
    logs = []
    with CtrlC(logs.append) as stop:
        assert not stop.requested
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested and "saving a checkpoint after this batch" in logs[0]
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before
    assert len(logs) == 1
