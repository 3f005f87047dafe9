"""Every functional op: gradients against numeric ones (float64, hypothesis), forward against
the naive reference, known answers, dtypes, and clear errors for bad input.

Gradient tolerance: worst relative error < 1e-6, with the denominator floored at 1e-3.
Centred differences in float64 carry about 1e-16 * |f| / h ~ 1e-11 * |f| of absolute noise
(roundoff of f = sum(out * dout) over 2h), a few 1e-10 here, so gradient entries much
smaller than 1e-3 cannot be compared relatively; the floor compares them absolutely
instead (error < 1e-9).  A real bug moves entries by a fraction of their size and still
fails by orders of magnitude.

Convolution sums the most products, and its noise reached that 1e-9 (a 2x3x3x4 input with
4 filters of 3x4, pad 2: 1.4e-9 on a 2.5e-4 entry).  But a conv is linear in each of its
arguments, so a centred difference is exact for any step: its checks use LINEAR_STEP, which
divides the noise by 100.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minicnn.functional as F
from minicnn import backend
from minicnn.gradcheck import compare, numeric_gradient, rel_error
from minicnn.testing import strategies as mst

TOL = 1e-6
FLOOR = 1e-3
LINEAR_STEP = 1e-3    # numeric_gradient's step for functions linear in the argument (default 1e-5)
PATHS = [pytest.param(True, id="cython"), pytest.param(False, id="plain")]


def assert_grad(analytic, f, x, dout, what, h=1e-5):
    err = compare(analytic, numeric_gradient(f, x, dout, h=h), floor=FLOOR)
    assert err < TOL, f"{what}: {err!r}"
    return err


def upstream(shape, seed):
    """A random upstream gradient: never all ones (that hides batch norm's dx)."""
    return np.random.default_rng(seed + 1).standard_normal(shape)


# ----------------------------------------------------------------------------------- conv

@pytest.mark.parametrize("cython", PATHS)
@settings(max_examples=25)
@given(g=mst.conv_geometries(), seed=mst.seeds(), bias=st.booleans())
def test_conv_matches_naive_and_numeric_gradient(cython, g, seed, bias):
    x = mst.random_array((g["N"], g["C"], g["H"], g["W"]), seed)
    w = mst.random_array((g["F"], g["C"] // g["groups"], g["KH"], g["KW"]), seed + 7)
    b = mst.random_array((g["F"],), seed + 9) if bias else None
    kw = dict(stride=g["stride"], pad=g["pad"], groups=g["groups"])
    with backend.use_cython(cython):
        out, cache = F.conv2d_forward(x, w, b, **kw)
        ref, ref_cache = F.conv2d_forward_naive(x, w, b, **kw)
        assert out.shape == (g["N"], g["F"], g["OH"], g["OW"])
        assert rel_error(out, ref) < 1e-10
        dout = upstream(out.shape, seed)
        dout_copy = dout.copy()
        dx, dw, db = F.conv2d_backward(dout, cache)
        rdx, rdw, rdb = F.conv2d_backward_naive(dout, ref_cache)
        assert np.array_equal(dout, dout_copy), "backward wrote into dout"
        assert rel_error(dx, rdx) < 1e-10 and rel_error(dw, rdw) < 1e-10
        assert_grad(dx, lambda a: F.conv2d_forward(a, w, b, **kw)[0], x, dout, "dx", h=LINEAR_STEP)
        assert_grad(dw, lambda a: F.conv2d_forward(x, a, b, **kw)[0], w, dout, "dw", h=LINEAR_STEP)
        if bias:
            assert rel_error(db, rdb) < 1e-10
            assert_grad(db, lambda a: F.conv2d_forward(x, w, a, **kw)[0], b, dout, "db", h=LINEAR_STEP)
        else:
            assert db is None


def test_conv_known_answer_non_square():
    # 1x1x3x4 input, a 2x3 kernel of ones except one tap, stride 1, pad 0 -> 2x2 output.
    x = np.arange(12, dtype=np.float64).reshape(1, 1, 3, 4)
    w = np.ones((1, 1, 2, 3))
    w[0, 0, 1, 2] = 10
    out, _ = F.conv2d_forward(x, w, np.array([0.5]))
    expected = np.array([[0 + 1 + 2 + 4 + 5 + 60, 1 + 2 + 3 + 5 + 6 + 70],
                         [4 + 5 + 6 + 8 + 9 + 100, 5 + 6 + 7 + 9 + 10 + 110]]) + 0.5
    np.testing.assert_allclose(out[0, 0], expected)


def test_output_volume_alexnet():
    # The lecture's numbers: (227 - 11) / 4 + 1 = 55, then 3x3/2 pooling: (55 - 3) / 2 + 1 = 27.
    x = np.zeros((1, 3, 227, 227), dtype=np.float32)
    w = np.zeros((96, 3, 11, 11), dtype=np.float32)
    out, _ = F.conv2d_forward(x, w, np.zeros(96, np.float32), stride=4)
    assert out.shape == (1, 96, 55, 55)
    pooled, _ = F.max_pool2d_forward(out, 3, 2)
    assert pooled.shape == (1, 96, 27, 27)


def test_output_volume_floor_like_pytorch():
    # (7 - 3 + 0) / 2 + 1 = 3 (floor); no divisibility assert.
    out, _ = F.conv2d_forward(np.zeros((1, 1, 8, 7)), np.zeros((2, 1, 3, 3)), None, stride=2)
    assert out.shape == (1, 2, 3, 3)


def test_depthwise_conv_is_per_channel():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5, 5))
    w = rng.standard_normal((3, 1, 3, 3))
    out, _ = F.conv2d_forward(x, w, None, pad=1, groups=3)
    for c in range(3):
        single, _ = F.conv2d_forward(x[:, c:c + 1], w[c:c + 1], None, pad=1)
        np.testing.assert_allclose(out[:, c:c + 1], single, rtol=1e-12)


@pytest.mark.parametrize("c_loops", [pytest.param(True, id="C-loops"), pytest.param(False, id="Python-loops")])
@pytest.mark.parametrize("threads", [pytest.param(False, id="serial"), pytest.param(True, id="threads")])
@pytest.mark.parametrize("chunk_images", [1, 2, 3])
@settings(max_examples=10)
@given(g=mst.conv_geometries(max_batch=7), seed=mst.seeds())
def test_conv_chunk_boundaries(c_loops, threads, chunk_images, g, seed):
    """The CPU conv works a few images at a time (see conv_im2col.CHUNK_BYTES): with chunks of
    1, 2 or 3 images -- N not a multiple of it, N = 1, N smaller than a chunk -- with the
    chunks on worker threads or not, and the chunk loops in C or in Python, out, dx, dw and
    db still match the naive loops."""
    from minicnn import runtime
    from minicnn.functional import conv_im2col
    x = mst.random_array((g["N"], g["C"], g["H"], g["W"]), seed)
    w = mst.random_array((g["F"], g["C"] // g["groups"], g["KH"], g["KW"]), seed + 7)
    b = mst.random_array((g["F"],), seed + 9)
    kw = dict(stride=g["stride"], pad=g["pad"], groups=g["groups"])
    per_image = g["C"] * g["KH"] * g["KW"] * g["OH"] * g["OW"] * x.itemsize
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(conv_im2col, "CHUNK_BYTES", chunk_images * per_image)
        mp.setattr(conv_im2col, "C_LOOPS", c_loops)
        mp.setattr(runtime, "PARALLEL_MIN_MACS", 0 if threads else 1 << 62)
        out, cache = F.conv2d_forward(x, w, b, **kw)
        dout = upstream(out.shape, seed)
        grads = F.conv2d_backward(dout, cache)
    ref, ref_cache = F.conv2d_forward_naive(x, w, b, **kw)
    assert rel_error(out, ref) < 1e-10
    for got, want in zip(grads, F.conv2d_backward_naive(dout, ref_cache)):
        assert rel_error(got, want) < 1e-10


@pytest.mark.parametrize("kernel,path", [(1, "im2col"), (3, "im2col"), (3, "winograd"), (3, "direct")])
def test_threaded_conv_backward_is_bitwise_reproducible(kernel, path):
    """dW (dU on the Winograd path) is summed per thread: however the threads are scheduled,
    every call must give the same bits (a resumed training run must end bit-identical to an
    uninterrupted one).  Random pauses between chunks shuffle which thread finishes first."""
    import random
    import time
    from minicnn import runtime
    from minicnn.functional import conv, conv_direct, conv_im2col, conv_winograd
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 8, 6, 6)).astype(np.float32)
    w = rng.standard_normal((8, 8, kernel, kernel)).astype(np.float32)
    pause = random.Random(0)
    share_out = runtime.share_out

    def jittery_share_out(fn, *args, **kwargs):
        def slow(chunks):
            def chunks_with_pauses():
                for n0 in chunks:
                    time.sleep(pause.random() * 2e-3)
                    yield n0
            return fn(chunks_with_pauses())
        return share_out(slow, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(conv_im2col, "CHUNK_BYTES", 1)           # one image per chunk: 12 chunks
        mp.setattr(conv_winograd, "CHUNK_BYTES", 1)
        mp.setattr(conv_winograd, "MIN_CHANNELS", 1 if path == "winograd" else 10 ** 9)
        # The pauses go between the chunks of the Python loops; the C loops take fixed
        # shares in one call (test_c_chunk_loops_match_the_python_loops here and in
        # test_winograd.py check that they repeat their bits).
        mp.setattr(conv_winograd, "C_LOOPS", False)
        mp.setattr(conv_im2col, "C_LOOPS", False)
        mp.setattr(conv_direct, "GRAD_CHUNK_BYTES", 1)
        if path != "direct":
            mp.setattr(conv_direct, "ISA", 0)
        elif conv_direct.best_isa() == 0:
            pytest.skip("no direct kernel on this build or CPU")
        mp.setattr(runtime, "PARALLEL_MIN_MACS", 0)
        mp.setattr(runtime, "cpu_count", lambda: 3)
        mp.setattr(runtime, "share_out", jittery_share_out)
        assert conv.choose_algorithm(np, x, w, 1, kernel // 2, 1) == path
        out, cache = F.conv2d_forward(x, w, None, pad=kernel // 2)
        dout = rng.standard_normal(out.shape).astype(np.float32)
        first = F.conv2d_backward(dout, cache)
        for _ in range(8):
            again = F.conv2d_backward(dout, cache)
            assert np.array_equal(again[0], first[0]) and np.array_equal(again[1], first[1])


@pytest.mark.parametrize("c_loops", [pytest.param(True, id="C-loops"), pytest.param(False, id="Python-loops")])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("chunk_images,threads", [(1, True), (2, False), (3, True), (8, False)])
def test_pointwise_conv_chunks(c_loops, groups, chunk_images, threads):
    """1x1, stride 1, unpadded convs skip im2col on the CPU (the image is its own column
    matrix); they must still match the naive loops, with any chunking, on both paths."""
    from minicnn import runtime
    from minicnn.functional import conv_im2col
    rng = np.random.default_rng(chunk_images)
    x = rng.standard_normal((5, 4, 3, 6))
    w = rng.standard_normal((6, 4 // groups, 1, 1))
    b = rng.standard_normal(6)
    dout = rng.standard_normal((5, 6, 3, 6))
    ref, ref_cache = F.conv2d_forward_naive(x, w, b, groups=groups)
    want = F.conv2d_backward_naive(dout, ref_cache)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(conv_im2col, "CHUNK_BYTES", chunk_images * 4 * 3 * 6 * 8)
        mp.setattr(conv_im2col, "C_LOOPS", c_loops)
        mp.setattr(runtime, "PARALLEL_MIN_MACS", 0 if threads else 1 << 62)
        for cython in (True, False):
            with backend.use_cython(cython):
                out, cache = F.conv2d_forward(x, w, b, groups=groups)
                got = F.conv2d_backward(dout, cache)
            assert rel_error(out, ref) < 1e-12
            for g_, w_ in zip(got, want):
                assert rel_error(g_, w_) < 1e-12


def _im2col_both_loops(fn, chunk_images):
    """fn() with conv_im2col's chunk loops in C, then in Python (3 threads, chunks of
    ``chunk_images``); returns the two results."""
    from minicnn import runtime
    from minicnn.functional import conv_im2col
    results = []
    for c_loops in (True, False):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(conv_im2col, "C_LOOPS", c_loops)
            mp.setattr(conv_im2col, "chunk_size", lambda n, *rest, **kw: min(n, chunk_images))
            mp.setattr(runtime, "PARALLEL_MIN_MACS", 0)
            mp.setattr(runtime, "cpu_count", lambda: 3)
            results.append(fn())
    return results


def _im2col_c_kernels():
    """im2col's Cython kernels where their loops can call NumPy's BLAS from C, else skip."""
    from minicnn import runtime
    kernels = backend.cython_kernels(np, "im2col")
    if kernels is None or not runtime.gemm_in_c(kernels):
        pytest.skip("no Cython kernels, or no CBLAS gemm in NumPy's BLAS: the loops stay in Python")
    return kernels


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("need_dx, need_dw", [(True, True), (False, True), (True, False)])
@pytest.mark.parametrize("layer", [
    # (N, C, H, W, F, KH, KW, stride, pad, groups, images per chunk)
    (7, 6, 9, 10, 8, 3, 3, 2, 1, 1, 2),      # ResNet's downsampling 3x3/2, odd sizes
    (5, 6, 8, 8, 9, 3, 3, 1, 1, 3, 2),       # groups, "same" size (the tall-plane im2col)
    (5, 4, 11, 7, 5, 2, 5, 3, 2, 1, 3),      # non-square, stride 3, overlap with padding
    (6, 8, 5, 7, 6, 1, 1, 1, 0, 2, 4),       # 1x1: no columns
    (3, 5, 9, 9, 4, 1, 1, 2, 0, 1, 1),       # 1x1 stride 2 (columns), one image per chunk
])
def test_im2col_c_chunk_loops_match_the_python_loops(dtype, need_dx, need_dw, layer):
    """conv_im2col's C chunk loops against the Python loops they replace, 3 threads; dx or dW
    not asked for stays None; a second backward gives the same bits (dW's partial sums are
    added in a fixed order)."""
    from minicnn.functional import conv_im2col
    kernels = _im2col_c_kernels()
    n, c, h, w_, f, kh, kw, stride, pad, groups, per_chunk = layer
    rng = np.random.default_rng(sum(layer))
    x = rng.standard_normal((n, c, h, w_)).astype(dtype)
    w = rng.standard_normal((f, c // groups, kh, kw)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    oh, ow = (h + 2 * pad - kh) // stride + 1, (w_ + 2 * pad - kw) // stride + 1
    close = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    outs = _im2col_both_loops(lambda: conv_im2col.forward(x, w, b, stride, pad, groups, oh, ow), per_chunk)
    np.testing.assert_allclose(outs[0], outs[1], **close)
    ref, ref_cache = F.conv2d_forward_naive(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                                            stride=stride, pad=pad, groups=groups)
    np.testing.assert_allclose(outs[0], ref, **close)
    dout = rng.standard_normal(outs[0].shape).astype(dtype)
    dout_before = dout.copy()
    run = lambda: conv_im2col.backward(dout, x, w, stride, pad, groups, need_dx=need_dx, need_dw=need_dw)  # noqa: E731
    (dx_c, dw_c), (dx_py, dw_py) = _im2col_both_loops(run, per_chunk)
    np.testing.assert_array_equal(dout, dout_before)
    dx_ref, dw_ref, _ = F.conv2d_backward_naive(dout.astype(np.float64), ref_cache)
    for got, other, want, wanted in ((dx_c, dx_py, dx_ref, need_dx), (dw_c, dw_py, dw_ref, need_dw)):
        if not wanted:
            assert got is None and other is None
            continue
        assert got.dtype == dtype
        np.testing.assert_allclose(got, other, **close)
        np.testing.assert_allclose(got, want, **close)
    dx_again, dw_again = _im2col_both_loops(run, per_chunk)[0]
    for again, first in ((dx_again, dx_c), (dw_again, dw_c)):
        if first is not None:
            np.testing.assert_array_equal(again, first)


def test_default_settings_run_the_im2col_chunk_loops_in_c(monkeypatch):
    """As shipped, where NumPy's BLAS is an OpenBLAS, a strided layer runs im2col.pyx's
    forward_chunks and backward_chunks, a 1x1 layer its pointwise_forward and pointwise_backward."""
    from minicnn import backend, runtime
    kernels = backend.cython_kernels(np, "im2col")
    if kernels is None or runtime.cblas_gemm() is None:
        pytest.skip("no Cython kernels, or NumPy's BLAS is not an OpenBLAS: the loops stay in Python")
    ran = []
    for name in ("forward_chunks", "backward_chunks", "pointwise_forward", "pointwise_backward"):
        original = getattr(kernels, name)
        monkeypatch.setattr(kernels, name, lambda *a, _f=original, _n=name: ran.append(_n) or _f(*a))
    rng = np.random.default_rng(0)
    # (17+ channels: thinner float32 1x1 layers go to the direct kernel)
    for w_shape, stride, pad in (((8, 6, 3, 3), 2, 1), ((24, 20, 1, 1), 1, 0)):
        x = rng.standard_normal((4, w_shape[1], 9, 9)).astype(np.float32)
        w = rng.standard_normal(w_shape).astype(np.float32)
        out, cache = F.conv2d_forward(x, w, None, stride, pad)
        F.conv2d_backward(rng.standard_normal(out.shape).astype(np.float32), cache)
    assert ran == ["forward_chunks", "backward_chunks", "pointwise_forward", "pointwise_backward"]


@pytest.mark.parametrize("w_shape, stride, pad", [
    ((24, 20, 1, 1), 1, 0), ((24, 20, 3, 3), 2, 1), ((24, 20, 3, 3), 1, 1), ((8, 4, 3, 3), 1, 1)])
def test_conv_takes_a_strided_bias_on_every_path(w_shape, stride, pad):
    """A bias that is a strided view (every other entry of an array) works on each CPU path
    (1x1, im2col, Winograd, direct): the kernels read a flat copy."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, w_shape[1], 9, 9)).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(2 * w_shape[0]).astype(np.float32)[::2]
    out, _ = F.conv2d_forward(x, w, b, stride, pad)
    ref, _ = F.conv2d_forward_naive(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), stride, pad)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


def test_im2col_c_chunk_loops_check_their_arguments():
    """Workspaces too small for a chunk, or weights of the wrong shape, are refused before any work."""
    kernels = _im2col_c_kernels()
    x = np.zeros((2, 4, 6, 6), np.float32)
    w_mat = np.zeros((1, 3, 36), np.float32)
    out = np.zeros((2, 3, 6, 6), np.float32)
    counter = np.zeros(1, np.int64)
    small = np.zeros(10, np.float32)
    big = np.zeros(4 * 9 * 2 * 36, np.float32)
    with pytest.raises(ValueError, match=r"forward_chunks: expected col_buf to hold at least 2592 values, received 10"):
        kernels.forward_chunks(x, w_mat, None, 3, 3, 1, 1, out, small, big, 2, counter)
    with pytest.raises(ValueError, match=r"forward_chunks: expected w_mat \(G, F/G, C/G\*3\*3\) for C=4"):
        kernels.forward_chunks(x, np.zeros((1, 3, 35), np.float32), None, 3, 3, 1, 1, out, big, big, 2, counter)
    with pytest.raises(ValueError, match=r"forward_chunks: expected bias of shape \(3,\)"):
        kernels.forward_chunks(x, w_mat, np.zeros(4, np.float32), 3, 3, 1, 1, out, big, big, 2, counter)
    assert counter[0] == 0
    with pytest.raises(ValueError, match=r"backward_chunks: expected dw_t \(1, 36, 3\)"):
        kernels.backward_chunks(x, out, w_mat, 3, 3, 1, 1, None, np.zeros((1, 3, 36), np.float32), big, big, 2, 0, 1)
    with pytest.raises(ValueError, match=r"backward_chunks: expected dx \(2, 4, 6, 6\)"):
        kernels.backward_chunks(x, out, w_mat, 3, 3, 1, 1, np.zeros((2, 4, 6, 5), np.float32), None, big, big, 2, 0, 1)


def _pointwise_kernels():
    """im2col's Cython kernels where the AVX-512 1x1 kernel runs (pointwise_gemm.h), else skip."""
    from minicnn.functional import conv_direct
    kernels = _im2col_c_kernels()
    if not kernels.pointwise_ready() or conv_direct.best_isa() < 2:
        pytest.skip("no AVX-512 on this CPU or build (or capped): 1x1 layers keep BLAS")
    return kernels


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 4), cg=st.integers(1, 40), fg=st.integers(1, 21), groups=st.integers(1, 3),
       h=st.integers(1, 9), w=st.integers(1, 13), threads=st.integers(1, 3), bias=st.booleans(),
       seed=mst.seeds())
def test_pointwise_kernel_matches_blas(n, cg, fg, groups, h, w, threads, bias, seed):
    """The 1x1 forward by pointwise_gemm.h against the same loop on BLAS and the naive loops,
    float32: row counts past and short of its 8-row block, positions past and short of its
    48-column block and of a 16-lane vector (masked tails), groups, bias or none."""
    kernels = _pointwise_kernels()
    c, f = cg * groups, fg * groups
    x = mst.random_array((n, c, h, w), seed, dtype=np.float32)
    wt = mst.random_array((f, cg, 1, 1), seed + 1, dtype=np.float32)
    b = mst.random_array((f,), seed + 2, dtype=np.float32) if bias else None
    w_mat = np.ascontiguousarray(wt.reshape(groups, fg, cg))
    outs = []
    for own in (True, False):
        out = np.full((n, f, h, w), np.nan, np.float32)       # every entry must be written
        kernels.pointwise_forward(x, w_mat, b, out, threads, own)
        outs.append(out)
    ref, _ = F.conv2d_forward_naive(x.astype(np.float64), wt.astype(np.float64),
                                    None if b is None else b.astype(np.float64), groups=groups)
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(outs[0], ref, rtol=1e-5, atol=1e-5)


def test_pointwise_kernel_runs_as_shipped_and_only_where_it_can(monkeypatch):
    """conv2d_forward gives a float32 1x1 layer to the kernel (and the same answer with
    POINTWISE_KERNEL off); float64 or $MINICNN_DIRECT_ISA=avx2 keep BLAS; asked for float64
    arrays, the C loop refuses."""
    from minicnn.functional import conv_direct, conv_im2col
    kernels = _pointwise_kernels()
    asked = []
    original = kernels.pointwise_forward
    monkeypatch.setattr(kernels, "pointwise_forward", lambda *a: asked.append(a[-1]) or original(*a))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 20, 5, 7)).astype(np.float32)
    w = rng.standard_normal((24, 20, 1, 1)).astype(np.float32)
    b = rng.standard_normal(24).astype(np.float32)
    out, _ = F.conv2d_forward(x, w, b)
    F.conv2d_forward(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64))
    monkeypatch.setattr(conv_direct, "ISA", 1)
    F.conv2d_forward(x, w, b)
    monkeypatch.setattr(conv_direct, "ISA", None)
    monkeypatch.setattr(conv_im2col, "POINTWISE_KERNEL", False)
    blas_out, _ = F.conv2d_forward(x, w, b)
    assert asked == [True, False, False, False]
    np.testing.assert_allclose(out, blas_out, rtol=1e-5, atol=1e-5)
    x64, w64 = x.astype(np.float64), w.reshape(1, 24, 20).astype(np.float64)
    with pytest.raises(ValueError, match="pointwise_forward: the pointwise kernel is float32 only"):
        original(x64, w64, None, np.zeros((3, 24, 5, 7)), 1, True)


def test_pointwise_c_loops_check_their_arguments():
    """Weights, outputs or dW parts of the wrong shape, or no threads, are refused before any work."""
    kernels = _im2col_c_kernels()
    x = np.zeros((2, 4, 3, 5), np.float32)
    w_mat = np.zeros((2, 3, 2), np.float32)
    out = np.zeros((2, 6, 3, 5), np.float32)
    with pytest.raises(ValueError, match=r"pointwise_forward: expected w_mat \(G, F/G, C/G\) for C=4"):
        kernels.pointwise_forward(x, np.zeros((2, 3, 3), np.float32), None, out, 2)
    with pytest.raises(ValueError, match=r"pointwise_forward: .* received w_mat \(2, 3, 2\) and out \(2, 6, 3, 4\)"):
        kernels.pointwise_forward(x, w_mat, None, np.zeros((2, 6, 3, 4), np.float32), 2)
    with pytest.raises(ValueError, match=r"pointwise_forward: expected threads >= 1, received 0"):
        kernels.pointwise_forward(x, w_mat, None, out, 0)
    with pytest.raises(ValueError, match=r"pointwise_forward: expected bias of shape \(6,\)"):
        kernels.pointwise_forward(x, w_mat, np.zeros(4, np.float32), out, 1)
    with pytest.raises(ValueError, match=r"pointwise_backward: expected dw_parts \(3, 2, 2, 3\), received \(2, 2, 2, 3\)"):
        kernels.pointwise_backward(x, out, w_mat, None, np.zeros((2, 2, 2, 3), np.float32), 3)
    with pytest.raises(ValueError, match=r"pointwise_backward: expected dx \(2, 4, 3, 5\)"):
        kernels.pointwise_backward(x, out, w_mat, np.zeros((2, 4, 3, 4), np.float32), None, 1)

def _direct_or_im2col():
    from minicnn.functional import conv_direct
    return "direct" if conv_direct.best_isa() else "im2col"


@pytest.mark.parametrize("layer,dtype,expected", [
    # (N, C, H, W, F, KH, KW, stride, pad, groups)
    ((4, 3, 32, 32, 6, 5, 5, 1, 0, 1), np.float32, _direct_or_im2col),      # LeNet conv1
    ((4, 3, 32, 32, 6, 5, 5, 1, 0, 1), np.float64, "im2col"),               # the kernel is float32
    ((4, 16, 32, 32, 16, 3, 3, 1, 1, 1), np.float32, _direct_or_im2col),    # CIFAR ResNet, thin
    ((4, 16, 32, 32, 16, 3, 3, 1, 1, 1), np.float64, "winograd"),
    ((4, 64, 8, 8, 64, 3, 3, 1, 1, 1), np.float32, "winograd"),
    ((4, 16, 32, 32, 32, 3, 3, 2, 1, 1), np.float32, "im2col"),             # stride 2
    ((2, 256, 14, 14, 64, 1, 1, 1, 0, 1), np.float32, "im2col"),            # 1x1
    ((2, 32, 8, 8, 32, 3, 3, 1, 1, 2), np.float32, "im2col"),               # groups
    ((2, 32, 8, 8, 32, 3, 3, 1, 1, 32), np.float32, "im2col"),              # depthwise
    ((2, 8, 8, 8, 8, 3, 5, 1, 1, 1), np.float32, _direct_or_im2col),       # non-square, thin
    ((2, 24, 8, 8, 24, 3, 5, 1, 1, 1), np.float32, "im2col"),               # non-square, wide
    ((2, 8, 8, 8, 8, 3, 3, 1, 3, 1), np.float32, "im2col"),                 # pad past the kernel
])
def test_conv_dispatcher_chooses_and_runs_the_algorithm(layer, dtype, expected):
    """choose_algorithm's table with the shipped thresholds, and conv2d_forward / backward
    really run the algorithm it names (and "batched" with the kernels off)."""
    from minicnn.functional import conv, conv_direct, conv_im2col, conv_winograd
    if callable(expected):
        expected = expected()
    n, c, h, w_, f, kh, kw, stride, pad, groups = layer
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, w_)).astype(dtype)
    w = rng.standard_normal((f, c // groups, kh, kw)).astype(dtype)
    assert conv.choose_algorithm(np, x, w, stride, pad, groups) == expected
    ran = []
    with pytest.MonkeyPatch.context() as mp:
        for name, module in [("batched", conv), ("direct", conv_direct), ("winograd", conv_winograd),
                             ("im2col", conv_im2col)]:
            for fn in ("forward", "backward"):
                attr = fn + "_batched" if module is conv else fn
                real = getattr(module, attr)
                mp.setattr(module, attr, lambda *a, _real=real, _tag=(name, fn), **k: ran.append(_tag) or _real(*a, **k))
        out, cache = F.conv2d_forward(x, w, None, stride, pad, groups)
        F.conv2d_backward(np.ones_like(out), cache, need_dx=False)
        assert ran[0] == (expected, "forward") and (expected, "backward") in ran
        with backend.use_cython(False):
            assert conv.choose_algorithm(np, x, w, stride, pad, groups) == "batched"
            ran.clear()
            out, cache = F.conv2d_forward(x, w, None, stride, pad, groups)
            F.conv2d_backward(np.ones_like(out), cache)
            assert ran == [("batched", "forward"), ("batched", "backward")]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_workspace_reuse_keeps_results(dtype):
    """Two convs of the same shape share the workspace buffers: run both forwards, then both
    backwards (as a network does), and every result must still be its own naive answer --
    nothing returned or cached may point into the scratch space."""
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((5, 3, 9, 8)).astype(dtype) for _ in range(2)]
    ws = [rng.standard_normal((4, 3, 3, 3)).astype(dtype) for _ in range(2)]
    bs = [rng.standard_normal(4).astype(dtype) for _ in range(2)]
    douts = [rng.standard_normal((5, 4, 9, 8)).astype(dtype) for _ in range(2)]
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for cython in (True, False):
        with backend.use_cython(cython):
            fwd = [F.conv2d_forward(x, w, b, pad=1) for x, w, b in zip(xs, ws, bs)]
            grads = [F.conv2d_backward(d, cache) for d, (_, cache) in zip(douts, fwd)]
            again = [F.conv2d_backward(d, cache) for d, (_, cache) in zip(douts, fwd)]
        for i in range(2):
            ref, ref_cache = F.conv2d_forward_naive(xs[i], ws[i], bs[i], pad=1)
            assert fwd[i][0].dtype == dtype
            np.testing.assert_allclose(fwd[i][0], ref, rtol=tol, atol=tol)
            for got, twice, want in zip(grads[i], again[i], F.conv2d_backward_naive(douts[i], ref_cache)):
                assert got.dtype == dtype
                np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
                np.testing.assert_array_equal(got, twice)


# ----------------------------------------------------------------------------------- pooling

@pytest.mark.parametrize("cython", PATHS)
def test_max_pool_ties_go_to_first_maximum(cython):
    # Every window of a constant image is all ties: the first tap (row-major) takes the gradient.
    x = np.ones((1, 1, 4, 4))
    with backend.use_cython(cython):
        out, cache = F.max_pool2d_forward(x, 2, 2)
        dx = F.max_pool2d_backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), cache)
    expected = np.zeros((4, 4))
    expected[0, 0], expected[0, 2], expected[2, 0], expected[2, 2] = 1, 2, 3, 4
    np.testing.assert_array_equal(dx[0, 0], expected)
    # Overlapping 3x3/2 windows sharing a tied maximum: both outputs route to the shared first max.
    x = np.zeros((1, 1, 3, 5))
    x[0, 0, 1, 2] = x[0, 0, 1, 3] = 5.0
    with backend.use_cython(cython):
        out, cache = F.max_pool2d_forward(x, 3, 2)
        dx = F.max_pool2d_backward(np.array([[[[1.0, 10.0]]]]), cache)
    assert out[0, 0, 0].tolist() == [5.0, 5.0]
    assert dx[0, 0, 1, 2] == 11.0 and dx[0, 0, 1, 3] == 0.0


