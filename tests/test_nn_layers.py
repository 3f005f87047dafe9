"""Every plain layer: shapes, dtypes, and dx and parameter gradients against numeric ones (float64).

Inputs are kept away from the points where a layer is not differentiable: ReLU sees
values with |x| >= 0.1 (mst.kink_free_array), max pooling distinct values spaced 0.05
apart (mst.tie_free_array), so no two entries of a window are within the
finite-difference step of each other.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minicnn.functional as F
import minicnn.nn as nn
from minicnn.gradcheck import check_module, numeric_gradient, rel_error
from minicnn.nn.module import forward_hook
from minicnn.testing import strategies as mst

# Worst relative error allowed (float64, h=1e-5).  Correct layers measure 1e-11 .. 6e-7 (the
# largest for LRN and BatchNorm entries whose gradient is ~1e-5 in size); a wrong backward
# gives 1e-2 or more.
TOL = 1e-5
# An entry far smaller than the rest of its gradient (a product of two small random
# numbers, say 1e-6) carries the finite-difference round-off (~1e-10 absolute) as a large
# *relative* error.  Such entries are judged against this fraction of the largest entry.
FLOOR = 1e-3


def _generator_states(module):
    gens = [v for _, m in module.named_modules() for v in vars(m).values()
            if isinstance(v, np.random.Generator)]
    return [(g, g.bit_generator.state) for g in gens]


def _scaled_errors(module, x, seed):
    """name -> max |a - n| / max(|a| + |n|, FLOOR * max|n|), the gradients recomputed in full.

    Same dout (the first draw of default_rng(seed)) and the same frozen random masks as
    check_module; used only when check_module's plain relative error is above TOL.
    """
    states = _generator_states(module)

    def run(inp):
        for g, st_ in states:
            g.bit_generator.state = st_
        return module(inp)

    dout = np.random.default_rng(seed).standard_normal(run(x).shape)
    module.zero_grad()
    run(x)
    grads = {"x": module.backward(dout)}
    grads.update((name, p.grad.copy()) for name, p in module.named_parameters())
    numeric = {"x": numeric_gradient(run, x, dout)}
    for name, p in module.named_parameters():
        original = p.data.copy()

        def f(value, data=p.data):
            data[...] = value
            return run(x)

        numeric[name] = numeric_gradient(f, original, dout)
        p.data[...] = original
    errors = {}
    for name, a in grads.items():
        n = numeric[name]
        floor = max(FLOOR * np.abs(n).max(), 1e-12)
        errors[name] = float(np.max(np.abs(a - n) / np.maximum(np.abs(a) + np.abs(n), floor)))
    return errors


def assert_gradcheck(module, x, seed=0, tol=TOL):
    """check_module's worst relative error below tol for dx and every parameter grad."""
    report = check_module(module, x, rng=seed)
    assert set(report) == {"x"} | {name for name, _ in module.named_parameters()}
    if max(report.values()) >= tol:
        scaled = _scaled_errors(module, np.asarray(x, dtype=np.float64), seed)
        assert max(scaled.values()) < tol, (report, scaled)
    return report


# ------------------------------------------------------------------ gradient checks
@settings(max_examples=25)
@given(mst.conv_geometries(max_size=5, max_kernel=3, max_stride=2, max_pad=1), st.booleans(), mst.seeds())
def test_conv2d_gradcheck(g, bias, seed):
    rng = np.random.default_rng(seed)
    conv = nn.Conv2d(g["C"], g["F"], (g["KH"], g["KW"]), stride=g["stride"], padding=g["pad"],
                     groups=g["groups"], bias=bias, rng=rng, dtype=np.float64)
    if bias:
        conv.bias.data[...] = rng.standard_normal(conv.bias.shape)
    x = mst.random_array((g["N"], g["C"], g["H"], g["W"]), seed)
    out = conv(x)
    assert out.shape == (g["N"], g["F"], g["OH"], g["OW"])
    ref, _ = F.conv2d_forward_naive(x, conv.weight.data, conv.bias.data if bias else None,
                                    g["stride"], g["pad"], g["groups"])
    np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-12)
    assert_gradcheck(conv, x, seed=seed)


