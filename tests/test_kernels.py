"""The Cython kernels (minicnn/_ext) against the plain xp path they replace on the CPU.

Every kernel must give what the NumPy code beside its caller gives -- for im2col and the
max-pool argmax, exactly -- over hypothesis-drawn geometries: non-square kernels and
inputs, stride > 1, padding, overlapping windows, a kernel as large as the padded input,
N = 1 and C = 1, in float32 and float64.  Two known answers are written out by hand so
that both paths are also checked against something that is not code.

Skipped as a whole when the extension was not built (the plain path is then the only one).
"""
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

pytest.importorskip("minicnn._ext.im2col", reason="the Cython extension is not built")
pytest.importorskip("minicnn._ext.pool", reason="the Cython extension is not built")

from minicnn import backend  # noqa: E402
from minicnn._ext import im2col as im2col_ext  # noqa: E402
from minicnn._ext import pool as pool_ext  # noqa: E402
from minicnn.functional.conv import conv2d_backward, conv2d_forward  # noqa: E402
from minicnn.functional.im2col import col2im, col2im_xp, im2col, im2col_xp  # noqa: E402
from minicnn.functional.pool import max_pool2d_backward, max_pool2d_forward  # noqa: E402

DTYPES = [np.float32, np.float64]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tol(dtype):
    """Tolerances for sums taken in a possibly different order (float32 vs float64)."""
    return dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


@st.composite
def geometries(draw, max_pad_half=False):
    """(n, c, h, w, kh, kw, stride, pad) with a kernel that fits the padded input.

    Sizes shrink towards the tightest fit (kernel == padded input) and towards N = C = 1.
    With ``max_pad_half`` the padding is at most half the window, as pooling requires.
    """
    kh = draw(st.integers(1, 5))
    kw = draw(st.integers(1, 5))
    pad_max = min(kh, kw) // 2 if max_pad_half else 2
    pad = draw(st.integers(0, pad_max))
    h = max(1, kh - 2 * pad) + draw(st.integers(0, 6))
    w = max(1, kw - 2 * pad) + draw(st.integers(0, 6))
    stride = draw(st.integers(1, 3))
    n = draw(st.integers(1, 3))
    c = draw(st.integers(1, 3))
    return n, c, h, w, kh, kw, stride, pad


def out_size(h, w, kh, kw, stride, pad, ceil_mode=False):
    """PyTorch's pooling output size (written out again here, not imported from the code)."""
    if not ceil_mode:
        return (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1

    def ceil_count(n, k):
        out = math.ceil((n + 2 * pad - k) / stride) + 1
        return out - 1 if (out - 1) * stride >= n + pad else out
    return ceil_count(h, kh), ceil_count(w, kw)


def make_input(seed, shape, dtype, ties=False):
    """Random input; with ``ties`` small integers, so that windows often hold equal maxima."""
    rng = np.random.default_rng(seed)
    if ties:
        return rng.integers(-2, 3, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


# ----------------------------------------------------------------------------- im2col / col2im

@settings(max_examples=25)
@given(geom=geometries(), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**32 - 1))
@example(geom=(1, 1, 3, 4, 2, 3, 1, 1), dtype=np.float32, seed=0)    # the hand-written case
@example(geom=(2, 3, 1, 1, 3, 3, 1, 1), dtype=np.float64, seed=1)    # kernel == padded input, 1x1 image
@example(geom=(1, 2, 7, 5, 3, 2, 2, 2), dtype=np.float32, seed=2)    # pad == kernel width
def test_im2col_matches_plain(geom, dtype, seed):
    n, c, h, w, kh, kw, stride, pad = geom
    oh, ow = out_size(h, w, kh, kw, stride, pad)
    x = make_input(seed, (n, c, h, w), dtype)
    expected = im2col_xp(x, kh, kw, stride, pad, np.empty((n, c, kh, kw, oh, ow), dtype=dtype))
    got = np.full((n, c, kh, kw, oh, ow), np.nan, dtype=dtype)   # every entry must be written
    im2col_ext.im2col(x, kh, kw, stride, pad, got)
    np.testing.assert_array_equal(got, expected)   # a copy: exactly equal, padding zeros included


@settings(max_examples=25)
@given(geom=geometries(), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**32 - 1))
@example(geom=(1, 1, 3, 4, 2, 3, 1, 1), dtype=np.float32, seed=0)
@example(geom=(2, 3, 1, 1, 3, 3, 1, 1), dtype=np.float64, seed=1)
@example(geom=(1, 2, 7, 5, 3, 2, 2, 2), dtype=np.float32, seed=2)
def test_col2im_matches_plain(geom, dtype, seed):
    n, c, h, w, kh, kw, stride, pad = geom
    oh, ow = out_size(h, w, kh, kw, stride, pad)
    col = make_input(seed, (n, c, kh, kw, oh, ow), dtype)
    expected = col2im_xp(col, stride, pad, np.empty((n, c, h, w), dtype=dtype))
    got = np.full((n, c, h, w), np.nan, dtype=dtype)   # overwritten, not accumulated into
    im2col_ext.col2im(col, stride, pad, got)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, expected, **tol(dtype))