@pytest.mark.parametrize("cython", PATHS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool_propagates_nan_on_both_paths(cython, dtype):
    # A NaN anywhere in a window is that window's maximum (the first NaN, as numpy.max):
    # a diverging network must show NaN, not quietly pool it away.
    x = np.arange(16, dtype=dtype).reshape(1, 1, 4, 4)
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = np.nan         # the first window holds two NaNs
    x[0, 0, 3, 3] = np.nan                          # the last window's NaN comes after its maxima
    with backend.use_cython(cython):
        out, cache = F.max_pool2d_forward(x, 2, 2)
        dx = F.max_pool2d_backward(np.ones_like(out), cache)
    assert np.isnan(out[0, 0, 0, 0]) and np.isnan(out[0, 0, 1, 1])
    assert out[0, 0, 0, 1] == 7 and out[0, 0, 1, 0] == 13
    assert dx[0, 0, 0, 1] == 1 and dx[0, 0, 1, 0] == 0   # the first NaN takes the gradient
    assert dx[0, 0, 3, 3] == 1


@settings(max_examples=25)
@given(g=mst.pool_geometries(), seed=mst.seeds())
def test_avg_pool_gradient_and_forward(g, seed):
    x = mst.random_array((g["N"], g["C"], g["H"], g["W"]), seed)
    size, kw = (g["KH"], g["KW"]), dict(stride=g["stride"], pad=g["pad"])
    out, cache = F.avg_pool2d_forward(x, size, **kw)
    dout = upstream(out.shape, seed)
    assert_grad(F.avg_pool2d_backward(dout, cache), lambda a: F.avg_pool2d_forward(a, size, **kw)[0],
                x, dout, "dx")
    # Average pooling is a depthwise convolution with a constant 1/(KH*KW) kernel (zeros padded).
    c = g["C"]
    w = np.full((c, 1, g["KH"], g["KW"]), 1.0 / (g["KH"] * g["KW"]))
    ref, _ = F.conv2d_forward_naive(x, w, None, groups=c, **kw)
    assert rel_error(out, ref) < 1e-10


@st.composite
def ceil_pool_geometries(draw):
    """mst.pool_geometries plus ceil_mode, OH and OW recomputed by PyTorch's rule."""
    g = dict(draw(mst.pool_geometries(max_size=9)))
    g["ceil_mode"] = ceil = draw(st.booleans())
    if ceil:
        for n, k, o in (("H", "KH", "OH"), ("W", "KW", "OW")):
            out = math.ceil((g[n] + 2 * g["pad"] - g[k]) / g["stride"]) + 1
            g[o] = out - 1 if (out - 1) * g["stride"] >= g[n] + g["pad"] else out
    return g


def _windows(g, padded):
    """(i, j, window of ``padded``) for every output, ``padded`` the input padded on the top
    and left by ``pad`` and on the bottom and right by as much as the windows need."""
    s = g["stride"]
    for i in range(g["OH"]):
        for j in range(g["OW"]):
            yield i, j, padded[:, :, i * s:i * s + g["KH"], j * s:j * s + g["KW"]]


def _pad_for_windows(x, g, value):
    p, s = g["pad"], g["stride"]
    bottom = max(p, (g["OH"] - 1) * s + g["KH"] - g["H"] - p)
    right = max(p, (g["OW"] - 1) * s + g["KW"] - g["W"] - p)
    return np.pad(x, ((0, 0), (0, 0), (p, bottom), (p, right)), constant_values=value)


@pytest.mark.parametrize("cython", PATHS)
@settings(max_examples=40)
@given(g=ceil_pool_geometries(), seed=mst.seeds())
def test_max_pool_gradient_and_forward(cython, g, seed):
    """Odd sizes, stride, padding, ceil_mode on and off: the forward is the max over each
    window of the -inf padded input (a window over the bottom/right edge in ceil mode: of
    the pixels it covers), and the gradient agrees with the numeric one."""
    x = mst.tie_free_array((g["N"], g["C"], g["H"], g["W"]), seed)
    size, kw = (g["KH"], g["KW"]), dict(stride=g["stride"], pad=g["pad"], ceil_mode=g["ceil_mode"])
    with backend.use_cython(cython):
        out, cache = F.max_pool2d_forward(x, size, **kw)
        assert out.shape == (g["N"], g["C"], g["OH"], g["OW"])
        dout = upstream(out.shape, seed)
        dx = F.max_pool2d_backward(dout, cache)
        assert_grad(dx, lambda a: F.max_pool2d_forward(a, size, **kw)[0], x, dout, "dx")
    for i, j, win in _windows(g, _pad_for_windows(x, g, -np.inf)):
        np.testing.assert_array_equal(out[:, :, i, j], win.max(axis=(2, 3)))


@settings(max_examples=30)
@given(g=ceil_pool_geometries(), seed=mst.seeds())
def test_avg_pool_ceil_mode_gradient_and_forward(g, seed):
    """PyTorch's divisor: the window's rows and columns inside the zero-padded input (the
    padding counts, the overhang past it does not)."""
    x = mst.random_array((g["N"], g["C"], g["H"], g["W"]), seed)
    size, kw = (g["KH"], g["KW"]), dict(stride=g["stride"], pad=g["pad"], ceil_mode=g["ceil_mode"])
    out, cache = F.avg_pool2d_forward(x, size, **kw)
    assert out.shape == (g["N"], g["C"], g["OH"], g["OW"])
    dout = upstream(out.shape, seed)
    assert_grad(F.avg_pool2d_backward(dout, cache), lambda a: F.avg_pool2d_forward(a, size, **kw)[0],
                x, dout, "dx")
    p, s = g["pad"], g["stride"]
    for i, j, win in _windows(g, _pad_for_windows(x, g, 0.0)):
        rows = min(i * s + g["KH"], g["H"] + 2 * p) - i * s
        cols = min(j * s + g["KW"], g["W"] + 2 * p) - j * s
        np.testing.assert_allclose(out[:, :, i, j], win.sum(axis=(2, 3)) / (rows * cols), rtol=1e-12)


def test_ceil_mode_sizes_and_errors():
    x = np.zeros((1, 1, 109, 109))
    assert F.max_pool2d_forward(x, 3, 2)[0].shape[2:] == (54, 54)
    assert F.max_pool2d_forward(x, 3, 2, ceil_mode=True)[0].shape[2:] == (54, 54)
    x = np.zeros((1, 1, 13, 14))
    assert F.max_pool2d_forward(x, 3, 2, ceil_mode=True)[0].shape[2:] == (6, 7)    # floor: 6, 6
    assert F.avg_pool2d_forward(x, 3, 2, ceil_mode=True)[0].shape[2:] == (6, 7)
    # A window larger than the input still fits in ceil mode (PyTorch agrees), not in floor mode.
    assert F.max_pool2d_forward(np.zeros((1, 1, 2, 2)), 3, 2, ceil_mode=True)[0].shape[2:] == (1, 1)
    with pytest.raises(ValueError, match="max_pool2d_forward.*kernel"):
        F.max_pool2d_forward(np.zeros((1, 1, 2, 2)), 3, 2)
    with pytest.raises(ValueError, match=r"max_pool2d_forward: expected a 4x4 window to fit the 1x1 "
                                         r"input padded by 0 \(ceil_mode\), received an output size of 0x0"):
        F.max_pool2d_forward(np.zeros((1, 1, 1, 1)), 4, 2, ceil_mode=True)
    with pytest.raises(ValueError, match="avg_pool2d_forward: expected ceil_mode True or False"):
        F.avg_pool2d_forward(np.zeros((1, 1, 4, 4)), 2, 2, ceil_mode="yes")


@settings(max_examples=20)
@given(n=st.integers(1, 2), c=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9),
       oh=st.integers(1, 7), ow=st.integers(1, 7), seed=mst.seeds())