@settings(max_examples=25)
@given(st.integers(1, 3), st.integers(1, 5), st.integers(1, 4), st.booleans(), mst.seeds())
def test_linear_gradcheck(n, d_in, d_out, bias, seed):
    rng = np.random.default_rng(seed)
    lin = nn.Linear(d_in, d_out, bias=bias, rng=rng, dtype=np.float64)
    if bias:
        lin.bias.data[...] = rng.standard_normal(d_out)
    x = rng.standard_normal((n, d_in))
    out = lin(x)
    expected = x @ lin.weight.data.T + (lin.bias.data if bias else 0)
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    assert_gradcheck(lin, x, seed=seed)


@settings(max_examples=20)
@given(st.sampled_from([(3,), (2, 3), (1, 2, 3, 2)]), mst.seeds())
def test_relu_and_sigmoid_gradcheck(shape, seed):
    x = mst.kink_free_array(shape, seed)
    np.testing.assert_array_equal(nn.ReLU()(x), np.maximum(x, 0))
    np.testing.assert_allclose(nn.Sigmoid()(x), 1 / (1 + np.exp(-x)), rtol=1e-12)
    assert_gradcheck(nn.ReLU(), x, seed=seed)
    assert_gradcheck(nn.Sigmoid(), x, seed=seed)


def _pool_kernel(g, square):
    """kernel_size as an int when square and asked for (PyTorch keeps the form given)."""
    return g["KH"] if square and g["KH"] == g["KW"] else (g["KH"], g["KW"])


@settings(max_examples=25)
@given(mst.pool_geometries(max_size=6, max_kernel=3), st.booleans(), mst.seeds())
def test_max_pool_gradcheck(g, square, seed):
    pool = nn.MaxPool2d(_pool_kernel(g, square), stride=g["stride"], padding=g["pad"])
    x = mst.tie_free_array((g["N"], g["C"], g["H"], g["W"]), seed)
    assert pool(x).shape == (g["N"], g["C"], g["OH"], g["OW"])
    assert_gradcheck(pool, x, seed=seed)


@settings(max_examples=25)
@given(mst.pool_geometries(max_size=6, max_kernel=3), st.booleans(), mst.seeds())
def test_avg_pool_gradcheck(g, square, seed):
    pool = nn.AvgPool2d(_pool_kernel(g, square), stride=g["stride"], padding=g["pad"])
    x = mst.random_array((g["N"], g["C"], g["H"], g["W"]), seed)
    assert pool(x).shape == (g["N"], g["C"], g["OH"], g["OW"])
    assert_gradcheck(pool, x, seed=seed)


@settings(max_examples=20)
@given(mst.pool_geometries(max_size=7, max_kernel=3), mst.seeds())
def test_ceil_mode_pools_gradcheck(g, seed):
    for pool in (nn.MaxPool2d((g["KH"], g["KW"]), stride=g["stride"], padding=g["pad"], ceil_mode=True),
                 nn.AvgPool2d((g["KH"], g["KW"]), stride=g["stride"], padding=g["pad"], ceil_mode=True)):
        x = mst.tie_free_array((g["N"], g["C"], g["H"], g["W"]), seed)
        out = pool(x)
        assert out.shape[2] >= g["OH"] and out.shape[3] >= g["OW"]   # never fewer than floor
        assert_gradcheck(pool, x, seed=seed)
    assert "ceil_mode=True" in repr(pool) and "ceil_mode" not in repr(nn.MaxPool2d(2))


def test_adaptive_avg_pool_layer():
    pool = nn.AdaptiveAvgPool2d(6)
    assert pool.output_size == (6, 6) and repr(pool) == "AdaptiveAvgPool2d(output_size=(6, 6))"
    x = np.random.default_rng(0).standard_normal((2, 3, 13, 8))
    assert pool(x).shape == (2, 3, 6, 6)
    assert_gradcheck(pool, x, seed=0)
    with pytest.raises(ValueError, match="AdaptiveAvgPool2d.*output_size"):
        nn.AdaptiveAvgPool2d(0)


def test_max_pool_ties_go_to_the_first_maximum():
    pool = nn.MaxPool2d(2)
    x = np.ones((1, 1, 2, 2))
    pool(x)
    np.testing.assert_array_equal(pool.backward(np.full((1, 1, 1, 1), 3.0)),
                                  [[[[3.0, 0.0], [0.0, 0.0]]]])


