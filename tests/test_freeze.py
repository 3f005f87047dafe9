"""Module.freeze / unfreeze: which parameters a prefix selects, that a frozen parameter gets no
gradient and no optimizer step, that a frozen BatchNorm keeps its running statistics, that dx
still flows through frozen layers, and that a run with a frozen backbone resumes bit for bit."""
from collections import OrderedDict

import numpy as np
import pytest

import minicnn.functional as F
from minicnn import backend, models, nn, optim
from minicnn.functional import conv
from minicnn.gradcheck import check_module
from minicnn.train import fit


def small_net(seed=0):
    rng = np.random.default_rng(seed)
    return nn.Sequential(OrderedDict([
        ("layer1", nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, rng=rng), nn.BatchNorm2d(4), nn.ReLU())),
        ("layer10", nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, rng=rng), nn.BatchNorm2d(4), nn.ReLU())),
        ("pool", nn.GlobalAvgPool2d()),
        ("fc", nn.Linear(4, 3, rng=rng)),
    ]))


def frozen_names(model):
    return [n for n, p in model.named_parameters() if not p.requires_grad]


# ------------------------------------------------------------------ which parameters


def test_prefix_matches_whole_name_parts_only():
    model = small_net().freeze("layer1")
    assert frozen_names(model) == ["layer1.0.weight", "layer1.0.bias", "layer1.1.weight", "layer1.1.bias"]
    model.unfreeze()
    assert frozen_names(model) == []
    model.freeze("layer1.0.weight")                  # a full parameter name matches itself
    assert frozen_names(model) == ["layer1.0.weight"]


def test_prefix_tuple_exclude_none_and_chaining():
    model = small_net()
    assert model.freeze(("layer1.0", ["fc"][0])) is model
    assert frozen_names(model) == ["layer1.0.weight", "layer1.0.bias", "fc.weight", "fc.bias"]
    model.unfreeze().freeze(exclude=["fc"])
    assert [n for n, _ in model.named_parameters(trainable_only=True)] == ["fc.weight", "fc.bias"]
    assert [id(p) for p in model.trainable_parameters()] == [id(model.fc.weight), id(model.fc.bias)]
    model.freeze()
    assert list(model.trainable_parameters()) == []
    model.unfreeze("layer10", exclude="layer10.1")
    assert [n for n, _ in model.named_parameters(trainable_only=True)] == ["layer10.0.weight", "layer10.0.bias"]
    assert "requires_grad=False" in repr(model.fc.weight)


@pytest.mark.parametrize("prefix", ["layer2", "layer1.", "fc.weigh", ("fc", "nope")])
def test_prefix_matching_nothing_is_refused_with_the_top_level_names(prefix):
    model = small_net()
    with pytest.raises(ValueError, match=r"Sequential.freeze: prefix .* matches no parameter; "
                                         r"the top-level names are layer1, layer10, pool, fc"):
        model.freeze(prefix)
    assert frozen_names(model) == []                 # refused before anything changed


@pytest.mark.parametrize("bad", ["", 3, ("fc", None), {"fc"}])
def test_bad_prefix_types_are_refused(bad):
    with pytest.raises(ValueError, match="Sequential.unfreeze: expected prefix as a non-empty name"):
        small_net().unfreeze(bad)
    with pytest.raises(ValueError, match="Sequential.freeze: exclude 'head' matches no parameter"):
        small_net().freeze(exclude="head")
    model = small_net()                 # a model that is not from the zoo names no classifier
    with pytest.raises(ValueError, match=r"at least one name in exclude, received \(\) \(only zoo"):
        model.freeze(exclude=model.classifier_names)
    assert frozen_names(model) == []


# ------------------------------------------------------------------ a frozen backbone trains


