"""Winograd F(2x2, 3x3) convolution: the plain NumPy version against the naive conv, each
Cython transform against its NumPy counterpart (with every instruction set's copy of the
tile loops, short rows of tiles and long), and the CPU conv's Winograd path against the
plain path, over hypothesis-drawn sizes (odd and even H, W; pad 0..3; one channel;
outputs one pixel wide) in float32 and float64.
"""
import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minicnn.functional as F
from minicnn import backend, runtime
from minicnn.functional import conv, conv_direct, conv_winograd, winograd
from minicnn.gradcheck import compare, numeric_gradient

DTYPES = [np.float32, np.float64]


def tol(dtype):
    return dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)


@st.composite
def layers(draw, max_channels=4):
    """(n, c, f, h, w, pad) of a 3x3 stride-1 conv whose output is at least 1x1."""
    pad = draw(st.integers(0, 3))
    h = max(1, 3 - 2 * pad) + draw(st.integers(0, 8))
    w = max(1, 3 - 2 * pad) + draw(st.integers(0, 8))
    return (draw(st.integers(1, 3)), draw(st.integers(1, max_channels)),
            draw(st.integers(1, max_channels)), h, w, pad)


def arrays(seed, n, c, f, h, w, dtype):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((f, c, 3, 3)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    return rng, x, wt, b


# ----------------------------------------------------------------------------- the algebra

@settings(max_examples=60, deadline=None)
@given(layers(), st.integers(0, 2 ** 16))
def test_plain_winograd_is_the_convolution(layer, seed):
    """float64: the F(2x2, 3x3) forward and backward equal the definition to rounding."""
    n, c, f, h, w, pad = layer
    rng, x, wt, b = arrays(seed, n, c, f, h, w, np.float64)
    ref, cache = F.conv2d_forward_naive(x, wt, b, 1, pad)
    np.testing.assert_allclose(winograd.conv3x3_forward(x, wt, b, pad), ref, **tol(np.float64))
    dout = rng.standard_normal(ref.shape)
    dx, dw, _ = F.conv2d_backward_naive(dout, cache)
    got_dx, got_dw = winograd.conv3x3_backward(dout, x, wt, pad)
    np.testing.assert_allclose(got_dx, dx, **tol(np.float64))
    np.testing.assert_allclose(got_dw, dw, **tol(np.float64))


def test_transforms_known_answer():
    """A one-tile check against the matrices written out in Lavin & Gray: the 2x2 output of
    a 4x4 input d and filter g is A^T [(G g G^T) * (B^T d B)] A."""
    d = np.arange(16.0).reshape(1, 1, 4, 4)
    g = np.array([[1.0, 0, -1], [2, 0, -2], [1, 0, -1]]).reshape(1, 1, 3, 3)  # Sobel
    y = winograd.conv3x3_forward(d, g, None, 0)
    # Each output is sum of the window's left column minus its right, weighted 1-2-1: -8.
    np.testing.assert_allclose(y, np.full((1, 1, 2, 2), -8.0))


# ----------------------------------------------------------------------------- the kernels

try:
    from minicnn._ext import winograd as kernels
except ImportError:         # the plain tests above still run
    kernels = None
needs_kernels = pytest.mark.skipif(kernels is None or not backend.cython_available(),
                                   reason="the Cython extension is not built")


def gapped(shape, dtype, gap):
    """A (16, K, T) array whose 16 matrices lie ``gap`` elements apart, filled with NaN
    (so that any entry a kernel fails to write shows up)."""
    k, t = shape[1:]
    buf = np.full((16, k * t + gap), np.nan, dtype=dtype)
    return buf[:, :k * t].reshape(16, k, t)


def kernel_results(layer, seed, gap, dtype):
    """Every transform of the kernels on random arguments, checked against the plain NumPy
    version; returns the results (for comparing instruction sets bit for bit)."""
    m, c, f, h, w, pad = layer
    rng, x, _, b = arrays(seed, m, c, f, h, w, dtype)
    oh, ow = h + 2 * pad - 2, w + 2 * pad - 2
    th, tw = winograd.tiles_of(oh, ow)
    t = m * th * tw
    close = tol(dtype)

    v = gapped((16, c, t), dtype, gap)
    kernels.input_transform(x, pad, v)
    np.testing.assert_allclose(v, winograd.transform_input(x, pad, th, tw), **close)
    vt = gapped((16, t, c), dtype, gap)
    kernels.input_transform(x, pad, vt, channels_last=True)
    np.testing.assert_allclose(vt, winograd.transform_input(x, pad, th, tw).swapaxes(1, 2), **close)

    mm = rng.standard_normal((16, f, t)).astype(dtype)
    expected = winograd.transform_output(mm, m, oh, ow)
    for bias in (None, b):
        out = np.full((m, f, oh, ow), np.nan, dtype=dtype)
        mm_view = gapped((16, f, t), dtype, gap)
        mm_view[...] = mm
        kernels.output_transform(mm_view, bias, out)
        np.testing.assert_allclose(out, expected if bias is None else expected + b.reshape(1, f, 1, 1), **close)

    dout = rng.standard_normal((m, f, oh, ow)).astype(dtype)
    dout_before = dout.copy()
    dm = gapped((16, f, t), dtype, gap)
    kernels.output_grad_transform(dout, dm)
    np.testing.assert_allclose(dm, winograd.transform_output_grad(dout, th, tw), **close)
    np.testing.assert_array_equal(dout, dout_before)

    dv = gapped((16, c, t), dtype, gap)
    dv[...] = rng.standard_normal((16, c, t)).astype(dtype)
    dx = np.full(x.shape, np.nan, dtype=dtype)
    kernels.input_grad_transform(dv, pad, dx)
    np.testing.assert_allclose(dx, winograd.transform_input_grad(np.ascontiguousarray(dv), x.shape, pad), **close)
    return v, vt, out, dm, dx


@needs_kernels
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=40, deadline=None)
@given(layers(), st.integers(0, 2 ** 16), st.sampled_from([0, 3, 32]))
def test_kernel_transforms_match_plain(dtype, layer, seed, gap):
    kernel_results(layer, seed, gap, dtype)


