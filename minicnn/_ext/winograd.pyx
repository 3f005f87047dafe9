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
"""
from cython.parallel cimport prange
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

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


cdef floating* _scratch(Py_ssize_t size, floating* like) except NULL:
    cdef floating* p = <floating*> malloc(size * sizeof(floating))
    if p == NULL:
        raise MemoryError("winograd: no memory for a plane buffer")
    return p


cdef inline void _input_tile_row(const floating* r0, Py_ssize_t wp, floating* out,
                                 Py_ssize_t tw, Py_ssize_t xs, Py_ssize_t ts) noexcept nogil:
    """B^T d B for one row of tiles: r0 is the first of its 4 (zero-bordered) input rows,
    wp apart; tile s's 16 values go to out[xi * xs + s * ts], xi = 0..15."""
    cdef const floating* r1 = r0 + wp
    cdef const floating* r2 = r1 + wp
    cdef const floating* r3 = r2 + wp
    cdef Py_ssize_t s, q
    cdef floating x00, x01, x02, x03, x10, x11, x12, x13, x20, x21, x22, x23, x30, x31, x32, x33
    # B^T d, one column of the tile at a time (x_k_j: row k of B^T d, column j);
    # a tile's columns 2 and 3 are the next tile's 0 and 1, so they carry over.
    x00 = r0[0] - r2[0]; x10 = r1[0] + r2[0]; x20 = r2[0] - r1[0]; x30 = r1[0] - r3[0]
    x01 = r0[1] - r2[1]; x11 = r1[1] + r2[1]; x21 = r2[1] - r1[1]; x31 = r1[1] - r3[1]
    for s in range(tw):
        q = 2 * s + 2
        x02 = r0[q] - r2[q]; x12 = r1[q] + r2[q]; x22 = r2[q] - r1[q]; x32 = r1[q] - r3[q]
        q = q + 1
        x03 = r0[q] - r2[q]; x13 = r1[q] + r2[q]; x23 = r2[q] - r1[q]; x33 = r1[q] - r3[q]
        # (B^T d) B: the same combination on the columns of every row.
        out[0 * xs + s * ts] = x00 - x02
        out[1 * xs + s * ts] = x01 + x02
        out[2 * xs + s * ts] = x02 - x01
        out[3 * xs + s * ts] = x01 - x03
        out[4 * xs + s * ts] = x10 - x12
        out[5 * xs + s * ts] = x11 + x12
        out[6 * xs + s * ts] = x12 - x11
        out[7 * xs + s * ts] = x11 - x13
        out[8 * xs + s * ts] = x20 - x22
        out[9 * xs + s * ts] = x21 + x22
        out[10 * xs + s * ts] = x22 - x21
        out[11 * xs + s * ts] = x21 - x23
        out[12 * xs + s * ts] = x30 - x32
        out[13 * xs + s * ts] = x31 + x32
        out[14 * xs + s * ts] = x32 - x31
        out[15 * xs + s * ts] = x31 - x33
        x00, x10, x20, x30 = x02, x12, x22, x32
        x01, x11, x21, x31 = x03, x13, x23, x33


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
    cdef Py_ssize_t n, ci, t, i, c0, c1
    # Where V[xi, channel, tile] lies: xi * xs + channel * cs + tile * ts.
    cdef Py_ssize_t cs = 1 if channels_last else m * th * tw, ts = c if channels_last else 1
    # Channels copied into zero-bordered planes at a time.  Channels first, one: a plane's
    # tiles are contiguous in V.  Channels last, a block: plane at a time, each store went to
    # a line of V^T the cache had evicted since the previous channel (4x slower at 32
    # channels, 16x16 images, 2 per chunk), so the block's planes are copied first and then
    # transformed a row of tiles at a time, every channel of the block, filling each line
    # while it is in cache.  The block: as many planes as fit PLANES_BYTES (all channels of
    # CIFAR-sized layers), but at least a cache line's worth of V^T's values per (xi, tile).
    cdef Py_ssize_t cb = 1
    if channels_last:
        cb = min(c, max(64 // sizeof(floating), PLANES_BYTES // (hp * wp * sizeof(floating))))
    cdef floating* planes = _scratch(cb * hp * wp, &v[0, 0, 0])
    cdef const floating* src = &x[0, 0, 0, 0]
    cdef floating* dst = &v[0, 0, 0]
    with nogil:
        # The borders are zeroed once: every block rewrites the same interior entries.
        memset(planes, 0, cb * hp * wp * sizeof(floating))
        for n in range(m):
            c0 = 0
            while c0 < c:
                c1 = min(c, c0 + cb)
                for ci in range(c0, c1):
                    for i in range(h):
                        memcpy(planes + ((ci - c0) * hp + i + pad) * wp + pad,
                               src + ((n * c + ci) * h + i) * w, w * sizeof(floating))
                for t in range(th):
                    for ci in range(c0, c1):
                        _input_tile_row(planes + ((ci - c0) * hp + 2 * t) * wp, wp,
                                        dst + ci * cs + (n * th * tw + t * tw) * ts, tw, xs, ts)
                c0 = c1
    free(planes)


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
    cdef bint has_bias = bias is not None
    if has_bias:
        b = bias
        if b.shape[0] != f:
            raise ValueError(f"output_transform: expected bias of shape ({f},), received ({b.shape[0]},)")
    if m * f * oh * ow == 0:
        return
    cdef Py_ssize_t xs = mm.strides[0] // sizeof(floating), ow2 = 2 * tw
    cdef Py_ssize_t n, fi, t, s, i
    cdef floating p0, p1, p2, p3, q0, q1, q2, q3, bv
    # Even OH and OW: the tiles cover the output exactly and are written into it directly;
    # otherwise into a plane buffer with the extra row/column, then copied.
    cdef bint even = oh == 2 * th and ow == ow2
    cdef floating* ybuf = _scratch(2 * th * ow2, &out[0, 0, 0, 0])
    cdef const floating* src
    cdef floating* plane
    cdef floating* y
    cdef floating* dst = &out[0, 0, 0, 0]
    with nogil:
        for n in range(m):
            for fi in range(f):
                bv = b[fi] if has_bias else 0
                plane = dst + (n * f + fi) * oh * ow if even else ybuf
                for t in range(th):
                    src = &mm[0, fi, n * th * tw + t * tw]
                    y = plane + 2 * t * ow2
                    for s in range(tw):
                        # A^T M: rows p = m0 + m1 + m2 and q = m1 - m2 - m3 (each 4 wide) ...
                        p0 = src[0 * xs + s] + src[4 * xs + s] + src[8 * xs + s]
                        p1 = src[1 * xs + s] + src[5 * xs + s] + src[9 * xs + s]
                        p2 = src[2 * xs + s] + src[6 * xs + s] + src[10 * xs + s]
                        p3 = src[3 * xs + s] + src[7 * xs + s] + src[11 * xs + s]
                        q0 = src[4 * xs + s] - src[8 * xs + s] - src[12 * xs + s]
                        q1 = src[5 * xs + s] - src[9 * xs + s] - src[13 * xs + s]
                        q2 = src[6 * xs + s] - src[10 * xs + s] - src[14 * xs + s]
                        q3 = src[7 * xs + s] - src[11 * xs + s] - src[15 * xs + s]
                        # ... then (A^T M) A on the columns the same way.
                        y[2 * s] = p0 + p1 + p2 + bv
                        y[2 * s + 1] = p1 - p2 - p3 + bv
                        y[ow2 + 2 * s] = q0 + q1 + q2 + bv
                        y[ow2 + 2 * s + 1] = q1 - q2 - q3 + bv
                if not even:
                    for i in range(oh):        # the valid OH x OW part into out
                        memcpy(dst + ((n * f + fi) * oh + i) * ow, ybuf + i * ow2, ow * sizeof(floating))
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
    cdef Py_ssize_t xs = dm.strides[0] // sizeof(floating), ow2 = 2 * tw
    cdef Py_ssize_t n, fi, t, s, i
    cdef floating u0, u1, v0, v1, r0, r1, r2, r3, w0, w1, w2, w3
    # Even OH and OW: the tiles read dout directly; otherwise a copy of the plane with a
    # zero row/column added (outputs past OH, OW have gradient 0).
    cdef bint even = oh == 2 * th and ow == ow2
    cdef floating* ybuf = _scratch(2 * th * ow2, &dm[0, 0, 0])
    cdef const floating* src = &dout[0, 0, 0, 0]
    cdef const floating* plane
    cdef const floating* y
    cdef floating* o
    with nogil:
        memset(ybuf, 0, 2 * th * ow2 * sizeof(floating))
        for n in range(m):
            for fi in range(f):
                if even:
                    plane = src + (n * f + fi) * oh * ow
                else:
                    for i in range(oh):
                        memcpy(ybuf + i * ow2, src + ((n * f + fi) * oh + i) * ow, ow * sizeof(floating))
                    plane = ybuf
                for t in range(th):
                    y = plane + 2 * t * ow2
                    o = &dm[0, fi, n * th * tw + t * tw]
                    for s in range(tw):
                        u0, u1 = y[2 * s], y[2 * s + 1]                  # dY row 0
                        v0, v1 = y[ow2 + 2 * s], y[ow2 + 2 * s + 1]      # dY row 1
                        # A dY: rows (u, u + v, u - v, -v), then the same on the columns.
                        r0, r1, r2, r3 = u0, u0 + u1, u0 - u1, -u1
                        w0, w1, w2, w3 = v0, v0 + v1, v0 - v1, -v1
                        o[0 * xs + s] = r0
                        o[1 * xs + s] = r1
                        o[2 * xs + s] = r2
                        o[3 * xs + s] = r3
                        o[4 * xs + s] = r0 + w0
                        o[5 * xs + s] = r1 + w1
                        o[6 * xs + s] = r2 + w2
                        o[7 * xs + s] = r3 + w3
                        o[8 * xs + s] = r0 - w0
                        o[9 * xs + s] = r1 - w1
                        o[10 * xs + s] = r2 - w2
                        o[11 * xs + s] = r3 - w3
                        o[12 * xs + s] = -w0
                        o[13 * xs + s] = -w1
                        o[14 * xs + s] = -w2
                        o[15 * xs + s] = -w3
                # The rows/columns past OH, OW stay zero: every plane rewrites the same entries.
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
    cdef Py_ssize_t hp = 2 * th + 2, wp = 2 * tw + 2, xs = dv.strides[0] // sizeof(floating)
    cdef Py_ssize_t n, ci, t, s, i, k, q
    cdef floating a0, a1, a2, a3, c02, c03, c12, c13, c22, c23, c32, c33
    cdef floating r[16]
    cdef floating* buf = _scratch(hp * wp, &dx[0, 0, 0, 0])
    cdef const floating* src
    cdef floating* row
    cdef floating* dst = &dx[0, 0, 0, 0]
    with nogil:
        for n in range(m):
            for ci in range(c):
                memset(buf, 0, hp * wp * sizeof(floating))
                for t in range(th):
                    src = &dv[0, ci, n * th * tw + t * tw]
                    row = buf + 2 * t * wp
                    # Columns 2 and 3 of a tile are columns 0 and 1 of the next: their sums
                    # (c_k2, c_k3 of row k) carry over, and each entry of the row is written once.
                    c02 = c03 = c12 = c13 = c22 = c23 = c32 = c33 = 0
                    for s in range(tw):
                        # B dV: row k of the tile's 4x4 is combined from the 4 rows of dV ...
                        for k in range(4):
                            a0 = src[k * xs + s]
                            a1 = src[(4 + k) * xs + s]
                            a2 = src[(8 + k) * xs + s]
                            a3 = src[(12 + k) * xs + s]
                            r[k] = a0
                            r[4 + k] = a1 - a2 + a3
                            r[8 + k] = a1 + a2 - a0
                            r[12 + k] = -a3
                        # ... then (B dV) B^T on the columns, added onto the tile's window.
                        q = 2 * s
                        row[q] += r[0] + c02
                        row[q + 1] += r[1] - r[2] + r[3] + c03
                        c02, c03 = r[1] + r[2] - r[0], -r[3]
                        row[wp + q] += r[4] + c12
                        row[wp + q + 1] += r[5] - r[6] + r[7] + c13
                        c12, c13 = r[5] + r[6] - r[4], -r[7]
                        row[2 * wp + q] += r[8] + c22
                        row[2 * wp + q + 1] += r[9] - r[10] + r[11] + c23
                        c22, c23 = r[9] + r[10] - r[8], -r[11]
                        row[3 * wp + q] += r[12] + c32
                        row[3 * wp + q + 1] += r[13] - r[14] + r[15] + c33
                        c32, c33 = r[13] + r[14] - r[12], -r[15]
                    q = 2 * tw
                    row[q] += c02
                    row[q + 1] += c03
                    row[wp + q] += c12
                    row[wp + q + 1] += c13
                    row[2 * wp + q] += c22
                    row[2 * wp + q + 1] += c23
                    row[3 * wp + q] += c32
                    row[3 * wp + q + 1] += c33
                for i in range(h):
                    memcpy(dst + ((n * c + ci) * h + i) * w, buf + (i + pad) * wp + pad,
                           w * sizeof(floating))
    free(buf)


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