def test_frozen_resnet20_backbone_stays_bit_identical_while_the_head_trains():
    model = models.create("resnet20", num_classes=10, rng=0)
    model.freeze(exclude=model.classifier_names)
    before = model.state_dict()
    head = set(model.classifier_names)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, size=4)
    # Given every parameter, as a user who forgets trainable_parameters() would.
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(2):
        opt.zero_grad()
        loss_fn(model(x), y)
        model.backward(loss_fn.backward())
        for name, p in model.named_parameters():
            if not p.requires_grad:
                assert not p.grad.any(), name     # no gradient accumulated
        opt.step()
    after = model.state_dict()
    for key in before:
        if key.rpartition(".")[0] in head:
            assert not np.array_equal(before[key], after[key]), key
        else:                           # weights and every BN's running statistics
            assert np.array_equal(before[key], after[key]), key
    state = opt.state_dict()
    for i, (name, _) in enumerate(model.named_parameters()):
        assert state[f"momentum_buffer.{i}"].any() == (name.rpartition(".")[0] in head), name


@pytest.mark.parametrize("make", [lambda ps: optim.Adam(ps, lr=0.1, weight_decay=0.1),
                                  lambda ps: optim.RMSProp(ps, lr=0.1, momentum=0.9, weight_decay=0.1)])
def test_every_optimizer_skips_a_frozen_parameter_even_with_a_gradient(make):
    p, q = nn.Parameter(np.ones(3)), nn.Parameter(np.ones(3))
    p.requires_grad = False
    p.grad[...] = 1.0                   # set by hand: the optimizer must still leave p alone
    q.grad[...] = 1.0
    opt = make([p, q])
    opt.step()
    opt.step()
    assert np.array_equal(p.data, np.ones(3)) and not np.array_equal(q.data, np.ones(3))
    assert all(not a.any() for k, a in opt.state_dict().items() if k.endswith(".0"))


# ------------------------------------------------------------------ frozen BatchNorm


def test_frozen_batchnorm_uses_running_statistics_inside_train():
    rng = np.random.default_rng(0)
    bn = nn.BatchNorm2d(3)
    bn.running_mean[...] = [0.5, -1.0, 2.0]
    bn.running_var[...] = [2.0, 0.5, 1.5]
    x = rng.standard_normal((4, 3, 5, 5)).astype(np.float32)
    want = bn.eval()(x)
    bn.train().freeze()
    assert bn.training is False
    stats = bn.running_mean.copy(), bn.running_var.copy()
    assert np.array_equal(bn(x), want)
    assert np.array_equal(bn.running_mean, stats[0]) and np.array_equal(bn.running_var, stats[1])
    bn.freeze("weight")                  # one parameter trainable: a normal BN again
    bn.unfreeze("bias")
    assert bn.training is True
    bn.unfreeze()
    assert bn.training is True and not np.array_equal(bn(x), want)
    assert not np.array_equal(bn.running_mean, stats[0])


def test_frozen_batchnorm_inside_a_fused_resnet_block_stays_in_eval():
    model = models.create("resnet20", num_classes=10, rng=0).freeze("layer1").train()
    block = model.layer1[0]
    x = np.random.default_rng(2).standard_normal((2, 16, 8, 8)).astype(np.float32)
    want = block.eval()(x)
    block.train()
    assert not block.bn1.training and block.conv1.training
    assert np.array_equal(block(x), want)


# ------------------------------------------------------------------ dx flows through


def test_gradient_flows_through_a_frozen_middle_layer():
    model = small_net(3)
    model.layer1 = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, rng=3), nn.ReLU())  # no BN, whose
    model.freeze("layer10")                         # mean would cancel this bias's gradient
    x = np.random.default_rng(4).standard_normal((3, 3, 5, 5))
    report = check_module(model, x, rng=5)
    for name, err in report.items():
        if not name.startswith("layer10"):
            assert err < 1e-6, (name, err)
    for name, p in model.named_parameters():
        assert p.grad.any() != name.startswith("layer10"), name


# ------------------------------------------------------------------ a frozen conv skips dw


