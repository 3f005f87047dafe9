"""The zoo's torchvision twins, and loading weights into zoo models.

With torch and torchvision importable (an oracle only): for every twin, torchvision's
random-init state dict saved by ``torch.save`` goes through ``models.create(name,
weights=PATH)`` and the eval-mode logits must be torchvision's, max |diff| <= 1e-4 of the
largest |logit|, in float32 (BatchNorm statistics moved off their defaults first, see
tests/torchvision_oracle.py).  Always (no torch): a committed torchvision SqueezeNet file
(tests/fixtures/zoo, written by make_fixtures.py there) and its logits, and the loading
path on minicnn-made state dicts -- the one error listing every mismatch, another
number of classes, DenseNet's legacy keys, ``reset_classifier`` on every zoo model.
"""
import os
import re
import warnings

import numpy as np
import pytest

from minicnn import models, summary, weights
from minicnn.models.densenet import DenseNet, rename_legacy_keys
from minicnn.models.registry import _shapes_only
from minicnn.nn import Linear, ReLU, Sequential
from torchvision_oracle import import_torchvision, torchvision_twin

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "zoo")
TOL = 1e-4   # of the largest |logit|, float32


def assert_same_logits(ours, theirs):
    scale = np.abs(theirs).max()
    assert scale > 0
    err = np.abs(ours - theirs).max() / scale
    assert err <= TOL, f"max |diff| = {err:.2e} of the largest |logit|"


# ------------------------------------------------------------------ torchvision twins
# (name, input side, batch): small inputs where the model allows (global or adaptive
# pooling); VGG's classifier reads the 7x7 map of a 224x224 input.
SLOW = pytest.mark.slow
TWINS = [
    ("vgg11", 224, 1), ("vgg11_bn", 224, 1),
    pytest.param("vgg13", 224, 1, marks=SLOW), pytest.param("vgg13_bn", 224, 1, marks=SLOW),
    pytest.param("vgg16", 224, 1, marks=SLOW), pytest.param("vgg16_bn", 224, 1, marks=SLOW),
    pytest.param("vgg19", 224, 1, marks=SLOW), pytest.param("vgg19_bn", 224, 1, marks=SLOW),
    ("resnet18", 64, 2), ("resnet34", 64, 2), ("resnet50", 64, 2), ("resnet101", 64, 1),
    ("resnet152", 64, 1), ("resnext50_32x4d", 64, 1), ("densenet121", 64, 1),
    ("squeezenet1_0", 64, 2), ("squeezenet1_0", 224, 1),
    ("alexnet_torchvision", 96, 2), ("alexnet_torchvision", 224, 1),
    ("googlenet_torchvision", 96, 2), ("googlenet_torchvision", 224, 1),
    ("mobilenet_v2", 64, 2), ("mobilenet_v2", 224, 1),
    ("shufflenet_v2_x1_0", 64, 2), ("shufflenet_v2_x1_0", 224, 1),
]


def _oracle():
    pytest.importorskip("torch")
    try:
        return import_torchvision()
    except ImportError as e:
        pytest.skip(f"torchvision is not importable: {e}")


