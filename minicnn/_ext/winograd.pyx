# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The Winograd F(2x2, 3x3) transforms written out in C: the four tile transforms and the
filter transform with its adjoint.

Same layouts and results as the NumPy functions of ``minicnn.functional.winograd`` (read
that module first: it explains the algorithm), for a chunk of m images::

    x, dx   (m, C, H, W)            out, dout  (m, F, OH, OW)       OH = H + 2*pad - 2
    V, dV   (16, C, m*TH*TW)        M, dM      (16, F, m*TH*TW)     TH = ceil(OH / 2)

The 16 matrices of V, M, dV, dM may lie further apart than their size (a (16, K, T) view of
a buffer with padding between them): each tile reads or writes one value in each of the
16, and 16 streams a multiple of 4 KB apart fall into the same set of the L1 cache, which
holds only 8 ways -- a few hundred bytes of padding made these loops up to 3x faster.  (So those arguments
are typed ``[:, :, :]`` and checked to be C-contiguous within each of the 16 matrices.)

Each function works one (image, channel) plane at a time through a small zero-bordered
copy of the plane (the channels-last input transform: a block of planes, copied first),
so the tile loops need no bounds checks: tiles that reach into the
padding, or past an odd output size, read zeros there (and their extra outputs are
dropped).  They run on the calling thread without the GIL; the conv shares chunks of
images out over the cores itself (``minicnn/functional/conv_winograd.py``).

The tile loops themselves are C (``winograd_tiles.h``), written so that the compiler
vectorises them -- a loop over a row of tiles with nothing carried from one tile to the
next, or over a row of every channel -- in a baseline, an AVX2 and an AVX-512 copy chosen
at run time (``isa()``; ``use_isa()`` forces one); each value is computed by the same
operations in the same order as the scalar loops they replaced, so the results are the
same bit for bit.  Per layer, one thread, ms, scalar loops -> now (Intel Xeon with
AVX-512; float32; N128 for the CIFAR shapes, N32 / N4 for the ImageNet ones):

    layer                 input        input^T      output       output grad  input grad
    16->16 32x32          3.0 -> 1.6   4.0 -> 2.9   2.3 -> 0.8   2.9 -> 1.1   4.3 -> 2.5
    32->32 16x16          1.6 -> 1.0   2.0 -> 1.1   1.2 -> 0.5   1.5 -> 0.7   2.2 -> 1.7
    64->64 8x8            0.9 -> 0.9   1.0 -> 0.6   0.6 -> 0.4   0.8 -> 0.4   1.2 -> 1.2
    256->256 14x14 (N32)  2.5 -> 2.2   3.3 -> 1.7   1.7 -> 1.2   2.2 -> 1.7   3.2 -> 2.9
    512->512 7x7 (N32)    1.7 -> 1.4   2.1 -> 1.2   1.2 -> 0.9   1.5 -> 1.0   2.3 -> 2.3
    128->256 56x56 (N4)   2.8 -> 1.6   8.6 -> 3.1   3.7 -> 2.4   5.0 -> 2.7   3.4 -> 2.0