@pytest.mark.parametrize("layer,dtype,cython", [
    # (N, C, H, W, F, KH, KW, stride, pad, groups): each algorithm of choose_algorithm
    ((2, 8, 8, 8, 8, 3, 3, 1, 1, 1), np.float32, True),        # direct (im2col without AVX2)
    ((2, 16, 8, 8, 16, 3, 3, 1, 1, 1), np.float64, True),      # winograd
    ((2, 16, 9, 9, 8, 3, 3, 2, 1, 2), np.float32, True),       # im2col, grouped, strided
    ((2, 8, 6, 6, 4, 1, 1, 1, 0, 1), np.float64, True),        # im2col's pointwise path
    ((2, 6, 7, 7, 4, 3, 2, 2, 1, 2), np.float64, False),       # batched
])
def test_conv_backward_need_dw_false_gives_the_same_dx_and_no_dw(layer, dtype, cython):
    n, c, h, w_, f, kh, kw, stride, pad, groups = layer
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, w_)).astype(dtype)
    w = rng.standard_normal((f, c // groups, kh, kw)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    with backend.use_cython(cython):
        assert (conv.choose_algorithm(np, x, w, stride, pad, groups) == "batched") == (not cython)
        out, cache = F.conv2d_forward(x, w, b, stride, pad, groups)
        dout = rng.standard_normal(out.shape).astype(dtype)
        dx, dw, db = F.conv2d_backward(dout, cache)
        dx2, dw2, db2 = F.conv2d_backward(dout, cache, need_dw=False)
        assert dw2 is None and db2 is None and np.array_equal(dx, dx2)
        assert F.conv2d_backward(dout, cache, need_dx=False, need_dw=False) == (None, None, None)


def test_linear_backward_need_dw_false_gives_the_same_dx_and_no_dw():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((4, 2, 3)), rng.standard_normal((5, 6)), rng.standard_normal(5)
    out, cache = F.linear_forward(x, w, b)
    dout = rng.standard_normal(out.shape)
    dx, _, _ = F.linear_backward(dout, cache)
    dx2, dw2, db2 = F.linear_backward(dout, cache, need_dw=False)
    assert dw2 is None and db2 is None and np.array_equal(dx, dx2)


@pytest.mark.parametrize("kind", ["Conv2d", "Linear"])
def test_frozen_layer_asks_for_no_weight_gradient(monkeypatch, kind):
    layer, fn, shape = ((nn.Conv2d(3, 4, 3, padding=1, rng=0), "conv2d_backward", (2, 3, 5, 5))
                        if kind == "Conv2d" else (nn.Linear(3, 4, rng=0), "linear_backward", (2, 3)))
    asked = []
    real = getattr(F, fn)
    monkeypatch.setattr(F, fn, lambda *a, **k: asked.append(k["need_dw"]) or real(*a, **k))
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    for prefix in ("weight", "bias", None):
        out = layer(x)
        layer.freeze(prefix).backward(np.ones_like(out))
        layer.unfreeze()
    assert asked == [True, True, False]   # one trainable parameter left: dw is computed


# ------------------------------------------------------------------ resume


def test_resume_with_a_frozen_backbone_is_bit_identical(tmp_path):
    rng = np.random.default_rng(0)
    data = (rng.integers(0, 256, size=(32, 3, 8, 8), dtype=np.uint8), rng.integers(0, 3, size=32))

    def make():
        model = small_net(7).freeze(exclude="fc")     # as the first run did: freezing is not saved
        return model, optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)

    kw = dict(batch_size=8, seed=5, log=lambda *_: None, progress=False)
    straight, o = make()
    start = straight.state_dict()
    fit(straight, o, data, epochs=2, run_dir=tmp_path / "straight", **kw)
    m1, o1 = make()
    fit(m1, o1, data, epochs=1, run_dir=tmp_path / "resumed", **kw)
    m2, o2 = make()
    fit(m2, o2, data, epochs=2, run_dir=tmp_path / "resumed", resume=True, **kw)
    end, resumed = straight.state_dict(), m2.state_dict()
    for key in end:
        assert np.array_equal(end[key], resumed[key]), key
        assert np.array_equal(end[key], start[key]) == (not key.startswith("fc.")), key


def test_check_module_leaves_out_frozen_parameters():
    from minicnn.gradcheck import check_module
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, rng=0), nn.ReLU(), nn.Flatten(),
                          nn.Linear(3 * 4 * 4, 2, rng=0))
    model.freeze("0")
    x = np.random.default_rng(1).standard_normal((2, 2, 4, 4))
    report = check_module(model, x)
    assert set(report) == {"x", "3.weight", "3.bias"}
    assert max(report.values()) < 1e-6
