"""Module mechanics: registration, names, modes, state dicts, dtype moves, hooks, errors."""
from collections import OrderedDict

import numpy as np
import pytest

import minicnn.nn as nn
from minicnn.nn import init
from minicnn.nn.module import forward_hook


def small_net(rng=0):
    """conv-bn-relu-pool-flatten-linear, with a nested Sequential to exercise dotted names."""
    g = init.as_generator(rng)
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, rng=g), nn.BatchNorm2d(3), nn.ReLU()),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(3 * 2 * 2, 4, rng=g),
    )


class Custom(nn.Module):
    """Parameters, buffers and children assigned in a deliberately mixed order."""

    def __init__(self):
        super().__init__()
        self.b = nn.Parameter(np.arange(3.0))
        self.child = nn.Linear(3, 2, rng=0)
        self.register_buffer("count", np.zeros(1))
        self.a = nn.Parameter(np.ones((2, 2)))
        self.hyper = 7  # a plain attribute: not registered anywhere

    def forward(self, x):
        return self.child(x)


def test_registration_order_and_names():
    m = Custom()
    assert [n for n, _ in m.named_parameters()] == ["b", "a", "child.weight", "child.bias"]
    assert [n for n, _ in m.named_buffers()] == ["count"]
    assert [n for n, _ in m.named_children()] == ["child"]
    assert list(m.state_dict()) == ["b", "a", "count", "child.weight", "child.bias"]


def test_nested_sequential_names_follow_torchvision():
    net = small_net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["0.0.weight", "0.0.bias", "0.1.weight", "0.1.bias", "3.weight", "3.bias"]
    assert list(net.state_dict()) == ["0.0.weight", "0.0.bias", "0.1.weight", "0.1.bias",
                                      "0.1.running_mean", "0.1.running_var", "3.weight", "3.bias"]
    assert [n for n, _ in net.named_modules()] == ["", "0", "0.0", "0.1", "0.2", "1", "2", "3"]
    assert net.num_parameters() == 3 * 2 * 9 + 3 + 3 + 3 + 12 * 4 + 4


def test_sequential_ordereddict_indexing_and_slicing():
    seq = nn.Sequential(OrderedDict([("conv0", nn.Conv2d(1, 2, 1, rng=0)), ("relu0", nn.ReLU())]))
    assert [n for n, _ in seq.named_parameters()] == ["conv0.weight", "conv0.bias"]
    assert isinstance(seq[0], nn.Conv2d) and isinstance(seq[-1], nn.ReLU) and len(seq) == 2
    sub = seq[1:]
    assert isinstance(sub, nn.Sequential) and len(sub) == 1 and sub[0] is seq[1]
    with pytest.raises(IndexError):
        seq[2]


def test_shared_parameter_listed_once():
    lin = nn.Linear(2, 2, rng=0)
    net = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(net.parameters())) == 2


def test_zero_grad_and_accumulation():
    rng = np.random.default_rng(1)
    lin = nn.Linear(3, 2, rng=0, dtype=np.float64)
    x, dout = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    lin(x)
    lin.backward(dout)
    once = lin.weight.grad.copy()
    lin.backward(dout)
    np.testing.assert_allclose(lin.weight.grad, 2 * once)  # grads add up (+=)
    lin.zero_grad()
    assert not lin.weight.grad.any() and not lin.bias.grad.any()


def test_backward_before_forward_is_a_clear_error():
    for layer in (nn.Conv2d(1, 1, 1, rng=0), nn.ReLU(), nn.BatchNorm1d(2), nn.Dropout(),
                  nn.Flatten(), nn.CrossEntropyLoss()):
        with pytest.raises(RuntimeError, match="before forward"):
            layer.backward(np.zeros((1, 1)))


def test_train_eval_propagate():
    net = small_net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net.train(False)
    assert not net[0][1].training