@settings(max_examples=25)
@given(geom=geometries(), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**32 - 1))
@example(geom=(2, 3, 1, 1, 3, 3, 1, 1), dtype=np.float64, seed=1)
@example(geom=(3, 2, 7, 5, 3, 2, 2, 2), dtype=np.float32, seed=2)
def test_batch_inside_layout_matches_plain(geom, dtype, seed):
    """im2col_t / col2im_t: the (C, KH, KW, N, OH, OW) layout is the plain col, transposed."""
    n, c, h, w, kh, kw, stride, pad = geom
    oh, ow = out_size(h, w, kh, kw, stride, pad)
    x = make_input(seed, (n, c, h, w), dtype)
    col = im2col_xp(x, kh, kw, stride, pad, np.empty((n, c, kh, kw, oh, ow), dtype=dtype))
    got = np.full((c, kh, kw, n, oh, ow), np.nan, dtype=dtype)
    im2col_ext.im2col_t(x, kh, kw, stride, pad, got)
    np.testing.assert_array_equal(got, col.transpose(1, 2, 3, 0, 4, 5))
    dcol = make_input(seed + 1, (n, c, kh, kw, oh, ow), dtype)
    expected = col2im_xp(dcol, stride, pad, np.empty((n, c, h, w), dtype=dtype))
    dx = np.full((n, c, h, w), np.nan, dtype=dtype)
    im2col_ext.col2im_t(np.ascontiguousarray(dcol.transpose(1, 2, 3, 0, 4, 5)), stride, pad, dx)
    np.testing.assert_allclose(dx, expected, **tol(dtype))


@st.composite
def same_width_geometries(draw):
    """Stride 1 and OW == W (kw = 2*pad + 1, any kh): the geometries the kernels copy and add by
    whole-plane shifts.  Padding up to 3 on images as narrow as 1 (a shift wider than a row)."""
    pad = draw(st.integers(0, 3))
    kh = draw(st.one_of(st.just(2 * pad + 1), st.integers(1, 7)))   # square: whole-chunk shifts
    h = max(1, kh - 2 * pad) + draw(st.integers(0, 6))
    w = draw(st.integers(1, 9))
    return draw(st.integers(1, 3)), draw(st.integers(1, 3)), h, w, kh, 2 * pad + 1, 1, pad


