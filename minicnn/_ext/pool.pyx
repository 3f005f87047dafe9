# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Max pooling written out in C, the CPU kernels behind ``minicnn.functional.pool``.

Shapes::

    x, dx        (N, C, H, W)      C-contiguous, float32 or float64
    out, dout    (N, C, OH, OW)    same dtype;  OH = (H + 2*pad - KH) // stride + 1, or with
                                   ceil_mode PyTorch's rounded-up count (functional/pool.py)
    argmax       (N, C, OH, OW)    int32: the TAP index p*KW + q of the window's maximum

The argmax is the FIRST maximum in scan order (window row p, then column q), so ties
send the whole gradient to the earliest tap -- the plain path's rule (a later tap replaces
the running maximum only if strictly greater), and ``numpy.argmax``'s on the flattened
window.  Padded positions are never chosen, even in a window whose real pixels are all
-inf.  A NaN in a window wins, as with numpy.max / argmax: the first NaN is taken.

A window that hangs over the bottom or right edge (ceil_mode) is a window with fewer rows
or columns inside the image: the general loop below skips the taps outside the image
whichever edge they fall past, so it needs nothing more.

Every (n, c) plane is independent, so planes are shared out over OpenMP threads with
``prange``; in the backward pass each thread is the only writer of its output planes.
"""
from cython.parallel cimport prange

ctypedef fused floating:
    float
    double

# Below this many elements read (256 KB of float32) a call runs on the calling thread
# alone: waking and joining the OpenMP team costs tens of microseconds -- far more on a busy
# machine -- and would eat the gain.  (It was 1 MB, but pooling reads slower than that
# assumed: LeNet-5's second pool, 2x2 over 128x16x10x10 = 205k values, took 282 us on one
# thread, 198 us on two.)
cdef Py_ssize_t PARALLEL_MIN = 1 << 16
PARALLEL_THRESHOLD = PARALLEL_MIN   # visible from Python, for the tests


cdef inline Py_ssize_t _first_inside(Py_ssize_t off, Py_ssize_t stride) noexcept nogil:
    """Smallest j >= 0 with j*stride + off >= 0 (as in im2col.pyx)."""
    if off >= 0:
        return 0
    return (-off + stride - 1) // stride


cdef inline Py_ssize_t _past_inside(Py_ssize_t off, Py_ssize_t stride, Py_ssize_t size) noexcept nogil:
    """One past the largest j with j*stride + off <= size - 1, 0 if none (as in im2col.pyx)."""
    if size - 1 - off < 0:
        return 0
    return (size - 1 - off) // stride + 1


cdef void _max_pool_plane(const floating* src, floating* dst, int* arg,
                          Py_ssize_t h, Py_ssize_t w, Py_ssize_t kh, Py_ssize_t kw,
                          Py_ssize_t stride, Py_ssize_t pad,
                          Py_ssize_t oh, Py_ssize_t ow) noexcept nogil:
    """One plane src (H, W) -> its window maxima dst (OH, OW) and their taps arg (OH, OW).

    A whole output row at a time: for each tap (p, q) in scan order, every window of the row
    compares its running maximum with that tap's pixel.  The inner loop has no branch (the
    choice is a select), so the compiler vectorises it; this ran ~3.5x faster than finishing
    one window before starting the next.
    """
    cdef Py_ssize_t i, j, p, q, r0, p_lo, p_hi, off, j_lo, j_hi
    cdef int tap, a, take
    cdef floating v, b
    cdef const floating* src_row
    cdef floating* best
    cdef int* best_tap
    for i in range(oh):
        r0 = i * stride - pad
        p_lo = max(0, -r0)            # window rows that fall inside the image
        p_hi = min(kh, h - r0)
        best = dst + i * ow
        best_tap = arg + i * ow
        for j in range(ow):
            best[j] = 0
            best_tap[j] = -1          # nothing seen yet: the first real pixel is taken
        for p in range(p_lo, p_hi):
            src_row = src + (r0 + p) * w
            for q in range(kw):
                off = q - pad         # window j reads column j*stride + off; the rest is padding
                j_lo = min(_first_inside(off, stride), ow)
                j_hi = max(min(_past_inside(off, stride, w), ow), j_lo)
                tap = <int>(p * kw + q)
                for j in range(j_lo, j_hi):
                    v = src_row[j * stride + off]
                    b = best[j]
                    a = best_tap[j]
                    # Strict '>' keeps the first maximum; a NaN replaces a number once and then stays.
                    take = (a < 0) | (v > b) | ((v != v) & (b == b))
                    best[j] = v if take else b
                    best_tap[j] = tap if take else a


cdef Py_ssize_t _max_pool_backward_plane(const floating* dout, const int* arg, floating* dst,
                                         Py_ssize_t h, Py_ssize_t w, Py_ssize_t kw,
                                         Py_ssize_t stride, Py_ssize_t pad,
                                         Py_ssize_t oh, Py_ssize_t ow) noexcept nogil:
    """Route each dout entry of one plane to the pixel its tap points at; dst (H, W) overwritten.

    Returns the number of taps that point outside the image (0 for an argmax from the
    forward pass); those entries are skipped rather than written out of bounds.
    """
    cdef Py_ssize_t i, j, k, t, row, col, bad = 0
    for k in range(h * w):
        dst[k] = 0
    for i in range(oh):
        for j in range(ow):
            t = arg[i * ow + j]
            row = i * stride - pad + t // kw
            col = j * stride - pad + t % kw
            if t < 0 or row < 0 or row >= h or col < 0 or col >= w:
                bad += 1
            else:
                dst[row * w + col] += dout[i * ow + j]   # overlapping windows add
    return bad


cdef void _max_pool_plane_2x2(const floating* src, floating* dst, int* arg,
                              Py_ssize_t w, Py_ssize_t oh, Py_ssize_t ow) noexcept nogil:
    """_max_pool_plane for the common 2x2 window, stride 2, no padding (LeNet, VGG).

    The same row-at-a-time passes (one per tap, branch-free so they vectorise), without
    the general loop's per-tap bookkeeping (inside range, "nothing seen yet" flag), which
    dominated planes with short output rows.  Same rule: the first maximum in scan order;
    a NaN replaces a number once and then stays.
    """
    cdef Py_ssize_t i, j
    cdef const floating* r0
    cdef const floating* r1
    cdef floating* best
    cdef int* best_tap
    cdef floating b, v
    cdef int take
    for i in range(oh):
        r0 = src + 2 * i * w
        r1 = r0 + w
        best = dst + i * ow
        best_tap = arg + i * ow
        for j in range(ow):
            best[j] = r0[2 * j]
            best_tap[j] = 0
        for j in range(ow):
            v = r0[2 * j + 1]
            b = best[j]
            take = (v > b) | ((v != v) & (b == b))
            best[j] = v if take else b
            best_tap[j] = 1 if take else best_tap[j]
        for j in range(ow):
            v = r1[2 * j]
            b = best[j]
            take = (v > b) | ((v != v) & (b == b))
            best[j] = v if take else b
            best_tap[j] = 2 if take else best_tap[j]
        for j in range(ow):
            v = r1[2 * j + 1]
            b = best[j]
            take = (v > b) | ((v != v) & (b == b))
            best[j] = v if take else b
            best_tap[j] = 3 if take else best_tap[j]


def _pooled_size(Py_ssize_t n, Py_ssize_t k, Py_ssize_t stride, Py_ssize_t pad, bint ceil_mode):
    """Windows along one axis: floor((n + 2*pad - k) / stride) + 1, or PyTorch's ceil_mode count."""
    cdef Py_ssize_t span = n + 2 * pad - k, out
    if not ceil_mode:
        return span // stride + 1 if span >= 0 else 0
    # (C division here: span < 0, where C and Python round differently, is taken apart.)
    out = (span + stride - 1) // stride + 1 if span >= 0 else (1 if span > -stride else 0)
    if out > 0 and (out - 1) * stride >= n + pad:   # the last window would start in the padding
        out -= 1
    return out