def test_adaptive_avg_pool(n, c, h, w, oh, ow, seed):
    """Window i of n pixels into k outputs: [floor(i*n/k), ceil((i+1)*n/k)), PyTorch's rule;
    windows overlap when k does not divide n and repeat pixels when k > n."""
    x = mst.random_array((n, c, h, w), seed)
    out, cache = F.adaptive_avg_pool2d_forward(x, (oh, ow))
    assert out.shape == (n, c, oh, ow)
    for i in range(oh):
        for j in range(ow):
            r0, r1 = math.floor(i * h / oh), math.ceil((i + 1) * h / oh)
            c0, c1 = math.floor(j * w / ow), math.ceil((j + 1) * w / ow)
            np.testing.assert_allclose(out[:, :, i, j], x[:, :, r0:r1, c0:c1].mean(axis=(2, 3)), rtol=1e-12)
    dout = upstream(out.shape, seed)
    assert_grad(F.adaptive_avg_pool2d_backward(dout, cache),
                lambda a: F.adaptive_avg_pool2d_forward(a, (oh, ow))[0], x, dout, "dx")
    if (oh, ow) == (1, 1):
        np.testing.assert_allclose(out[:, :, 0, 0], F.global_avg_pool_forward(x)[0], rtol=1e-12)


def _torch():
    torch = pytest.importorskip("torch")
    return torch


