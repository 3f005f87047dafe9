"""`minicnn predict` and its preprocessing (minicnn/predict.py).

Always: the committed 6x9 PNG tests/fixtures/images/tiny.png through a preprocessing whose
every step is computed here by hand; the ImageNet class list; the command on a minicnn
run, on a weights file of a zoo model, and its errors.  With torch and torchvision
importable (an oracle only): torchvision's ImageNet evaluation transforms give the same
tensor on images of several shapes.
"""
import os
import sys

import numpy as np
import pytest

from minicnn import models, weights
from minicnn.cli import main
from minicnn.models.googlenet_torchvision import IMAGENET_MEAN, IMAGENET_STD
from minicnn.predict import (CIFAR10_MEAN, CIFAR10_STD, center_crop, imagenet_classes, load_image,
                             preprocess, resize_shorter_side, top_k)
from torchvision_oracle import import_torchvision

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

TINY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "images", "tiny.png")


def test_tiny_png_preprocessed_by_hand():
    """6 wide, 9 high: a shorter side of 6 is kept as it is; the 4x4 crop starts at row
    round(2.5) = 2 (Python and torchvision round half to even) and column 1."""
    pixels = np.asarray(Image.open(TINY).convert("RGB"), dtype=np.float64)     # (9, 6, 3)
    assert pixels.shape == (9, 6, 3)
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    expected = ((pixels[2:6, 1:5] / 255 - mean) / std).transpose(2, 0, 1)
    got = preprocess(load_image(TINY), size=4, mean=IMAGENET_MEAN, std=IMAGENET_STD, resize=6)
    assert got.dtype == np.float32 and got.shape == (3, 4, 4)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_grey_images_and_resize_arithmetic():
    grey = load_image(TINY, channels=1)
    assert grey.mode == "L"
    assert preprocess(grey, 4, (0.5,), (0.25,), resize=6).shape == (1, 4, 4)
    assert resize_shorter_side(Image.new("RGB", (640, 480)), 256).size == (341, 256)
    assert resize_shorter_side(Image.new("RGB", (480, 640)), 256).size == (256, 341)
    flat = Image.new("RGB", (300, 200), (10, 128, 250))     # bilinear keeps a constant constant
    x = preprocess(flat, 224, (0, 0, 0), (1, 1, 1))
    np.testing.assert_allclose(x[:, 0, 0] * 255, [10, 128, 250], atol=1e-3)
    assert x.shape == (3, 224, 224)
    with pytest.raises(ValueError, match="center_crop: expected an image of at least 8x8, received 6x9"):
        center_crop(load_image(TINY), 8)


def test_imagenet_class_names_shipped():
    names = imagenet_classes()
    assert len(names) == 1000 == len(set(names))
    assert (names[0], names[1], names[207], names[999]) == ("tench", "goldfish", "golden retriever",
                                                            "toilet tissue")
    assert names[281].startswith("tabby")


def test_top_k_is_sorted_and_named():
    probs = np.array([0.1, 0.5, 0.15, 0.25])
    assert top_k(probs, ("a", "b", "c", "d"), 2) == [("b", 0.5), ("d", 0.25)]
    assert top_k(probs, None, 1) == [("1", 0.5)]


def test_torchvision_transforms_give_the_same_tensor():
    pytest.importorskip("torch")
    try:
        torch, torchvision = import_torchvision()
    except ImportError as e:
        pytest.skip(f"torchvision is not importable: {e}")
    from torchvision import transforms
    tv = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                             transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    rng = np.random.default_rng(0)
    for w, h in [(300, 257), (257, 300), (500, 375), (224, 224), (1000, 300)]:
        image = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        expected = tv(image).numpy()
        got = preprocess(image, 224, IMAGENET_MEAN, IMAGENET_STD)
        np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6, err_msg=f"{w}x{h}")


# ---------------------------------------------------------------------------- the command
@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("predict") / "run"
    assert main(["train", "--model", "small_cnn", "--model-arg", "width=0.25", "--limit", "64",
                 "--epochs", "1", "--no-progress", "--out", str(out)]) == 0
    return out