ISAS = list(range(kernels.isa() + 1)) if kernels is not None else []


@contextlib.contextmanager
def isa(level):
    """Every tile loop forced to instruction set ``level``'s copy (by default the kernels
    pick a narrower one for some loops, which would leave wider copies untested)."""
    previous = kernels.use_isa(level)
    try:
        yield
    finally:
        kernels.use_isa(previous)


@st.composite
def long_rows(draw):
    """A layer whose rows hold 16 tiles or more (layers() draws rows of 1-8 tiles; from
    WT_LONG_ROW = 8 the input-gradient transform takes its vector loops), with few channels
    or many (the channels-last loops run over all channels and tiles of a row at once)."""
    pad = draw(st.integers(0, 2))
    w = 33 - 2 * pad + draw(st.integers(0, 6))
    h = max(1, 3 - 2 * pad) + draw(st.integers(0, 5))
    c = draw(st.sampled_from([1, 3, 64, 67]))
    return draw(st.integers(1, 2)), c, draw(st.integers(1, 3)), h, w, pad


@needs_kernels
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=15, deadline=None)
@given(st.one_of(layers(), long_rows()), st.integers(0, 2 ** 16), st.sampled_from([0, 3, 32]))
def test_every_instruction_set_matches_plain_and_the_portable_loops(dtype, layer, seed, gap):
    """Each copy of the tile loops this CPU runs (baseline, AVX2, AVX-512), short rows and
    long: equal to the plain version, and bit for bit to the portable copy (the same
    operations in the same order)."""
    results = []
    for level in ISAS:
        with isa(level):
            results.append(kernel_results(layer, seed, gap, dtype))
    for other in results[1:]:
        for got, expected in zip(other, results[0]):
            np.testing.assert_array_equal(got, expected)


@needs_kernels
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("level", ISAS)
@pytest.mark.parametrize("w, pad", [(7, 1), (8, 2), (35, 0)])
def test_channels_last_input_transform_with_many_channels(dtype, level, w, pad):
    """From 256 channels the channels-last copy stores a pixel of every channel at a time
    (below, a channel's row at a time): 257 channels, short rows and long, every copy."""
    rng = np.random.default_rng(w)
    x = rng.standard_normal((2, 257, 5, w)).astype(dtype)
    th, tw = winograd.tiles_of(5 + 2 * pad - 2, w + 2 * pad - 2)
    vt = gapped((16, 2 * th * tw, 257), dtype, 32)
    with isa(level):
        kernels.input_transform(x, pad, vt, channels_last=True)
    np.testing.assert_allclose(vt, winograd.transform_input(x, pad, th, tw).swapaxes(1, 2), **tol(dtype))