@pytest.mark.parametrize("cython", PATHS)
@settings(max_examples=30)
@given(g=ceil_pool_geometries(), seed=mst.seeds())
def test_pooling_matches_torch(cython, g, seed):
    """Max and average pooling, ceil_mode on and off, against torch.nn.functional (float64),
    gradients included (on tie-free input, where the max is unique)."""
    torch = _torch()
    x = mst.tie_free_array((g["N"], g["C"], g["H"], g["W"]), seed)
    size, kw = (g["KH"], g["KW"]), dict(stride=g["stride"], pad=g["pad"], ceil_mode=g["ceil_mode"])
    tkw = dict(stride=g["stride"], padding=g["pad"], ceil_mode=g["ceil_mode"])
    for ours, theirs in ((F.max_pool2d_forward, torch.nn.functional.max_pool2d),
                         (F.avg_pool2d_forward, torch.nn.functional.avg_pool2d)):
        with backend.use_cython(cython):
            out, cache = ours(x, size, **kw)
        t = torch.tensor(x, requires_grad=True)
        ref = theirs(t, size, **tkw)
        dout = upstream(out.shape, seed)
        ref.backward(torch.tensor(dout))
        backward = F.max_pool2d_backward if ours is F.max_pool2d_forward else F.avg_pool2d_backward
        with backend.use_cython(cython):
            dx = backward(dout, cache)
        np.testing.assert_allclose(out, ref.detach().numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dx, t.grad.numpy(), rtol=1e-12, atol=1e-12)


