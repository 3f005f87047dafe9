"""Plots: each function writes a real PNG; `minicnn plot RUN_DIR` writes all four; a missing
matplotlib gives an install hint rather than an ImportError deep inside."""
import builtins
import json
import os

import numpy as np
import pytest

from minicnn import cli, models, viz

PNG = b"\x89PNG\r\n\x1a\n"


def is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == PNG and os.path.getsize(path) > 1000


def test_missing_matplotlib_gives_a_clear_error(monkeypatch, tmp_path):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(RuntimeError, match=r"pip install 'minicnn\[plot\]'"):
        viz.plot_history([{"epoch": 1, "train_loss": 1.0, "train_accuracy": 0.5}], tmp_path / "c.png")
    assert not os.listdir(tmp_path)


def test_each_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    hist = [{"epoch": e, "train_loss": 2.0 / e, "train_accuracy": 0.2 * e, "val_loss": 2.2 / e,
             "val_accuracy": 0.18 * e} for e in (1, 2, 3)]
    hist.append({"epoch": 4, "train_loss": 0.4, "train_accuracy": 0.8, "val_loss": None,
                 "val_accuracy": None})
    assert is_png(viz.plot_history(hist, tmp_path / "curves.png"))

    model = models.create("small_cnn", rng=0)
    assert is_png(viz.plot_filters(model.features[0].weight.data, tmp_path / "filters.png"))
    gray = np.random.default_rng(0).standard_normal((6, 1, 5, 5))
    assert is_png(viz.plot_filters(gray, tmp_path / "gray.png"))

    x = np.random.default_rng(1).standard_normal((1, 3, 32, 32)).astype(np.float32)
    maps = viz.feature_maps(model, x)
    assert [name for name, _ in maps] == ["features.2", "features.6", "features.10"]
    assert maps[0][1].shape == (1, 32, 32, 32) and maps[1][1].shape == (1, 64, 16, 16)
    assert model.training                                   # mode restored
    img = np.random.default_rng(2).integers(0, 256, (3, 32, 32), dtype=np.uint8)
    assert is_png(viz.plot_feature_maps(maps[:2], tmp_path / "maps.png", image=img))

    cm = np.array([[5, 1, 0], [2, 7, 1], [0, 0, 9]])
    assert is_png(viz.plot_confusion(cm, ["a", "b", "c"], tmp_path / "cm.png"))
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]


def test_plot_input_errors(tmp_path):
    with pytest.raises(ValueError, match="at least one epoch"):
        viz.plot_history([], tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"\(F, C, KH, KW\)"):
        viz.plot_filters(np.zeros((3, 3)), tmp_path / "x.png")
    with pytest.raises(ValueError, match="square"):
        viz.plot_confusion(np.zeros((2, 3)), None, tmp_path / "x.png")
    with pytest.raises(ValueError, match="3 class names"):
        viz.plot_confusion(np.zeros((3, 3), dtype=int), ["a"], tmp_path / "x.png")


def test_cli_plot_writes_the_five_pngs(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    run = tmp_path / "run"
    assert cli.main(["train", "--model", "small_cnn", "--limit", "48", "--batch-size", "16",
                     "--epochs", "2", "--no-progress", "--out", str(run)]) == 0
    capsys.readouterr()
    assert cli.main(["plot", str(run)]) == 0
    printed = capsys.readouterr().out.split()
    names = ["curves.png", "filters.png", "feature_maps.png", "confusion.png", "layer_table.png"]
    assert [os.path.basename(p) for p in printed] == names
    for n in names:
        assert is_png(run / n), n
    assert len(json.loads((run / "history.json").read_text())) == 2


def test_feature_maps_leave_the_model_as_it_was():
    """A look, not a touch: modes, a pending backward's caches and BatchNorm's statistics."""
    from minicnn import nn
    model = nn.Sequential(nn.Conv2d(3, 4, 3, rng=0), nn.BatchNorm2d(4), nn.ReLU()).to(np.float64)
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6))
    dout = np.random.default_rng(1).standard_normal((2, 4, 4, 4))
    model(x)
    expected = model.backward(dout)
    model(x)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    maps = viz.feature_maps(model, x[:1] * 3)
    assert [n for n, _ in maps] == ["2"] and maps[0][1].shape == (1, 4, 4, 4)
    assert all(m.training for m in model.modules())
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())
    np.testing.assert_array_equal(model.backward(dout), expected)
