"""Skipping the input gradient of the layer that reads the data (minicnn.nn.input_grad).

Skipping dx must change nothing else: the same dW and db on every conv path, the same
training run; and it must only ever be switched on where no other module needs that dx.
"""
import copy

import numpy as np
import pytest

import minicnn.functional as F
from minicnn import backend, models, nn, optim
from minicnn.functional import conv_direct, conv_winograd
from minicnn.nn.input_grad import data_layer, skip_data_gradient
from minicnn.train import fit


@pytest.mark.parametrize("cython", [True, False])
@pytest.mark.parametrize("kernel,stride,pad,groups,cin,winograd", [
    (3, 1, 1, 1, 4, False), (3, 1, 1, 1, 4, True), (5, 2, 2, 1, 3, False),
    (1, 1, 0, 2, 4, False), (3, 2, 0, 2, 4, False)])
def test_conv_backward_without_dx_gives_the_same_weight_gradients(cython, kernel, stride, pad, groups,
                                                                  cin, winograd, monkeypatch):
    ran = []
    if winograd:
        monkeypatch.setattr(conv_winograd, "MIN_CHANNELS", 1)
        monkeypatch.setattr(conv_direct, "ISA", 0)     # thin float32 layers would go direct
        backward = conv_winograd.backward
        monkeypatch.setattr(conv_winograd, "backward", lambda *a: ran.append(a[4]) or backward(*a))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, cin, 7, 6)).astype(np.float32)
    w = rng.standard_normal((4, cin // groups, kernel, kernel)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    with backend.use_cython(cython):
        out, cache = F.conv2d_forward(x, w, b, stride, pad, groups)
        dout = rng.standard_normal(out.shape).astype(np.float32)
        dx, dw, db = F.conv2d_backward(dout, cache)
        none, dw2, db2 = F.conv2d_backward(dout, cache, need_dx=False)
    assert dx is not None and none is None
    assert ran == ([True, False] if winograd and cython else [])   # need_dx of each Winograd backward
    np.testing.assert_array_equal(dw2, dw)
    np.testing.assert_array_equal(db2, db)


def test_conv2d_layer_input_grad_flag():
    layer = nn.Conv2d(2, 3, 3, padding=1, rng=0)
    x = np.random.default_rng(1).standard_normal((2, 2, 5, 5)).astype(np.float32)
    dout = np.ones((2, 3, 5, 5), dtype=np.float32)
    layer(x)
    dx = layer.backward(dout)
    grad = layer.weight.grad.copy()
    layer.zero_grad()
    layer.input_grad = False
    assert "input_grad=False" in repr(layer)
    layer(x)
    assert layer.backward(dout) is None
    np.testing.assert_array_equal(layer.weight.grad, grad)
    assert dx.shape == x.shape


def test_data_layer_is_found_only_through_sequentials():
    x = np.zeros((2, 3, 32, 32), dtype=np.float32)
    lenet = models.create("lenet5", in_channels=3, rng=0)
    assert data_layer(lenet, x) is lenet.features[0]
    # The ResNets declare that their backward returns conv1's dx untouched.
    resnet = models.create("resnet20", rng=0)
    assert data_layer(resnet, x) is resnet.conv1
    preact = models.create("preact_resnet18", rng=0)
    assert data_layer(preact, x) is preact.conv1

    # A custom model class that does not declare it, a residual block at the input, and a
    # first layer that is not a conv: left alone.
    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1, rng=0)

        def forward(self, x):
            return self.conv(x) + x

        def backward(self, dout):
            return self.conv.backward(dout) + dout
    assert data_layer(Custom(), x) is None
    block_first = nn.Sequential(nn.BasicBlock(3, 3, rng=0), nn.Flatten())
    assert data_layer(block_first, x) is None
    bn_first = nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 4, 3, rng=0))
    assert data_layer(bn_first, x) is None
    shared = nn.Conv2d(3, 3, 3, padding=1, rng=0)          # used twice: its dx is needed
    assert data_layer(nn.Sequential(shared, nn.ReLU(), shared), x) is None


def test_finding_the_data_layer_leaves_the_model_as_it_was():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, rng=0), nn.BatchNorm2d(4), nn.ReLU())
    model.train()
    model[2].eval()                      # a mixed state must come back as it was
    mean, var = model[1].running_mean.copy(), model[1].running_var.copy()
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32)
    with skip_data_gradient(model, x) as layer:
        assert layer is model[0] and layer.input_grad is False
        assert [m.training for m in model.modules()] == [True, True, True, False]
        np.testing.assert_array_equal(model[1].running_mean, mean)
        np.testing.assert_array_equal(model[1].running_var, var)
        model(x)
        assert model.backward(np.ones((2, 4, 4, 4), dtype=np.float32)) is None
    assert model[0].input_grad is True


def test_fit_skips_the_data_gradient_while_training_only():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(16, 3, 32, 32), dtype=np.uint8)
    y = rng.integers(0, 10, size=16)
    model = models.create("lenet5", in_channels=3, rng=0)
    first = model.features[0]
    seen = []
    original = first.backward

    def spy(dout):
        seen.append(first.input_grad)
        return original(dout)
    first.backward = spy
    twin = models.create("lenet5", in_channels=3, rng=0)
    fit(model, optim.SGD(model.parameters(), lr=0.01, momentum=0.9), (x, y), epochs=1,
        batch_size=8, progress=False, log=None)
    assert seen == [False, False] and first.input_grad is True

    # The same run with the gradient computed gives the same weights, bit for bit.
    from minicnn.nn import input_grad
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(input_grad, "data_layer", lambda model, x: None)
        fit(twin, optim.SGD(twin.parameters(), lr=0.01, momentum=0.9), (x, y), epochs=1,
            batch_size=8, progress=False, log=None)
    for (name, a), (_, b) in zip(model.named_parameters(), twin.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)


@pytest.mark.parametrize("name", ["resnet20", "preact_resnet18", "small_cnn", "lenet5"])
def test_models_train_the_same_without_the_data_gradient(name):
    """Where data_layer says yes, the model's backward must run with that layer returning
    None (nothing adds to it) and give the same parameter gradients."""
    kw = {"in_channels": 3} if name == "lenet5" else {}
    model = models.create(name, rng=0, **kw)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    dout = np.random.default_rng(1).standard_normal((2, 10)).astype(np.float32)

    def grads():
        model.zero_grad()
        model(x)
        dx = model.backward(dout)
        return dx, [p.grad.copy() for p in model.parameters()]
    dx, full = grads()
    with skip_data_gradient(model, x) as layer:
        assert layer is not None
        none, skipped = grads()
    assert dx.shape == x.shape and none is None
    for a, b in zip(full, skipped):
        np.testing.assert_array_equal(a, b)


def test_finding_the_data_layer_keeps_caches_and_generators():
    """data_layer's probing forward runs under nn.probe.untouched: a forward the caller ran
    before still backpropagates the same, and random modules draw the same numbers after."""
    model = models.create("wrn16_4", dropout=0.3, rng=0)
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    twin = copy.deepcopy(model)
    out = model(x)
    assert data_layer(model, x) is model.conv1
    dout = np.ones_like(out)
    np.testing.assert_array_equal(model.backward(dout), (twin(x), twin.backward(dout))[1])
    np.testing.assert_array_equal(model(x), twin(x))     # the Dropout Generators agree
