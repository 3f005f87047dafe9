"""Residual blocks (minicnn/nn/residual.py): gradients against numeric ones in float64,
shortcut options A / B / none, squeeze-excitation, stochastic depth, hooks, dtypes, errors.

Gradient checks run with BatchNorm in training mode (batch statistics, the hard case)
on N=2 inputs of 4x4 .. 6x6.  Errors are measured relative to the size of each whole
gradient, max|analytic - numeric| / max|numeric|: an entry that is tiny compared with
the rest (a product of small random numbers) carries the finite-difference round-off
(~1e-10 absolute) as a large *relative* error but is still checked to ~1e-10 of the
gradient's scale.  Correct blocks measure 1e-11 .. 1e-6 (the largest for a gradient that
is small as a whole, ~1e-4 for SE's first layer, against ~1e-10 of round-off); a wrong
backward gives > 1e-2.
"""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minicnn.nn as nn
from minicnn.gradcheck import check_module, numeric_gradient
from minicnn.nn.module import forward_hook
from minicnn.nn.residual import (BasicBlock, Bottleneck, PreActBlock, Residual, SEBottleneck,
                                 SqueezeExcitation, StochasticDepth, ZeroPadShortcut,
                                 linear_decay, projection_shortcut)

TOL = 1e-5


def _generators(module):
    return [v for _, m in module.named_modules() for v in vars(m).values()
            if isinstance(v, np.random.Generator)]


def grad_errors(module, x, seed=0):
    """name -> max|analytic - numeric| / max|numeric| for dx ("x") and every parameter.

    float64; a random (never all-ones) upstream gradient; the module's Generators are
    rewound before every forward so random modules draw the same numbers each time.
    """
    module.to(np.float64)
    x = np.asarray(x, dtype=np.float64)
    gens = _generators(module)
    states = [g.bit_generator.state for g in gens]

    def run(inp):
        for g, s in zip(gens, states):
            g.bit_generator.state = s
        return module(inp)

    dout = np.random.default_rng(seed).standard_normal(run(x).shape)
    module.zero_grad()
    run(x)
    dout_copy = dout.copy()
    dx = module.backward(dout)
    assert np.array_equal(dout, dout_copy), "backward wrote into dout"

    def err(analytic, numeric):
        assert analytic.shape == numeric.shape
        return float(np.max(np.abs(analytic - numeric)) / max(np.max(np.abs(numeric)), 1e-12))

    errors = {"x": err(dx, numeric_gradient(run, x, dout))}
    for name, p in module.named_parameters():
        analytic = p.grad.copy()
        original = p.data.copy()

        def f(value, data=p.data):
            data[...] = value
            return run(x)

        numeric = numeric_gradient(f, original, dout)
        p.data[...] = original
        errors[name] = err(analytic, numeric)
    return errors


def _randomize_batchnorm(module, seed):
    # Fresh BatchNorms (gamma 1, beta 0) make some gradients vanish exactly by symmetry
    # (e.g. BN -> ReLU -> 1-channel-per-group conv -> BN is invariant to gamma's scale),
    # leaving only round-off to compare; random affine parameters check the general case.
    rng = np.random.default_rng(seed)
    for _, m in module.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data[...] = rng.uniform(0.5, 1.5, m.weight.shape)
            m.bias.data[...] = rng.uniform(-0.5, 0.5, m.bias.shape)


def relu_margin(module, x):
    """The smallest nonzero |input| of any ReLU in one forward (Generators rewound afterwards).

    Exact zeros are left out: they are option A's padding channels, constant under any
    perturbation, so the finite difference never straddles the kink there.
    """
    gens = _generators(module)
    states = [g.bit_generator.state for g in gens]
    seen = [np.inf]

    def hook(m, inp, out):
        if isinstance(m, nn.ReLU) and np.any(inp != 0):
            seen.append(float(np.min(np.abs(inp[inp != 0]))))

    with forward_hook(hook):
        module(x)
    for g, s in zip(gens, states):
        g.bit_generator.state = s
    return min(seen)


