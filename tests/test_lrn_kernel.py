"""The LRN Cython kernel (minicnn/_ext/lrn.pyx) against the plain xp path.

Both paths of ``lrn_forward`` / ``lrn_backward`` are run on the same odd shapes (N = 1..3,
C = 1..12, H and W odd, 1x1 included) with windows of 1..7 channels (even sizes, and
windows wider than C), float32 and float64, beta = 0.75 (the kernel's square-root case) and
others (its pow case): outputs and gradients must agree to rounding, dtypes must be kept,
and neither x nor dout may be written.  The float64 gradients of the kernel path are also
checked against numeric ones.

Skipped as a whole when the extension was not built (the plain path is then the only one).
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("minicnn._ext.lrn", reason="the Cython extension is not built")

import minicnn.functional as F  # noqa: E402
from minicnn import backend  # noqa: E402
from minicnn._ext import lrn as lrn_ext  # noqa: E402
from minicnn.gradcheck import compare, numeric_gradient  # noqa: E402
from minicnn.testing import strategies as mst  # noqa: E402

DTYPES = [np.float32, np.float64]


def assert_close(a, b, dtype, what):
    """Agreement to rounding, relative to the array's largest value: dx is a difference of
    two terms and may be far smaller than either where they nearly cancel."""
    assert a.dtype == dtype and a.shape == b.shape, what
    rtol = 2e-5 if dtype == np.float32 else 1e-11
    finite = np.abs(b[np.isfinite(b)])
    scale = float(finite.max()) if finite.size else 1.0
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * max(scale, 1e-30), err_msg=what)


def _run(cython, x, dout, size, alpha, beta, k):
    """(out, dx) on one path; x and dout checked unchanged."""
    keep_x, keep_d = x.copy(), dout.copy()
    with backend.use_cython(cython):
        out, cache = F.lrn_forward(x, size, alpha, beta, k)
        dx = F.lrn_backward(dout, cache)
    assert (cache[1] is None) == cython, "expected the kernel path exactly when it is on"
    np.testing.assert_array_equal(dout, keep_d, err_msg="backward wrote into dout")
    np.testing.assert_array_equal(x, keep_x, err_msg="forward or backward wrote into x")
    return out, dx


def _check_paths_agree(x, dout, size, alpha, beta, k):
    got = _run(True, x, dout, size, alpha, beta, k)
    want = _run(False, x, dout, size, alpha, beta, k)
    for name, a, b in zip(("out", "dx"), got, want):
        assert_close(a, b, x.dtype, name)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=40)
@given(n=st.integers(1, 3), c=st.integers(1, 12), h=st.sampled_from([1, 3, 5, 7]),
       w=st.sampled_from([1, 3, 9]), size=st.integers(1, 7),
       alpha=st.sampled_from([1e-4, 0.1, 1.0]), beta=st.sampled_from([0.75, 0.5, 0.6, 1.0, 1.3]),
       k=st.sampled_from([0.5, 1.0, 2.0]), seed=mst.seeds())
def test_kernel_matches_plain_path(dtype, n, c, h, w, size, alpha, beta, k, seed):
    x = mst.random_array((n, c, h, w), seed, dtype, scale=3.0)
    dout = mst.random_array((n, c, h, w), seed + 1, dtype)
    _check_paths_agree(x, dout, size, alpha, beta, k)


def test_kernel_takes_non_contiguous_input_and_dout():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 6, 9, 10)) * 3
    dout = rng.standard_normal((3, 6, 9, 10))
    xs, ds = x[:, :, :, ::2], dout[:, :, :, 1::2]          # (3, 6, 9, 5) strided views
    _check_paths_agree(xs, ds, 5, 0.1, 0.75, 2.0)
    xt = x.transpose(0, 1, 3, 2)                             # Fortran-ordered planes
    _check_paths_agree(xt, np.ascontiguousarray(dout.transpose(0, 1, 3, 2)), 4, 0.1, 0.6, 1.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_kernel_agrees_on_nan_and_overflow(dtype):
    """NaN spreads to the window's outputs and an overflowing x^2 gives scale = inf on both."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 7, 3, 3)).astype(dtype)
    dout = rng.standard_normal(x.shape).astype(dtype)
    x[0, 3, 1, 1] = np.nan
    x[1, 2, 0, 0] = 1e200 if dtype == np.float64 else 1e20
    for beta in (0.75, 0.6):
        with np.errstate(over="ignore"):          # the plain path's x * x overflows
            got = _run(True, x, dout, 3, 0.1, beta, 2.0)
            want = _run(False, x, dout, 3, 0.1, beta, 2.0)
        for name, a, b in zip(("out", "dx"), got, want):
            np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=name)
            assert_close(a, b, dtype, name)