def _check_geometry(name, h, w, kh, kw, stride, pad, ceil_mode):
    if kh < 1 or kw < 1 or stride < 1 or pad < 0:
        raise ValueError(f"{name}: expected kh, kw, stride >= 1 and pad >= 0, "
                         f"received kh={kh}, kw={kw}, stride={stride}, pad={pad}")
    if pad >= kh or pad >= kw:
        # A window made only of padding would have no maximum to route the gradient to.
        raise ValueError(f"{name}: expected pad smaller than the ({kh}, {kw}) window, received pad={pad}")
    return _pooled_size(h, kh, stride, pad, ceil_mode), _pooled_size(w, kw, stride, pad, ceil_mode)


def max_pool_forward(const floating[:, :, :, ::1] x, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t stride,
                     Py_ssize_t pad, floating[:, :, :, ::1] out, int[:, :, :, ::1] argmax,
                     bint ceil_mode=False):
    """Max over every (kh, kw) window of x, and which tap held it.

    Inputs:
    - x: (N, C, H, W) C-contiguous float32 or float64
    - kh, kw, stride, pad: window, step and padding (pad < kh and pad < kw)
    - out: (N, C, OH, OW) C-contiguous, x's dtype; overwritten with the window maxima
    - argmax: (N, C, OH, OW) C-contiguous int32; overwritten with the tap p*KW + q of the
      first maximum of each window (row-major scan order)
    - ceil_mode: OH, OW rounded up (windows over the bottom/right edge see the pixels they cover)
    Returns None.
    """
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    oh, ow = _check_geometry("max_pool_forward", h, w, kh, kw, stride, pad, ceil_mode)
    expected = (n, c, oh, ow)
    if oh < 1 or ow < 1:
        raise ValueError(f"max_pool_forward: expected a ({kh}, {kw}) window to fit the {h}x{w} "
                         f"input padded by {pad}, received an output size of {oh}x{ow}")
    got_out = (out.shape[0], out.shape[1], out.shape[2], out.shape[3])
    got_arg = (argmax.shape[0], argmax.shape[1], argmax.shape[2], argmax.shape[3])
    if got_out != expected or got_arg != expected:
        raise ValueError(f"max_pool_forward: expected out and argmax of shape {expected}, received "
                         f"{got_out} and {got_arg}")
    cdef Py_ssize_t OH = oh, OW = ow, nc
    cdef Py_ssize_t plane_in = h * w, plane_out = OH * OW
    if n * c == 0:
        return
    cdef const floating* src = &x[0, 0, 0, 0]
    cdef floating* dst = &out[0, 0, 0, 0]
    cdef int* arg = &argmax[0, 0, 0, 0]
    if kh == 2 and kw == 2 and stride == 2 and pad == 0 and 2 * OH <= h and 2 * OW <= w:
        # (A ceil_mode pass over an odd size has a last window with one row or column:
        # that takes the general loop.)
        if n * c * plane_in < PARALLEL_MIN:
            with nogil:
                for nc in range(n * c):
                    _max_pool_plane_2x2(src + nc * plane_in, dst + nc * plane_out,
                                        arg + nc * plane_out, w, OH, OW)
        else:
            for nc in prange(n * c, nogil=True, schedule="static"):
                _max_pool_plane_2x2(src + nc * plane_in, dst + nc * plane_out,
                                    arg + nc * plane_out, w, OH, OW)
    elif n * c * plane_in < PARALLEL_MIN:
        with nogil:
            for nc in range(n * c):
                _max_pool_plane(src + nc * plane_in, dst + nc * plane_out, arg + nc * plane_out,
                                h, w, kh, kw, stride, pad, OH, OW)
    else:
        for nc in prange(n * c, nogil=True, schedule="static"):
            _max_pool_plane(src + nc * plane_in, dst + nc * plane_out, arg + nc * plane_out,
                            h, w, kh, kw, stride, pad, OH, OW)