@settings(max_examples=20)
@given(h=st.integers(1, 15), w=st.integers(1, 15), oh=st.integers(1, 8), ow=st.integers(1, 8),
       seed=mst.seeds())
def test_adaptive_avg_pool_matches_torch(h, w, oh, ow, seed):
    torch = _torch()
    x = mst.random_array((2, 3, h, w), seed)
    out, cache = F.adaptive_avg_pool2d_forward(x, (oh, ow))
    t = torch.tensor(x, requires_grad=True)
    ref = torch.nn.functional.adaptive_avg_pool2d(t, (oh, ow))
    dout = upstream(out.shape, seed)
    ref.backward(torch.tensor(dout))
    np.testing.assert_allclose(out, ref.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(F.adaptive_avg_pool2d_backward(dout, cache), t.grad.numpy(),
                               rtol=1e-12, atol=1e-12)


@settings(max_examples=15)
@given(n=st.integers(1, 3), c=st.integers(1, 4), h=st.integers(1, 5), w=st.integers(1, 5), seed=mst.seeds())
def test_global_avg_pool(n, c, h, w, seed):
    x = mst.random_array((n, c, h, w), seed)
    out, cache = F.global_avg_pool_forward(x)
    np.testing.assert_allclose(out, x.mean(axis=(2, 3)))
    dout = upstream(out.shape, seed)
    assert_grad(F.global_avg_pool_backward(dout, cache), lambda a: F.global_avg_pool_forward(a)[0],
                x, dout, "dx")


# ----------------------------------------------------------------------------------- pointwise

shapes = st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple)