@settings(max_examples=40)
@given(geom=same_width_geometries(), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**32 - 1))
@example(geom=(3, 2, 8, 8, 3, 3, 1, 1), dtype=np.float32, seed=0)    # a CIFAR ResNet 3x3 layer
@example(geom=(2, 3, 5, 7, 3, 3, 1, 1), dtype=np.float64, seed=1)    # non-square
@example(geom=(1, 2, 1, 1, 7, 7, 1, 3), dtype=np.float32, seed=2)    # padding wider than the image
@example(geom=(2, 1, 4, 3, 1, 5, 1, 2), dtype=np.float64, seed=3)    # OH = H + 4 > H
@example(geom=(3, 2, 1, 2, 5, 5, 1, 2), dtype=np.float64, seed=4)    # shifts reach past a whole image
def test_same_width_fast_path_matches_plain(geom, dtype, seed):
    """im2col / im2col_t / col2im_t_scratch on stride-1 "same"-width geometries (whole-plane
    shifts, then the border entries fixed; in im2col_t with a square kernel, one shift over
    all the images of a channel) against the plain slices; col2im_t_scratch may overwrite
    its input, so it gets a copy."""
    n, c, h, w, kh, kw, stride, pad = geom
    oh, ow = out_size(h, w, kh, kw, stride, pad)
    assert ow == w
    x = make_input(seed, (n, c, h, w), dtype)
    col = im2col_xp(x, kh, kw, stride, pad, np.empty((n, c, kh, kw, oh, ow), dtype=dtype))
    got = np.full_like(col, np.nan)
    im2col_ext.im2col(x, kh, kw, stride, pad, got)
    np.testing.assert_array_equal(got, col)
    got_t = np.full((c, kh, kw, n, oh, ow), np.nan, dtype=dtype)
    im2col_ext.im2col_t(x, kh, kw, stride, pad, got_t)
    np.testing.assert_array_equal(got_t, col.transpose(1, 2, 3, 0, 4, 5))
    dcol = make_input(seed + 1, (n, c, kh, kw, oh, ow), dtype)
    expected = col2im_xp(dcol, stride, pad, np.empty((n, c, h, w), dtype=dtype))
    dx = np.full((n, c, h, w), np.nan, dtype=dtype)
    im2col_ext.col2im_t_scratch(np.ascontiguousarray(dcol.transpose(1, 2, 3, 0, 4, 5)), stride, pad, dx)
    np.testing.assert_allclose(dx, expected, **tol(dtype))


@settings(max_examples=25)
@given(geom=geometries(), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**32 - 1))
def test_col2im_scratch_matches_plain(geom, dtype, seed):
    """col2im_t_scratch on any geometry (the others fall back to col2im_t's loops)."""
    n, c, h, w, kh, kw, stride, pad = geom
    oh, ow = out_size(h, w, kh, kw, stride, pad)
    dcol = make_input(seed, (n, c, kh, kw, oh, ow), dtype)
    expected = col2im_xp(dcol, stride, pad, np.empty((n, c, h, w), dtype=dtype))
    dx = np.full((n, c, h, w), np.nan, dtype=dtype)
    im2col_ext.col2im_t_scratch(np.ascontiguousarray(dcol.transpose(1, 2, 3, 0, 4, 5)), stride, pad, dx)
    np.testing.assert_allclose(dx, expected, **tol(dtype))


def test_im2col_known_answer():
    """A 3x4 image, a 2x3 window, stride 1, pad 1: every column written out by hand."""
    x = np.arange(1, 13, dtype=np.float64).reshape(1, 1, 3, 4)
    # Output is 4x4; rows are the taps (p, q), each a 4x4 map of the padded image shifted by (p, q).
    expected = np.array([
        [[0, 0, 0, 0], [0, 1, 2, 3], [0, 5, 6, 7], [0, 9, 10, 11]],          # tap (0, 0)
        [[0, 0, 0, 0], [1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]],         # tap (0, 1)
        [[0, 0, 0, 0], [2, 3, 4, 0], [6, 7, 8, 0], [10, 11, 12, 0]],         # tap (0, 2)
        [[0, 1, 2, 3], [0, 5, 6, 7], [0, 9, 10, 11], [0, 0, 0, 0]],          # tap (1, 0)
        [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [0, 0, 0, 0]],         # tap (1, 1)
        [[2, 3, 4, 0], [6, 7, 8, 0], [10, 11, 12, 0], [0, 0, 0, 0]],         # tap (1, 2)
    ], dtype=np.float64).reshape(1, 1, 2, 3, 4, 4)
    # How many windows cover each pixel (2 row positions x 2, 3, 3, 2 column positions):
    # col2im of all-ones columns must count them.
    coverage = np.array([[4, 6, 6, 4]] * 3, dtype=np.float64).reshape(1, 1, 3, 4)
    for enabled in (True, False):
        with backend.use_cython(enabled):
            np.testing.assert_array_equal(im2col(x, 2, 3, 1, 1), expected)
            np.testing.assert_array_equal(col2im(np.ones_like(expected), x.shape, 1, 1), coverage)