def test_state_dict_round_trip_includes_buffers():
    rng = np.random.default_rng(2)
    a, b = small_net(rng=0), small_net(rng=1)
    a(rng.standard_normal((3, 2, 4, 4)).astype(np.float32))  # moves the BN running stats
    sd = a.state_dict()
    assert not np.allclose(sd["0.1.running_mean"], 0)
    sd["0.1.running_mean"][...] = 123.0  # a copy: editing it leaves the model alone
    assert not np.allclose(a[0][1].running_mean, 123.0)
    sd = a.state_dict()
    b.load_state_dict(sd)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb
        np.testing.assert_array_equal(va, vb)
    x = rng.standard_normal((2, 2, 4, 4)).astype(np.float32)
    a.eval()
    b.eval()
    np.testing.assert_array_equal(a(x), b(x))


def test_load_refuses_wrong_shape_naming_the_key():
    net = small_net()
    sd = net.state_dict()
    sd["3.weight"] = np.zeros((5, 12), dtype=np.float32)
    before = net[0][0].weight.data.copy()
    sd["0.0.weight"] = sd["0.0.weight"] + 1
    with pytest.raises(ValueError, match=r"3\.weight.*\(4, 12\).*\(5, 12\)"):
        net.load_state_dict(sd)
    np.testing.assert_array_equal(net[0][0].weight.data, before)  # nothing copied on error


def test_load_refuses_missing_and_unexpected_keys():
    net = small_net()
    sd = net.state_dict()
    del sd["0.1.running_var"]
    with pytest.raises(ValueError, match=r"missing key '0\.1\.running_var'"):
        net.load_state_dict(sd)
    sd = net.state_dict()
    sd["9.weight"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"unexpected key '9\.weight'"):
        net.load_state_dict(sd)
    missing, unexpected = net.load_state_dict(sd, strict=False)
    assert missing == [] and unexpected == ["9.weight"]


def test_load_ignores_num_batches_tracked_and_converts_dtype():
    net = small_net()
    sd = OrderedDict((k, v.astype(np.float64) * 0 + 0.5) for k, v in net.state_dict().items())
    sd["0.1.num_batches_tracked"] = np.array(10, dtype=np.int64)  # torchvision's BN counter
    net.load_state_dict(sd)
    assert net[3].weight.data.dtype == np.float32
    assert np.all(net[3].weight.data == 0.5) and np.all(net[0][1].running_var == 0.5)


def test_to_float64_casts_params_grads_and_buffers():
    net = small_net()
    assert net.to(np.float64) is net
    for _, p in net.named_parameters():
        assert p.data.dtype == np.float64 and p.grad.dtype == np.float64
    for _, b in net.named_buffers():
        assert b.dtype == np.float64
    x = np.random.default_rng(3).standard_normal((2, 2, 4, 4))
    out = net(x)
    assert out.dtype == np.float64
    net.to(np.float32)
    assert net(x.astype(np.float32)).dtype == np.float32
    assert net.to("numpy") is net
    with pytest.raises(ValueError, match="Module.to"):
        net.to(np.int32)
    with pytest.raises(ValueError, match="Module.to"):
        net.to("gpu")


def test_hooks_fire_for_every_module_in_post_order():
    net = small_net()
    seen = []
    with forward_hook(lambda m, x, out: seen.append((m, tuple(x.shape), tuple(out.shape)))):
        net(np.zeros((1, 2, 4, 4), dtype=np.float32))
    assert [m for m, _, _ in seen] == [net[0][0], net[0][1], net[0][2], net[0], net[1], net[2],
                                       net[3], net]
    assert seen[-1][1:] == ((1, 2, 4, 4), (1, 4))
    assert seen[4][1:] == ((1, 3, 4, 4), (1, 3, 2, 2))  # the max pool
    seen.clear()
    net(np.zeros((1, 2, 4, 4), dtype=np.float32))
    assert seen == []  # the hook is gone after the block
    with pytest.raises(ValueError, match="callable"):
        with forward_hook(3):
            pass