@settings(max_examples=20)
@given(shape=shapes, seed=mst.seeds())
def test_relu(shape, seed):
    x = mst.kink_free_array(shape, seed)
    out, cache = F.relu_forward(x)
    np.testing.assert_array_equal(out, np.maximum(x, 0))
    dout = upstream(shape, seed)
    assert_grad(F.relu_backward(dout, cache), lambda a: F.relu_forward(a)[0], x, dout, "dx")


@settings(max_examples=20)
@given(shape=shapes, seed=mst.seeds())
def test_sigmoid(shape, seed):
    x = mst.random_array(shape, seed, scale=3.0)
    out, cache = F.sigmoid_forward(x)
    np.testing.assert_allclose(out, 1 / (1 + np.exp(-x)), rtol=1e-12)
    dout = upstream(shape, seed)
    assert_grad(F.sigmoid_backward(dout, cache), lambda a: F.sigmoid_forward(a)[0], x, dout, "dx")


def test_relu_keeps_nan_visible():
    out, _ = F.relu_forward(np.array([np.nan, -1.0, 2.0], dtype=np.float32))
    assert np.isnan(out[0]) and out[1:].tolist() == [0.0, 2.0] and out.dtype == np.float32


def test_sigmoid_does_not_overflow():
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out, _ = F.sigmoid_forward(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_array_equal(out, [0.0, 0.5, 1.0])


@settings(max_examples=20)
@given(n=st.integers(1, 4), d=st.lists(st.integers(1, 3), min_size=1, max_size=3), m=st.integers(1, 5),
       seed=mst.seeds(), bias=st.booleans())
def test_linear(n, d, m, seed, bias):
    x = mst.random_array((n, *d), seed)
    w = mst.random_array((m, int(np.prod(d))), seed + 1)
    b = mst.random_array((m,), seed + 2) if bias else None
    out, cache = F.linear_forward(x, w, b)
    np.testing.assert_allclose(out, x.reshape(n, -1) @ w.T + (b if bias else 0), rtol=1e-12)
    dout = upstream(out.shape, seed)
    dx, dw, db = F.linear_backward(dout, cache)
    assert dx.shape == x.shape
    assert_grad(dx, lambda a: F.linear_forward(a, w, b)[0], x, dout, "dx")
    assert_grad(dw, lambda a: F.linear_forward(x, a, b)[0], w, dout, "dw")
    if bias:
        assert_grad(db, lambda a: F.linear_forward(x, w, a)[0], b, dout, "db")


# ----------------------------------------------------------------------------------- LRN

def lrn_reference(x, size, alpha, beta, k):
    """LRN straight from the formula, channel by channel."""
    out = np.empty_like(x)
    c = x.shape[1]
    for ch in range(c):
        lo, hi = max(0, ch - size // 2), min(c, ch + (size - 1) // 2 + 1)
        s = (x[:, lo:hi] ** 2).sum(axis=1)
        out[:, ch] = x[:, ch] / (k + alpha / size * s) ** beta
    return out


@settings(max_examples=25)
@given(n=st.integers(1, 2), c=st.integers(1, 7), hw=st.integers(1, 3), size=st.integers(1, 6),
       alpha=st.floats(1e-4, 1.0), beta=st.floats(0.25, 1.5), k=st.floats(0.5, 3.0), seed=mst.seeds())
def test_lrn(n, c, hw, size, alpha, beta, k, seed):
    x = mst.random_array((n, c, hw, hw), seed, scale=2.0)
    out, cache = F.lrn_forward(x, size, alpha, beta, k)
    np.testing.assert_allclose(out, lrn_reference(x, size, alpha, beta, k), rtol=1e-12)
    dout = upstream(out.shape, seed)
    assert_grad(F.lrn_backward(dout, cache), lambda a: F.lrn_forward(a, size, alpha, beta, k)[0],
                x, dout, "dx")


def test_lrn_alexnet_convention():
    # AlexNet's paper: k=2, n=5, alpha=1e-4 without 1/n -> here alpha=5e-4 (alpha / size * sum).
    x = np.random.default_rng(0).standard_normal((1, 8, 2, 2)) * 20
    out, _ = F.lrn_forward(x, size=5, alpha=5e-4, beta=0.75, k=2.0)
    c = 3
    paper = x[:, c] / (2 + 1e-4 * (x[:, 1:6] ** 2).sum(axis=1)) ** 0.75
    np.testing.assert_allclose(out[:, c], paper, rtol=1e-12)


# ----------------------------------------------------------------------------------- batch norm

@settings(max_examples=25)
@given(spatial=st.booleans(), n=st.integers(2, 4), c=st.integers(1, 4), hw=st.integers(1, 3),
       training=st.booleans(), seed=mst.seeds())
def test_batchnorm_gradients(spatial, n, c, hw, training, seed):
    shape = (n, c, hw, hw) if spatial else (n, c)
    x = mst.random_array(shape, seed, scale=2.0) + 1.5
    gamma, beta = mst.random_array((c,), seed + 1), mst.random_array((c,), seed + 2)
    rm, rv = mst.random_array((c,), seed + 3), np.abs(mst.random_array((c,), seed + 4)) + 0.5

    def fwd(x_, g_=gamma, b_=beta):
        return F.batchnorm_forward(x_, g_, b_, rm.copy(), rv.copy(), training)[0]

    out, cache = F.batchnorm_forward(x, gamma, beta, rm.copy(), rv.copy(), training)
    dout = upstream(shape, seed)
    dx, dgamma, dbeta = F.batchnorm_backward(dout, cache)
    assert_grad(dx, fwd, x, dout, "dx")
    assert_grad(dgamma, lambda g: fwd(x, g_=g), gamma, dout, "dgamma")
    assert_grad(dbeta, lambda b: fwd(x, b_=b), beta, dout, "dbeta")


def test_batchnorm_is_per_channel_with_pytorch_momentum():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 5, 6)) * 3 + 2
    rm, rv = np.zeros(3), np.ones(3)
    out, _ = F.batchnorm_forward(x, np.ones(3), np.zeros(3), rm, rv, True, momentum=0.1)
    # Per channel over (N, H, W): every channel of out has mean 0 and (biased) variance 1.
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=(0, 2, 3)), 1, rtol=1e-4)
    # Running stats: 0.9 * old + 0.1 * batch, with the unbiased batch variance.
    np.testing.assert_allclose(rm, 0.1 * x.mean(axis=(0, 2, 3)))
    np.testing.assert_allclose(rv, 0.9 + 0.1 * x.var(axis=(0, 2, 3), ddof=1))
    # Eval uses the running statistics, not the batch.
    out_eval, _ = F.batchnorm_forward(x, np.ones(3), np.zeros(3), rm, rv, False)
    np.testing.assert_allclose(out_eval, (x - rm[:, None, None]) / np.sqrt(rv[:, None, None] + 1e-5))