(input^T: the channels-last input transform of the backward pass.)  On rows of 4-7 tiles
the input-gradient transform keeps the scalar loop (its vector loops were slower there),
and the input transform gains little.  float64 gains less (output 1.0-1.8x, input^T
1.3-2.5x, the others 1.0-1.4x: two doubles per SSE2 vector).
"""
from cython.parallel cimport prange
from libc.stdlib cimport free, malloc
from libc.string cimport memset

ctypedef fused floating:
    float
    double


def _tiles(name, h, w, pad):
    oh, ow = h + 2 * pad - 2, w + 2 * pad - 2
    if oh < 1 or ow < 1:
        raise ValueError(f"{name}: a 3x3 window does not fit a {h}x{w} input with pad={pad}")
    return oh, ow, (oh + 1) // 2, (ow + 1) // 2


def _check_domain(name, arg, shape, strides, expected, itemsize):
    """A Winograd-domain argument: shape ``expected`` = (16, K, T), each of its 16 (K, T)
    matrices C-contiguous (they may lie further apart).  NumPy gives a length-1 axis any
    stride, so only axes longer than 1 are checked."""
    if shape != expected:
        raise ValueError(f"{name}: expected {arg} of shape {expected}, received {shape}")
    k, t = shape[1], shape[2]
    if (t > 1 and strides[1] != itemsize) or (k > 1 and strides[0] != t * itemsize):
        raise ValueError(f"{name}: expected {arg} to be 16 C-contiguous (K, T) matrices, received "
                         f"strides (..., {strides[0]}, {strides[1]})")


# The channels-last input transform's zero-bordered copies of the input planes are kept
# about this size: all channels of CIFAR-sized layers, a block of channels of large images.
# (All 128 planes of a 56x56 VGG layer, 1.7 MB, ran 1.2-1.9x faster than blocks of 16.)
cdef Py_ssize_t PLANES_BYTES = 2 << 20


cdef extern from "winograd_tiles.h" nogil:
    int wt_best_isa()
    Py_ssize_t WT_LONG_ROW
    void wt_input_f(int isa, const float* x, Py_ssize_t m, Py_ssize_t c, Py_ssize_t h, Py_ssize_t w,
                    Py_ssize_t pad, Py_ssize_t th, Py_ssize_t tw, float* v, Py_ssize_t xs, float* scratch)
    void wt_input_d(int isa, const double* x, Py_ssize_t m, Py_ssize_t c, Py_ssize_t h, Py_ssize_t w,
                    Py_ssize_t pad, Py_ssize_t th, Py_ssize_t tw, double* v, Py_ssize_t xs, double* scratch)
    void wt_input_cl_block_f(int isa, const float* x, Py_ssize_t c, Py_ssize_t h, Py_ssize_t w,
                             Py_ssize_t pad, Py_ssize_t th, Py_ssize_t tw, Py_ssize_t n, Py_ssize_t c0,
                             Py_ssize_t cb, Py_ssize_t cl, float* v, Py_ssize_t xs, float* scratch)
    void wt_input_cl_block_d(int isa, const double* x, Py_ssize_t c, Py_ssize_t h, Py_ssize_t w,
                             Py_ssize_t pad, Py_ssize_t th, Py_ssize_t tw, Py_ssize_t n, Py_ssize_t c0,
                             Py_ssize_t cb, Py_ssize_t cl, double* v, Py_ssize_t xs, double* scratch)
    void wt_output_f(int isa, const float* mm, Py_ssize_t xs, const float* bias, Py_ssize_t m,
                     Py_ssize_t f, Py_ssize_t oh, Py_ssize_t ow, float* out, float* scratch)
    void wt_output_d(int isa, const double* mm, Py_ssize_t xs, const double* bias, Py_ssize_t m,
                     Py_ssize_t f, Py_ssize_t oh, Py_ssize_t ow, double* out, double* scratch)
    void wt_output_grad_f(int isa, const float* dout, Py_ssize_t m, Py_ssize_t f, Py_ssize_t oh,
                          Py_ssize_t ow, float* dm, Py_ssize_t xs, float* scratch)
    void wt_output_grad_d(int isa, const double* dout, Py_ssize_t m, Py_ssize_t f, Py_ssize_t oh,
                          Py_ssize_t ow, double* dm, Py_ssize_t xs, double* scratch)
    void wt_input_grad_f(int isa, const float* dv, Py_ssize_t xs, Py_ssize_t m, Py_ssize_t c,
                         Py_ssize_t h, Py_ssize_t w, Py_ssize_t pad, Py_ssize_t th, Py_ssize_t tw,
                         float* dx, float* scratch)
    void wt_input_grad_d(int isa, const double* dv, Py_ssize_t xs, Py_ssize_t m, Py_ssize_t c,
                         Py_ssize_t h, Py_ssize_t w, Py_ssize_t pad, Py_ssize_t th, Py_ssize_t tw,
                         double* dx, double* scratch)


ISA_NAMES = {0: "baseline", 1: "avx2", 2: "avx512"}
cdef int BEST_ISA = wt_best_isa()
cdef int _isa = BEST_ISA         # the widest copy the loops may use
cdef bint _forced = False        # True: every loop uses _isa's copy (use_isa)


def isa():
    """The widest instruction set the tile loops use: 0 baseline (SSE2 on x86-64), 1 AVX2, 2 AVX-512."""
    return _isa


def use_isa(level):
    """Run every tile loop with instruction set ``level`` (see isa()) from now on, or, with
    None, go back to choosing per loop; returns the previous setting (an int or None).
    For the tests, which check every copy this CPU can run."""
    global _isa, _forced
    if level is not None and (isinstance(level, bool) or not isinstance(level, int)
                              or not 0 <= level <= BEST_ISA):
        raise ValueError(f"use_isa: expected None or an instruction set 0..{BEST_ISA} this CPU runs "
                         f"({', '.join(ISA_NAMES[i] for i in range(BEST_ISA + 1))}), received {level!r}")
    previous = _isa if _forced else None
    _forced = level is not None
    _isa = BEST_ISA if level is None else level
    return previous


cdef int _isa_for(int widest) noexcept nogil:
    """The instruction set a loop runs with: the widest this CPU has, up to ``widest`` --
    each transform's cap is the copy that measured fastest (per layer, one thread, below)
    -- unless use_isa() forced one."""
    return _isa if _forced else min(_isa, widest)


cdef floating* _scratch(Py_ssize_t size, floating* like) except NULL:
    cdef floating* p = <floating*> malloc(size * sizeof(floating))
    if p == NULL:
        raise MemoryError("winograd: no memory for a plane buffer")
    return p


# The baseline copy (SSE2) channels first: its stride-2 reads are cheap shuffles within 16
# bytes, AVX2's and AVX-512's cross lanes (32->32 16x16 1.10 / 1.06 / 1.04 ms, but 14x14
# 2.44 / 2.76 / 3.02, 7x7 1.55 / 1.58 / 2.20, 56x56 1.60 / 1.62 / 1.92); AVX2 channels last
# (32->32 16x16 1.41 / 1.32 / 1.71, 56x56 3.18 / 3.05 / 3.29).
cdef inline int _level_input(bint channels_last) noexcept nogil:
    return _isa_for(1 if channels_last else 0)


# AVX-512 on rows of WT_LONG_ROW = 8 tiles or more only: on shorter rows a 16-float vector
# does not fit (64->64 8x8, baseline / AVX2 / AVX-512: 0.51 / 0.41 / 0.67 ms; 14x14 1.38 /
# 1.34 / 1.92; 32->32 16x16 0.67 / 0.53 / 0.47).  The output-gradient transform likewise
# (64->64 8x8: 0.65 / 0.58 / 0.94 ms; 56x56 2.69 / 2.61 / 2.78).
cdef inline int _level_output(Py_ssize_t tw) noexcept nogil:
    return _isa_for(2 if tw >= WT_LONG_ROW else 1)


# The other way round: the scalar tile-at-a-time loop of short rows ran fastest compiled
# for AVX-512 (64->64 8x8, baseline / AVX2 / AVX-512: 1.37 / 1.41 / 1.20 ms), the vector
# loops of longer rows with AVX2 (16x16: 1.73 / 1.75 / 1.74; 56x56: 2.03 / 1.91 / 2.28).
cdef inline int _level_input_grad(Py_ssize_t tw) noexcept nogil:
    return _isa_for(1 if tw >= WT_LONG_ROW else 2)


cdef Py_ssize_t _planes_per_block(Py_ssize_t c, Py_ssize_t th, Py_ssize_t tw, bint channels_last,
                                  size_t itemsize) noexcept nogil:
    """Channels the input transform copies into zero-bordered planes at a time.

    Channels first, one: a plane's tiles are contiguous in V.  Channels last, a block: plane
    at a time, each store went to a line of V^T the cache had evicted since the previous
    channel (4x slower at 32 channels, 16x16 images, 2 per chunk), so the block's planes are
    copied first, channels-last, and transformed a row of tiles at a time over every channel
    of the block, contiguous in V^T.  The block: as many planes as fit PLANES_BYTES (all
    channels of CIFAR-sized layers), but at least a cache line's worth of V^T's values per
    (xi, tile).
    """
    if not channels_last:
        return 1
    cdef Py_ssize_t plane = (2 * th + 2) * (2 * tw + 2) * itemsize
    return min(c, max(64 // itemsize, PLANES_BYTES // plane))


cdef void _input_tiles(const floating* x, Py_ssize_t m, Py_ssize_t c, Py_ssize_t h, Py_ssize_t w,
                       Py_ssize_t pad, Py_ssize_t th, Py_ssize_t tw, bint channels_last,
                       Py_ssize_t cb, floating* v, Py_ssize_t xs, floating* scratch) noexcept nogil:
    """input_transform's loops for m images at x into V (or V^T) at v, its 16 matrices xs apart;
    scratch: (2*th + 3) * (2*tw + 2) * cb values with zero borders."""
    cdef int level = _level_input(channels_last)
    cdef Py_ssize_t n, c0, c1
    if channels_last:
        for n in range(m):
            c0 = 0
            while c0 < c:
                c1 = min(c, c0 + cb)
                if floating is float:
                    wt_input_cl_block_f(level, x, c, h, w, pad, th, tw, n, c0, c1 - c0, cb, v, xs, scratch)
                else:
                    wt_input_cl_block_d(level, x, c, h, w, pad, th, tw, n, c0, c1 - c0, cb, v, xs, scratch)
                c0 = c1
    elif floating is float:
        wt_input_f(level, x, m, c, h, w, pad, th, tw, v, xs, scratch)
    else:
        wt_input_d(level, x, m, c, h, w, pad, th, tw, v, xs, scratch)


def input_transform(const floating[:, :, :, ::1] x, Py_ssize_t pad, floating[:, :, :] v,
                    bint channels_last=False):
    """V = B^T d B for every (channel, tile) of a chunk.

    Inputs: x (m, C, H, W) C-contiguous; pad >= 0; v (16, C, m*TH*TW), x's dtype, overwritten
    -- or, with ``channels_last``, v (16, m*TH*TW, C): V's 16 matrices transposed, as the
    backward pass's dU = dM @ V^T wants them (NumPy's matmul ran those products 2x faster
    from a contiguous V^T than from a transposed view).
    """
    cdef Py_ssize_t m = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    oh, ow, th_, tw_ = _tiles("input_transform", h, w, pad)
    cdef Py_ssize_t th = th_, tw = tw_
    _check_domain("input_transform", "v", (v.shape[0], v.shape[1], v.shape[2]), (v.strides[1], v.strides[2]),
                  (16, m * th * tw, c) if channels_last else (16, c, m * th * tw), sizeof(floating))
    if m * c == 0:
        return
    cdef Py_ssize_t hp = 2 * th + 2, wp = 2 * tw + 2
    cdef Py_ssize_t xs = v.strides[0] // sizeof(floating)
    cdef Py_ssize_t cb = _planes_per_block(c, th, tw, channels_last, sizeof(floating))
    cdef floating* scratch = _scratch((hp + 1) * wp * cb, &v[0, 0, 0])
    with nogil:
        # The borders are zeroed once: every plane or block rewrites the same interior entries.
        memset(scratch, 0, cb * hp * wp * sizeof(floating))
        _input_tiles(&x[0, 0, 0, 0], m, c, h, w, pad, th, tw, channels_last, cb, &v[0, 0, 0], xs, scratch)
    free(scratch)


def output_transform(const floating[:, :, :] mm, object bias, floating[:, :, :, ::1] out):
    """Y = A^T M A for every (filter, tile), plus the bias, into NCHW.

    Inputs: mm (16, F, m*TH*TW); bias (F,) array of the same dtype or None;
    out (m, F, OH, OW) C-contiguous, overwritten.
    """
    cdef Py_ssize_t m = out.shape[0], f = out.shape[1], oh = out.shape[2], ow = out.shape[3]
    cdef Py_ssize_t th = (oh + 1) // 2, tw = (ow + 1) // 2
    _check_domain("output_transform", "mm", (mm.shape[0], mm.shape[1], mm.shape[2]), (mm.strides[1], mm.strides[2]),
                  (16, f, m * th * tw), sizeof(floating))
    cdef const floating* bp = _bias_pointer("output_transform", bias, f, <const floating*> NULL)
    if m * f * oh * ow == 0:
        return
    cdef Py_ssize_t xs = mm.strides[0] // sizeof(floating)
    cdef int level = _level_output(tw)
    # Odd OH or OW: the tiles go to a plane buffer with the extra row/column, then copied.
    cdef floating* ybuf = _scratch(4 * th * tw, &out[0, 0, 0, 0])
    with nogil:
        if floating is float:
            wt_output_f(level, &mm[0, 0, 0], xs, bp, m, f, oh, ow, &out[0, 0, 0, 0], ybuf)
        else:
            wt_output_d(level, &mm[0, 0, 0], xs, bp, m, f, oh, ow, &out[0, 0, 0, 0], ybuf)
    free(ybuf)


def output_grad_transform(const floating[:, :, :, ::1] dout, floating[:, :, :] dm):
    """dM = A dY A^T for every (filter, tile): the adjoint of output_transform.

    Inputs: dout (m, F, OH, OW) C-contiguous; dm (16, F, m*TH*TW), overwritten.
    """
    cdef Py_ssize_t m = dout.shape[0], f = dout.shape[1], oh = dout.shape[2], ow = dout.shape[3]
    cdef Py_ssize_t th = (oh + 1) // 2, tw = (ow + 1) // 2
    _check_domain("output_grad_transform", "dm", (dm.shape[0], dm.shape[1], dm.shape[2]), (dm.strides[1], dm.strides[2]),
                  (16, f, m * th * tw), sizeof(floating))
    if m * f * oh * ow == 0:
        return
    cdef Py_ssize_t xs = dm.strides[0] // sizeof(floating)
    cdef int level = _level_output(tw)
    # Odd OH or OW: the tiles read a copy of the plane with a zero row/column added.
    cdef floating* ybuf = _scratch(4 * th * tw, &dm[0, 0, 0])
    with nogil:
        if floating is float:
            wt_output_grad_f(level, &dout[0, 0, 0, 0], m, f, oh, ow, &dm[0, 0, 0], xs, ybuf)
        else:
            wt_output_grad_d(level, &dout[0, 0, 0, 0], m, f, oh, ow, &dm[0, 0, 0], xs, ybuf)
    free(ybuf)


def input_grad_transform(const floating[:, :, :] dv, Py_ssize_t pad, floating[:, :, :, ::1] dx):
    """dx from dV: dd = B dV B^T per tile, added onto its 4x4 window (the adjoint of input_transform).

    Inputs: dv (16, C, m*TH*TW); pad >= 0; dx (m, C, H, W) C-contiguous, overwritten.
    """
    cdef Py_ssize_t m = dx.shape[0], c = dx.shape[1], h = dx.shape[2], w = dx.shape[3]
    oh, ow, th_, tw_ = _tiles("input_grad_transform", h, w, pad)
    cdef Py_ssize_t th = th_, tw = tw_
    _check_domain("input_grad_transform", "dv", (dv.shape[0], dv.shape[1], dv.shape[2]), (dv.strides[1], dv.strides[2]),
                  (16, c, m * th * tw), sizeof(floating))
    if m * c == 0:
        return
    cdef Py_ssize_t xs = dv.strides[0] // sizeof(floating)
    cdef int level = _level_input_grad(tw)
    # A zero-bordered plane the tiles add onto, and a row of tiles' B dV B^T.
    cdef floating* scratch = _scratch((2 * th + 2) * (2 * tw + 2) + 16 * (tw + 2), &dx[0, 0, 0, 0])
    with nogil:
        if floating is float:
            wt_input_grad_f(level, &dv[0, 0, 0], xs, m, c, h, w, pad, th, tw, &dx[0, 0, 0, 0], scratch)
        else:
            wt_input_grad_d(level, &dv[0, 0, 0], xs, m, c, h, w, pad, th, tw, &dx[0, 0, 0, 0], scratch)
    free(scratch)


# filter_transform takes (filter, channel) pairs a block at a time, the blocks shared out
# over OpenMP threads, and writes the 16 outputs four at a time.  ResNet-18's 512x512 layer
# (16 MB of U, made at every forward and backward of the layer) took 10.8 ms when G g went
# through a 12 MB malloc'ed array for all pairs first (fresh pages, one more pass through
# memory) on one thread.
cdef Py_ssize_t FILTER_BLOCK = 1024
# Below this many (filter, channel) pairs a filter transform runs on the calling thread.
cdef Py_ssize_t FILTER_PARALLEL_MIN = 1 << 14
FILTER_PARALLEL_THRESHOLD = FILTER_PARALLEL_MIN   # visible from Python, for the tests


cdef void _filter_transform_block(const floating* w, floating* dst, Py_ssize_t fc,
                                  Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """U[:, pairs lo:hi] of the flattened (F*C) pairs, one row of G g at a time: 4 store
    streams F*C apart per pass (16 at once would thrash the L1 cache, see the module docstring)."""
    cdef Py_ssize_t i, a
    cdef const floating* g
    cdef floating r0, r1, r2
    cdef floating h = 0.5
    for a in range(4):
        for i in range(lo, hi):
            g = w + 9 * i
            # Row a of G g; G's rows: g0, (g0 + g1 + g2)/2, (g0 - g1 + g2)/2, g2 ...
            if a == 0:
                r0, r1, r2 = g[0], g[1], g[2]
            elif a == 1:
                r0 = (g[0] + g[3] + g[6]) * h
                r1 = (g[1] + g[4] + g[7]) * h
                r2 = (g[2] + g[5] + g[8]) * h
            elif a == 2:
                r0 = (g[0] - g[3] + g[6]) * h
                r1 = (g[1] - g[4] + g[7]) * h
                r2 = (g[2] - g[5] + g[8]) * h
            else:
                r0, r1, r2 = g[6], g[7], g[8]
            # ... and the same combination on its columns, (G g) G^T.
            dst[(4 * a) * fc + i] = r0
            dst[(4 * a + 1) * fc + i] = (r0 + r1 + r2) * h
            dst[(4 * a + 2) * fc + i] = (r0 - r1 + r2) * h
            dst[(4 * a + 3) * fc + i] = r2


def filter_transform(const floating[:, :, :, ::1] w, floating[:, :, ::1] u):
    """U = G g G^T for every (filter, channel): w (F, C, 3, 3) -> u (16, F, C), overwritten.

    (The NumPy version, an einsum, or even a dozen whole-array operations took 0.2-0.7 ms
    for a 64x64 layer -- 5-15% of that layer's Winograd forward.)
    """
    cdef Py_ssize_t f = w.shape[0], c = w.shape[1], fc = f * c, blk, nblocks
    if (w.shape[2], w.shape[3]) != (3, 3) or (u.shape[0], u.shape[1], u.shape[2]) != (16, f, c):
        raise ValueError(f"filter_transform: expected w (F, C, 3, 3) and u (16, F, C), received "
                         f"{(w.shape[0], w.shape[1], w.shape[2], w.shape[3])} and "
                         f"{(u.shape[0], u.shape[1], u.shape[2])}")
    if fc == 0:
        return
    cdef const floating* src = &w[0, 0, 0, 0]
    cdef floating* dst = &u[0, 0, 0]
    nblocks = (fc + FILTER_BLOCK - 1) // FILTER_BLOCK
    for blk in prange(nblocks, nogil=True, schedule="static", use_threads_if=fc >= FILTER_PARALLEL_MIN):
        _filter_transform_block(src, dst, fc, blk * FILTER_BLOCK, min(fc, (blk + 1) * FILTER_BLOCK))


cdef void _filter_grad_block(const floating* src, floating* dw, Py_ssize_t fc, Py_ssize_t lo,
                             Py_ssize_t hi) noexcept nogil:
    """dw of the flattened (F*C) pairs lo:hi from dU."""
    cdef Py_ssize_t i, e, p
    cdef floating* g
    cdef floating t[12]            # G^T dU: 3 rows of 4
    cdef floating h = 0.5
    for i in range(lo, hi):
        for e in range(4):     # G^T's rows: (1, 1/2, 1/2, 0), (0, 1/2, -1/2, 0), (0, 1/2, 1/2, 1)
            t[e] = src[e * fc + i] + (src[(4 + e) * fc + i] + src[(8 + e) * fc + i]) * h
            t[4 + e] = (src[(4 + e) * fc + i] - src[(8 + e) * fc + i]) * h
            t[8 + e] = (src[(4 + e) * fc + i] + src[(8 + e) * fc + i]) * h + src[(12 + e) * fc + i]
        g = dw + 9 * i
        for p in range(3):     # ... and (G^T dU) G on the columns
            g[3 * p] = t[4 * p] + (t[4 * p + 1] + t[4 * p + 2]) * h
            g[3 * p + 1] = (t[4 * p + 1] - t[4 * p + 2]) * h
            g[3 * p + 2] = (t[4 * p + 1] + t[4 * p + 2]) * h + t[4 * p + 3]


def filter_grad_transform(const floating[:, :, ::1] du, floating[:, :, :, ::1] dw):
    """dw = G^T dU G, the adjoint of filter_transform: du (16, F, C) -> dw (F, C, 3, 3), overwritten.

    Blocks of (filter, channel) pairs over OpenMP threads, as filter_transform.
    """
    cdef Py_ssize_t f = dw.shape[0], c = dw.shape[1], fc = f * c, blk, nblocks
    if (dw.shape[2], dw.shape[3]) != (3, 3) or (du.shape[0], du.shape[1], du.shape[2]) != (16, f, c):
        raise ValueError(f"filter_grad_transform: expected du (16, F, C) and dw (F, C, 3, 3), received "
                         f"{(du.shape[0], du.shape[1], du.shape[2])} and "
                         f"{(dw.shape[0], dw.shape[1], dw.shape[2], dw.shape[3])}")
    if fc == 0:
        return
    cdef const floating* src = &du[0, 0, 0]
    cdef floating* dst = &dw[0, 0, 0, 0]
    nblocks = (fc + FILTER_BLOCK - 1) // FILTER_BLOCK
    for blk in prange(nblocks, nogil=True, schedule="static", use_threads_if=fc >= FILTER_PARALLEL_MIN):
        _filter_grad_block(src, dst, fc, blk * FILTER_BLOCK, min(fc, (blk + 1) * FILTER_BLOCK))


# ------------------------------------------------------------------ the chunk loops in C
#
# conv_winograd.py runs a layer as a loop over chunks of images -- per chunk a transform,
# 16 small GEMMs, another transform -- on one Python thread per core.  The calls are short
# (tens of microseconds), and every one of them gives up the GIL and takes it back: on the
# 2-core Xeon the second thread gained almost nothing on them (see blas_gemm.h).  These
# functions are that loop, whole, without the GIL: each thread makes one call, and the
# GEMMs go to NumPy's BLAS through blas_gemm.h.  Same buffers, same order of operations
# per chunk as the Python loops they replace, which stay as the fallback and the reference
# the tests compare with.

include "chunk_loops.pxi"


cdef Py_ssize_t _matrices_apart(name, arg, buf, Py_ssize_t rows, Py_ssize_t columns, size_t itemsize) except -1:
    """The distance, in values, between the 16 matrices of a domain buffer ``buf`` (a
    (16, rows, >= columns) view, as conv_winograd's _domain_buffer makes them), checked to
    leave room for 16 (rows, columns) matrices."""
    shape, strides = buf.shape, buf.strides
    if (len(shape) != 3 or shape[0] != 16 or shape[1] != rows or shape[2] < columns
            or (shape[2] > 1 and strides[2] != itemsize) or (rows > 1 and strides[1] != shape[2] * itemsize)
            or strides[0] % itemsize or strides[0] // itemsize < rows * shape[2]):
        raise ValueError(f"{name}: expected {arg} to be a (16, {rows}, >= {columns}) buffer of 16 "
                         f"C-contiguous matrices, received shape {tuple(shape)}, strides {tuple(strides)}")
    return strides[0] // itemsize


def forward_chunks(const floating[:, :, :, ::1] x, const floating[:, :, ::1] u, object bias, Py_ssize_t pad,
                   floating[:, :, :, ::1] out, floating[:, :, :] v, floating[:, :, :] mm,
                   Py_ssize_t step, long long[::1] next_image):
    """conv_winograd.forward's chunk loop: chunks of ``step`` images, taken from
    ``next_image[0]`` (shared with the other threads, advanced atomically) until the batch
    is done; per chunk V = the input tiles transformed, M[xi] = U[xi] @ V[xi], out = the
    output transform of M plus the bias.

    x (N, C, H, W); u (16, F, C); bias (F,) or None; out (N, F, OH, OW);
    v, mm: this thread's (16, C, >= step*TH*TW) and (16, F, >= step*TH*TW) buffers.
    """
    if not mc_gemm_ready():
        raise RuntimeError("forward_chunks: no BLAS yet (gemm_use)")
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    cdef Py_ssize_t f = u.shape[1], oh = out.shape[2], ow = out.shape[3]
    _, _, th_, tw_ = _tiles("forward_chunks", h, w, pad)
    cdef Py_ssize_t th = th_, tw = tw_, T = th * tw
    if (u.shape[0], u.shape[2]) != (16, c) or (out.shape[0], out.shape[1]) != (n, f) or (oh, ow) != (h + 2 * pad - 2, w + 2 * pad - 2):
        raise ValueError(f"forward_chunks: expected u (16, F, {c}) and out ({n}, F, {h + 2 * pad - 2}, {w + 2 * pad - 2}), "
                         f"received {(u.shape[0], u.shape[1], u.shape[2])} and {(out.shape[0], out.shape[1], oh, ow)}")
    if step < 1:
        raise ValueError(f"forward_chunks: expected step >= 1, received {step}")
    cdef Py_ssize_t xs_v = _matrices_apart("forward_chunks", "v", v, c, step * T, sizeof(floating))
    cdef Py_ssize_t xs_m = _matrices_apart("forward_chunks", "mm", mm, f, step * T, sizeof(floating))
    cdef const floating* bp = _bias_pointer("forward_chunks", bias, f, <const floating*> NULL)
    if n * c * f == 0:
        return
    cdef Py_ssize_t hp = 2 * th + 2, wp = 2 * tw + 2, n0, mi, t, xi
    cdef floating* planes = _scratch((hp + 1) * wp, &out[0, 0, 0, 0])
    cdef floating* ybuf = _scratch(4 * T, &out[0, 0, 0, 0])
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef const floating* up = &u[0, 0, 0]
    cdef floating* vp = &v[0, 0, 0]
    cdef floating* mp = &mm[0, 0, 0]
    cdef floating* op = &out[0, 0, 0, 0]
    cdef int level_out = _level_output(tw)
    with nogil:
        memset(planes, 0, hp * wp * sizeof(floating))
        while True:
            n0 = mc_next_chunk(&next_image[0], step)
            if n0 >= n:
                break
            mi = min(step, n - n0)
            t = mi * T
            _input_tiles(xp + n0 * c * h * w, mi, c, h, w, pad, th, tw, False, 1, vp, xs_v, planes)
            for xi in range(16):
                _gemm(False, False, f, t, c, up + xi * f * c, c, vp + xi * xs_v, t, 0, mp + xi * xs_m, t)
            if floating is float:
                wt_output_f(level_out, mp, xs_m, bp, mi, f, oh, ow, op + n0 * f * oh * ow, ybuf)
            else:
                wt_output_d(level_out, mp, xs_m, bp, mi, f, oh, ow, op + n0 * f * oh * ow, ybuf)
    free(planes)
    free(ybuf)


def backward_chunks(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] dout, Py_ssize_t pad,
                    const floating[:, :, ::1] u, floating[:, :, :, ::1] dx, floating[:, :, ::1] du,
                    floating[:, :, :] dm, floating[:, :, :] vt, floating[:, :, :] dv,
                    Py_ssize_t step, Py_ssize_t first, Py_ssize_t every):
    """conv_winograd.backward's chunk loop for one thread: chunks number first, first + every,
    first + 2*every, ... of ``step`` images each (a fixed share, so that dU's sum does not
    depend on the timing); per chunk dM = the output gradient transformed, then
    dU += dM @ V^T (V^T recomputed from x), then dV = U^T @ dM and its input-gradient
    transform into dx.

    x (N, C, H, W); dout (N, F, OH, OW); u (16, F, C), or None when dx is not wanted;
    dx (N, C, H, W) or None; du (16, F, C), added to, or None when dw is not wanted;
    dm, vt, dv: this thread's (16, F, >= step*T), (16, C, >= step*T) (used as (16, t, C))
    and (16, C, >= step*T) buffers (vt unused without du, dv without dx: may be None).
    """
    if not mc_gemm_ready():
        raise RuntimeError("backward_chunks: no BLAS yet (gemm_use)")
    cdef bint need_dx = dx is not None, need_dw = du is not None
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    cdef Py_ssize_t f = dout.shape[1], oh = dout.shape[2], ow = dout.shape[3]
    _, _, th_, tw_ = _tiles("backward_chunks", h, w, pad)
    cdef Py_ssize_t th = th_, tw = tw_, T = th * tw
    if dout.shape[0] != n or (oh, ow) != (h + 2 * pad - 2, w + 2 * pad - 2):
        raise ValueError(f"backward_chunks: expected dout ({n}, F, {h + 2 * pad - 2}, {w + 2 * pad - 2}), "
                         f"received {(dout.shape[0], f, oh, ow)}")
    if need_dx and (u is None or (u.shape[0], u.shape[1], u.shape[2]) != (16, f, c)
                    or (dx.shape[0], dx.shape[1], dx.shape[2], dx.shape[3]) != (n, c, h, w)):
        raise ValueError(f"backward_chunks: expected u (16, {f}, {c}) and dx {(n, c, h, w)}")
    if need_dw and (du.shape[0], du.shape[1], du.shape[2]) != (16, f, c):
        raise ValueError(f"backward_chunks: expected du (16, {f}, {c}), received {(du.shape[0], du.shape[1], du.shape[2])}")
    if step < 1 or every < 1 or first < 0:
        raise ValueError(f"backward_chunks: expected step, every >= 1 and first >= 0, received {step}, {every}, {first}")
    cdef Py_ssize_t xs_m = _matrices_apart("backward_chunks", "dm", dm, f, step * T, sizeof(floating))
    cdef Py_ssize_t xs_vt = _matrices_apart("backward_chunks", "vt", vt, c, step * T, sizeof(floating)) if need_dw else 0
    cdef Py_ssize_t xs_dv = _matrices_apart("backward_chunks", "dv", dv, c, step * T, sizeof(floating)) if need_dx else 0
    if n * c * f == 0 or not (need_dx or need_dw):
        return
    cdef Py_ssize_t hp = 2 * th + 2, wp = 2 * tw + 2, n0, mi, t, xi
    cdef Py_ssize_t cb = _planes_per_block(c, th, tw, True, sizeof(floating))
    cdef floating* planes = _scratch((hp + 1) * wp * cb if need_dw else 1, &dm[0, 0, 0])
    cdef floating* gbuf = _scratch(hp * wp + 16 * (tw + 2), &dm[0, 0, 0])
    cdef floating* ybuf = _scratch(4 * T, &dm[0, 0, 0])
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef const floating* gp = &dout[0, 0, 0, 0]
    cdef const floating* up = &u[0, 0, 0] if need_dx else NULL
    cdef floating* dxp = &dx[0, 0, 0, 0] if need_dx else NULL
    cdef floating* dup = &du[0, 0, 0] if need_dw else NULL
    cdef floating* mp = &dm[0, 0, 0]
    cdef floating* vtp = &vt[0, 0, 0] if need_dw else NULL
    cdef floating* dvp = &dv[0, 0, 0] if need_dx else NULL
    cdef int level_og = _level_output(tw), level_ig = _level_input_grad(tw)
    with nogil:
        if need_dw:
            memset(planes, 0, cb * hp * wp * sizeof(floating))
        n0 = first * step
        while n0 < n:
            mi = min(step, n - n0)
            t = mi * T
            if floating is float:
                wt_output_grad_f(level_og, gp + n0 * f * oh * ow, mi, f, oh, ow, mp, xs_m, ybuf)
            else:
                wt_output_grad_d(level_og, gp + n0 * f * oh * ow, mi, f, oh, ow, mp, xs_m, ybuf)
            if need_dw:
                _input_tiles(xp + n0 * c * h * w, mi, c, h, w, pad, th, tw, True, cb, vtp, xs_vt, planes)
                for xi in range(16):           # dU[xi] += dM[xi] @ V^T[xi]
                    _gemm(False, False, f, c, t, mp + xi * xs_m, t, vtp + xi * xs_vt, c, 1, dup + xi * f * c, c)
            if need_dx:
                for xi in range(16):           # dV[xi] = U[xi]^T @ dM[xi]
                    _gemm(True, False, c, t, f, up + xi * f * c, c, mp + xi * xs_m, t, 0, dvp + xi * xs_dv, t)
                if floating is float:
                    wt_input_grad_f(level_ig, dvp, xs_dv, mi, c, h, w, pad, th, tw, dxp + n0 * c * h * w, gbuf)
                else:
                    wt_input_grad_d(level_ig, dvp, xs_dv, mi, c, h, w, pad, th, tw, dxp + n0 * c * h * w, gbuf)
            n0 += every * step
    free(planes)
    free(ybuf)
    free(gbuf)