def test_kernel_cache_survives_switching_the_kernels_off():
    """Forward on the kernels and backward with use_cython(False) (and the other way round)."""
    rng = np.random.default_rng(3)
    x, dout = rng.standard_normal((2, 5, 5, 5)), rng.standard_normal((2, 5, 5, 5))
    _, want = _run(False, x, dout, 5, 0.1, 0.75, 2.0)
    _, cache = F.lrn_forward(x, 5, 0.1, 0.75, 2.0)
    with backend.use_cython(False):
        assert_close(F.lrn_backward(dout, cache), want, np.float64, "kernel cache, plain backward")
        _, cache = F.lrn_forward(x, 5, 0.1, 0.75, 2.0)
    assert_close(F.lrn_backward(dout, cache), want, np.float64, "plain cache, kernel on")


@pytest.mark.parametrize("dtype", DTYPES)
def test_kernel_path_is_parallel_above_the_threshold_and_still_agrees(dtype):
    """A call large enough to run on the OpenMP team, with planes longer than one block."""
    c, h, w = 7, 17, 19
    assert h * w > lrn_ext.BLOCK_SIZE
    n = lrn_ext.PARALLEL_THRESHOLD // (c * h * w) + 1
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((n, c, h, w)) * 3).astype(dtype)
    dout = rng.standard_normal(x.shape).astype(dtype)
    _check_paths_agree(x, dout, 5, 1e-2, 0.75, 2.0)
    _check_paths_agree(x[:1], dout[:1], 6, 1e-2, 0.6, 1.0)


@settings(max_examples=20)
@given(n=st.integers(1, 2), c=st.integers(1, 6), hw=st.sampled_from([1, 2, 3]), size=st.integers(1, 6),
       alpha=st.sampled_from([1e-4, 0.1, 1.0]), beta=st.sampled_from([0.75, 0.5, 1.2]),
       k=st.sampled_from([1.0, 2.0]), seed=mst.seeds())
def test_kernel_gradients_are_numeric_gradients(n, c, hw, size, alpha, beta, k, seed):
    x = mst.random_array((n, c, hw, hw), seed, scale=2.0)
    dout = mst.random_array(x.shape, seed + 1)
    _, cache = F.lrn_forward(x, size, alpha, beta, k)
    assert cache[1] is None, "expected the kernel path (its cache holds no scale)"
    dx = F.lrn_backward(dout, cache)
    num = numeric_gradient(lambda a: F.lrn_forward(a, size, alpha, beta, k)[0], x, dout)
    err = compare(dx, num, floor=1e-3)
    assert err < 1e-6, f"dx: {err!r}"


def test_kernel_rejects_mismatched_buffers():
    x = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match="forward"):
        lrn_ext.forward(x, 5, 1e-4, 0.75, 2.0, np.empty((2, 4, 4), np.float32), np.empty_like(x))
    with pytest.raises(ValueError, match="backward"):
        lrn_ext.backward(np.zeros((2, 3, 5), np.float32), x, np.ones_like(x), 5, 1e-4, 2.0, 1e-4,
                         np.empty_like(x))
    with pytest.raises(ValueError, match="size"):
        lrn_ext.forward(x, 0, 1e-4, 0.75, 2.0, np.empty_like(x), np.empty_like(x))