# ----------------------------------------------------------------------------------- dropout

def test_dropout_inverted_and_reproducible():
    x = np.ones((200, 500), dtype=np.float32)
    out, cache = F.dropout_forward(x, 0.3, True, np.random.default_rng(1))
    assert out.dtype == np.float32
    kept = out != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(out[kept], 1 / 0.7, rtol=1e-6)  # survivors scaled by 1 / (1 - p)
    assert abs(out.mean() - 1.0) < 0.02                       # expectation unchanged
    again, _ = F.dropout_forward(x, 0.3, True, np.random.default_rng(1))
    np.testing.assert_array_equal(out, again)
    dout = np.random.default_rng(2).standard_normal(x.shape).astype(np.float32)
    np.testing.assert_array_equal(F.dropout_backward(dout, cache), dout * cache)
    # Evaluation is the identity; p = 0 too; p = 1 drops everything.
    ev, c = F.dropout_forward(x, 0.3, False, None)
    np.testing.assert_array_equal(ev, x)
    np.testing.assert_array_equal(F.dropout_backward(dout, c), dout)
    all_dropped, _ = F.dropout_forward(x, 1.0, True, np.random.default_rng(0))
    assert not all_dropped.any()


@settings(max_examples=15)
@given(shape=shapes, p=st.floats(0.0, 0.9), seed=mst.seeds())
def test_dropout_gradient(shape, p, seed):
    x = mst.random_array(shape, seed)
    out, cache = F.dropout_forward(x, p, True, np.random.default_rng(seed))
    dout = upstream(shape, seed)
    assert_grad(F.dropout_backward(dout, cache),
                lambda a: F.dropout_forward(a, p, True, np.random.default_rng(seed))[0], x, dout, "dx")


# ----------------------------------------------------------------------------------- loss

@settings(max_examples=20)
@given(n=st.integers(1, 5), k=st.integers(2, 6), seed=mst.seeds())
def test_softmax_cross_entropy(n, k, seed):
    scores = mst.random_array((n, k), seed, scale=3.0)
    y = np.random.default_rng(seed).integers(0, k, n)
    loss, dscores = F.softmax_cross_entropy(scores, y)
    p = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    assert math.isclose(loss, -np.log(p[np.arange(n), y]).mean(), rel_tol=1e-9, abs_tol=1e-12)
    assert_grad(dscores, lambda s: F.softmax_cross_entropy(s, y)[0], scores, None, "dscores")


def test_softmax_cross_entropy_stable_and_initial_loss():
    loss, d = F.softmax_cross_entropy(np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]]), np.array([0, 0]))
    assert math.isclose(loss, 1e4, rel_tol=1e-12) and np.isfinite(d).all()
    # Equal scores over 10 classes: the loss of a fresh classifier, ln(10) ~ 2.303.
    loss, _ = F.softmax_cross_entropy(np.zeros((8, 10), np.float32), np.arange(8))
    assert math.isclose(loss, math.log(10), rel_tol=1e-6)


# ----------------------------------------------------------------------------------- dtypes

def _all_ops(x, rng):
    """(name, out, grads) for every op run on x's dtype."""
    dt = x.dtype
    c = x.shape[1]
    w = (rng.standard_normal((4, c, 3, 2)) * 0.3).astype(dt)
    b = rng.standard_normal(4).astype(dt)
    results = []
    out, cache = F.conv2d_forward(x, w, b, stride=2, pad=1)
    results.append(("conv2d", out, F.conv2d_backward(out.copy(), cache)))
    out, cache = F.max_pool2d_forward(x, 3, 2, 1)
    results.append(("max_pool2d", out, (F.max_pool2d_backward(out.copy(), cache),)))
    out, cache = F.avg_pool2d_forward(x, 3, 2, 1)
    results.append(("avg_pool2d", out, (F.avg_pool2d_backward(out.copy(), cache),)))
    out, cache = F.global_avg_pool_forward(x)
    results.append(("global_avg_pool", out, (F.global_avg_pool_backward(out.copy(), cache),)))
    for name, fwd, bwd in (("relu", F.relu_forward, F.relu_backward),
                           ("sigmoid", F.sigmoid_forward, F.sigmoid_backward),
                           ("lrn", F.lrn_forward, F.lrn_backward)):
        out, cache = fwd(x)
        results.append((name, out, (bwd(out.copy(), cache),)))
    wl = rng.standard_normal((5, x[0].size)).astype(dt)
    out, cache = F.linear_forward(x, wl, np.zeros(5, dt))
    results.append(("linear", out, F.linear_backward(out.copy(), cache)))
    g, be = np.ones(c, dt), np.zeros(c, dt)
    out, cache = F.batchnorm_forward(x, g, be, np.zeros(c, dt), np.ones(c, dt), True)
    results.append(("batchnorm", out, F.batchnorm_backward(out.copy(), cache)))
    out, cache = F.dropout_forward(x, 0.5, True, np.random.default_rng(0))
    results.append(("dropout", out, (F.dropout_backward(out.copy(), cache),)))
    loss, d = F.softmax_cross_entropy(x.reshape(x.shape[0], -1), np.zeros(x.shape[0], np.int64))
    results.append(("softmax_cross_entropy", np.array([loss], dt), (d,)))
    return results


def test_float32_stays_float32_and_agrees_with_float64():
    x64 = np.random.default_rng(0).standard_normal((3, 2, 6, 5))
    r32 = _all_ops(x64.astype(np.float32), np.random.default_rng(1))
    r64 = _all_ops(x64, np.random.default_rng(1))
    for (name, o32, g32), (_, o64, g64) in zip(r32, r64):
        assert o32.dtype == np.float32, name
        assert all(g is None or g.dtype == np.float32 for g in g32), name
        scale = max(1.0, float(np.abs(o64).max()))
        assert np.abs(o32 - o64).max() / scale < 1e-4, name
        for a, b in zip(g32, g64):
            if a is not None:
                assert np.abs(a - b).max() / max(1.0, float(np.abs(b).max())) < 1e-4, name