def test_predict_a_run_names_cifar_classes(run, capsys):
    capsys.readouterr()
    assert main(["predict", "--weights", str(run), "--topk", "3", TINY, TINY]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == TINY and lines[4] == TINY and len(lines) == 8
    cifar = {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}
    shown = [line.split() for line in lines[1:4]]
    assert all(name in cifar and pct.endswith("%") for pct, name in shown)
    probs = [float(pct.rstrip("%")) for pct, _ in shown]
    assert probs == sorted(probs, reverse=True)
    assert lines[1:4] == lines[5:8]                        # the same image, the same answer


def test_predict_matches_the_library_for_a_weights_file(tmp_path, capsys):
    """A small_cnn file through --model: CIFAR-10's statistics, names and 32x32 input."""
    from minicnn.data import CIFAR10_CLASSES
    from minicnn.predict import classify_images
    full = models.create("small_cnn", rng=0)
    path = tmp_path / "full.safetensors"
    weights.save(full.state_dict(), path)
    assert main(["predict", "--model", "small_cnn", "--weights", str(path), TINY]) == 0
    lines = capsys.readouterr().out.splitlines()
    x = preprocess(load_image(TINY), 32, CIFAR10_MEAN, CIFAR10_STD)
    assert x.shape == (3, 32, 32)
    probs = classify_images(full.eval(), [TINY], 32, CIFAR10_MEAN, CIFAR10_STD)[0]
    best = int(np.argmax(probs))
    assert lines[1].split() == [f"{probs[best]:.2%}", CIFAR10_CLASSES[best]]


def test_predict_passes_model_args_to_the_model(tmp_path, capsys):
    """--model-arg builds --model as the weights were trained (here a quarter-width small_cnn,
    whose weights fit no other width): the same answer as the library's model."""
    from minicnn.data import CIFAR10_CLASSES
    from minicnn.predict import classify_images
    narrow = models.create("small_cnn", width=0.25, rng=0)
    path = tmp_path / "narrow.safetensors"
    weights.save(narrow.state_dict(), path)
    assert main(["predict", "--model", "small_cnn", "--weights", str(path), TINY]) == 2
    assert "the file does not fit the model" in capsys.readouterr().err
    assert main(["predict", "--model", "small_cnn", "--model-arg", "width=0.25", "--weights", str(path),
                 "--topk", "1", TINY]) == 0
    lines = capsys.readouterr().out.splitlines()
    probs = classify_images(narrow.eval(), [TINY], 32, CIFAR10_MEAN, CIFAR10_STD)[0]
    best = int(np.argmax(probs))
    assert lines[1].split() == [f"{probs[best]:.2%}", CIFAR10_CLASSES[best]]


def test_predict_an_imagenet_model_names_imagenet_classes(tmp_path, capsys):
    path = tmp_path / "squeeze.safetensors"
    weights.save(models.create("squeezenet1_0", rng=0).state_dict(), path)
    assert main(["predict", "--model", "squeezenet1_0", "--weights", str(path), TINY]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = set(imagenet_classes())
    assert len(lines) == 6 and all(line.split(maxsplit=1)[1] in names for line in lines[1:])


def test_predict_errors_are_clear(run, tmp_path, capsys, monkeypatch):
    path = tmp_path / "w.safetensors"
    weights.save(models.create("small_cnn", rng=0).state_dict(), path)
    assert main(["predict", "--weights", str(path), TINY]) == 2
    assert "is a weights file: give --model NAME" in capsys.readouterr().err
    assert main(["predict", "--model", "resnet20", "--weights", str(path), TINY]) == 2
    assert "the file does not fit the model" in capsys.readouterr().err
    assert main(["predict", "--model", "resnet20", "--weights", str(run), TINY]) == 2
    assert "is a run of small_cnn, not of resnet20" in capsys.readouterr().err
    assert main(["predict", "--weights", str(run), str(tmp_path / "missing.png")]) == 2
    assert "cannot read image" in capsys.readouterr().err
    assert main(["predict", "--weights", str(run), "--topk", "0", TINY]) == 2
    assert "--topk" in capsys.readouterr().err
    assert main(["predict", "--weights", str(run), "--model-arg", "width=0.5", TINY]) == 2
    assert "is a run, which knows its model's options: model options (width)" in capsys.readouterr().err
    assert main(["predict", "--model", "small_cnn", "--weights", str(path), "--model-arg", "depth=3", TINY]) == 2
    assert "small_cnn takes no option 'depth'" in capsys.readouterr().err
    assert main(["predict", "--model", "small_cnn", "--weights", str(path), "--model-arg", "width", TINY]) == 2
    assert "--model-arg: expected KEY=VALUE" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "PIL", None)           # Pillow not installed
    assert main(["predict", "--weights", str(run), TINY]) == 2
    assert "pip install 'minicnn[images]'" in capsys.readouterr().err
