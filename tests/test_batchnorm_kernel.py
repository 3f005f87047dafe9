"""The spatial batch-norm Cython kernel (minicnn/_ext/batchnorm.pyx) against the plain xp path.

Both paths of ``batchnorm_forward`` / ``batchnorm_backward`` are run on the same odd shapes
(N = 1..5, C = 1..7, H and W odd, 1x1 included), in training and evaluation, float32 and
float64: outputs, gradients and the updated running statistics must agree (to rounding:
the kernel sums in double, in a different order), dtypes must be kept and dout must not be
written.  The float64 gradients of the kernel path are also checked against numeric ones.

Skipped as a whole when the extension was not built (the plain path is then the only one).
"""
import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("minicnn._ext.batchnorm", reason="the Cython extension is not built")

import minicnn.functional as F  # noqa: E402
from minicnn import backend  # noqa: E402
from minicnn._ext import batchnorm as bn_ext  # noqa: E402
from minicnn.gradcheck import compare, numeric_gradient  # noqa: E402
from minicnn.testing import strategies as mst  # noqa: E402

DTYPES = [np.float32, np.float64]


def tol(dtype):
    return dict(rtol=2e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-11)


def _inputs(shape, dtype, seed, offset=2.0):
    rng = np.random.default_rng(seed)
    c = shape[1]
    x = (rng.standard_normal(shape) * 3 + offset).astype(dtype)
    gamma = rng.standard_normal(c).astype(dtype)
    beta = rng.standard_normal(c).astype(dtype)
    rm = rng.standard_normal(c).astype(dtype)
    rv = (rng.random(c) + 0.5).astype(dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    return x, gamma, beta, rm, rv, dout


def _run(cython, x, gamma, beta, rm, rv, dout, training, momentum=0.1):
    """(out, dx, dgamma, dbeta, running_mean, running_var) on one path; dout checked unchanged."""
    rm, rv, keep = rm.copy(), rv.copy(), dout.copy()
    with backend.use_cython(cython):
        out, cache = F.batchnorm_forward(x, gamma, beta, rm, rv, training, momentum)
        dx, dgamma, dbeta = F.batchnorm_backward(dout, cache)
    np.testing.assert_array_equal(dout, keep, err_msg="backward wrote into dout")
    return out, dx, dgamma, dbeta, rm, rv


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=30)
@given(n=st.integers(1, 5), c=st.integers(1, 7), h=st.sampled_from([1, 3, 5, 7]),
       w=st.sampled_from([1, 3, 9]), training=st.booleans(), seed=mst.seeds())
def test_kernel_matches_plain_path(dtype, n, c, h, w, training, seed):
    if training and n * h * w < 2:
        n = 2                                  # training needs two values per channel
    args = _inputs((n, c, h, w), dtype, seed)
    got = _run(True, *args, training)
    want = _run(False, *args, training)
    for name, a, b in zip(("out", "dx", "dgamma", "dbeta", "running_mean", "running_var"), got, want):
        assert a.dtype == dtype and a.shape == b.shape, name
        np.testing.assert_allclose(a, b, err_msg=name, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_kernel_running_stats_use_pytorch_convention(dtype):
    x, gamma, beta, rm, rv, dout = _inputs((3, 4, 5, 7), dtype, 0)
    rm0, rv0 = rm.copy(), rv.copy()
    _, _, _, _, rm1, rv1 = _run(True, x, gamma, beta, rm, rv, dout, True, momentum=0.3)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(rm1, 0.7 * rm0 + 0.3 * x64.mean(axis=(0, 2, 3)), **tol(dtype))
    np.testing.assert_allclose(rv1, 0.7 * rv0 + 0.3 * x64.var(axis=(0, 2, 3), ddof=1), **tol(dtype))
    # Evaluation leaves the buffers alone.
    _, _, _, _, rm2, rv2 = _run(True, x, gamma, beta, rm1, rv1, dout, False)
    np.testing.assert_array_equal(rm2, rm1)
    np.testing.assert_array_equal(rv2, rv1)


def test_kernel_variance_survives_a_large_mean():
    """float32 data with mean 1e4 and spread 1: sum(x^2) - m*mean^2 would lose every digit."""
    x, gamma, beta, rm, rv, dout = _inputs((4, 3, 5, 5), np.float32, 1, offset=0.0)
    x = (x / 3 + np.float32(1e4)).astype(np.float32)
    out, *_ = _run(True, x, np.ones(3, np.float32), np.zeros(3, np.float32), rm, rv, dout, True)
    x64 = x.astype(np.float64)
    want = (x64 - x64.mean(axis=(0, 2, 3), keepdims=True)) / np.sqrt(
        x64.var(axis=(0, 2, 3), keepdims=True) + 1e-5)
    np.testing.assert_allclose(out, want, atol=2e-3)


def test_kernel_takes_non_contiguous_input_and_dout():
    x, gamma, beta, rm, rv, dout = _inputs((3, 4, 9, 10), np.float64, 2)
    xs, ds = x[:, :, :, ::2], dout[:, :, :, 1::2]          # (3, 4, 9, 5) strided views
    for training in (True, False):
        got = _run(True, xs, gamma, beta, rm, rv, ds, training)
        want = _run(False, xs, gamma, beta, rm, rv, ds, training)
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, **tol(np.float64))