def test_no_backward_writes_into_dout():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 5, 5))
    ops = [
        (F.conv2d_forward(x, rng.standard_normal((2, 3, 3, 3)), np.zeros(2), pad=1), F.conv2d_backward),
        (F.max_pool2d_forward(x, 2, 2), F.max_pool2d_backward),
        (F.avg_pool2d_forward(x, 2, 1), F.avg_pool2d_backward),
        (F.global_avg_pool_forward(x), F.global_avg_pool_backward),
        (F.relu_forward(x), F.relu_backward), (F.sigmoid_forward(x), F.sigmoid_backward),
        (F.lrn_forward(x), F.lrn_backward),
        (F.batchnorm_forward(x, np.ones(3), np.zeros(3), np.zeros(3), np.ones(3), True), F.batchnorm_backward),
        (F.dropout_forward(x, 0.5, True, rng), F.dropout_backward),
        (F.linear_forward(x, rng.standard_normal((4, 75)), np.zeros(4)), F.linear_backward),
    ]
    for (out, cache), bwd in ops:
        dout = rng.standard_normal(out.shape)
        keep = dout.copy()
        bwd(dout, cache)
        np.testing.assert_array_equal(dout, keep, err_msg=bwd.__name__)


# ----------------------------------------------------------------------------------- bad input

X = np.zeros((2, 3, 8, 8), dtype=np.float32)
W = np.zeros((4, 3, 3, 3), dtype=np.float32)
B = np.zeros(4, dtype=np.float32)
C3 = np.zeros(3, dtype=np.float32)


@pytest.mark.parametrize("call, words", [
    (lambda: F.conv2d_forward(X, np.zeros((4, 2, 3, 3), np.float32), B), ["conv2d_forward", "w", "(4, 3, 3, 3)", "(4, 2, 3, 3)"]),
    (lambda: F.conv2d_forward(X, np.zeros((4, 3, 11, 3), np.float32), B, pad=1), ["conv2d_forward", "kernel", "11x3", "10x10"]),
    (lambda: F.conv2d_forward(X, W, B, stride=0), ["conv2d_forward", "stride", ">= 1", "0"]),
    (lambda: F.conv2d_forward(X, W, B, pad=-1), ["conv2d_forward", "pad", ">= 0", "-1"]),
    (lambda: F.conv2d_forward(X, W, B, stride=1.5), ["conv2d_forward", "stride", "int", "1.5"]),
    (lambda: F.conv2d_forward(X, np.zeros((4, 1, 3, 3), np.float32), B, groups=2), ["conv2d_forward", "groups"]),
    (lambda: F.conv2d_forward(X[0], W, B), ["conv2d_forward", "rank 4", "(3, 8, 8)"]),
    (lambda: F.conv2d_forward(X.astype(np.int64), W, B), ["conv2d_forward", "float32 or float64", "int64"]),
    (lambda: F.conv2d_forward(X, W.astype(np.float64), B), ["conv2d_forward", "float32", "float64"]),
    (lambda: F.conv2d_forward(X, W, np.zeros(5, np.float32)), ["conv2d_forward", "b", "(4,)", "(5,)"]),
    (lambda: F.conv2d_forward([[1.0]], W, B), ["conv2d_forward", "x", "list"]),
    (lambda: F.max_pool2d_forward(X, 9, 1), ["max_pool2d_forward", "kernel", "9x9", "8x8"]),
    (lambda: F.max_pool2d_forward(X, 2, 0), ["max_pool2d_forward", "stride", "0"]),
    (lambda: F.max_pool2d_forward(X, 2, 2, pad=2), ["max_pool2d_forward", "pad", "2"]),
    (lambda: F.avg_pool2d_forward(X[0], 2, 2), ["avg_pool2d_forward", "rank 4"]),
    (lambda: F.global_avg_pool_forward(X[0]), ["global_avg_pool_forward", "rank 4"]),
    (lambda: F.relu_forward(np.arange(3)), ["relu_forward", "float32 or float64", "int64"]),
    # check_float_array reads dtype.char: float16, long double and complex stay refused.
    (lambda: F.linear_forward(X.astype(np.float16), W.reshape(4, -1)[:, :192], None), ["linear_forward", "float16"]),
    (lambda: F.max_pool2d_forward(X.astype(np.longdouble), 2, 2), ["max_pool2d_forward", "float32 or float64"]),
    (lambda: F.max_pool2d_forward(X.astype(np.complex64), 2, 2), ["max_pool2d_forward", "complex64"]),
    (lambda: F.linear_forward(X, np.zeros((5, 7), np.float32), None), ["linear_forward", "192", "7"]),
    (lambda: F.lrn_forward(X, size=0), ["lrn_forward", "size", "0"]),
    (lambda: F.batchnorm_forward(X, np.ones(4, np.float32), C3, C3, C3, True), ["batchnorm_forward", "gamma", "(3,)", "(4,)"]),
    (lambda: F.batchnorm_forward(X[:1, :, :1, :1], C3, C3, C3, C3, True), ["batchnorm_forward", "more than 1 value"]),
    (lambda: F.batchnorm_forward(X, C3, C3, C3, C3, True, momentum=0.9 * 2), ["batchnorm_forward", "momentum"]),
    (lambda: F.dropout_forward(X, 1.5, True, 0), ["dropout_forward", "p", "1.5"]),
    (lambda: F.softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 3])), ["softmax_cross_entropy", "[0, 2]", "3"]),
    (lambda: F.softmax_cross_entropy(np.zeros((2, 3)), np.array([0, -1])), ["softmax_cross_entropy", "-1"]),
    (lambda: F.softmax_cross_entropy(np.zeros((2, 3)), np.array([0.0, 1.0])), ["softmax_cross_entropy", "integer"]),
    (lambda: F.softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 1, 2])), ["softmax_cross_entropy", "(2,)", "(3,)"]),
])
def test_bad_input_is_a_clear_value_error(call, words):
    with pytest.raises(ValueError) as info:
        call()
    msg = str(info.value)
    for word in words:
        assert word in msg, f"{word!r} not in {msg!r}"


def test_backward_checks_dout_shape():
    out, cache = F.conv2d_forward(X, W, B)
    with pytest.raises(ValueError, match="conv2d_backward.*dout"):
        F.conv2d_backward(np.zeros((2, 4, 5, 5), np.float32), cache)
    out, cache = F.max_pool2d_forward(X, 2, 2)
    with pytest.raises(ValueError, match="max_pool2d_backward.*dout"):
        F.max_pool2d_backward(np.zeros((2, 3, 3, 3), np.float32), cache)


def test_get_array_module_shortcut_and_full_check():
    """get_array_module answers NumPy at once for plain ndarrays; anything else (a subclass,
    a list) takes the full check, which still answers NumPy for host data."""
    from minicnn.backend import get_array_module
    assert get_array_module(x=X, w=None, op="op") is np
    assert get_array_module(X, None) is np
    assert get_array_module(x=X.view(np.recarray), op="op") is np
    assert get_array_module(x=[1.0, 2.0], op="op") is np


@pytest.mark.parametrize("x_shape,w_shape,stride", [
    ((0, 64, 8, 8), (64, 64, 3, 3), 1),          # Winograd, chunks widened for the weights
    ((0, 256, 14, 14), (512, 256, 3, 3), 2),     # im2col, chunks widened for the weights
    ((0, 3, 8, 8), (4, 3, 3, 3), 1),             # a small layer
])
def test_conv_of_an_empty_batch(x_shape, w_shape, stride):
    """A batch of 0 images gives empty outputs and zero weight gradients on every path."""
    x = np.zeros(x_shape, dtype=np.float32)
    w = np.ones(w_shape, dtype=np.float32)
    out, cache = F.conv2d_forward(x, w, None, stride=stride, pad=1)
    assert out.shape[0] == 0 and out.shape[1] == w_shape[0]
    dx, dw, _ = F.conv2d_backward(np.zeros(out.shape, dtype=np.float32), cache)
    assert dx.shape == x_shape and dw.shape == w_shape and not dw.any()