@settings(max_examples=15)
@given(st.integers(1, 2), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), mst.seeds())
def test_global_avg_pool_gradcheck(n, c, h, w, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w))
    gap = nn.GlobalAvgPool2d()
    np.testing.assert_allclose(gap(x), x.mean(axis=(2, 3)))
    assert_gradcheck(gap, x, seed=seed)


@settings(max_examples=20)
@given(st.integers(1, 5), st.integers(1, 5), st.sampled_from([1e-4, 0.1, 1.0]),
       st.sampled_from([0.5, 0.75]), st.sampled_from([1.0, 2.0]), mst.seeds())
def test_lrn_gradcheck(size, c, alpha, beta, k, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, c, 2, 3))
    lrn = nn.LocalResponseNorm(size, alpha=alpha, beta=beta, k=k)
    out = lrn(x)
    # The definition, written out channel by channel (Caffe / PyTorch window).
    ref = np.empty_like(x)
    for ch in range(c):
        lo, hi = max(0, ch - size // 2), min(c, ch + (size - 1) // 2 + 1)
        ref[:, ch] = x[:, ch] / (k + alpha / size * (x[:, lo:hi] ** 2).sum(axis=1)) ** beta
    np.testing.assert_allclose(out, ref, rtol=1e-12)
    assert_gradcheck(lrn, x, seed=seed)


def _randomise_bn(bn, rng):
    """Non-trivial gamma/beta/running stats, so the checks see every term."""
    bn.weight.data[...] = rng.uniform(0.5, 1.5, bn.num_features)
    bn.bias.data[...] = rng.standard_normal(bn.num_features)
    bn.running_mean[...] = rng.standard_normal(bn.num_features)
    bn.running_var[...] = rng.uniform(0.5, 2.0, bn.num_features)


@settings(max_examples=20)
@given(st.sampled_from(["1d", "2d"]), st.integers(3, 4), st.integers(1, 3), st.booleans(),
       mst.seeds())
def test_batchnorm_gradcheck_train_and_eval(kind, n, c, training, seed):
    # n >= 3: with two values per channel the normalised output is +-1 whatever x is, so
    # dx is ~eps-sized and a relative error says nothing.
    rng = np.random.default_rng(seed)
    bn = nn.BatchNorm1d(c, dtype=np.float64) if kind == "1d" else nn.BatchNorm2d(c, dtype=np.float64)
    _randomise_bn(bn, rng)
    shape = (n, c) if kind == "1d" else (n, c, 2, 3)
    x = rng.standard_normal(shape) * 2 + 1
    bn.train(training)
    assert_gradcheck(bn, x, seed=seed)


@settings(max_examples=15)
@given(st.sampled_from([0.2, 0.5, 0.7]), mst.seeds())
def test_dropout_gradcheck_in_training(p, seed):
    rng = np.random.default_rng(seed)
    drop = nn.Dropout(p, rng=seed)
    assert_gradcheck(drop, rng.standard_normal((3, 4)), seed=seed)


@settings(max_examples=10)
@given(st.sampled_from([(2, 3), (2, 3, 2), (1, 2, 3, 2)]), mst.seeds())
def test_flatten_and_identity_gradcheck(shape, seed):
    x = np.random.default_rng(seed).standard_normal(shape)
    flat = nn.Flatten()
    assert flat(x).shape == (shape[0], int(np.prod(shape[1:])))
    assert_gradcheck(flat, x, seed=seed)
    assert nn.Identity()(x) is x
    assert_gradcheck(nn.Identity(), x, seed=seed)


@settings(max_examples=15)
@given(st.integers(1, 4), st.integers(2, 5), mst.seeds())
def test_cross_entropy_loss_gradient(n, k, seed):
    rng = np.random.default_rng(seed)
    scores = rng.standard_normal((n, k))  # unsaturated: tiny gradients would make relative errors noise
    y = rng.integers(0, k, n)
    loss_fn = nn.CrossEntropyLoss()
    loss = loss_fn(scores, y)
    assert isinstance(loss, float)
    shifted = scores - scores.max(axis=1, keepdims=True)
    expected = -np.mean(shifted[np.arange(n), y] - np.log(np.exp(shifted).sum(axis=1)))
    assert abs(loss - expected) < 1e-12
    dscores = loss_fn.backward()
    numeric = numeric_gradient(lambda s: np.array(nn.CrossEntropyLoss()(s, y)), scores)
    assert rel_error(dscores, numeric) < TOL
    np.testing.assert_allclose(loss_fn.backward(0.3), 0.3 * dscores)


def test_tiny_network_end_to_end_gradcheck():
    """conv-bn-relu-pool-flatten-linear, every parameter checked through the whole stack.

    The conv has no bias, as before every BatchNorm: BN would cancel it, its gradient is
    exactly 0 and a relative error of 0 against ~1e-11 means nothing.
    """
    rng = np.random.default_rng(4)
    net = nn.Sequential(nn.Conv2d(2, 3, (3, 2), padding=1, bias=False, rng=rng), nn.BatchNorm2d(3), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(3 * 2 * 2, 3, rng=rng))
    net.to(np.float64)
    _randomise_bn(net[1], rng)
    x = rng.standard_normal((2, 2, 4, 3))
    # Precondition: no ReLU input near its kink and no near-tie inside a pooling window.
    seen = {}
    with forward_hook(lambda m, inp, out: seen.setdefault(type(m).__name__, (inp, out))):
        net(x)
    assert np.abs(seen["ReLU"][0]).min() > 1e-3
    relu_out = seen["MaxPool2d"][0]                                   # (2, 3, 4, 4)
    windows = relu_out.reshape(2, 3, 2, 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(2, 3, 2, 2, 4)
    windows = np.sort(windows, axis=-1)
    top, second = windows[..., -1], windows[..., -2]
    assert np.all((top - second)[top > 0] > 1e-3)
    report = assert_gradcheck(net, x, seed=5)
    assert set(report) == {"x", "0.weight", "1.weight", "1.bias", "5.weight", "5.bias"}


# ------------------------------------------------------------------ behaviour and dtypes
LAYERS = [
    (lambda: nn.Conv2d(2, 4, (3, 1), stride=2, padding=1, groups=2, rng=0), (2, 2, 5, 4)),
    (lambda: nn.Linear(6, 3, rng=0), (2, 6)),
    (nn.ReLU, (2, 3, 4, 4)),
    (nn.Sigmoid, (2, 3)),
    (lambda: nn.MaxPool2d(3, stride=2, padding=1), (2, 3, 5, 5)),
    (lambda: nn.AvgPool2d((2, 3), stride=1), (2, 3, 4, 4)),
    (lambda: nn.MaxPool2d(3, stride=2, ceil_mode=True), (2, 3, 6, 7)),
    (lambda: nn.AvgPool2d(2, ceil_mode=True), (2, 3, 5, 5)),
    (lambda: nn.AdaptiveAvgPool2d((3, 2)), (2, 3, 5, 4)),
    (nn.GlobalAvgPool2d, (2, 3, 4, 4)),
    (lambda: nn.LocalResponseNorm(3), (2, 4, 3, 3)),
    (lambda: nn.BatchNorm1d(6), (4, 6)),
    (lambda: nn.BatchNorm2d(3), (2, 3, 4, 4)),
    (lambda: nn.Dropout(0.5, rng=0), (2, 3, 4)),
    (nn.Flatten, (2, 3, 2, 2)),
    (nn.Identity, (2, 3)),
]


@pytest.mark.parametrize("make,shape", LAYERS)
def test_float32_stays_float32_and_dout_untouched(make, shape):
    rng = np.random.default_rng(0)
    layer = make()
    x = rng.standard_normal(shape).astype(np.float32)
    out = layer(x)
    assert out.dtype == np.float32
    dout = rng.standard_normal(out.shape).astype(np.float32)
    dout_before = dout.copy()
    dx = layer.backward(dout)
    assert dx.shape == x.shape and dx.dtype == np.float32
    np.testing.assert_array_equal(dout, dout_before)  # a backward never writes into dout
    for name, p in layer.named_parameters():
        assert p.data.dtype == np.float32 and p.grad.dtype == np.float32, name
        assert p.grad.any(), name
    for name, b in layer.named_buffers():
        assert b.dtype == np.float32, name


def test_float32_input_to_float64_layer_is_refused():
    conv = nn.Conv2d(1, 1, 1, rng=0, dtype=np.float64)
    with pytest.raises(ValueError, match="dtype"):
        conv(np.zeros((1, 1, 2, 2), dtype=np.float32))


def test_batchnorm_running_stats_use_pytorch_momentum_and_unbiased_variance():
    rng = np.random.default_rng(1)
    bn = nn.BatchNorm2d(2, momentum=0.1, dtype=np.float64)
    x = rng.standard_normal((3, 2, 2, 2)) * 3 + 5
    out = bn(x)
    mean = x.mean(axis=(0, 2, 3))
    var_biased = x.var(axis=(0, 2, 3))
    np.testing.assert_allclose(bn.running_mean, 0.9 * 0 + 0.1 * mean)
    np.testing.assert_allclose(bn.running_var, 0.9 * 1 + 0.1 * x.var(axis=(0, 2, 3), ddof=1))
    # Training normalises with the batch's own (biased) statistics.
    expected = (x - mean[None, :, None, None]) / np.sqrt(var_biased[None, :, None, None] + 1e-5)
    np.testing.assert_allclose(out, expected, atol=1e-12)
    # Evaluation uses the running statistics and leaves them alone.
    bn.eval()
    rm, rv = bn.running_mean.copy(), bn.running_var.copy()
    out_eval = bn(x)
    np.testing.assert_allclose(out_eval, (x - rm[None, :, None, None]) / np.sqrt(rv[None, :, None, None] + 1e-5))
    np.testing.assert_array_equal(bn.running_mean, rm)
    np.testing.assert_array_equal(bn.running_var, rv)


def test_batchnorm_refuses_bad_input():
    with pytest.raises(ValueError, match=r"BatchNorm2d.*\(N, 3, H, W\)"):
        nn.BatchNorm2d(3)(np.zeros((2, 4, 2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="rank 2"):
        nn.BatchNorm1d(3)(np.zeros((2, 3, 2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="more than one value"):
        nn.BatchNorm1d(3)(np.zeros((1, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="momentum"):
        nn.BatchNorm1d(3, momentum=0.9 + 1)


def test_dropout_train_versus_eval():
    x = np.ones((200, 50), dtype=np.float32)
    drop = nn.Dropout(0.3, rng=0)
    out = drop(x)
    kept = out != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(out[kept], 1 / 0.7, rtol=1e-6)  # inverted: survivors scaled up
    dx = drop.backward(x)
    np.testing.assert_array_equal(dx != 0, kept)  # the same mask on the way back
    drop.eval()
    np.testing.assert_array_equal(drop(x), x)
    np.testing.assert_array_equal(drop.backward(2 * x), 2 * x)
    # Same seed, same masks; the Generator advances between calls.
    a, b = nn.Dropout(0.5, rng=3), nn.Dropout(0.5, rng=3)
    first = a(x)
    np.testing.assert_array_equal(first, b(x))
    assert not np.array_equal(first, a(x))


def test_layer_argument_errors_name_the_layer():
    with pytest.raises(ValueError, match="Conv2d.*groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match=r"Conv2d: expected x of shape \(N, 3, H, W\)"):
        nn.Conv2d(3, 4, 3, rng=0)(np.zeros((1, 2, 5, 5), dtype=np.float32))
    with pytest.raises(ValueError, match=r"Linear: expected x of shape \(N, 4\)"):
        nn.Linear(4, 2, rng=0)(np.zeros((1, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="MaxPool2d.*stride"):
        nn.MaxPool2d((2, 3))
    with pytest.raises(ValueError, match="MaxPool2d.*padding"):
        nn.MaxPool2d(2, padding=2)
    with pytest.raises(ValueError, match="MaxPool2d: expected ceil_mode True or False, received 1"):
        nn.MaxPool2d(2, ceil_mode=1)
    with pytest.raises(ValueError, match="Dropout"):
        nn.Dropout(1.5)
    with pytest.raises(ValueError, match="kernel_size"):
        nn.Conv2d(1, 1, 0)
    with pytest.raises(ValueError, match="dtype"):
        nn.Linear(2, 2, dtype=np.int32)


def test_conv_attributes_follow_pytorch_names():
    conv = nn.Conv2d(4, 8, (3, 5), stride=2, padding=1, groups=4, bias=False, rng=0)
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
            conv.groups) == (4, 8, (3, 5), 2, 1, 4)
    assert conv.bias is None and [n for n, _ in conv.named_parameters()] == ["weight"]
    assert repr(conv) == "Conv2d(4, 8, kernel_size=(3, 5), stride=2, padding=1, groups=4, bias=False)"
    assert repr(nn.Conv2d(3, 6, 5, rng=0)) == "Conv2d(3, 6, kernel_size=(5, 5), stride=1)"