def test_im2col_wrappers_accept_views():
    """The functional wrappers make non-contiguous input contiguous before calling the kernels."""
    x = make_input(3, (3, 5, 6, 2), np.float32).transpose(0, 3, 2, 1)   # (3, 2, 6, 5), not contiguous
    with backend.use_cython(False):
        expected = im2col(x, 3, 2, 2, 1)
        dexp = col2im(expected[:, :, ::-1], x.shape, 2, 1)
    got = im2col(x, 3, 2, 2, 1)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_allclose(col2im(got[:, :, ::-1], x.shape, 2, 1), dexp, **tol(np.float32))


# ----------------------------------------------------------------------------- max pooling

@settings(max_examples=40)
@given(geom=geometries(max_pad_half=True), dtype=st.sampled_from(DTYPES),
       seed=st.integers(0, 2**32 - 1), ties=st.booleans(), ceil_mode=st.booleans())
@example(geom=(1, 1, 3, 4, 2, 3, 1, 1), dtype=np.float32, seed=0, ties=True, ceil_mode=False)
@example(geom=(2, 3, 1, 1, 3, 3, 1, 1), dtype=np.float64, seed=1, ties=False, ceil_mode=False)   # window == padded input
@example(geom=(2, 2, 9, 7, 3, 3, 2, 1), dtype=np.float32, seed=2, ties=True, ceil_mode=False)    # AlexNet-style 3/2
@example(geom=(1, 2, 13, 13, 3, 3, 2, 0), dtype=np.float32, seed=3, ties=True, ceil_mode=True)   # SqueezeNet: 13 -> 6
@example(geom=(2, 1, 7, 5, 2, 2, 2, 0), dtype=np.float64, seed=4, ties=True, ceil_mode=True)     # 2x2/2 over odd sizes
@example(geom=(1, 1, 6, 6, 4, 4, 3, 2), dtype=np.float64, seed=5, ties=False, ceil_mode=True)    # last window dropped
def test_max_pool_matches_plain(geom, dtype, seed, ties, ceil_mode):
    n, c, h, w, kh, kw, stride, pad = geom
    x = make_input(seed, (n, c, h, w), dtype, ties=ties)
    dout = make_input(seed + 1, (n, c) + out_size(h, w, kh, kw, stride, pad, ceil_mode), dtype)
    results = {}
    for enabled in (True, False):
        with backend.use_cython(enabled):
            out, cache = max_pool2d_forward(x, (kh, kw), stride, pad, ceil_mode)
            dx = max_pool2d_backward(dout, cache)
        results[enabled] = out, cache[1], dx
    (out_c, arg_c, dx_c), (out_p, arg_p, dx_p) = results[True], results[False]
    assert out_c.dtype == dtype and dx_c.dtype == dtype and arg_c.dtype == np.int32
    np.testing.assert_array_equal(out_c, out_p)
    np.testing.assert_array_equal(arg_c, arg_p)     # the same tap, ties included
    np.testing.assert_allclose(dx_c, dx_p, **tol(dtype))


@settings(max_examples=25)
@given(geom=geometries(max_pad_half=True), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**32 - 1),
       ceil_mode=st.booleans())
