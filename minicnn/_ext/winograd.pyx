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


cdef int _isa_for(int widest):
    """The instruction set a loop runs with: the widest this CPU has, up to ``widest`` --
    each transform's cap is the copy that measured fastest (per layer, one thread, below)
    -- unless use_isa() forced one."""
    return _isa if _forced else min(_isa, widest)


cdef floating* _scratch(Py_ssize_t size, floating* like) except NULL:
    cdef floating* p = <floating*> malloc(size * sizeof(floating))
    if p == NULL:
        raise MemoryError("winograd: no memory for a plane buffer")
    return p


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
    cdef Py_ssize_t n, c0, c1
    # The baseline copy (SSE2) channels first: its stride-2 reads are cheap shuffles within
    # 16 bytes, AVX2's and AVX-512's cross lanes (32->32 16x16 1.10 / 1.06 / 1.04 ms, but
    # 14x14 2.44 / 2.76 / 3.02, 7x7 1.55 / 1.58 / 2.20, 56x56 1.60 / 1.62 / 1.92); AVX2
    # channels last (32->32 16x16 1.41 / 1.32 / 1.71, 56x56 3.18 / 3.05 / 3.29).
    cdef int level = _isa_for(1 if channels_last else 0)
    # Channels copied into zero-bordered planes at a time.  Channels first, one: a plane's
    # tiles are contiguous in V.  Channels last, a block: plane at a time, each store went to
    # a line of V^T the cache had evicted since the previous channel (4x slower at 32
    # channels, 16x16 images, 2 per chunk), so the block's planes are copied first,
    # channels-last, and transformed a row of tiles at a time over every channel of the
    # block, contiguous in V^T.  The block: as many planes as fit PLANES_BYTES (all channels
    # of CIFAR-sized layers), but at least a cache line's worth of V^T's values per (xi, tile).
    cdef Py_ssize_t cb = 1
    if channels_last:
        cb = min(c, max(64 // sizeof(floating), PLANES_BYTES // (hp * wp * sizeof(floating))))
    cdef floating* scratch = _scratch((hp + 1) * wp * cb, &v[0, 0, 0])
    cdef const floating* src = &x[0, 0, 0, 0]
    cdef floating* dst = &v[0, 0, 0]
    with nogil:
        # The borders are zeroed once: every plane or block rewrites the same interior entries.
        memset(scratch, 0, cb * hp * wp * sizeof(floating))
        if channels_last:
            for n in range(m):
                c0 = 0
                while c0 < c:
                    c1 = min(c, c0 + cb)
                    if floating is float:
                        wt_input_cl_block_f(level, src, c, h, w, pad, th, tw, n, c0, c1 - c0, cb, dst, xs, scratch)
                    else:
                        wt_input_cl_block_d(level, src, c, h, w, pad, th, tw, n, c0, c1 - c0, cb, dst, xs, scratch)
                    c0 = c1
        elif floating is float:
            wt_input_f(level, src, m, c, h, w, pad, th, tw, dst, xs, scratch)
        else:
            wt_input_d(level, src, m, c, h, w, pad, th, tw, dst, xs, scratch)
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
    cdef const floating[::1] b
    cdef const floating* bp = NULL
    if bias is not None:
        b = bias
        if b.shape[0] != f:
            raise ValueError(f"output_transform: expected bias of shape ({f},), received ({b.shape[0]},)")
        if f > 0:
            bp = &b[0]
    if m * f * oh * ow == 0:
        return
    cdef Py_ssize_t xs = mm.strides[0] // sizeof(floating)
    # AVX-512 on rows of WT_LONG_ROW = 8 tiles or more only: on shorter rows a 16-float
    # vector does not fit (64->64 8x8, baseline / AVX2 / AVX-512: 0.51 / 0.41 / 0.67 ms;
    # 14x14 1.38 / 1.34 / 1.92; 32->32 16x16 0.67 / 0.53 / 0.47).
    cdef int level = _isa_for(2 if tw >= WT_LONG_ROW else 1)
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
    # As output_transform (64->64 8x8: 0.65 / 0.58 / 0.94 ms; 56x56 2.69 / 2.61 / 2.78).
    cdef int level = _isa_for(2 if tw >= WT_LONG_ROW else 1)
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
    # The other way round: the scalar tile-at-a-time loop of short rows ran fastest compiled
    # for AVX-512 (64->64 8x8, baseline / AVX2 / AVX-512: 1.37 / 1.41 / 1.20 ms), the vector
    # loops of longer rows with AVX2 (16x16: 1.73 / 1.75 / 1.74; 56x56: 2.03 / 1.91 / 2.28).
    cdef int level = _isa_for(1 if tw >= WT_LONG_ROW else 2)
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