@needs_kernels
def test_use_isa_refuses_an_instruction_set_this_cpu_lacks():
    best = kernels.isa()
    for bad in (best + 1, -1, 1.0, True):
        with pytest.raises(ValueError, match=r"use_isa: expected None or an instruction set 0\.\."):
            kernels.use_isa(bad)
    assert kernels.use_isa(0) is None              # was choosing per loop
    assert kernels.isa() == 0
    assert kernels.use_isa(None) == 0
    assert kernels.isa() == best


@needs_kernels
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=20, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 2 ** 16))
def test_kernel_filter_transforms_match_plain(dtype, f, c, seed):
    _check_filter_transforms(dtype, f, c, seed)


def _check_filter_transforms(dtype, f, c, seed):
    """filter_transform and filter_grad_transform against the plain NumPy versions."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((f, c, 3, 3)).astype(dtype)
    u = np.full((16, f, c), np.nan, dtype=dtype)
    kernels.filter_transform(w, u)
    np.testing.assert_allclose(u, winograd.transform_filter(w), **tol(dtype))
    du = rng.standard_normal((16, f, c)).astype(dtype)
    dw = np.full((f, c, 3, 3), np.nan, dtype=dtype)
    kernels.filter_grad_transform(du, dw)
    np.testing.assert_allclose(dw, winograd.filter_grad(du, dtype), **tol(dtype))


@needs_kernels
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("f,c", [(131, 127), (1, 1100), (40, 1030)])
def test_kernel_filter_transforms_in_blocks_on_threads_match_plain(dtype, f, c):
    """Large layers take the (filter, channel) pairs in blocks shared over the threads: block
    edges that fall inside a filter, a last short block, and more pairs than the threshold."""
    assert 131 * 127 >= kernels.FILTER_PARALLEL_THRESHOLD     # the first case runs on the threads
    _check_filter_transforms(dtype, f, c, f * c)


@needs_kernels
def test_kernel_errors_name_what_was_expected():
    x = np.zeros((2, 3, 6, 6), dtype=np.float32)
    with pytest.raises(ValueError, match=r"input_transform: expected v of shape \(16, 3, 18\)"):
        kernels.input_transform(x, 1, np.zeros((16, 3, 17), dtype=np.float32))
    with pytest.raises(ValueError, match=r"input_transform: expected v of shape \(16, 18, 3\)"):
        kernels.input_transform(x, 1, np.zeros((16, 3, 18), dtype=np.float32), channels_last=True)
    with pytest.raises(ValueError, match="input_transform: expected v to be 16 C-contiguous"):
        kernels.input_transform(x, 1, np.zeros((16, 18, 3), dtype=np.float32).swapaxes(1, 2))
    with pytest.raises(ValueError, match="a 3x3 window does not fit a 1x6 input with pad=0"):
        kernels.input_transform(np.zeros((1, 1, 1, 6), dtype=np.float32), 0,
                                np.zeros((16, 1, 0), dtype=np.float32))
    with pytest.raises(ValueError, match=r"filter_transform: expected w \(F, C, 3, 3\) and u \(16, F, C\)"):
        kernels.filter_transform(np.zeros((2, 3, 3, 3), dtype=np.float32), np.zeros((16, 3, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="filter_grad_transform: expected du"):
        kernels.filter_grad_transform(np.zeros((16, 2, 3), dtype=np.float32), np.zeros((2, 3, 5, 5), dtype=np.float32))
    with pytest.raises(ValueError, match=r"output_transform: expected bias of shape \(4,\)"):
        kernels.output_transform(np.zeros((16, 4, 2), dtype=np.float32), np.zeros(3, dtype=np.float32),
                                 np.zeros((2, 4, 2, 2), dtype=np.float32))


# ----------------------------------------------------------------------------- the conv path

@contextlib.contextmanager
def winograd_everywhere(images_per_chunk=1, c_loops=True):
    """Route every 3x3 stride-1 conv to Winograd, with small chunks shared over 3 threads,
    the chunk loops in C or in Python; yields the list of the Winograd functions that ran.
    More than one image per chunk leaves a shorter last chunk whenever the batch is not a
    multiple of it."""
    ran = []
    forward, backward = conv_winograd.forward, conv_winograd.backward
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(conv_winograd, "C_LOOPS", c_loops)
        mp.setattr(conv_winograd, "MIN_CHANNELS", 1)
        mp.setattr(conv_direct, "ISA", 0)                    # thin float32 layers would go direct
        mp.setattr(conv_winograd, "chunk_size", lambda n, *rest: min(n, images_per_chunk))
        mp.setattr(runtime, "PARALLEL_MIN_MACS", 0)
        mp.setattr(runtime, "cpu_count", lambda: 3)
        mp.setattr(conv_winograd, "forward", lambda *a: ran.append("fwd") or forward(*a))
        mp.setattr(conv_winograd, "backward", lambda *a: ran.append("bwd") or backward(*a))
        yield ran


@needs_kernels
@pytest.mark.parametrize("c_loops", [True, False], ids=["C loops", "Python loops"])
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=30, deadline=None)
@given(layers(), st.integers(0, 2 ** 16), st.booleans(), st.integers(1, 3))
def test_conv_winograd_path_matches_plain(c_loops, dtype, layer, seed, bias, images_per_chunk):
    n, c, f, h, w, pad = layer
    rng, x, wt, b = arrays(seed, n, c, f, h, w, dtype)
    b = b if bias else None
    with backend.use_cython(False):
        ref, ref_cache = F.conv2d_forward(x, wt, b, 1, pad)
        dout = rng.standard_normal(ref.shape).astype(dtype)
        ref_grads = F.conv2d_backward(dout, ref_cache)
    dout_before = dout.copy()
    with winograd_everywhere(images_per_chunk, c_loops) as ran:
        out, cache = F.conv2d_forward(x, wt, b, 1, pad)
        grads = F.conv2d_backward(dout, cache)
    assert ran == ["fwd", "bwd"]
    assert out.dtype == dtype and all(g is None or g.dtype == dtype for g in grads)
    np.testing.assert_array_equal(dout, dout_before)
    np.testing.assert_allclose(out, ref, **tol(dtype))
    for got, expected in zip(grads, ref_grads):
        if expected is None:
            assert got is None
        else:
            np.testing.assert_allclose(got, expected, **tol(dtype))


@needs_kernels
@pytest.mark.parametrize("c_loops", [True, False], ids=["C loops", "Python loops"])
def test_conv_winograd_path_gradcheck(c_loops):
    """float64 numeric gradients of the Winograd conv (odd sizes, several chunks and threads,
    the last chunk shorter)."""
    rng, x, wt, b = arrays(3, 5, 2, 3, 5, 4, np.float64)
    with winograd_everywhere(images_per_chunk=2, c_loops=c_loops) as ran:
        out, cache = F.conv2d_forward(x, wt, b, 1, 1)
        dout = rng.standard_normal(out.shape)
        dx, dw, db = F.conv2d_backward(dout, cache)
        assert ran == ["fwd", "bwd"]
        assert compare(dx, numeric_gradient(lambda v: F.conv2d_forward(v, wt, b, 1, 1)[0], x, dout)) < 1e-7
        assert compare(dw, numeric_gradient(lambda v: F.conv2d_forward(x, v, b, 1, 1)[0], wt, dout)) < 1e-7
        assert compare(db, numeric_gradient(lambda v: F.conv2d_forward(x, wt, v, 1, 1)[0], b, dout)) < 1e-7


def both_loops(fn):
    """fn() with the chunk loops in C, then in Python (3 threads, 2-image chunks, every chunk
    its own task); returns the two results."""
    results = []
    for c_loops in (True, False):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(conv_winograd, "C_LOOPS", c_loops)
            mp.setattr(conv_winograd, "chunk_size", lambda n, *rest: min(n, 2))
            mp.setattr(runtime, "PARALLEL_MIN_MACS", 0)
            mp.setattr(runtime, "cpu_count", lambda: 3)
            results.append(fn())
    return results


@needs_kernels
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("need_dx, need_dw", [(True, True), (False, True), (True, False)])
def test_c_chunk_loops_match_the_python_loops(dtype, need_dx, need_dw):
    """The C chunk loops (forward_chunks, backward_chunks) against the Python loops they
    replace, on a layer wide enough for the GEMMs to matter, 7 images in chunks of 2 over 3
    threads; dx or dW not asked for stays None.  Then the same backward again: the same bits
    (dW's partial sums are added in a fixed order, whatever the timing)."""
    if not conv_winograd._c_loops(kernels):
        pytest.skip("no CBLAS gemm found in NumPy's BLAS: the chunk loops stay in Python")
    rng, x, wt, b = arrays(11, 7, 19, 21, 9, 10, dtype)
    out_c, out_py = both_loops(lambda: conv_winograd.forward(x, wt, b, 1, 9, 10))
    np.testing.assert_allclose(out_c, out_py, **tol(dtype))
    dout = rng.standard_normal(out_c.shape).astype(dtype)
    dout_before = dout.copy()
    run = lambda: conv_winograd.backward(dout, x, wt, 1, need_dx=need_dx, need_dw=need_dw)  # noqa: E731
    (dx_c, dw_c), (dx_py, dw_py) = both_loops(run)
    np.testing.assert_array_equal(dout, dout_before)
    for got, expected, wanted in ((dx_c, dx_py, need_dx), (dw_c, dw_py, need_dw)):
        if not wanted:
            assert got is None and expected is None
        else:
            assert got.dtype == dtype
            np.testing.assert_allclose(got, expected, **tol(dtype))
    dx_again, dw_again = both_loops(run)[0]
    if need_dw:
        np.testing.assert_array_equal(dw_again, dw_c)
    if need_dx:
        np.testing.assert_array_equal(dx_again, dx_c)


@needs_kernels
def test_c_chunk_loops_check_their_arguments():
    """Buffers too small for a chunk, or of the wrong shape, are refused before any work."""
    if not conv_winograd._c_loops(kernels):
        pytest.skip("no CBLAS gemm found in NumPy's BLAS")
    x = np.zeros((2, 3, 6, 6), dtype=np.float32)
    u = np.zeros((16, 4, 3), dtype=np.float32)
    out = np.zeros((2, 4, 6, 6), dtype=np.float32)
    v = gapped((16, 3, 9), np.float32, 5)              # room for 1 image of 3x3 tiles
    mm = gapped((16, 4, 18), np.float32, 5)
    counter = np.zeros(1, dtype=np.int64)
    with pytest.raises(ValueError, match=r"forward_chunks: expected v to be a \(16, 3, >= 18\) buffer"):
        kernels.forward_chunks(x, u, None, 1, out, v, mm, 2, counter)
    with pytest.raises(ValueError, match=r"forward_chunks: expected u \(16, F, 3\) and out \(2, F, 6, 6\)"):
        kernels.forward_chunks(x, u, None, 1, np.zeros((2, 4, 5, 6), np.float32), gapped((16, 3, 18), np.float32, 5), mm, 2, counter)
    with pytest.raises(ValueError, match=r"forward_chunks: expected bias of shape \(4,\)"):
        kernels.forward_chunks(x, u, np.zeros(3, np.float32), 1, out, gapped((16, 3, 18), np.float32, 5), mm, 2, counter)
    assert counter[0] == 0
    dm = gapped((16, 4, 18), np.float32, 5)
    vt = gapped((16, 3, 18), np.float32, 5)
    with pytest.raises(ValueError, match=r"backward_chunks: expected du \(16, 4, 3\)"):
        kernels.backward_chunks(x, out, 1, None, None, np.zeros((16, 3, 4), np.float32), dm, vt, None, 2, 0, 1)
    with pytest.raises(ValueError, match=r"backward_chunks: expected u \(16, 4, 3\) and dx \(2, 3, 6, 6\)"):
        kernels.backward_chunks(x, out, 1, None, np.zeros_like(x), None, dm, vt, vt, 2, 0, 1)


@needs_kernels
def test_default_settings_run_the_chunk_loops_in_c(monkeypatch):
    """As shipped, where NumPy's BLAS is an OpenBLAS, a Winograd layer runs forward_chunks and
    backward_chunks (a regression to the Python loops would cost ~1.5x on two cores)."""
    if runtime.cblas_gemm() is None:
        pytest.skip("NumPy's BLAS here is not an OpenBLAS: the loops stay in Python")
    ran = []
    for name in ("forward_chunks", "backward_chunks"):
        original = getattr(kernels, name)
        monkeypatch.setattr(kernels, name, lambda *a, _f=original, _n=name: ran.append(_n) or _f(*a))
    rng, x, wt, b = arrays(5, 4, 32, 32, 6, 6, np.float32)
    out, cache = F.conv2d_forward(x, wt, b, 1, 1)
    F.conv2d_backward(rng.standard_normal(out.shape).astype(np.float32), cache)
    assert "forward_chunks" in ran and "backward_chunks" in ran


def test_conv_winograd_falls_back_to_python_loops_without_a_cblas(monkeypatch):
    """No CBLAS gemm found (another BLAS than OpenBLAS): the chunk loops stay in Python."""
    class NoGemmYet:
        def gemm_ready(self):
            return False

        def gemm_use(self, *addresses):
            raise AssertionError("gemm_use called without a BLAS")

    monkeypatch.setattr(runtime, "cblas_gemm", lambda: None)
    assert not conv_winograd._c_loops(NoGemmYet())
    monkeypatch.setattr(conv_winograd, "C_LOOPS", False)
    assert not conv_winograd._c_loops(kernels)


@needs_kernels
def test_winograd_is_used_only_where_it_applies():
    """Stride 2, groups, 1x1 or 5x5 kernels and thin layers take im2col."""
    wide = conv_winograd.MIN_CHANNELS
    assert conv_winograd.applies((wide, wide, 3, 3), 1, 1)
    assert not conv_winograd.applies((wide, wide, 3, 3), 2, 1)
    assert not conv_winograd.applies((2 * wide, wide, 3, 3), 1, 2)
    assert not conv_winograd.applies((wide, wide, 1, 1), 1, 1)
    assert not conv_winograd.applies((wide, wide, 5, 5), 1, 1)
    assert not conv_winograd.applies((wide, wide - 1, 3, 3), 1, 1)
    assert not conv_winograd.applies((wide - 1, wide, 3, 3), 1, 1)
    x = np.zeros((8, wide, 8, 8))                       # float64: the direct kernel is float32 only
    w = np.zeros((wide, wide, 3, 3))
    for pad in (0, 1, 3):
        assert conv.choose_algorithm(np, x, w, 1, pad, 1) == "winograd"
    assert conv.choose_algorithm(np, x, w, 2, 1, 1) == "im2col"
    with backend.use_cython(False):
        assert conv.choose_algorithm(np, x, w, 1, 1, 1) == "batched"


@needs_kernels
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c", [20, 67])
def test_channels_last_input_transform_in_channel_blocks(dtype, c):
    """Large planes: the channels-last input transform copies a block of channels at a time
    (2 MB of zero-bordered planes, at least 16 float32 / 8 float64 channels), so 20 channels
    of 182x182 take two or three blocks, the last one shorter -- and 67 channels (the
    row-wide loops, whose shorter last block keeps the full block's layout) five to nine."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, c, 182, 181)).astype(dtype)
    th, tw = winograd.tiles_of(182, 181)
    vt = gapped((16, th * tw, c), dtype, 3)
    kernels.input_transform(x, 1, vt, channels_last=True)
    np.testing.assert_allclose(vt, winograd.transform_input(x, 1, th, tw).swapaxes(1, 2), **tol(dtype))


@needs_kernels
@pytest.mark.parametrize("pad", [0, 1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
def test_default_settings_take_winograd_and_match_plain(pad, dtype):
    """No monkeypatching: the thinnest 3x3 layer Winograd takes with the shipped thresholds
    (odd sizes, one and two images) goes that way and agrees with the plain path -- in
    float64 at WINOGRAD_MIN_CHANNELS; in float32 just past DIRECT_MAX_CHANNELS, since thin
    float32 layers go to the direct kernel first where the CPU has one."""
    rng = np.random.default_rng(pad)
    c = conv_winograd.MIN_CHANNELS
    if dtype == np.float32:
        c = max(c, conv_direct.MAX_CHANNELS + 1)
    ran = []
    backward = conv_winograd.backward
    for n in (1, 2):
        x = rng.standard_normal((n, c, 5, 7)).astype(dtype)
        w = rng.standard_normal((c, c, 3, 3)).astype(dtype) * 0.1
        b = rng.standard_normal(c).astype(dtype)
        assert conv.choose_algorithm(np, x, w, 1, pad, 1) == "winograd"
        out, cache = F.conv2d_forward(x, w, b, 1, pad)
        dout = rng.standard_normal(out.shape).astype(dtype)
        with pytest.MonkeyPatch.context() as mp:   # a spy only: the thresholds stay as shipped
            mp.setattr(conv_winograd, "backward", lambda *a: ran.append(n) or backward(*a))
            grads = F.conv2d_backward(dout, cache)
        with backend.use_cython(False):
            ref, ref_cache = F.conv2d_forward(x, w, b, 1, pad)
            ref_grads = F.conv2d_backward(dout, ref_cache)
        np.testing.assert_allclose(out, ref, **tol(dtype))
        for got, expected in zip(grads, ref_grads):
            np.testing.assert_allclose(got, expected, **tol(dtype))
    assert ran == [1, 2]