@pytest.mark.parametrize("name, side, batch", TWINS)
def test_twin_gives_torchvisions_logits(name, side, batch, tmp_path):
    torch, _ = _oracle()
    reference = torchvision_twin(name)
    path = tmp_path / f"{name}.pth"
    torch.save(reference.state_dict(), path)
    x = np.random.default_rng(1).standard_normal((batch, 3, side, side)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    del reference
    model = models.create(name, weights=path).eval()
    os.remove(path)   # VGG files are 0.5 GB: not kept for pytest's last three runs
    assert_same_logits(model(x), expected)


def test_densenet_loads_torchvisions_published_legacy_keys(tmp_path):
    """torchvision's published DenseNet files say ``norm.1`` where the model says ``norm1``."""
    torch, _ = _oracle()
    reference = torchvision_twin("densenet121")
    legacy = {re.sub(r"(denselayer\d+\.(norm|relu|conv))([12])\.", r"\1.\3.", k): v
              for k, v in reference.state_dict().items()}
    assert "features.denseblock1.denselayer1.norm.1.weight" in legacy
    torch.save(legacy, tmp_path / "densenet121-legacy.pth")
    x = np.random.default_rng(2).standard_normal((1, 3, 48, 48)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    model = models.create("densenet121", weights=tmp_path / "densenet121-legacy.pth").eval()
    assert_same_logits(model(x), expected)


def test_googlenet_torchvision_training_heads_and_transform_input_match_torchvision(tmp_path):
    """Training mode: the aux heads run (batch statistics, no dropout here) and give
    torchvision's aux logits; transform_input=True maps the input as torchvision does."""
    torch, torchvision = _oracle()
    torch.manual_seed(0)
    reference = torchvision.models.GoogLeNet(aux_logits=True, transform_input=True, init_weights=True,
                                             dropout=0.0, dropout_aux=0.0).train()
    torch.save(reference.state_dict(), tmp_path / "g.pth")
    model = models.create("googlenet_torchvision", transform_input=True, dropout=0.0, dropout_aux=0.0,
                          weights=tmp_path / "g.pth").train()
    x = np.random.default_rng(3).standard_normal((4, 3, 96, 96)).astype(np.float32)
    logits, aux2, aux1 = (t.detach().numpy() for t in reference(torch.from_numpy(x)))
    ours = model(x)
    # Batch statistics of 4 images in float32: BatchNorm divides by small standard deviations.
    for got, want in ((ours, logits), (model.aux_outputs[0], aux1), (model.aux_outputs[1], aux2)):
        assert np.abs(got - want).max() <= 1e-3 * np.abs(want).max()


# ------------------------------------------------------- without torch: a committed file
def test_committed_torchvision_squeezenet_file_gives_its_logits():
    """torchvision's SqueezeNet 1.0 (10 classes, float16 weights, written by torch.save) and
    the logits torchvision gave for them (tests/fixtures/zoo/make_fixtures.py)."""
    path = os.path.join(FIXTURES, "squeezenet1_0_10.pth")
    with np.load(os.path.join(FIXTURES, "squeezenet1_0_10.npz")) as f:
        x, expected = f["x"], f["logits"]
    assert weights.info(path)["tensors"]["features.0.weight"]["dtype"] == "float16"
    model = models.create("squeezenet1_0", weights=path).eval()   # 10 classes: the file's
    assert model.classifier[1].weight.shape == (10, 512, 1, 1)
    assert model.classifier[1].weight.data.dtype == np.float32
    assert_same_logits(model(x), expected)
    again = models.create("squeezenet1_0", num_classes=10, weights=path).eval()
    np.testing.assert_array_equal(again(x), model(x))


def test_twins_have_torchvisions_parameter_counts():
    assert models.num_parameters("alexnet_torchvision") == 61_100_840
    assert models.num_parameters("alexnet") == 62_378_344                  # the lecture's, kept
    assert models.num_parameters("googlenet_torchvision") == 13_004_888     # with both aux heads
    assert models.num_parameters("googlenet_torchvision", aux_logits=False) == 6_624_904
    assert models.num_parameters("squeezenet1_0") == 1_248_424


def test_squeezenet_pools_round_up_and_summary_follows():
    """109 -> 54 -> 27 -> 13 at 224x224 (floor would give 53 -> 26 -> 12); summary counts
    torchvision's multiply-adds (0.82 G) and knows the receptive fields through the pools."""
    s = summary(models.create("squeezenet1_0", rng=0), (3, 224, 224))
    assert [s.row(f"features.{i}").output_shape[2:] for i in (2, 6, 11)] == [(54, 54), (27, 27), (13, 13)]
    assert s.total_mult_adds == 818_924_576
    # conv 7/2: 7, jump 2; every 3x3 window after it (pool or a Fire's expand3x3) adds
    # 2 * jump: pool 11 (jump 4), 3 Fires 35, pool 43 (8), 4 Fires 107, pool 123 (16), Fire 155.
    assert s.receptive_field("features.2").size == (11, 11)
    assert s.receptive_field("features.12").size == (155, 155)


def test_googlenet_torchvision_heads_run_in_training_only():
    model = models.create("googlenet_torchvision", num_classes=3, rng=0)
    keys = model.state_dict()
    assert "aux1.conv.conv.weight" in keys and "aux2.fc2.bias" in keys and "conv1.bn.running_var" in keys
    assert model.inception3a.branch3[1].conv.weight.shape == (32, 16, 3, 3)   # torchvision's 3x3
    x = np.random.default_rng(0).standard_normal((2, 3, 40, 40)).astype(np.float32)
    out = model(x)
    assert out.shape == model.aux_outputs[0].shape == model.aux_outputs[1].shape == (2, 3)
    dx = model.backward(np.ones_like(out), aux_douts=(np.ones_like(out), None))
    assert dx.shape == x.shape and np.abs(model.aux1.fc1.weight.grad).sum() > 0
    assert not model.aux2.fc1.weight.grad.any()
    model.eval()
    model(x)
    assert model.aux_outputs is None


# ------------------------------------------------------------- the loading path, no torch
def _saved(model, path):
    weights.save(model.state_dict(), path)
    return path


def test_weights_round_trip_through_create(tmp_path):
    source = models.create("resnet20", rng=3).eval()
    path = _saved(source, tmp_path / "r20.safetensors")
    model = models.create("resnet20", weights=path).eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    np.testing.assert_array_equal(model(x), source(x))


def test_every_mismatch_is_reported_in_one_error_with_its_shape(tmp_path):
    state = models.create("resnet20", rng=0).state_dict()
    del state["layer1.0.conv1.weight"], state["fc.bias"]
    state["head.weight"] = np.zeros((4, 64), np.float32)
    state["layer2.0.bn1.running_mean"] = np.zeros(3, np.float32)
    path = tmp_path / "bad.npz"
    weights.save(state, path)
    with pytest.raises(ValueError) as info:
        models.create("resnet20", weights=path)
    message = str(info.value)
    for part in ("models.create('resnet20', weights=", "does not fit the model",
                 "missing from the file (2): layer1.0.conv1.weight (16, 16, 3, 3), fc.bias (10,)",
                 "not in the model (1): head.weight (4, 64)",
                 "shape differs (1): layer2.0.bn1.running_mean: model (32,), file (3,)",
                 "minicnn.weights.match_models"):
        assert part in message, message


def test_long_mismatch_lists_are_cut(tmp_path):
    path = _saved(models.create("resnet20", rng=0), tmp_path / "r20.npz")
    with pytest.raises(ValueError, match=r"missing from the file \(\d+\): .*, \.\.\. and \d+ more"):
        models.create("resnet32", weights=path)


def test_another_number_of_classes_keeps_all_but_the_classifier(tmp_path):
    source = models.create("resnet20", rng=1)
    path = _saved(source, tmp_path / "r20.safetensors")
    with pytest.warns(UserWarning, match=r"kept a fresh classifier of 4 classes; left out of the "
                                         r"file: fc.weight \(10, 64\), fc.bias \(10,\)"):
        model = models.create("resnet20", num_classes=4, weights=path, rng=5)
    ours, theirs = model.state_dict(), source.state_dict()
    assert ours["fc.weight"].shape == (4, 64) and ours["fc.weight"].any()   # drawn, not zeros
    assert model.num_classes == 4
    assert all(np.array_equal(ours[k], theirs[k]) for k in theirs if not k.startswith("fc."))
    fresh = models.create("resnet20", num_classes=4, rng=5).reset_classifier(4, rng=5)
    np.testing.assert_array_equal(ours["fc.weight"], fresh.state_dict()["fc.weight"])
    # Without num_classes the file decides; with its own number nothing is left out.
    assert models.create("resnet20", weights=_saved(model, tmp_path / "r4.npz")).fc.out_features == 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        models.create("resnet20", num_classes=10, weights=path)


def test_googlenet_heads_all_follow_the_number_of_classes(tmp_path):
    with _shapes_only():
        source = models.create("googlenet_torchvision", num_classes=5, rng=0)
    path = _saved(source, tmp_path / "g.safetensors")
    with pytest.warns(UserWarning, match=r"fc.weight \(5, 1024\), fc.bias \(5,\), aux1.fc2.weight"):
        model = models.create("googlenet_torchvision", num_classes=7, weights=path)
    assert model.fc.out_features == model.aux1.fc2.out_features == model.aux2.fc2.out_features == 7
    with pytest.raises(ValueError, match=r"not in the model \(18\): aux1.conv.conv.weight \(128, 512, 1, 1\)"):
        models.create("googlenet_torchvision", aux_logits=False, weights=path)


def test_densenet_legacy_keys_are_renamed(tmp_path):
    small = DenseNet(growth_rate=4, block_config=(2, 2), num_init_features=8, num_classes=3, rng=0)
    state = small.state_dict()
    legacy = {k.replace("norm1.", "norm.1.").replace("conv2.", "conv.2."): v for k, v in state.items()}
    assert "features.denseblock1.denselayer2.norm.1.running_var" in legacy
    assert rename_legacy_keys(legacy).keys() == state.keys()
    other = DenseNet(growth_rate=4, block_config=(2, 2), num_init_features=8, num_classes=3, rng=1)
    other.load_state_dict(legacy)
    assert all(np.array_equal(other.state_dict()[k], v) for k, v in state.items())
    # The same through models.create, with densenet121's own keys.
    with _shapes_only():
        big = models.create("densenet121", num_classes=2, rng=0)
    sd = big.state_dict()
    sd["features.denseblock4.denselayer16.norm2.running_mean"] = np.arange(128, dtype=np.float32)
    path = tmp_path / "densenet121-legacy.safetensors"
    weights.save({re.sub(r"(denselayer\d+\.(norm|relu|conv))([12])\.", r"\1.\3.", k): v
                  for k, v in sd.items()}, path)
    model = models.create("densenet121", weights=path)
    np.testing.assert_array_equal(
        model.features.denseblock4.denselayer16.norm2.running_mean, np.arange(128))


def _shapes(model):
    shapes = {k: p.shape for k, p in model.named_parameters()}
    shapes.update((k, b.shape) for k, b in model.named_buffers())
    return shapes


@pytest.mark.parametrize("name", models.names())
def test_reset_classifier_on_every_zoo_model(name):
    with _shapes_only():   # no weights drawn (VGG's take seconds); reset_classifier still draws
        model = models.create(name, rng=0)
    before = _shapes(model)
    assert model.eval().reset_classifier(3, rng=0) is model
    after = _shapes(model)
    changed = {k for k in before if after[k] != before[k]}
    expected = {f"{layer}.{p}" for layer in model.classifier_names for p in ("weight", "bias")}
    assert changed == expected and after.keys() == before.keys()
    modules = dict(model.named_modules())
    for layer in model.classifier_names:
        fresh = modules[layer]
        assert fresh.weight.shape[0] == 3 and fresh.weight.data.any() and not fresh.training


@pytest.mark.parametrize("name", ["squeezenet1_0", "resnet20", "nin"])
def test_reset_classifier_gives_a_working_model(name):
    """In the model's dtype (float64 here); a conv classifier (SqueezeNet, NiN) keeps its kernel."""
    model = models.create(name, rng=0).to(np.float64).reset_classifier(4, rng=0)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32))
    out = model(x)
    assert out.shape == (2, 4) and out.dtype == np.float64
    model.backward(np.ones_like(out))
    layer = dict(model.named_modules())[model.classifier_names[0]]
    assert layer.weight.data.dtype == np.float64 and layer.weight.grad.any()


def test_reset_classifier_errors():
    with pytest.raises(ValueError, match=r"Sequential.reset_classifier: Sequential names no classifier"):
        Sequential(Linear(2, 3, rng=0), ReLU()).reset_classifier(4)
    model = models.create("lenet5", rng=0)
    with pytest.raises(ValueError, match=r"LeNet5.reset_classifier: expected num_classes"):
        model.reset_classifier(0)
    with pytest.raises(ValueError, match="models.create: expected weights as a path"):
        models.create("lenet5", weights=model.state_dict())