def test_max_pool_kernels_directly(geom, dtype, seed, ceil_mode):
    """The raw kernels overwrite every output entry (pre-filled with garbage here)."""
    n, c, h, w, kh, kw, stride, pad = geom
    oh, ow = out_size(h, w, kh, kw, stride, pad, ceil_mode)
    x = make_input(seed, (n, c, h, w), dtype, ties=True)
    dout = make_input(seed + 1, (n, c, oh, ow), dtype)
    with backend.use_cython(False):
        out_p, cache = max_pool2d_forward(x, (kh, kw), stride, pad, ceil_mode)
        dx_p = max_pool2d_backward(dout, cache)
    out = np.full((n, c, oh, ow), np.nan, dtype=dtype)
    arg = np.full((n, c, oh, ow), -7, dtype=np.int32)
    pool_ext.max_pool_forward(x, kh, kw, stride, pad, out, arg, ceil_mode)
    dx = np.full((n, c, h, w), np.nan, dtype=dtype)
    pool_ext.max_pool_backward(dout, arg, kw, stride, pad, dx)
    np.testing.assert_array_equal(out, out_p)
    np.testing.assert_array_equal(arg, cache[1])
    np.testing.assert_allclose(dx, dx_p, **tol(dtype))


def test_max_pool_ceil_mode_window_over_the_edge():
    """Known answer: 3x3/2 over a 4x4 image in ceil mode gives 2x2 (floor: 1x1); the windows
    of the last row and column cover 2 rows / columns, and their argmax taps stay inside."""
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    x[0, 0, 3, 3] = -1.0                    # the corner window's max is then 14 at (3, 2): tap (1, 0)
    for enabled in (True, False):
        with backend.use_cython(enabled):
            out, cache = max_pool2d_forward(x, 3, 2, 0, True)
            dx = max_pool2d_backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), cache)
        np.testing.assert_array_equal(out[0, 0], [[10, 11], [14, 14]])
        np.testing.assert_array_equal(cache[1][0, 0], [[8, 7], [5, 3]])
        expected = np.zeros((4, 4))
        expected[2, 2], expected[2, 3], expected[3, 2] = 1, 2, 3 + 4
        np.testing.assert_array_equal(dx[0, 0], expected)


@pytest.mark.parametrize("enabled", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_tie_goes_to_first_tap(enabled, dtype):
    """All-equal windows: tap 0 (top-left) of each window takes the whole gradient."""
    x = np.full((1, 1, 3, 3), 2.5, dtype=dtype)
    dout = np.array([[1.0, -2.0], [3.0, 5.0]], dtype=dtype).reshape(1, 1, 2, 2)
    with backend.use_cython(enabled):
        out, cache = max_pool2d_forward(x, 2, 1)              # 2x2 windows, stride 1: overlapping
        dx = max_pool2d_backward(dout, cache)
    np.testing.assert_array_equal(cache[1], np.zeros((1, 1, 2, 2), dtype=np.int32))
    np.testing.assert_array_equal(out, np.full((1, 1, 2, 2), 2.5, dtype=dtype))
    expected = np.zeros((1, 1, 3, 3), dtype=dtype)
    expected[0, 0, :2, :2] = dout[0, 0]                      # each window's top-left pixel
    np.testing.assert_array_equal(dx, expected)
    # A tie between a later tap and an earlier one: the earlier wins even with padding around.
    x = np.array([[0.0, 4.0, 4.0], [4.0, 1.0, 4.0]], dtype=dtype).reshape(1, 1, 2, 3)
    with backend.use_cython(enabled):
        out, cache = max_pool2d_forward(x, (2, 3), 1, 1)      # pad 1: padded taps never chosen
        dx = max_pool2d_backward(np.ones_like(out), cache)
    # Output 3x3; window (i, j) covers padded rows i..i+1 and columns j..j+2.
    np.testing.assert_array_equal(cache[1][0, 0], [[5, 4, 3], [2, 1, 0], [1, 0, 1]])
    # The 4 at (0, 1) comes first in every window that holds it, so the tied 4 at (0, 2) gets nothing.
    np.testing.assert_array_equal(dx[0, 0], [[0, 6, 0], [2, 0, 1]])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 3, 7, 9), (1, 1, 2, 2), (3, 2, 6, 5), (4, 9, 90, 91)])