def test_hooks_nest_and_to_drops_stale_caches():
    lin = nn.Linear(2, 2, rng=0)
    outer, inner = [], []
    with forward_hook(lambda m, x, out: outer.append(m)):
        with forward_hook(lambda m, x, out: inner.append(m)):
            lin(np.ones((1, 2), dtype=np.float32))
        lin(np.ones((1, 2), dtype=np.float32))
    assert outer == [lin, lin] and inner == [lin]
    lin.to(np.float64)
    with pytest.raises(RuntimeError, match="before forward"):
        lin.backward(np.ones((1, 2)))


def test_repr_is_nested_with_hyper_parameters():
    text = repr(small_net())
    assert text.splitlines()[0] == "Sequential("
    assert "  (0): Sequential(\n    (0): Conv2d(2, 3, kernel_size=(3, 3), stride=1, padding=1)" in text
    assert "(1): MaxPool2d(kernel_size=2, stride=2, padding=0)" in text
    assert "(3): Linear(in_features=12, out_features=4, bias=True)" in text
    assert "BatchNorm2d(3, eps=1e-05, momentum=0.1)" in text


def test_subclass_must_call_super_init():
    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.zeros(2))

    with pytest.raises(RuntimeError, match="super"):
        Bad()


def test_parameter_refuses_integer_arrays():
    with pytest.raises(ValueError, match="float32 or float64"):
        nn.Parameter(np.zeros(3, dtype=np.int64))
    p = nn.Parameter(np.ones((2, 3), dtype=np.float32))
    assert p.grad.shape == (2, 3) and p.grad.dtype == np.float32 and not p.grad.any()


# --------------------------------------------------------------------------- init
def test_as_generator_forms():
    g = np.random.default_rng(0)
    assert init.as_generator(g) is g
    assert init.as_generator(5).random() == np.random.default_rng(5).random()
    assert isinstance(init.as_generator(None), np.random.Generator)
    for bad in (1.5, "0", True, -1):
        with pytest.raises(ValueError, match="as_generator"):
            init.as_generator(bad)


def test_init_scales_and_reproducibility():
    shape = (64, 8, 3, 3)  # fan_in 72, fan_out 576
    assert init.fans(shape) == (72, 576)
    w = init.he_normal(shape, rng=0)
    assert w.dtype == np.float32
    assert abs(w.std() - np.sqrt(2 / 72)) < 0.05 * np.sqrt(2 / 72)
    w64 = init.he_normal(shape, rng=0, dtype=np.float64)
    assert w64.dtype == np.float64 and abs(w64.std() - np.sqrt(2 / 72)) < 0.05 * np.sqrt(2 / 72)
    np.testing.assert_array_equal(w, init.he_normal(shape, rng=0))  # a seed reproduces the draw
    u = init.he_uniform(shape, rng=1)
    assert np.abs(u).max() <= np.sqrt(6 / 72) and abs(u.std() - np.sqrt(2 / 72)) < 0.05 * np.sqrt(2 / 72)
    xu = init.xavier_uniform(shape, rng=2, dtype=np.float64)
    assert np.abs(xu).max() <= np.sqrt(6 / (72 + 576))
    xn = init.xavier_normal(shape, rng=3, dtype=np.float64)
    assert abs(xn.std() - np.sqrt(2 / 648)) < 0.05 * np.sqrt(2 / 648)
    assert not init.zeros((3,)).any() and init.ones((2,)).sum() == 2
    with pytest.raises(ValueError, match="dtype"):
        init.zeros((3,), dtype=np.int32)


def test_layers_seeded_alike_are_identical():
    a, b = nn.Conv2d(3, 4, 3, rng=7), nn.Conv2d(3, 4, 3, rng=7)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    assert not a.bias.data.any()
    grouped = nn.Conv2d(4, 6, (3, 1), groups=2, rng=0, dtype=np.float64)
    assert grouped.weight.data.shape == (6, 2, 3, 1)
    # He: fan_in counts only the channels of one group.
    big = nn.Conv2d(64, 64, 3, groups=4, rng=0)
    assert abs(big.weight.data.std() - np.sqrt(2 / (16 * 9))) < 0.05 * np.sqrt(2 / (16 * 9))
