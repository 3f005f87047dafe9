"""`minicnn train --pretrained FILE [--freeze ...] [--lr-backbone X]` (minicnn/transfer.py)."""
import json

import numpy as np
import pytest

from minicnn import checkpoint, weights
from minicnn.cli import main

TINY = ["train", "--model", "small_cnn", "--model-arg", "width=0.25", "--limit", "64", "--epochs", "1",
        "--batch-size", "32", "--no-progress"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A small_cnn run on the sample: its last.npz is the pretrained file."""
    out = tmp_path_factory.mktemp("pretrained") / "run"
    assert main(TINY + ["--out", str(out)]) == 0
    return out / "last.npz"


def _state(run):
    return checkpoint.load(run / "last.npz").model_state


def test_frozen_backbone_keeps_the_files_weights_and_trains_the_head(pretrained, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(TINY + ["--pretrained", str(pretrained), "--freeze", "backbone",
                        "--lr-backbone", "0.001", "--out", str(run)]) == 0
    printed = capsys.readouterr().out
    assert f"pretrained: loaded {pretrained}" in printed
    assert "frozen: backbone" in printed and "backbone lr 0.001" in printed
    before, after = weights.load(pretrained), _state(run)
    assert set(before) == set(after)
    for key in before:
        same = np.array_equal(before[key], after[key])
        assert same == (not key.startswith("classifier")), key
    cli = json.loads((run / "config.json").read_text())["cli"]
    assert cli["pretrained"] == str(pretrained) and cli["freeze"] == ["backbone"]
    assert cli["lr_backbone"] == 0.001
    groups = checkpoint.load(run / "last.npz").optimizer_state      # head first, then backbone
    assert (groups["param_groups.0.params"], groups["param_groups.1.params"]) == (2, 9)


def test_resume_freezes_again_without_reading_the_file(pretrained, tmp_path, capsys):
    run, copy = tmp_path / "run", tmp_path / "copy.npz"
    copy.write_bytes(pretrained.read_bytes())
    assert main(TINY + ["--pretrained", str(copy), "--freeze", "features", "--out", str(run)]) == 0
    copy.unlink()                                   # the checkpoint holds every weight
    assert main(["train", "--no-progress", "--resume", "--epochs", "2", "--out", str(run)]) == 0
    assert "resumed" in capsys.readouterr().out
    before, after = weights.load(pretrained), _state(run)
    for key in before:
        assert np.array_equal(before[key], after[key]) == key.startswith("features"), key


def test_another_number_of_classes_draws_a_fresh_head(pretrained, tmp_path, capsys):
    # 64 images of the sample hold 10 classes; a 12-class head is another size than the file's.
    assert main(TINY + ["--pretrained", str(pretrained), "--num-classes", "12",
                        "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "kept a fresh classifier of 12 classes; left out of the file: classifier.weight (10, 32)" in out


def test_a_file_that_does_not_fit_and_bad_freezes_are_clear_errors(pretrained, tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", "--model", "resnet20", "--pretrained", str(pretrained), "--out", out]) == 2
    err = capsys.readouterr().err
    assert "the file does not fit the model" in err and "missing from the file" in err
    assert main(TINY + ["--pretrained", str(tmp_path / "none.pth"), "--out", out]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(TINY + ["--freeze", "layer9", "--out", out]) == 2
    assert "prefix 'layer9' matches no parameter" in capsys.readouterr().err
    assert main(TINY + ["--freeze", "backbone", "features", "--out", out]) == 2
    assert "--freeze: expected 'backbone', 'none' or parameter-name prefixes" in capsys.readouterr().err
    assert main(TINY + ["--lr-backbone", "-1", "--out", out]) == 2
    assert "backbone_lr" in capsys.readouterr().err