def test_max_pool_2x2_stride2_kernel_matches_plain(dtype, shape):
    """The 2x2 / stride 2 / no padding kernel (its own loop): odd H and W (last row or column
    unused), ties, NaNs and -inf, below and above the threading threshold (the last shape)."""
    x = make_input(8, shape, dtype, ties=True)
    flat = x.reshape(-1)
    flat[::17] = np.nan
    flat[5::23] = -np.inf
    results = {}
    for enabled in (True, False):
        with backend.use_cython(enabled):
            out, cache = max_pool2d_forward(x, 2, 2)
            dout = make_input(9, out.shape, dtype)
            results[enabled] = out, cache[1], max_pool2d_backward(dout, cache)
    (out_c, arg_c, dx_c), (out_p, arg_p, dx_p) = results[True], results[False]
    assert out_c.dtype == dtype and dx_c.dtype == dtype
    np.testing.assert_array_equal(out_c, out_p)      # NaN == NaN for assert_array_equal
    np.testing.assert_array_equal(arg_c, arg_p)
    np.testing.assert_array_equal(dx_c, dx_p)


def test_max_pool_kernel_nan_and_minus_inf():
    """The kernel's documented edge cases: the first NaN of a window wins (as numpy.max), and
    a window of -inf pixels with padding around still points at a real pixel, never a pad."""
    x = np.array([[1.0, 2.0, np.nan], [np.nan, 5.0, 0.0]], dtype=np.float32).reshape(1, 1, 2, 3)
    out = np.empty((1, 1, 1, 1), dtype=np.float32)
    arg = np.empty((1, 1, 1, 1), dtype=np.int32)
    pool_ext.max_pool_forward(x, 2, 3, 1, 0, out, arg)
    assert np.isnan(out[0, 0, 0, 0]) and arg[0, 0, 0, 0] == 2
    x = np.full((1, 1, 2, 2), -np.inf)
    out, arg = np.empty((1, 1, 2, 2)), np.empty((1, 1, 2, 2), dtype=np.int32)
    pool_ext.max_pool_forward(x, 3, 3, 1, 1, out, arg)
    # Window (0, 0) starts in the padding: its first real pixel is tap (1, 1) = 4.
    np.testing.assert_array_equal(arg[0, 0], [[4, 3], [1, 0]])
    assert np.all(out == -np.inf)


@pytest.mark.parametrize("dtype", DTYPES)
def test_parallel_branch_matches_plain(dtype):
    """Inputs above the kernels' threshold take the OpenMP loop (the tests above are all small
    enough for the single-thread loop): the same results are required there."""
    x = make_input(5, (4, 9, 40, 37), dtype, ties=True)
    kh, kw, stride, pad = 3, 4, 1, 1
    oh, ow = out_size(40, 37, kh, kw, stride, pad)
    assert 4 * 9 * kh * kw * oh * ow >= im2col_ext.PARALLEL_THRESHOLD
    col = im2col_xp(x, kh, kw, stride, pad, np.empty((4, 9, kh, kw, oh, ow), dtype=dtype))
    got = np.full_like(col, np.nan)
    im2col_ext.im2col(x, kh, kw, stride, pad, got)
    np.testing.assert_array_equal(got, col)
    got_t = np.full((9, kh, kw, 4, oh, ow), np.nan, dtype=dtype)
    im2col_ext.im2col_t(x, kh, kw, stride, pad, got_t)
    np.testing.assert_array_equal(got_t, col.transpose(1, 2, 3, 0, 4, 5))
    expected = col2im_xp(col, stride, pad, np.empty_like(x))
    dx = np.full_like(x, np.nan)
    im2col_ext.col2im(col, stride, pad, dx)
    np.testing.assert_allclose(dx, expected, **tol(dtype))
    dx = np.full_like(x, np.nan)
    im2col_ext.col2im_t(np.ascontiguousarray(got_t), stride, pad, dx)
    np.testing.assert_allclose(dx, expected, **tol(dtype))
    # and the "same"-width shift kernels (3x3, pad 1), in both directions
    kh = kw = 3
    oh, ow = out_size(40, 37, kh, kw, stride, pad)
    col = im2col_xp(x, kh, kw, stride, pad, np.empty((4, 9, kh, kw, oh, ow), dtype=dtype))
    got_t = np.full((9, kh, kw, 4, oh, ow), np.nan, dtype=dtype)
    im2col_ext.im2col_t(x, kh, kw, stride, pad, got_t)
    np.testing.assert_array_equal(got_t, col.transpose(1, 2, 3, 0, 4, 5))
    dx = np.full_like(x, np.nan)
    im2col_ext.col2im_t_scratch(got_t, stride, pad, dx)
    np.testing.assert_allclose(dx, col2im_xp(col, stride, pad, np.empty_like(x)), **tol(dtype))

    x = make_input(6, (4, 9, 90, 91), dtype, ties=True)
    assert x.size >= pool_ext.PARALLEL_THRESHOLD
    results = {}
    for enabled in (True, False):
        with backend.use_cython(enabled):
            out, cache = max_pool2d_forward(x, (3, 2), 2, 1)
            dout = make_input(7, out.shape, dtype)
            results[enabled] = out, cache[1], max_pool2d_backward(dout, cache)
    for got, expected in zip(results[True], results[False]):
        np.testing.assert_allclose(got, expected, **tol(dtype))   # out, argmax, dx