def max_pool_backward(const floating[:, :, :, ::1] dout, const int[:, :, :, ::1] argmax, Py_ssize_t kw,
                      Py_ssize_t stride, Py_ssize_t pad, floating[:, :, :, ::1] out):
    """Backward of max_pool_forward: each dout entry goes to the pixel its window's argmax names.

    Inputs:
    - dout: (N, C, OH, OW) C-contiguous float32 or float64 (not modified)
    - argmax: (N, C, OH, OW) int32 taps from max_pool_forward
    - kw, stride, pad: window width, step and padding of the forward pass
    - out: (N, C, H, W) C-contiguous, dout's dtype; OVERWRITTEN with the routed gradient
      (a pixel that is the maximum of several overlapping windows receives their sum)
    Returns None.  Raises ValueError if a tap points outside the image (not from forward).
    """
    cdef Py_ssize_t n = dout.shape[0], c = dout.shape[1], oh = dout.shape[2], ow = dout.shape[3]
    cdef Py_ssize_t h = out.shape[2], w = out.shape[3], nc, bad = 0
    got_arg = (argmax.shape[0], argmax.shape[1], argmax.shape[2], argmax.shape[3])
    if got_arg != (n, c, oh, ow) or (out.shape[0], out.shape[1]) != (n, c):
        raise ValueError(f"max_pool_backward: expected argmax of shape {(n, c, oh, ow)} and out of "
                         f"shape ({n}, {c}, H, W), received {got_arg} and "
                         f"{(out.shape[0], out.shape[1], h, w)}")
    if kw < 1 or stride < 1 or pad < 0:
        raise ValueError(f"max_pool_backward: expected kw, stride >= 1 and pad >= 0, "
                         f"received kw={kw}, stride={stride}, pad={pad}")
    cdef Py_ssize_t plane_in = oh * ow, plane_out = h * w
    if n * c == 0:
        return
    cdef const floating* src = &dout[0, 0, 0, 0]
    cdef const int* arg = &argmax[0, 0, 0, 0]
    cdef floating* dst = &out[0, 0, 0, 0]
    if n * c * plane_out < PARALLEL_MIN:
        with nogil:
            for nc in range(n * c):
                bad += _max_pool_backward_plane(src + nc * plane_in, arg + nc * plane_in,
                                                dst + nc * plane_out, h, w, kw, stride, pad, oh, ow)
    else:
        for nc in prange(n * c, nogil=True, schedule="static"):
            bad += _max_pool_backward_plane(src + nc * plane_in, arg + nc * plane_in,
                                            dst + nc * plane_out, h, w, kw, stride, pad, oh, ow)
    if bad:
        raise ValueError(f"max_pool_backward: expected argmax taps inside the image (as made by "
                         f"max_pool_forward), received {bad} that point outside it")
