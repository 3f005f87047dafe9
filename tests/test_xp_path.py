"""The xp-generic path -- the code the CuPy backend runs -- trained end to end with NumPy as xp.

There is no GPU on the development and CI machines, so the plain path
(``backend.use_cython(False)``: tap-loop im2col/col2im, NumPy pooling, batch norm,
LRN, ...) is what stands in for CuPy here.  The per-op tests (test_functional.py,
test_kernels.py) check each op on both paths; this file checks that a whole model built
from them trains the same on both paths, gradient-checks it on the plain path, and runs
``fit`` with augmentation on it.
"""
import numpy as np
import pytest

from minicnn import backend, nn, optim
from minicnn.functional import softmax_cross_entropy
from minicnn.gradcheck import check_module
from minicnn.train import fit


def every_op_net(dtype=np.float32, seed=0, dropout=0.5):
    """A small net touching every layer kind: conv (plain, strided, grouped), BN, max/avg
    pooling, LRN, ReLU, dropout, linear.  Input (N, 3, 9, 8) -> scores (N, 5)."""
    rng = np.random.default_rng(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, (3, 2), padding=1, rng=rng, dtype=dtype),           # (4, 9, 9)
        nn.BatchNorm2d(4, dtype=dtype),
        nn.ReLU(),
        nn.LocalResponseNorm(3),
        nn.MaxPool2d(3, stride=2, padding=1),                                # (4, 5, 5)
        nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2, rng=rng, dtype=dtype),  # (6, 3, 3)
        nn.ReLU(),
        nn.AvgPool2d(2, stride=1),                                           # (6, 2, 2)
        nn.Flatten(),
        nn.Dropout(dropout, rng=seed + 1),
        nn.Linear(24, 5, rng=rng, dtype=dtype),
    )


def train_steps(cython, steps=3, seed=0):
    """SGD-momentum steps on one fixed batch; returns the losses and the final weights."""
    rng = np.random.default_rng(seed + 100)
    x = rng.standard_normal((6, 3, 9, 8)).astype(np.float64)
    y = rng.integers(0, 5, 6)
    with backend.use_cython(cython):
        model = every_op_net(np.float64, seed)
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
        losses = []
        for _ in range(steps):
            model.zero_grad()
            loss, dscores = softmax_cross_entropy(model(x), y)
            model.backward(dscores)
            opt.step()
            losses.append(loss)
    return losses, {k: v.copy() for k, v in model.state_dict().items()}


def test_training_steps_agree_between_the_plain_and_the_cython_path():
    losses_c, state_c = train_steps(cython=True)
    losses_p, state_p = train_steps(cython=False)
    np.testing.assert_allclose(losses_p, losses_c, rtol=1e-10)
    assert losses_p[-1] < losses_p[0]                       # the steps did train
    assert state_p.keys() == state_c.keys()
    for k in state_c:                                       # weights, running statistics
        np.testing.assert_allclose(state_p[k], state_c[k], rtol=1e-9, atol=1e-12, err_msg=k)


def test_whole_model_gradient_check_on_the_plain_path():
    rng = np.random.default_rng(3)
    # Inside a net, inputs cannot be kept away from ReLU kinks and pooling ties layer by
    # layer; this seed has none within the step h, and the bound leaves room for float64 noise.
    with backend.use_cython(False):
        model = every_op_net(np.float64, seed=3)
        x = rng.standard_normal((3, 3, 9, 8))
        errors = check_module(model, x, rng=4, floor=1e-3)
    assert set(errors) == {"x"} | {name for name, _ in model.named_parameters()}
    worst = max(errors.values())
    assert worst < 1e-5, {k: (float(v), v.index) for k, v in errors.items()}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_dtype_is_kept_on_the_plain_path(dtype):
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 8)).astype(dtype)
    with backend.use_cython(False):
        model = every_op_net(dtype)
        out = model(x)
        dx = model.backward(np.ones_like(out))
    assert out.dtype == dtype and dx.dtype == dtype
    assert all(p.grad.dtype == dtype for p in model.parameters())


def test_fit_with_augmentation_on_the_plain_path(tmp_path):
    rng = np.random.default_rng(5)
    # Two classes a model can tell apart: bright versus dark images.
    y = rng.integers(0, 2, 64)
    x = (rng.integers(0, 100, (64, 3, 9, 8)) + 120 * y[:, None, None, None]).astype(np.uint8)
    with backend.use_cython(False):
        model = every_op_net(np.float32, seed=5, dropout=0.1)
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        hist = fit(model, opt, (x, y), val=(x, y), epochs=4, batch_size=16, augment=True,
                   run_dir=tmp_path, log=lambda *a: None, progress=False)
    assert (tmp_path / "last.npz").exists()
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert hist[-1]["val_accuracy"] > 0.8