# ----------------------------------------------------------------------------- bad input

def test_kernels_refuse_wrong_shapes():
    x = np.zeros((2, 3, 5, 5), dtype=np.float32)
    with pytest.raises(ValueError, match="im2col: expected out of shape"):
        im2col_ext.im2col(x, 3, 3, 1, 0, np.zeros((2, 3, 3, 3, 2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="col2im: expected col of shape"):
        im2col_ext.col2im(np.zeros((2, 3, 3, 3, 2, 2), dtype=np.float32), 1, 0, x)
    with pytest.raises(ValueError, match="im2col_t: expected out of shape"):
        im2col_ext.im2col_t(x, 3, 3, 1, 0, np.zeros((2, 3, 3, 3, 3, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="col2im_t: expected col of shape"):
        im2col_ext.col2im_t(np.zeros((2, 3, 3, 3, 3, 3), dtype=np.float32), 1, 0, x)
    with pytest.raises(ValueError, match="col2im_t_scratch: expected col of shape"):
        im2col_ext.col2im_t_scratch(np.zeros((2, 3, 3, 3, 3, 3), dtype=np.float32), 1, 1, x)
    with pytest.raises(ValueError, match="expected a \\(7, 7\\) window to fit"):
        im2col_ext.im2col(x, 7, 7, 1, 0, np.zeros((2, 3, 7, 7, 1, 1), dtype=np.float32))
    out = np.zeros((2, 3, 2, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="max_pool_forward: expected out and argmax"):
        pool_ext.max_pool_forward(x, 3, 3, 1, 0, out, np.zeros((2, 3, 2, 2), dtype=np.int32))
    with pytest.raises(ValueError, match="pad smaller than"):
        pool_ext.max_pool_forward(x, 2, 2, 1, 2, out, np.zeros((2, 3, 2, 2), dtype=np.int32))
    bad = np.full((2, 3, 2, 2), 50, dtype=np.int32)    # a tap far outside the image
    with pytest.raises(ValueError, match="max_pool_backward: expected argmax taps inside"):
        pool_ext.max_pool_backward(out, bad, 2, 2, 0, np.zeros((2, 3, 5, 5), dtype=np.float32))


# ----------------------------------------------------------------------------- conv end to end

@settings(max_examples=15)
@given(geom=geometries(), f=st.integers(1, 4), groups=st.sampled_from([1, 2]),
       dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**32 - 1), bias=st.booleans())
def test_conv2d_same_with_and_without_cython(geom, f, groups, dtype, seed, bias):
    n, c, h, w, kh, kw, stride, pad = geom
    c, f = c * groups, f * groups
    x = make_input(seed, (n, c, h, w), dtype)
    wt = make_input(seed + 1, (f, c // groups, kh, kw), dtype)
    b = make_input(seed + 2, (f,), dtype) if bias else None
    dout = make_input(seed + 3, (n, f) + out_size(h, w, kh, kw, stride, pad), dtype)
    results = {}
    for enabled in (True, False):
        with backend.use_cython(enabled):
            out, cache = conv2d_forward(x, wt, b, stride, pad, groups)
            results[enabled] = (out,) + tuple(conv2d_backward(dout, cache))
    for got, expected in zip(results[True], results[False]):
        if expected is None:
            assert got is None
            continue
        assert got.dtype == dtype
        np.testing.assert_allclose(got, expected, **tol(dtype))


# ----------------------------------------------------------------------------- benchmark smoke test

def test_bench_ops_quick_runs():
    """benchmarks/bench_ops.py --quick runs and prints its table (no timing is checked)."""
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench_ops.py"),
                           "--quick", "--repeat", "1"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "conv LeNet conv1" in proc.stdout and "GEMM" in proc.stdout


def _exit_code_of_forked_child(fn):
    """Fork; the child exits 0 if fn() returns True (1 if it raised, 2 if False); the parent
    returns that code, or fails the test if the child is still running after 60 s (it hung)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if fn() else 2
        finally:
            os._exit(code)
    for _ in range(600):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.WIFEXITED(status)
            return os.WEXITSTATUS(status)
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail("the forked child hung")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_conv_threads_work_after_fork():
    """A forked child (a data-loader worker, say) gets its own chunk threads: the parent's
    pool threads do not exist there, and submitting to them would hang."""
    from minicnn import runtime
    from minicnn.functional import conv_im2col
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 2, 6, 6))
    w = rng.standard_normal((3, 2, 3, 3))
    saved = runtime.PARALLEL_MIN_MACS, conv_im2col.CHUNK_BYTES
    runtime.PARALLEL_MIN_MACS, conv_im2col.CHUNK_BYTES = 0, 1
    try:
        expected, _ = conv2d_forward(x, w, None, pad=1)       # starts the parent's pool
        runtime.thread_pool()
        assert _exit_code_of_forked_child(
            lambda: np.allclose(conv2d_forward(x, w, None, pad=1)[0], expected)) == 0
    finally:
        runtime.PARALLEL_MIN_MACS, conv_im2col.CHUNK_BYTES = saved


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
@pytest.mark.parametrize("op", ["batch norm", "1x1 conv"])
def test_openmp_kernels_work_after_fork(op, monkeypatch):
    """GNU OpenMP does not rebuild its worker threads in a forked child: a kernel's parallel
    loop there waited for its parent's threads forever (batch norm, the 1x1 conv's loop)
    until runtime's fork handler put the child's OpenMP on one thread."""
    from minicnn import runtime
    from minicnn.functional import batchnorm_forward
    monkeypatch.setattr(runtime, "PARALLEL_MIN_MACS", 0)
    rng = np.random.default_rng(0)
    if op == "batch norm":    # 64k values: batchnorm.pyx's loops on OpenMP threads
        x = rng.standard_normal((4, 16, 32, 32)).astype(np.float32)
        c = x.shape[1]

        def run():
            return batchnorm_forward(x, np.ones(c, np.float32), np.zeros(c, np.float32),
                                       np.zeros(c, np.float32), np.ones(c, np.float32), True)[0]
    else:
        x = rng.standard_normal((6, 20, 6, 6)).astype(np.float32)
        w = rng.standard_normal((24, 20, 1, 1)).astype(np.float32)

        def run():
            return conv2d_forward(x, w, None)[0]
    expected = run()                                          # the parent's OpenMP threads start
    assert _exit_code_of_forked_child(lambda: np.allclose(run(), expected, atol=1e-5)) == 0
