"""minicnn.nn.no_grad: forward passes that keep no caches, with the same results."""
import threading

import numpy as np
import pytest

from minicnn import evaluation, models
from minicnn import nn
from minicnn.nn.hooks import forward_hook


def _caches(model):
    return [m.__dict__.get("_cache") for m in model.modules()]


@pytest.mark.parametrize("name,size", [("lenet5", 32), ("resnet20", 32), ("small_cnn", 32),
                                       ("mobilenet_v2", 32), ("wrn16_4", 32), ("fractalnet", 32)])
def test_no_grad_gives_the_same_scores_and_keeps_no_cache(name, size):
    """Eval mode, with and without no_grad: the same bits; under no_grad every module's cache
    is None afterwards (so the layers' outputs could be freed as the pass went on)."""
    model = models.create(name, num_classes=10, rng=0)
    in_channels = getattr(model, "in_channels", 3)
    x = np.random.default_rng(1).standard_normal((3, in_channels, size, size)).astype(np.float32)
    model.eval()
    want = model(x)
    assert any(c is not None for c in _caches(model))
    with nn.no_grad():
        got = model(x)
    assert np.array_equal(got, want)
    assert all(c is None for c in _caches(model))


def test_backward_after_a_no_grad_forward_says_why():
    layer = nn.Conv2d(2, 3, 3, rng=0)
    x = np.ones((1, 2, 5, 5), dtype=np.float32)
    with nn.no_grad():
        out = layer(x)
    with pytest.raises(RuntimeError, match=r"Conv2d.backward called before forward \(or after a forward under minicnn.nn.no_grad\(\)"):
        layer.backward(np.ones_like(out))
    out = layer(x)                           # outside no_grad the cache is kept again
    assert layer.backward(np.ones_like(out)).shape == x.shape


def test_no_grad_nests_restores_after_an_exception_and_is_per_thread():
    assert nn.is_grad_enabled()
    with nn.no_grad():
        assert not nn.is_grad_enabled()
        with nn.no_grad():
            assert not nn.is_grad_enabled()
        assert not nn.is_grad_enabled()
        seen = []
        t = threading.Thread(target=lambda: seen.append(nn.is_grad_enabled()))
        t.start()
        t.join()
        assert seen == [True]                # another thread keeps its own setting
    assert nn.is_grad_enabled()
    with pytest.raises(ZeroDivisionError):
        with nn.no_grad():
            1 / 0
    assert nn.is_grad_enabled()


def test_batchnorm_in_training_mode_still_updates_its_statistics_under_no_grad():
    """As in PyTorch: no_grad says nothing about the mode."""
    x = np.random.default_rng(0).standard_normal((4, 3, 5, 5)).astype(np.float32)
    a, b = nn.BatchNorm2d(3), nn.BatchNorm2d(3)
    out_a = a(x)
    with nn.no_grad():
        out_b = b(x)
    assert np.array_equal(out_a, out_b)
    assert np.array_equal(a.running_mean, b.running_mean) and np.array_equal(a.running_var, b.running_var)
    assert not np.array_equal(b.running_mean, np.zeros(3))


def test_hooks_still_see_every_module_under_no_grad():
    model = models.create("lenet5", num_classes=10, rng=0).eval()
    x = np.zeros((2, 1, 32, 32), dtype=np.float32)
    seen, seen_no_grad = [], []
    with forward_hook(lambda m, inp, out: seen.append(type(m).__name__)):
        model(x)
    with nn.no_grad(), forward_hook(lambda m, inp, out: seen_no_grad.append(type(m).__name__)):
        model(x)
    assert seen_no_grad == seen and len(seen) > 5


def test_evaluation_runs_under_no_grad_and_leaves_the_model_as_it_was():
    """evaluate / predict keep no caches while they run (the memory of a pass over a data set
    is one layer's output at a time), and put the model's own back afterwards."""
    model = models.create("small_cnn", num_classes=10, rng=0)
    x = np.random.default_rng(0).standard_normal((5, 3, 32, 32)).astype(np.float32)
    model.train()
    model(x)
    before = _caches(model)
    inside = []
    with forward_hook(lambda m, inp, out: inside.append(nn.is_grad_enabled())):
        probs = evaluation.predict(model, x, batch_size=2)
    assert inside and not any(inside)
    assert all(a is b for a, b in zip(_caches(model), before)) and model.training
    model.eval()
    scores = model(x)
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    np.testing.assert_allclose(probs, e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-6)