def test_kernel_cache_survives_switching_the_kernels_off():
    """A forward pass on the kernels and a backward pass with use_cython(False) still agree."""
    x, gamma, beta, rm, rv, dout = _inputs((2, 3, 5, 5), np.float64, 3)
    out, cache = F.batchnorm_forward(x, gamma, beta, rm.copy(), rv.copy(), True)
    with backend.use_cython(False):
        got = F.batchnorm_backward(dout, cache)
        _, plain_cache = F.batchnorm_forward(x, gamma, beta, rm.copy(), rv.copy(), True)
        want = F.batchnorm_backward(dout, plain_cache)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, **tol(np.float64))


def test_kernel_path_is_parallel_above_the_threshold_and_still_agrees():
    """A call large enough to run on the OpenMP team gives the same answers."""
    n = bn_ext.PARALLEL_THRESHOLD // (5 * 9 * 9) + 1
    args = _inputs((n, 5, 9, 9), np.float32, 4)
    for training in (True, False):
        for a, b in zip(_run(True, *args, training), _run(False, *args, training)):
            np.testing.assert_allclose(a, b, **tol(np.float32))


@settings(max_examples=20)
@given(n=st.integers(1, 3), c=st.integers(1, 3), h=st.sampled_from([1, 2, 3]), w=st.sampled_from([1, 3]),
       training=st.booleans(), seed=mst.seeds())
def test_kernel_gradients_are_numeric_gradients(n, c, h, w, training, seed):
    if training and n * h * w < 2:
        n = 2
    x, gamma, beta, rm, rv, dout = _inputs((n, c, h, w), np.float64, seed, offset=1.5)

    def fwd(x_=x, g_=gamma, b_=beta):
        return F.batchnorm_forward(x_, g_, b_, rm.copy(), rv.copy(), training)[0]

    _, cache = F.batchnorm_forward(x, gamma, beta, rm.copy(), rv.copy(), training)
    assert cache[2] is None, "expected the kernel path (its cache holds x, not xhat)"
    dx, dgamma, dbeta = F.batchnorm_backward(dout, cache)
    for what, analytic, f, v in (("dx", dx, lambda a: fwd(x_=a), x),
                                 ("dgamma", dgamma, lambda g: fwd(g_=g), gamma),
                                 ("dbeta", dbeta, lambda b: fwd(b_=b), beta)):
        err = compare(analytic, numeric_gradient(f, v, dout), floor=1e-3)
        assert err < 1e-6, f"{what}: {err!r}"


def test_kernel_rejects_mismatched_buffers():
    x = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match="forward_train"):
        bn_ext.forward_train(x, np.ones(3, np.float32), np.zeros(3, np.float32), 1e-5,
                             np.empty((2, 4, 4), np.float32), np.empty(3), np.empty(3), np.empty(3))
    with pytest.raises(ValueError, match="backward"):
        bn_ext.backward(np.zeros((2, 3, 5), np.float32), x, np.ones(3, np.float32), np.zeros(3),
                        np.ones(3), True, np.empty_like(x), np.empty(3, np.float32), np.empty(3, np.float32))


# ------------------------------------------------------------------- BN -> ReLU fused in one pass

from minicnn.functional.batchnorm import batchnorm_relu_backward, batchnorm_relu_forward  # noqa: E402
from minicnn.nn import module as nn_module  # noqa: E402
from minicnn.nn.residual import BasicBlock, Bottleneck, PreActBlock  # noqa: E402


def _run_unfused(x, gamma, beta, rm, rv, dout, training):
    out, bn_cache = F.batchnorm_forward(x, gamma, beta, rm, rv, training)
    out, mask = F.relu_forward(out)
    return (out, mask) + F.batchnorm_backward(F.relu_backward(dout, mask), bn_cache)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cython", [True, False], ids=["cython", "plain"])
@settings(max_examples=20)
@given(n=st.integers(1, 5), c=st.integers(1, 7), h=st.sampled_from([1, 3, 5]),
       w=st.sampled_from([1, 3, 9]), training=st.booleans(), specials=st.booleans(), seed=mst.seeds())
