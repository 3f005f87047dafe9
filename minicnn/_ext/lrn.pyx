# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Cross-channel local response normalisation written out in C, the CPU kernels behind
``minicnn.functional.lrn`` (see there for the formula and the window convention).

Shapes (all C-contiguous, float32 or float64; the (N, C, H, W) arrays are passed viewed as
(N, C, H*W), which is free for a contiguous array)::

    x, out, dout, dx     (N, C, L)     L = H * W
    scale_pow            (N, C, L)     scale ** -beta, written by the forward, read after

with ``scale = k + alpha / size * sum_{c' in window(c)} x[c']^2``, the window running from
``c - before`` to ``c + after`` (before = size // 2, after = (size - 1) // 2), clipped at
the ends.

Why a kernel: the plain path pads a copy of x * x, adds ``size`` shifted slices of it (a
pass over the whole batch each), does the same again for the backward pass's gather, and
raises scale to a power in both passes (the power is most of the time).  Here the
(n, block of positions) work items are independent: for each channel the window sum is
accumulated over the few neighbouring channel rows (still in L1), in the same order as the
plain path's sum, then the power is taken once per element and kept for the backward pass,
which then needs none.  Positions are innermost and contiguous, so every loop is over a row
of up to BLOCK values and vectorises.

The window sum is recomputed for every channel rather than kept as a running sum (add the
channel entering, subtract the one leaving): that is ``size`` multiply-adds per element,
cheap next to the power, and a running sum in float32 would drift after a large value left
it; recomputing gives the plain path's sum bit for bit.

beta = 0.75 (AlexNet's) takes ``1 / (sqrt(s) * sqrt(sqrt(s)))`` instead of ``pow(s, -0.75)``:
square roots vectorise where pow does not (given -fno-math-errno, see setup.py), and it is
within 4 ulp of the exact power.  Every other beta calls pow.

The backward pass recomputes scale from x (the same sums, bit for bit) instead of storing
it, so -- as for conv2d and batch norm -- x must not change between the forward and the
backward pass.  Its gather ``g_j = sum_{c: j in window(c)} t_c`` reads the t rows from a
small ring (one row per channel of a window), each computed once, and sums them in
increasing c, the plain path's order.  The sums over a window's rows take up to four rows
per pass over the destination row (``_sq_rows``, ``_add_rows``) rather than re-reading and
re-writing it once per channel (measured on one thread, N32 C96 27x27 size 5 float32: the
forward pass 4.0 -> 3.0 ms; the ring instead of adding each t row into the dx rows of its
window, the backward pass ~8.5 -> ~6.5 ms at load 1).

Work items are shared out over OpenMP threads with ``prange`` (dynamic schedule: a core
busy with another process does not hold up the layer); each thread is the only writer of
its items' outputs.
"""
from cython.parallel cimport prange
from libc.math cimport pow, powf, sqrt, sqrtf
from libc.stdlib cimport free, malloc

ctypedef fused floating:
    float
    double

# Below this many elements a call runs on the calling thread alone: waking and joining the
# OpenMP team costs tens of microseconds (far more on a busy machine) and would eat the gain.
cdef Py_ssize_t PARALLEL_MIN = 1 << 16
PARALLEL_THRESHOLD = PARALLEL_MIN   # visible from Python, for the tests
# Positions per work item: a channel row of the block and its window's rows stay in L1.
cdef enum:
    BLOCK = 256
BLOCK_SIZE = BLOCK                  # visible from Python, for the tests


cdef inline floating _inv_pow(floating s, floating neg_beta, bint three_quarters) noexcept nogil:
    """s ** neg_beta; by square roots when neg_beta is -0.75 (``three_quarters``)."""
    cdef floating r
    if floating is float:
        if three_quarters:
            r = sqrtf(s)
            return (<floating>1) / (r * sqrtf(r))
        return powf(s, neg_beta)
    else:
        if three_quarters:
            r = sqrt(s)
            return (<floating>1) / (r * sqrt(r))
        return pow(s, neg_beta)


cdef inline void _sq_rows(const floating* r, floating* s, Py_ssize_t L, Py_ssize_t m, Py_ssize_t cnt,
                          bint first) noexcept nogil:
    """s[0:m] = (s[0:m] +, unless first) r[0]^2 + ... + r[cnt - 1]^2 for 1 <= cnt <= 4 rows L
    apart, added left to right: one pass over s for up to four channels."""
    cdef Py_ssize_t i
    cdef const floating* r1 = r + L
    cdef const floating* r2
    cdef const floating* r3
    if cnt == 1:
        if first:
            for i in range(m):
                s[i] = r[i] * r[i]
        else:
            for i in range(m):
                s[i] = s[i] + r[i] * r[i]
    elif cnt == 2:
        if first:
            for i in range(m):
                s[i] = r[i] * r[i] + r1[i] * r1[i]
        else:
            for i in range(m):
                s[i] = s[i] + r[i] * r[i] + r1[i] * r1[i]
    elif cnt == 3:
        r2 = r1 + L
        if first:
            for i in range(m):
                s[i] = r[i] * r[i] + r1[i] * r1[i] + r2[i] * r2[i]
        else:
            for i in range(m):
                s[i] = s[i] + r[i] * r[i] + r1[i] * r1[i] + r2[i] * r2[i]
    else:
        r2 = r1 + L
        r3 = r2 + L
        if first:
            for i in range(m):
                s[i] = r[i] * r[i] + r1[i] * r1[i] + r2[i] * r2[i] + r3[i] * r3[i]
        else:
            for i in range(m):
                s[i] = s[i] + r[i] * r[i] + r1[i] * r1[i] + r2[i] * r2[i] + r3[i] * r3[i]


cdef inline void _window_sq_sum(const floating* x, floating* s, Py_ssize_t lo, Py_ssize_t hi,
                                Py_ssize_t L, Py_ssize_t m) noexcept nogil:
    """s[0:m] = sum of x[c, 0:m]^2 for c = lo .. hi - 1 (rows L apart, hi > lo), summed in that
    order (the plain path's), four rows a pass."""
    cdef Py_ssize_t c
    for c in range(lo, hi, 4):
        _sq_rows(x + c * L, s, L, m, min(4, hi - c), c == lo)


cdef void _forward_block(const floating* x, floating* out, floating* spow, Py_ssize_t C,
                         Py_ssize_t L, Py_ssize_t m, Py_ssize_t before, Py_ssize_t after,
                         floating a, floating k, floating neg_beta, bint three_quarters) noexcept nogil:
    """One sample's positions [0, m) (x, out, spow point at the block's start in channel 0)."""
    cdef Py_ssize_t c, i
    cdef floating p
    cdef floating* o
    cdef floating* q
    cdef const floating* xr
    for c in range(C):
        o = out + c * L
        q = spow + c * L
        xr = x + c * L
        # out's row holds the window sum first, then is overwritten with the output.
        _window_sq_sum(x, o, max(0, c - before), min(C, c + after + 1), L, m)
        for i in range(m):
            p = _inv_pow(o[i] * a + k, neg_beta, three_quarters)
            q[i] = p
            o[i] = xr[i] * p


def forward(const floating[:, :, ::1] x, Py_ssize_t size, double alpha_over_size, double beta,
            double k, floating[:, :, ::1] out, floating[:, :, ::1] scale_pow):
    """LRN forward: out = x * scale ** -beta, and scale ** -beta kept for the backward pass.

    Inputs:
    - x: (N, C, L) C-contiguous float32 or float64
    - size: window length (>= 1); alpha_over_size = alpha / size; beta; k > 0
    - out, scale_pow: (N, C, L) C-contiguous, x's dtype; overwritten
    Returns None.
    """
    cdef Py_ssize_t n = x.shape[0], C = x.shape[1], L = x.shape[2], it, nb, b0
    _check("forward", (n, C, L), (("out", out), ("scale_pow", scale_pow)))
    if size < 1:
        raise ValueError(f"forward: expected size >= 1, received {size}")
    if n * C * L == 0:
        return
    cdef Py_ssize_t before = size // 2, after = (size - 1) // 2
    cdef floating a = <floating>alpha_over_size, kk = <floating>k, nb_ = <floating>(-beta)
    cdef bint tq = beta == 0.75
    cdef const floating* px = &x[0, 0, 0]
    cdef floating* po = &out[0, 0, 0]
    cdef floating* pq = &scale_pow[0, 0, 0]
    nb = (L + BLOCK - 1) // BLOCK
    for it in prange(n * nb, nogil=True, schedule="dynamic", use_threads_if=n * C * L >= PARALLEL_MIN):
        b0 = (it // nb) * C * L + (it % nb) * BLOCK
        _forward_block(px + b0, po + b0, pq + b0, C, L, min(BLOCK, L - (it % nb) * BLOCK),
                       before, after, a, kk, nb_, tq)


cdef inline void _finish_row(const floating* d, const floating* xr, const floating* q, floating* g,
                             Py_ssize_t m, floating coef) noexcept nogil:
    """g = d * q - coef * x * g, in place (the plain path's order)."""
    cdef Py_ssize_t i
    for i in range(m):
        g[i] = d[i] * q[i] - coef * xr[i] * g[i]


cdef inline void _add_rows(floating** r, Py_ssize_t cnt, floating* g, Py_ssize_t m, bint first) noexcept nogil:
    """g[0:m] = (g[0:m] +, unless first) r[0] + ... + r[cnt - 1] for 1 <= cnt <= 4 rows, added
    left to right: one pass over g for up to four rows."""
    cdef Py_ssize_t i
    cdef floating* r0 = r[0]
    cdef floating* r1
    cdef floating* r2
    cdef floating* r3
    if cnt == 1:
        if first:
            for i in range(m):
                g[i] = r0[i]
        else:
            for i in range(m):
                g[i] = g[i] + r0[i]
    elif cnt == 2:
        r1 = r[1]
        if first:
            for i in range(m):
                g[i] = r0[i] + r1[i]
        else:
            for i in range(m):
                g[i] = g[i] + r0[i] + r1[i]
    elif cnt == 3:
        r1, r2 = r[1], r[2]
        if first:
            for i in range(m):
                g[i] = r0[i] + r1[i] + r2[i]
        else:
            for i in range(m):
                g[i] = g[i] + r0[i] + r1[i] + r2[i]
    else:
        r1, r2, r3 = r[1], r[2], r[3]
        if first:
            for i in range(m):
                g[i] = r0[i] + r1[i] + r2[i] + r3[i]
        else:
            for i in range(m):
                g[i] = g[i] + r0[i] + r1[i] + r2[i] + r3[i]


cdef Py_ssize_t _backward_block(const floating* dout, const floating* x, const floating* spow,
                                floating* dx, Py_ssize_t C, Py_ssize_t L, Py_ssize_t m,
                                Py_ssize_t before, Py_ssize_t after, floating a, floating k,
                                floating coef) noexcept nogil:
    """One sample's positions [0, m) (all pointers at the block's start in channel 0).

    dx_j = dout_j * scale_j^-beta - coef * x_j * g_j, where g_j is the sum of
    t_c = dout_c * x_c * scale_c^-beta / scale_c over the gather window c = j - after ..
    j + before.  The t rows live in a ring of R = min(size, C) rows (the most any window
    holds), each computed once, just before the first window that needs it.
    Returns 1 if the ring could not be allocated (nothing written), else 0.
    """
    cdef Py_ssize_t R = min(before + after + 1, C), c, j, i, lo, hi, nxt = 0, cnt
    cdef floating* ring = <floating*>malloc(R * BLOCK * sizeof(floating))
    cdef floating* rows[4]
    cdef floating* t
    cdef floating* g
    cdef const floating* d
    cdef const floating* xr
    cdef const floating* q
    if ring == NULL:
        return 1
    for j in range(C):
        lo = max(0, j - after)
        hi = min(C, j + before + 1)
        while nxt < hi:
            # t_nxt: scale first, then ((dout * x) * scale_pow) / scale, as the plain path.
            t = ring + (nxt % R) * BLOCK
            _window_sq_sum(x, t, max(0, nxt - before), min(C, nxt + after + 1), L, m)
            d = dout + nxt * L
            xr = x + nxt * L
            q = spow + nxt * L
            for i in range(m):
                t[i] = d[i] * xr[i] * q[i] / (t[i] * a + k)
            nxt += 1
        # g_j into dx's row, summed in increasing c (the plain path's order), four rows a pass.
        g = dx + j * L
        c = lo
        while c < hi:
            cnt = min(4, hi - c)
            for i in range(cnt):
                rows[i] = ring + ((c + i) % R) * BLOCK
            _add_rows(rows, cnt, g, m, c == lo)
            c += cnt
        _finish_row(dout + j * L, x + j * L, spow + j * L, g, m, coef)
    free(ring)
    return 0


def backward(const floating[:, :, ::1] dout, const floating[:, :, ::1] x,
             const floating[:, :, ::1] scale_pow, Py_ssize_t size, double alpha_over_size,
             double k, double coef, floating[:, :, ::1] dx):
    """LRN backward: dx_j = dout_j * scale_j^-beta - coef * x_j * sum_{c: j in window(c)}
    dout_c * x_c * scale_c^(-beta-1), coef = 2 * alpha * beta / size.

    Inputs:
    - dout, x, scale_pow: (N, C, L) C-contiguous float32 or float64 (x and scale_pow as
      forward took and wrote them)
    - size, alpha_over_size, k: as given to forward; coef = 2 * alpha * beta / size
    - dx: (N, C, L) C-contiguous, x's dtype; overwritten
    Returns None.
    """
    cdef Py_ssize_t n = x.shape[0], C = x.shape[1], L = x.shape[2], it, nb, b0
    _check("backward", (n, C, L), (("dout", dout), ("scale_pow", scale_pow), ("dx", dx)))
    if size < 1:
        raise ValueError(f"backward: expected size >= 1, received {size}")
    if n * C * L == 0:
        return
    cdef Py_ssize_t before = size // 2, after = (size - 1) // 2
    cdef floating a = <floating>alpha_over_size, kk = <floating>k, cf = <floating>coef
    cdef const floating* pd = &dout[0, 0, 0]
    cdef const floating* px = &x[0, 0, 0]
    cdef const floating* pq = &scale_pow[0, 0, 0]
    cdef floating* pdx = &dx[0, 0, 0]
    nb = (L + BLOCK - 1) // BLOCK
    cdef Py_ssize_t failed = 0
    for it in prange(n * nb, nogil=True, schedule="dynamic", use_threads_if=n * C * L >= PARALLEL_MIN):
        b0 = (it // nb) * C * L + (it % nb) * BLOCK
        failed += _backward_block(pd + b0, px + b0, pq + b0, pdx + b0, C, L,
                                  min(BLOCK, L - (it % nb) * BLOCK), before, after, a, kk, cf)
    if failed:
        raise MemoryError("backward: no memory for the rows of a channel window")


def _check(name, expected, arrays):
    for what, v in arrays:
        got = (v.shape[0], v.shape[1], v.shape[2])
        if got != expected:
            raise ValueError(f"{name}: expected {what} of shape {expected}, received {got}")