def assert_grads(module, x, seed=0, hypothesis=False):
    """All gradients of ``module`` at ``x`` within TOL of numeric ones (BN made random first).

    A ReLU input within 1e-3 of its kink would make the finite difference straddle it;
    such draws are skipped (``hypothesis=True``: hypothesis.assume) or refused (fixed cases).
    """
    _randomize_batchnorm(module, seed)
    module.to(np.float64)
    x = np.asarray(x, dtype=np.float64)
    margin = relu_margin(module, x)
    if hypothesis:
        assume(margin > 1e-3)
    else:
        assert margin > 1e-3, f"pick another seed: a ReLU input is {margin} from its kink"
    errors = grad_errors(module, x, seed)
    assert max(errors.values()) < TOL, errors


def _x(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape)


# ------------------------------------------------------------------ gradient checks
@settings(max_examples=10)
@given(cin=st.integers(2, 3), extra=st.integers(0, 2), stride=st.sampled_from([1, 2]),
       shortcut=st.sampled_from(["A", "B", "none"]), h=st.integers(4, 6), w=st.integers(4, 5),
       seed=st.integers(0, 2 ** 31))
def test_basic_block_gradients(cin, extra, stride, shortcut, h, w, seed):
    block = BasicBlock(cin, cin + extra, stride=stride, shortcut=shortcut, rng=seed)
    x = _x((2, cin, h, w), seed)
    out = block(x.astype(np.float32))
    assert out.shape == (2, cin + extra, (h - 1) // stride + 1, (w - 1) // stride + 1)
    assert_grads(block, x, seed, hypothesis=True)


@settings(max_examples=10)
@given(cin=st.integers(2, 5), channels=st.integers(2, 3), stride=st.sampled_from([1, 2]),
       shortcut=st.sampled_from(["A", "B"]), stride_in_1x1=st.booleans(),
       grouped=st.booleans(), h=st.integers(4, 5), seed=st.integers(0, 2 ** 31))
def test_bottleneck_gradients(cin, channels, stride, shortcut, stride_in_1x1, grouped, h, seed):
    # grouped: ResNeXt-style 3x3 with 2 groups of 2 channels (width = channels*32/64*2).
    kw = dict(groups=2, base_width=32) if grouped else {}
    block = Bottleneck(cin, channels, stride=stride, shortcut=shortcut,
                       stride_in_1x1=stride_in_1x1, rng=seed, **kw)
    assert block.width == (channels // 2 * 2 if grouped else channels)
    x = _x((2, cin, h, h), seed)
    assert block(x.astype(np.float32)).shape == (2, 4 * channels, (h - 1) // stride + 1,
                                                 (h - 1) // stride + 1)
    if block.width < 2:
        return  # a 1-channel conv before BN has an exactly-zero weight gradient (scale invariance)
    assert_grads(block, x, seed, hypothesis=True)


def test_bottleneck_identity_shortcut_gradients():
    block = Bottleneck(8, 2, rng=3)  # 8 -> 8 channels, stride 1: the identity shortcut
    assert block.downsample is None
    assert_grads(block, _x((2, 8, 4, 4), 3), 3)


@settings(max_examples=10)
@given(channels=st.integers(2, 8), reduction=st.sampled_from([1, 2, 4]), h=st.integers(1, 4),
       seed=st.integers(0, 2 ** 31))
def test_squeeze_excitation_gradients(channels, reduction, h, seed):
    se = SqueezeExcitation(channels, reduction, rng=seed).to(np.float64)
    x = _x((2, channels, h, h + 1), seed)
    out = se(x)
    assert out.shape == x.shape
    # Each channel is scaled by a gate in (0, 1), the same at every pixel.
    gate = out / x
    assert np.all((gate > 0) & (gate < 1))
    np.testing.assert_allclose(gate, gate[:, :, :1, :1] * np.ones_like(gate), rtol=1e-10)
    assert_grads(se, x, seed, hypothesis=True)


@settings(max_examples=6)
@given(stride=st.sampled_from([1, 2]), seed=st.integers(0, 2 ** 31))
def test_se_bottleneck_gradients(stride, seed):
    block = SEBottleneck(4, 2, stride=stride, reduction=4, rng=seed)
    assert block.se.fc1.weight.shape == (2, 8)
    assert_grads(block, _x((2, 4, 4, 4), seed), seed, hypothesis=True)


@settings(max_examples=8)
@given(cin=st.integers(2, 3), extra=st.integers(0, 2), stride=st.sampled_from([1, 2]),
       shortcut=st.sampled_from(["A", "B"]), dropout=st.sampled_from([0.0, 0.3]),
       h=st.integers(4, 5), seed=st.integers(0, 2 ** 31))
def test_preact_block_gradients(cin, extra, stride, shortcut, dropout, h, seed):
    block = PreActBlock(cin, cin + extra, stride=stride, shortcut=shortcut, dropout=dropout,
                        rng=seed)
    x = _x((2, cin, h, h), seed)
    assert block(x.astype(np.float32)).shape == (2, cin + extra, (h - 1) // stride + 1,
                                                 (h - 1) // stride + 1)
    # Dropout masks are frozen by rewinding the block's Generator before every forward.
    assert_grads(block, x, seed, hypothesis=True)


def test_gradients_agree_with_check_module():
    # The team's check_module gives the same verdict as the scaled check above.
    block = BasicBlock(3, 4, stride=2, shortcut="B", rng=0)
    report = check_module(block, _x((2, 3, 5, 5), 0), rng=0)
    assert max(report.values()) < 1e-5, report


# ----------------------------------------------------------------------- shortcuts
@pytest.mark.parametrize("stride", [1, 2])
def test_zero_pad_shortcut_forward_backward(stride):
    x = _x((2, 3, 5, 4), 0)
    sc = ZeroPadShortcut(3, 5, stride)
    out = sc(x)
    assert out.shape == (2, 5, (5 - 1) // stride + 1, (4 - 1) // stride + 1)
    np.testing.assert_array_equal(out[:, :3], x[:, :, ::stride, ::stride])
    assert not out[:, 3:].any()
    assert sc.num_parameters() == 0
    assert_grads(sc, x)
    dout = _x(out.shape, 1)
    dx = sc.backward(dout)
    np.testing.assert_array_equal(dx[:, :, ::stride, ::stride], dout[:, :3])
    assert np.count_nonzero(dx) == dout[:, :3].size


def test_option_a_and_b_shortcuts():
    a = BasicBlock(4, 8, stride=2, shortcut="A", rng=0)
    b = BasicBlock(4, 8, stride=2, shortcut="B", rng=0)
    plain = BasicBlock(4, 8, stride=2, shortcut="none", rng=0)
    assert isinstance(a.downsample, ZeroPadShortcut)
    assert [k for k in b.state_dict() if k.startswith("downsample")] == [
        "downsample.0.weight", "downsample.1.weight", "downsample.1.bias",
        "downsample.1.running_mean", "downsample.1.running_var"]
    assert b.downsample[0].weight.shape == (8, 4, 1, 1) and b.downsample[0].stride == 2
    # Option A costs nothing: same parameters as the plain block; B adds 1x1 conv + BN.
    assert a.num_parameters() == plain.num_parameters() == b.num_parameters() - (8 * 4 + 2 * 8)
    # Same shape -> identity for both options.
    assert BasicBlock(4, 4, shortcut="A").downsample is None
    assert BasicBlock(4, 4, shortcut="B").downsample is None
    # Same weights, so the blocks differ only by what they add.
    x = _x((2, 4, 6, 6), 0).astype(np.float32)
    for m in (a, b, plain):
        m.eval()
    branch = plain.bn2(plain.conv2(plain.relu1(plain.bn1(plain.conv1(x)))))
    np.testing.assert_allclose(plain(x), np.maximum(branch, 0), rtol=1e-6)
    padded = np.zeros_like(branch)
    padded[:, :4] = x[:, :, ::2, ::2]
    np.testing.assert_allclose(a(x), np.maximum(branch + padded, 0), rtol=1e-5, atol=1e-6)


def test_identity_block_adds_input():
    block = BasicBlock(3, 3, rng=0).eval()
    x = _x((2, 3, 4, 4), 1).astype(np.float32)
    branch = block.bn2(block.conv2(block.relu1(block.bn1(block.conv1(x)))))
    np.testing.assert_allclose(block(x), np.maximum(branch + x, 0), rtol=1e-6, atol=1e-6)


def test_zero_init_residual_makes_identity():
    block = BasicBlock(4, 4, zero_init_residual=True, rng=0)
    assert not block.bn2.weight.data.any()
    x = np.abs(_x((2, 4, 5, 5), 0)).astype(np.float32)  # outputs of a previous ReLU
    np.testing.assert_allclose(block(x), x, atol=1e-6)
    assert not Bottleneck(16, 4, zero_init_residual=True).bn3.weight.data.any()
    assert BasicBlock(4, 4).bn2.weight.data.all()  # off by default (torchvision)


def test_projection_shortcut_names():
    sc = projection_shortcut(3, 6, 2, rng=0)
    assert list(sc.state_dict())[:2] == ["0.weight", "1.weight"]
    assert sc(_x((2, 3, 5, 5), 0).astype(np.float32)).shape == (2, 6, 3, 3)


def test_preact_projection_reads_preactivated_input():
    block = PreActBlock(3, 6, stride=2, shortcut="B", rng=0).eval()
    x = _x((2, 3, 6, 6), 0).astype(np.float32)
    a = block.relu1(block.bn1(x))
    branch = block.conv2(block.relu2(block.bn2(block.conv1(a))))
    np.testing.assert_allclose(block(x), branch + block.downsample(a), rtol=1e-5, atol=1e-6)
    ident = PreActBlock(3, 3, rng=0).eval()
    a = ident.relu1(ident.bn1(x))
    np.testing.assert_allclose(ident(x), ident.conv2(ident.relu2(ident.bn2(ident.conv1(a)))) + x,
                               rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ stochastic depth
def _seed_with_first_draw(keep, p):
    """A seed whose Generator's first random() keeps (< p) or drops the branch."""
    for s in range(100):
        if (np.random.default_rng(s).random() < p) == keep:
            return s
    raise AssertionError("no seed found")


def _branch(seed):
    return nn.Sequential(nn.Conv2d(3, 3, 3, padding=1, bias=False, rng=seed), nn.BatchNorm2d(3),
                         nn.ReLU(), nn.Conv2d(3, 3, 3, padding=1, rng=seed))


@pytest.mark.parametrize("keep", [True, False])
def test_stochastic_depth_train_paths(keep):
    p = 0.6
    seed = _seed_with_first_draw(keep, p)
    sd = StochasticDepth(_branch(1), survival_prob=p, rng=seed).to(np.float64)
    x = _x((2, 3, 4, 4), 2)
    out = sd(x)
    if keep:
        sd.rng = np.random.default_rng(seed)  # same draw again: compare with the bare branch
        np.testing.assert_allclose(out, sd.branch(x), rtol=1e-12)
    else:
        assert out.shape == x.shape and not out.any()
    sd.rng = np.random.default_rng(seed)
    errors = grad_errors(sd, x)
    assert max(errors.values()) < TOL, errors
    # A dropped branch passes no gradient at all; a kept one passes it to every parameter.
    dx = sd.backward(_x(x.shape, 3))
    grads = [p.grad for p in sd.parameters()]
    if keep:
        assert dx.any() and all(g.any() for g in grads)
    else:
        assert not dx.any()


def test_stochastic_depth_eval_scales_branch():
    p = 0.7
    sd = StochasticDepth(_branch(0), survival_prob=p, rng=0).eval()
    x = _x((2, 3, 4, 4), 1).astype(np.float32)
    out = sd(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, p * sd.branch(x), rtol=1e-6)
    state = sd.rng.bit_generator.state
    sd(x)
    assert sd.rng.bit_generator.state == state  # evaluation draws nothing
    errors = grad_errors(sd, x.astype(np.float64))
    assert max(errors.values()) < TOL, errors


def test_stochastic_depth_survival_rate():
    sd = StochasticDepth(nn.Identity(), survival_prob=0.7, rng=5)
    x = np.ones((1, 1, 1, 1), np.float32)
    kept = sum(float(sd(x)[0, 0, 0, 0]) for _ in range(2000))
    assert abs(kept / 2000 - 0.7) < 0.05  # binomial sd ~0.01
    # The same seed gives the same sequence of drops.
    a = StochasticDepth(nn.Identity(), 0.5, rng=9)
    b = StochasticDepth(nn.Identity(), 0.5, rng=9)
    assert [float(a(x).sum()) for _ in range(20)] == [float(b(x).sum()) for _ in range(20)]


def test_residual_with_dropped_branch_is_identity():
    seed = _seed_with_first_draw(False, 0.5)
    block = Residual(StochasticDepth(_branch(0), 0.5, rng=seed))
    x = _x((2, 3, 4, 4), 0).astype(np.float32)
    np.testing.assert_array_equal(block(x), x)
    dout = _x(x.shape, 1).astype(np.float32)
    np.testing.assert_array_equal(block.backward(dout), dout)
    kept = Residual(StochasticDepth(_branch(0), 0.5, rng=_seed_with_first_draw(True, 0.5)))
    assert_grads(kept, _x((2, 3, 4, 4), 0))


@pytest.mark.parametrize("keep", [True, False])
@pytest.mark.parametrize("make", [
    lambda p, rng: BasicBlock(3, 4, stride=2, shortcut="A", survival_prob=p, rng=rng),
    lambda p, rng: Bottleneck(4, 2, stride=2, shortcut="B", survival_prob=p, rng=rng),
])
def test_block_stochastic_depth_train_paths(keep, make):
    # A downsampling block: a dropped branch gives zeros of the branch's output shape,
    # so the block's output is relu(shortcut(x)).
    p = 0.5
    seed = _seed_with_first_draw(keep, p)
    block = make(p, 0)
    block.rng = np.random.default_rng(seed)  # init drew from the model's rng
    x = _x((2, block.in_channels, 5, 5), 7)
    block.to(np.float64)
    out = block(x)
    if not keep:
        block.rng = np.random.default_rng(seed)
        np.testing.assert_array_equal(out, np.maximum(block.downsample(x), 0))
    block.rng = np.random.default_rng(seed)
    assert_grads(block, x, 1)
    if not keep:  # no gradient reached the branch's layers
        assert not block.conv1.weight.grad.any() and not block.bn1.weight.grad.any()


def test_block_stochastic_depth_eval_and_models():
    block = BasicBlock(3, 3, survival_prob=0.8, rng=0).eval()
    x = np.abs(_x((2, 3, 4, 4), 1)).astype(np.float32)
    branch = block.bn2(block.conv2(block.relu1(block.bn1(block.conv1(x)))))
    np.testing.assert_allclose(block(x), np.maximum(0.8 * branch + x, 0), rtol=1e-5, atol=1e-6)
    assert list(block.state_dict()) == list(BasicBlock(3, 3, rng=0).state_dict())
    with pytest.raises(ValueError, match="stochastic depth needs a shortcut"):
        BasicBlock(3, 3, shortcut="none", survival_prob=0.5)
    with pytest.raises(ValueError, match="Bottleneck: expected survival_prob .*<= 1, received 1.5"):
        Bottleneck(8, 2, survival_prob=1.5)
    assert linear_decay(54, 54, 0.5) == 0.5 and linear_decay(27, 54, 0.5) == 0.75


# ------------------------------------------------------------- hooks, dtype, errors
def test_hooks_see_every_layer_of_a_block():
    seen = []
    block = Bottleneck(4, 2, stride=2, se_reduction=2, rng=0)
    with forward_hook(lambda m, x, out: seen.append(type(m).__name__)):
        block(_x((2, 4, 4, 4), 0).astype(np.float32))
    assert seen.count("Conv2d") == 4 and seen.count("BatchNorm2d") == 4
    assert seen.count("Linear") == 2 and seen.count("ReLU") == 4
    assert seen[-1] == "Bottleneck" and "SqueezeExcitation" in seen and "Sequential" in seen


@pytest.mark.parametrize("make", [
    lambda: BasicBlock(3, 4, stride=2, shortcut="A", rng=0),
    lambda: Bottleneck(3, 2, stride=2, se_reduction=4, rng=0),
    lambda: PreActBlock(3, 4, stride=2, dropout=0.2, rng=0),
])
def test_float32_stays_float32(make):
    block = make()
    x = _x((2, 3, 5, 5), 0).astype(np.float32)
    out = block(x)
    assert out.dtype == np.float32
    dx = block.backward(np.ones_like(out))
    assert dx.dtype == np.float32 and dx.shape == x.shape
    assert all(p.grad.dtype == np.float32 and np.isfinite(p.grad).all() for p in block.parameters())


def test_bad_inputs_raise_value_error():
    with pytest.raises(ValueError, match="BasicBlock.*shortcut"):
        BasicBlock(3, 4, shortcut="C")
    with pytest.raises(ValueError, match=r"BasicBlock: expected x of shape \(N, 3, H, W\)"):
        BasicBlock(3, 4)(np.zeros((2, 5, 4, 4), np.float32))
    with pytest.raises(ValueError, match="ZeroPadShortcut.*out_channels >= in_channels"):
        ZeroPadShortcut(4, 2, 2)
    with pytest.raises(ValueError, match="Bottleneck.*stride"):
        Bottleneck(4, 2, stride=0)
    with pytest.raises(ValueError, match="StochasticDepth: expected survival_prob .*> 0"):
        StochasticDepth(nn.Identity(), survival_prob=0.0)
    with pytest.raises(ValueError, match="expected a branch output of shape"):
        StochasticDepth(nn.Conv2d(3, 4, 1), 1.0).eval()(np.zeros((2, 3, 2, 2), np.float32))
    with pytest.raises(ValueError, match="PreActBlock.*shortcut"):
        PreActBlock(3, 4, shortcut="none")


def test_block_stochastic_depth_draws_once_per_training_forward():
    # One draw from the block's Generator per training forward; none in evaluation, and none
    # at all without stochastic depth (so switching it off keeps every other draw in place).
    x = _x((2, 3, 4, 4), 0).astype(np.float32)
    block = BasicBlock(3, 3, survival_prob=0.5, rng=0)
    state = block.rng.bit_generator.state
    block(x)
    assert block.rng.bit_generator.state != state
    block.eval()
    state = block.rng.bit_generator.state
    block(x)
    assert block.rng.bit_generator.state == state
    plain = Bottleneck(3, 2, rng=0)
    state = plain.rng.bit_generator.state
    plain(x)
    assert plain.rng.bit_generator.state == state
    block.rng = g = np.random.default_rng(1)
    expected = np.random.default_rng(1)
    expected.random()
    block.train()(x)
    assert g.bit_generator.state == expected.bit_generator.state   # exactly one draw