def test_fused_bn_relu_matches_bn_then_relu(dtype, cython, n, c, h, w, training, specials, seed):
    if training and n * h * w < 2:
        n = 2
    x, gamma, beta, rm, rv, dout = _inputs((n, c, h, w), dtype, seed, offset=0.5)
    if specials:                      # inf / NaN upstream where the ReLU blocks it or not
        flat = dout.reshape(-1)
        flat[:: max(1, flat.size // 3)] = np.inf
        flat[1:: max(1, flat.size // 2)] = np.nan
    with backend.use_cython(cython), np.errstate(invalid="ignore"):   # NaN upstream on purpose
        rm1, rv1, keep = rm.copy(), rv.copy(), dout.copy()
        out, cache = batchnorm_relu_forward(x, gamma, beta, rm1, rv1, training)
        dx, dgamma, dbeta = batchnorm_relu_backward(dout, cache)
        np.testing.assert_array_equal(dout, keep, err_msg="backward wrote into dout")
        rm2, rv2 = rm.copy(), rv.copy()
        want = _run_unfused(x, gamma, beta, rm2, rv2, dout, training)
    assert out.dtype == dx.dtype == dgamma.dtype == dtype and cache[1].dtype == np.bool_
    # The same arithmetic in the same order: equal, NaN for NaN.
    for name, a, b in zip(("out", "mask", "dx", "dgamma", "dbeta", "running_mean", "running_var"),
                          (out, cache[1], dx, dgamma, dbeta, rm1, rv1), want + (rm2, rv2)):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_fused_bn_relu_caches_serve_the_separate_backward_passes():
    """The fused forward leaves batchnorm_forward's and relu_forward's caches, usable one by one."""
    x, gamma, beta, rm, rv, dout = _inputs((3, 4, 5, 5), np.float64, 5, offset=0.5)
    _, (bn_cache, mask) = batchnorm_relu_forward(x, gamma, beta, rm, rv, True)
    fused = batchnorm_relu_backward(dout, (bn_cache, mask))
    separate = F.batchnorm_backward(F.relu_backward(dout, mask), bn_cache)
    for a, b in zip(fused, separate):
        np.testing.assert_allclose(a, b, **tol(np.float64))


@settings(max_examples=15)
@given(n=st.integers(2, 3), c=st.integers(1, 3), hw=st.sampled_from([1, 2, 3]),
       training=st.booleans(), seed=mst.seeds())
def test_fused_bn_relu_gradients_are_numeric_gradients(n, c, hw, training, seed):
    x, gamma, beta, rm, rv, dout = _inputs((n, c, hw, hw), np.float64, seed, offset=0.7)

    def fwd(x_=x, g_=gamma, b_=beta):
        return batchnorm_relu_forward(x_, g_, b_, rm.copy(), rv.copy(), training)[0]

    out, cache = batchnorm_relu_forward(x, gamma, beta, rm.copy(), rv.copy(), training)
    # Keep the check away from ReLU's kink, where the numeric gradient is not defined.
    pre = F.batchnorm_forward(x, gamma, beta, rm.copy(), rv.copy(), training)[0]
    if np.abs(pre).min() < 1e-4:
        return
    dx, dgamma, dbeta = batchnorm_relu_backward(dout, cache)
    for what, analytic, f, v in (("dx", dx, lambda a: fwd(x_=a), x),
                                 ("dgamma", dgamma, lambda g: fwd(g_=g), gamma),
                                 ("dbeta", dbeta, lambda b: fwd(b_=b), beta)):
        err = compare(analytic, numeric_gradient(f, v, dout), floor=1e-3)
        assert err < 1e-6, f"{what}: {err!r}"


def _block_pass(block, x, dout, fused):
    """out, dx, every parameter gradient and every buffer after one forward/backward; with
    fused=False a no-op forward hook is active, which makes bn_relu call the two layers one by one."""
    block.zero_grad()
    if fused:
        out = block(x)
    else:
        with nn_module.forward_hook(lambda m, a, o: None):
            out = block(x)
    dx = block.backward(dout)
    return ([out, dx] + [p.grad.copy() for _, p in block.named_parameters()]
            + [b.copy() for _, b in block.named_buffers()])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make", [
    lambda: BasicBlock(3, 5, stride=2, rng=0),
    lambda: Bottleneck(4, 2, stride=1, rng=0),
    lambda: PreActBlock(3, 4, stride=2, rng=0),
], ids=["basic", "bottleneck", "preact"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_blocks_fused_and_unfused_agree(dtype, make, training):
    rng = np.random.default_rng(0)
    fused_block, plain_block = make().to(dtype), make().to(dtype)   # same rng: same weights
    fused_block.train(training)
    plain_block.train(training)
    x = rng.standard_normal((3, fused_block.in_channels, 7, 5)).astype(dtype)
    dout = rng.standard_normal(copy.deepcopy(plain_block)(x).shape).astype(dtype)
    got = _block_pass(fused_block, x, dout, True)
    want = _block_pass(plain_block, x, dout, False)
    assert len(got) == len(want) > 4
    for a, b in zip(got, want):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, **tol(dtype))
