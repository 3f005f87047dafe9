# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""im2col and col2im written out in C, the CPU kernels behind ``minicnn.functional.im2col``.

Same layout and results as the plain NumPy functions ``im2col_xp`` / ``col2im_xp``::

    x    (N, C, H, W)              C-contiguous, float32 or float64
    col  (N, C, KH, KW, OH, OW)    C-contiguous, same dtype
    OH = (H + 2*pad - KH) // stride + 1,   OW likewise

Differences from the NumPy path are only in how the work is done:

* zero padding is handled inside the loops (positions outside the image read as 0 in
  im2col and are dropped in col2im), so no padded copy of the batch is made;
* every (n, c) plane is independent -- its columns come from that plane alone -- so the
  planes are shared out over OpenMP threads with ``prange``.  col2im therefore needs no
  atomics: each thread is the only writer of the output planes it owns.
Built without OpenMP, ``prange`` runs as a plain loop and the results are identical.

``im2col_t`` / ``col2im_t`` at the end do the same for the batch-inside layout
(C, KH, KW, N, OH, OW), with which a conv is one GEMM per group rather than one per image;
``col2im_t_scratch`` is col2im_t allowed to overwrite its input.

Stride 1 with OW == W (the "same" 3x3 pad-1 layers of ResNets and VGGs) has a faster plane
kernel: each tap is one flat shift of the whole plane, the few border entries fixed after
(``_im2col_plane_same``), instead of a loop over rows that are often only 8 long; with
OH == H too, im2col_t shifts all the images of a channel at once (``_im2col_tall``).
"""
from cython.parallel cimport prange
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

ctypedef fused floating:
    float
    double

# Below this many elements written (1 MB of float32, roughly 0.1 ms of work on one core) a
# call runs on the calling thread alone: waking and joining the OpenMP team costs tens of
# microseconds -- far more on a busy machine -- and would eat the gain.
cdef Py_ssize_t PARALLEL_MIN = 1 << 18
PARALLEL_THRESHOLD = PARALLEL_MIN   # visible from Python, for the tests


cdef inline Py_ssize_t _first_inside(Py_ssize_t off, Py_ssize_t stride) noexcept nogil:
    """Smallest j >= 0 with j*stride + off >= 0 (the first output column that reads a real pixel)."""
    if off >= 0:
        return 0
    return (-off + stride - 1) // stride


cdef inline Py_ssize_t _past_inside(Py_ssize_t off, Py_ssize_t stride, Py_ssize_t size) noexcept nogil:
    """One past the largest j with j*stride + off <= size - 1 (0 if there is none)."""
    if size - 1 - off < 0:   # C division truncates toward zero, so the empty case is separate
        return 0
    return (size - 1 - off) // stride + 1


cdef inline void _zero(floating* a, Py_ssize_t n) noexcept nogil:
    if n > 0:
        memset(a, 0, n * sizeof(floating))


cdef void _im2col_plane_same(const floating* src, floating* dst, Py_ssize_t tap_stride,
                             Py_ssize_t h, Py_ssize_t w, Py_ssize_t kh, Py_ssize_t kw,
                             Py_ssize_t pad, Py_ssize_t oh) noexcept nogil:
    """_im2col_plane for stride 1 and OW == W (a "same" width, kw = 2*pad + 1: ResNet's and
    VGG's 3x3 pad 1), by whole-plane shifts instead of row by row.

    Output row i of tap (p, q) is source row i + p - pad shifted by q - pad columns.  With
    equal row lengths in source and output, that is ONE flat shift of the plane: out[t] =
    src[t + shift], shift = (p - pad)*W + (q - pad).  One long copy loop then fills the tap;
    what it gets wrong -- the columns that should read the zero padding receive a pixel
    from the neighbouring row -- is the |q - pad| border entries of each row, zeroed after.
    Measured on a chunk of a CIFAR ResNet layer: ~2x faster on 8x8 planes (rows of 8 are
    mostly loop overhead), ~1.5x on 32x32.
    """
    cdef Py_ssize_t p, q, i, j, t, dp, dq, i_lo, i_hi, j_lo, j_hi, shift, a, b
    cdef floating* out
    for p in range(kh):
        dp = p - pad
        i_lo = min(max(0, -dp), oh)          # output rows [i_lo, i_hi) read a real source row
        i_hi = max(min(oh, h - dp), i_lo)
        for q in range(kw):
            dq = q - pad
            j_lo = min(max(0, -dq), w)       # and columns [j_lo, j_hi) a real source column
            j_hi = max(min(w, w - dq), j_lo)
            out = dst + (p * kw + q) * tap_stride
            shift = dp * w + dq
            # The flat range of real rows, clipped so that the source index t + shift stays
            # inside the plane (what is clipped is border columns: zero either way).
            a = max(i_lo * w, -shift)
            b = max(min(i_hi * w, h * w - shift), a)
            for t in range(a):
                out[t] = 0
            for t in range(a, b):
                out[t] = src[t + shift]
            for t in range(b, oh * w):
                out[t] = 0
            # Column by column: a strided run of single stores (row by row, the inner loops
            # would be 1 or 2 long, and cost more to set up than to run).
            for j in range(j_lo):
                for i in range(i_lo, i_hi):
                    out[i * w + j] = 0
            for j in range(j_hi, w):
                for i in range(i_lo, i_hi):
                    out[i * w + j] = 0


cdef void _col2im_plane_same(floating* src, Py_ssize_t tap_stride, floating* dst,
                             Py_ssize_t h, Py_ssize_t w, Py_ssize_t kh, Py_ssize_t kw,
                             Py_ssize_t pad, Py_ssize_t oh) noexcept nogil:
    """_col2im_plane for stride 1 and OW == W, by whole-plane shifted additions (the adjoint
    of _im2col_plane_same).  The entries of src that fall in the padding are ZEROED first
    (src is scratch): then every real row's run can be added in one flat pass, the border
    entries that land on a neighbouring row's pixel adding exactly 0."""
    cdef Py_ssize_t p, q, i, j, t, dp, dq, i_lo, i_hi, j_lo, j_hi, shift, a, b
    cdef floating* col
    _zero(dst, h * w)
    for p in range(kh):
        dp = p - pad
        i_lo = min(max(0, -dp), oh)
        i_hi = max(min(oh, h - dp), i_lo)
        for q in range(kw):
            dq = q - pad
            j_lo = min(max(0, -dq), w)
            j_hi = max(min(w, w - dq), j_lo)
            col = src + (p * kw + q) * tap_stride
            for j in range(j_lo):
                for i in range(i_lo, i_hi):
                    col[i * w + j] = 0
            for j in range(j_hi, w):
                for i in range(i_lo, i_hi):
                    col[i * w + j] = 0
            shift = dp * w + dq
            a = max(i_lo * w, -shift)
            b = max(min(i_hi * w, h * w - shift), a)
            for t in range(a, b):
                dst[t + shift] += col[t]


cdef void _im2col_plane(const floating* src, floating* dst, Py_ssize_t tap_stride,
                        Py_ssize_t h, Py_ssize_t w, Py_ssize_t kh, Py_ssize_t kw,
                        Py_ssize_t stride, Py_ssize_t pad,
                        Py_ssize_t oh, Py_ssize_t ow) noexcept nogil:
    """One image plane src (H, W) -> its columns: tap (p, q) goes to the (OH, OW) block at
    dst + (p*KW + q) * tap_stride (tap_stride = OH*OW for im2col, N*OH*OW for im2col_t)."""
    cdef Py_ssize_t p, q, i, j, row, off, j_lo, j_hi
    cdef const floating* src_row
    cdef floating* out
    if stride == 1 and ow == w:
        _im2col_plane_same(src, dst, tap_stride, h, w, kh, kw, pad, oh)
        return
    for p in range(kh):
        for q in range(kw):
            # For tap (p, q), output column j reads source column j*stride + off.  Work out
            # once which j land inside the image; the rest are zero padding.
            off = q - pad
            j_lo = min(_first_inside(off, stride), ow)
            j_hi = max(min(_past_inside(off, stride, w), ow), j_lo)
            out = dst + (p * kw + q) * tap_stride
            for i in range(oh):
                row = i * stride - pad + p
                if row < 0 or row >= h:
                    for j in range(ow):
                        out[j] = 0
                else:
                    for j in range(j_lo):
                        out[j] = 0
                    src_row = src + row * w + j_lo * stride + off
                    if stride == 1:          # the common case: a contiguous run the compiler vectorises
                        for j in range(j_hi - j_lo):
                            out[j_lo + j] = src_row[j]
                    elif stride == 2:        # ResNet's downsampling convs: a constant stride the
                        for j in range(j_hi - j_lo):     # compiler vectorises too (loads + shuffles)
                            out[j_lo + j] = src_row[2 * j]
                    else:
                        for j in range(j_hi - j_lo):
                            out[j_lo + j] = src_row[j * stride]
                    for j in range(j_hi, ow):
                        out[j] = 0
                out += ow


cdef void _col2im_plane(const floating* src, Py_ssize_t tap_stride, floating* dst,
                        Py_ssize_t h, Py_ssize_t w, Py_ssize_t kh, Py_ssize_t kw,
                        Py_ssize_t stride, Py_ssize_t pad,
                        Py_ssize_t oh, Py_ssize_t ow) noexcept nogil:
    """Columns of one plane -> their sum dst (H, W) (overwritten); tap (p, q)'s (OH, OW) block
    is read from src + (p*KW + q) * tap_stride, as _im2col_plane wrote it."""
    cdef Py_ssize_t p, q, i, j, row, off, j_lo, j_hi, k
    cdef floating* dst_row
    cdef const floating* src_row
    for k in range(h * w):
        dst[k] = 0
    for p in range(kh):
        for q in range(kw):
            off = q - pad
            j_lo = min(_first_inside(off, stride), ow)
            j_hi = max(min(_past_inside(off, stride, w), ow), j_lo)
            for i in range(oh):
                row = i * stride - pad + p
                if row >= 0 and row < h:     # rows in the padding are dropped
                    src_row = src + (p * kw + q) * tap_stride + i * ow + j_lo
                    dst_row = dst + row * w + j_lo * stride + off
                    if stride == 1:
                        for j in range(j_hi - j_lo):
                            dst_row[j] += src_row[j]
                    elif stride == 2:        # a constant stride, as in _im2col_plane
                        for j in range(j_hi - j_lo):
                            dst_row[2 * j] += src_row[j]
                    else:
                        for j in range(j_hi - j_lo):
                            dst_row[j * stride] += src_row[j]


cdef void _im2col_tall(const floating* src, floating* dst, Py_ssize_t n, Py_ssize_t h,
                       Py_ssize_t w, Py_ssize_t k, Py_ssize_t pad) noexcept nogil:
    """One channel's n images stacked into a tall (n*H, W) plane -> its k*k taps in the
    batch-inside layout (tap t at dst + t*n*H*W), for stride 1 and k = 2*pad + 1 (OH = H,
    OW = W).

    _im2col_plane_same on all n images at once: with OH = H the images' output blocks
    are stacked exactly like their inputs, so each tap is one flat shift of the whole tall
    plane.  Besides the border columns, the rows that read the zero padding above and below
    each image (which the shift fills from the neighbouring image) are zeroed after.
    Measured on a 3-image chunk of the 64-channel 8x8 layer: 42 -> 33 us (the same idea for
    col2im measured slower than _col2im_plane_same, so col2im stays plane by plane).
    """
    cdef Py_ssize_t p, q, i, j, t, img, dp, dq, i_lo, i_hi, j_lo, j_hi, shift, a, b
    cdef Py_ssize_t plane = h * w, total = n * h * w, rows = n * h
    cdef floating* out
    for p in range(k):
        dp = p - pad
        i_lo = min(max(0, -dp), h)
        i_hi = max(min(h, h - dp), i_lo)
        for q in range(k):
            dq = q - pad
            j_lo = min(max(0, -dq), w)
            j_hi = max(min(w, w - dq), j_lo)
            out = dst + (p * k + q) * total
            shift = dp * w + dq
            a = max(0, -shift)
            b = max(min(total, total - shift), a)
            for t in range(a):
                out[t] = 0
            for t in range(a, b):
                out[t] = src[t + shift]
            for t in range(b, total):
                out[t] = 0
            for img in range(n):
                for t in range(img * plane, img * plane + i_lo * w):
                    out[t] = 0
                for t in range(img * plane + i_hi * w, (img + 1) * plane):
                    out[t] = 0
            for j in range(j_lo):
                for i in range(rows):
                    out[i * w + j] = 0
            for j in range(j_hi, w):
                for i in range(rows):
                    out[i * w + j] = 0


def _out_size(name, h, w, kh, kw, stride, pad):
    """(OH, OW) after checking the geometry (a wrong shape here would write out of bounds)."""
    if kh < 1 or kw < 1 or stride < 1 or pad < 0:
        raise ValueError(f"{name}: expected kh, kw, stride >= 1 and pad >= 0, "
                         f"received kh={kh}, kw={kw}, stride={stride}, pad={pad}")
    oh = (h + 2 * pad - kh) // stride + 1
    ow = (w + 2 * pad - kw) // stride + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"{name}: expected a ({kh}, {kw}) window to fit the {h}x{w} input padded "
                         f"by {pad}, received an output size of {oh}x{ow}")
    return oh, ow


def im2col(const floating[:, :, :, ::1] x, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t stride,
           Py_ssize_t pad, floating[:, :, :, :, :, ::1] out):
    """Copy every (kh, kw) window of x into out, zero padding included.

    Inputs:
    - x: (N, C, H, W) C-contiguous float32 or float64
    - kh, kw, stride, pad: window height and width, step, zero padding on every side
    - out: (N, C, KH, KW, OH, OW) C-contiguous, x's dtype; fully overwritten
    Returns None (the result is in out).
    """
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    oh, ow = _out_size("im2col", h, w, kh, kw, stride, pad)
    expected = (n, c, kh, kw, oh, ow)
    got = (out.shape[0], out.shape[1], out.shape[2], out.shape[3], out.shape[4], out.shape[5])
    if got != expected:
        raise ValueError(f"im2col: expected out of shape {expected}, received {got}")
    cdef Py_ssize_t OH = oh, OW = ow, nc
    cdef Py_ssize_t plane_in = h * w, plane_out = kh * kw * OH * OW
    if n * c == 0:
        return
    cdef const floating* src = &x[0, 0, 0, 0]
    cdef floating* dst = &out[0, 0, 0, 0, 0, 0]
    if n * c * plane_out < PARALLEL_MIN:
        with nogil:
            for nc in range(n * c):
                _im2col_plane(src + nc * plane_in, dst + nc * plane_out, OH * OW,
                              h, w, kh, kw, stride, pad, OH, OW)
    else:
        for nc in prange(n * c, nogil=True, schedule="static"):
            _im2col_plane(src + nc * plane_in, dst + nc * plane_out, OH * OW,
                          h, w, kh, kw, stride, pad, OH, OW)


def col2im(const floating[:, :, :, :, :, ::1] col, Py_ssize_t stride, Py_ssize_t pad,
           floating[:, :, :, ::1] out):
    """Add every column back onto the window it came from: the adjoint of im2col.

    Inputs:
    - col: (N, C, KH, KW, OH, OW) C-contiguous float32 or float64
    - stride, pad: as given to im2col
    - out: (N, C, H, W) C-contiguous, col's dtype; OVERWRITTEN with the sum of every column
      entry onto its source pixel (entries that fell in the padding are dropped)
    Returns None (the result is in out).
    """
    cdef Py_ssize_t n = col.shape[0], c = col.shape[1], kh = col.shape[2], kw = col.shape[3]
    cdef Py_ssize_t h = out.shape[2], w = out.shape[3]
    oh, ow = _out_size("col2im", h, w, kh, kw, stride, pad)
    if (out.shape[0], out.shape[1], col.shape[4], col.shape[5]) != (n, c, oh, ow):
        raise ValueError(f"col2im: expected col of shape {(n, c, kh, kw, oh, ow)} for out of shape "
                         f"{(out.shape[0], out.shape[1], h, w)}, received col of shape "
                         f"{(n, c, kh, kw, col.shape[4], col.shape[5])}")
    cdef Py_ssize_t OH = oh, OW = ow, nc
    cdef Py_ssize_t plane_in = kh * kw * OH * OW, plane_out = h * w
    if n * c == 0:
        return
    cdef const floating* src = &col[0, 0, 0, 0, 0, 0]
    cdef floating* dst = &out[0, 0, 0, 0]
    if n * c * plane_in < PARALLEL_MIN:
        with nogil:
            for nc in range(n * c):
                _col2im_plane(src + nc * plane_in, OH * OW, dst + nc * plane_out,
                              h, w, kh, kw, stride, pad, OH, OW)
    else:
        for nc in prange(n * c, nogil=True, schedule="static"):
            _col2im_plane(src + nc * plane_in, OH * OW, dst + nc * plane_out,
                          h, w, kh, kw, stride, pad, OH, OW)


# The same two kernels for the "batch inside" column layout (C, KH, KW, N, OH, OW), i.e. the
# (C*KH*KW, N*OH*OW) matrix of all the batch's windows side by side.  With it a convolution
# is ONE large GEMM per group, W (F, C*KH*KW) @ col (C*KH*KW, N*OH*OW), instead of N small
# ones (one per image); a threaded BLAS splits one large product well but pays a fork/join
# for every small one.

cdef bint _shifts_tall(Py_ssize_t n, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t stride, Py_ssize_t pad) noexcept nogil:
    """True if im2col_t takes the tall-plane path: OH = H and OW = W ("same" stride-1 layers),
    more than one image (which then needs a channel-major copy of x, n*C*H*W values)."""
    return stride == 1 and kh == kw == 2 * pad + 1 and n > 1


cdef void _im2col_t_body(const floating* src, Py_ssize_t n, Py_ssize_t c, Py_ssize_t h, Py_ssize_t w,
                         Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t stride, Py_ssize_t pad,
                         Py_ssize_t OH, Py_ssize_t OW, floating* dst, floating* tall,
                         bint parallel) noexcept nogil:
    """im2col_t's loops (arguments checked): x at src -> columns at dst; ``tall``: room for
    n*C*H*W values when _shifts_tall (else unused); ``parallel``: planes over OpenMP threads."""
    cdef Py_ssize_t plane_in = h * w, per_tap = n * OH * OW, taps = kh * kw, nc, ci
    if stride == 1 and kh == kw == 2 * pad + 1:
        # OH = H, OW = W: each channel's images are shifted as one tall plane (_im2col_tall),
        # from a channel-major copy of x (one plane copy per image and channel, instead of
        # one shift per image, channel AND tap).  One image needs no copy.
        if n > 1:
            for nc in range(n * c):
                memcpy(tall + ((nc % c) * n + nc // c) * plane_in, src + nc * plane_in,
                       plane_in * sizeof(floating))
            src = tall
        for ci in prange(c, schedule="static", use_threads_if=parallel):
            _im2col_tall(src + ci * n * plane_in, dst + ci * taps * per_tap, n, h, w, kh, pad)
        return
    # Plane (n, c) = nc fills, for every tap, the n-th (OH, OW) block of channel c's rows.
    for nc in prange(n * c, schedule="static", use_threads_if=parallel):
        _im2col_plane(src + nc * plane_in, dst + (nc % c) * taps * per_tap + (nc // c) * OH * OW,
                      per_tap, h, w, kh, kw, stride, pad, OH, OW)


def im2col_t(const floating[:, :, :, ::1] x, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t stride,
             Py_ssize_t pad, floating[:, :, :, :, :, ::1] out):
    """im2col into the batch-inside layout: out[c, p, q, n, i, j] = xpad[n, c, i*S + p, j*S + q].

    Inputs:
    - x: (N, C, H, W) C-contiguous float32 or float64
    - kh, kw, stride, pad: as for im2col
    - out: (C, KH, KW, N, OH, OW) C-contiguous, x's dtype; fully overwritten
    Returns None (the result is in out).
    """
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    oh, ow = _out_size("im2col_t", h, w, kh, kw, stride, pad)
    expected = (c, kh, kw, n, oh, ow)
    got = (out.shape[0], out.shape[1], out.shape[2], out.shape[3], out.shape[4], out.shape[5])
    if got != expected:
        raise ValueError(f"im2col_t: expected out of shape {expected}, received {got}")
    cdef Py_ssize_t OH = oh, OW = ow
    if n * c == 0:
        return
    cdef floating* tall = NULL
    if _shifts_tall(n, kh, kw, stride, pad):
        tall = <floating*> malloc(n * c * h * w * sizeof(floating))
        if tall == NULL:
            raise MemoryError("im2col_t: no memory for a channel-major copy of x")
    with nogil:
        _im2col_t_body(&x[0, 0, 0, 0], n, c, h, w, kh, kw, stride, pad, OH, OW, &out[0, 0, 0, 0, 0, 0],
                       tall, n * c * kh * kw * OH * OW >= PARALLEL_MIN)
    free(tall)


cdef void _col2im_t_body(floating* src, Py_ssize_t n, Py_ssize_t c, Py_ssize_t h, Py_ssize_t w,
                         Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t stride, Py_ssize_t pad,
                         Py_ssize_t OH, Py_ssize_t OW, floating* dst, bint scratch,
                         bint parallel) noexcept nogil:
    """col2im_t's loops (arguments checked): columns at src -> their sums at dst (overwritten).
    ``scratch``: src may be overwritten (col2im_t_scratch); ``parallel``: over OpenMP threads."""
    cdef Py_ssize_t plane_out = h * w, per_tap = n * OH * OW, taps = kh * kw, nc
    if scratch and stride == 1 and OW == w:
        for nc in prange(n * c, schedule="static", use_threads_if=parallel):
            _col2im_plane_same(src + (nc % c) * taps * per_tap + (nc // c) * OH * w, per_tap,
                               dst + nc * plane_out, h, w, kh, kw, pad, OH)
        return
    for nc in prange(n * c, schedule="static", use_threads_if=parallel):
        _col2im_plane(src + (nc % c) * taps * per_tap + (nc // c) * OH * OW, per_tap,
                      dst + nc * plane_out, h, w, kh, kw, stride, pad, OH, OW)


def _check_col2im_t(name, col, out, stride, pad):
    """(OH, OW) after checking col (C, KH, KW, N, OH, OW) against out (N, C, H, W)."""
    c, kh, kw, n = col.shape[0], col.shape[1], col.shape[2], col.shape[3]
    h, w = out.shape[2], out.shape[3]
    oh, ow = _out_size(name, h, w, kh, kw, stride, pad)
    if (out.shape[0], out.shape[1], col.shape[4], col.shape[5]) != (n, c, oh, ow):
        raise ValueError(f"{name}: expected col of shape {(c, kh, kw, n, oh, ow)} for out of shape "
                         f"{(out.shape[0], out.shape[1], h, w)}, received col of shape "
                         f"{(c, kh, kw, n, col.shape[4], col.shape[5])}")
    return oh, ow


def col2im_t(const floating[:, :, :, :, :, ::1] col, Py_ssize_t stride, Py_ssize_t pad,
             floating[:, :, :, ::1] out):
    """col2im from the batch-inside layout: the adjoint of im2col_t.

    Inputs:
    - col: (C, KH, KW, N, OH, OW) C-contiguous float32 or float64
    - stride, pad: as given to im2col_t
    - out: (N, C, H, W) C-contiguous, col's dtype; OVERWRITTEN with the sum of every column
      entry onto its source pixel (entries that fell in the padding are dropped)
    Returns None (the result is in out).
    """
    oh, ow = _check_col2im_t("col2im_t", col, out, stride, pad)
    cdef Py_ssize_t c = col.shape[0], kh = col.shape[1], kw = col.shape[2], n = col.shape[3]
    cdef Py_ssize_t OH = oh, OW = ow
    if n * c == 0:
        return
    with nogil:
        _col2im_t_body(<floating*> &col[0, 0, 0, 0, 0, 0], n, c, out.shape[2], out.shape[3], kh, kw,
                       stride, pad, OH, OW, &out[0, 0, 0, 0], False, n * c * kh * kw * OH * OW >= PARALLEL_MIN)


def col2im_t_scratch(floating[:, :, :, :, :, ::1] col, Py_ssize_t stride, Py_ssize_t pad,
                     floating[:, :, :, ::1] out):
    """col2im_t that may use col as scratch: same result in out, but col's contents are
    undefined afterwards.  The conv's backward pass calls it on its workspace buffer.

    For stride 1 with OW == W ("same" width, the 3x3 pad-1 layers) this lets each tap be
    added in one flat pass instead of row by row (see _col2im_plane_same); other
    geometries run col2im_t's loops.
    """
    oh, ow = _check_col2im_t("col2im_t_scratch", col, out, stride, pad)
    cdef Py_ssize_t c = col.shape[0], kh = col.shape[1], kw = col.shape[2], n = col.shape[3]
    cdef Py_ssize_t OH = oh, OW = ow
    if n * c == 0:
        return
    with nogil:
        _col2im_t_body(&col[0, 0, 0, 0, 0, 0], n, c, out.shape[2], out.shape[3], kh, kw,
                       stride, pad, OH, OW, &out[0, 0, 0, 0], True, n * c * kh * kw * OH * OW >= PARALLEL_MIN)


# ------------------------------------------------------------------ the chunk loops in C
#
# conv_im2col.py's loops over chunks of images (im2col, one GEMM per group, the copy into
# NCHW; and back), whole, for one thread per call and without the GIL -- as winograd.pyx
# does for its loops and for the same reason (blas_gemm.h).  The Python loops stay as the
# fallback and as the reference the tests compare with.

include "chunk_loops.pxi"


cdef _check_buffer(name, arg, floating[::1] buf, Py_ssize_t needed):
    if buf.shape[0] < needed:
        raise ValueError(f"{name}: expected {arg} to hold at least {needed} values, received {buf.shape[0]}")


cdef inline void _add_bias(floating* rows, const floating* bias, Py_ssize_t f, Py_ssize_t p) noexcept nogil:
    """rows (f, p) += bias[:, None]."""
    cdef Py_ssize_t i, j
    for i in range(f):
        for j in range(p):
            rows[i * p + j] += bias[i]


cdef inline void _add_bias_copy(floating* dst, const floating* src, floating bias, Py_ssize_t p) noexcept nogil:
    """dst (p,) = src + bias."""
    cdef Py_ssize_t j
    for j in range(p):
        dst[j] = src[j] + bias


def _check_chunk_layer(name, x_shape, w_shape, kh, kw, stride, pad, arg, got):
    """(OH, OW) of a chunk loop's layer, after checking w_mat (G, F/G, C/G*KH*KW) against x
    (N, C, H, W) and ``arg`` (out or dout) against (N, F, OH, OW)."""
    n, c, h, w = x_shape
    groups, fg, k = w_shape
    oh, ow = _out_size(name, h, w, kh, kw, stride, pad)
    if groups < 1 or c % groups or k != (c // groups) * kh * kw or got != (n, groups * fg, oh, ow):
        raise ValueError(f"{name}: expected w_mat (G, F/G, C/G*{kh}*{kw}) for C={c} and {arg} ({n}, F, {oh}, {ow}), "
                         f"received w_mat {tuple(w_shape)} and {arg} {got}")
    return oh, ow


def forward_chunks(const floating[:, :, :, ::1] x, const floating[:, :, ::1] w_mat, object bias,
                   Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t stride, Py_ssize_t pad,
                   floating[:, :, :, ::1] out, floating[::1] col_buf, floating[::1] out_buf,
                   Py_ssize_t step, long long[::1] next_image):
    """conv_im2col.forward's chunk loop: chunks of ``step`` images, taken from
    ``next_image[0]`` (shared with the other threads, advanced atomically) until the batch
    is done.  Per chunk of m images: the columns (C, KH, KW, m, OH, OW) into col_buf, then per
    group out_g (F/G, m*OH*OW) = W_g @ col_g into out_buf, copied into NCHW with the bias
    added (one image: the GEMM writes out directly).  (A 1x1 stride-1 unpadded layer, which
    needs no columns, has pointwise_forward below.)

    x (N, C, H, W); w_mat (G, F/G, C/G*KH*KW); bias (F,) or None; out (N, F, OH, OW);
    col_buf, out_buf: this thread's workspaces, at least C*KH*KW*step*OH*OW and F*step*OH*OW
    values.
    """
    if not mc_gemm_ready():
        raise RuntimeError("forward_chunks: no BLAS yet (gemm_use)")
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    oh_, ow_ = _check_chunk_layer("forward_chunks", (n, c, h, w), (w_mat.shape[0], w_mat.shape[1], w_mat.shape[2]),
                                  kh, kw, stride, pad, "out", (out.shape[0], out.shape[1], out.shape[2], out.shape[3]))
    cdef Py_ssize_t oh = oh_, ow = ow_, p = oh_ * ow_
    cdef Py_ssize_t groups = w_mat.shape[0], fg = w_mat.shape[1], k = w_mat.shape[2], f = groups * fg
    if step < 1:
        raise ValueError(f"forward_chunks: expected step >= 1, received {step}")
    _check_buffer("forward_chunks", "col_buf", col_buf, c * kh * kw * step * p)
    _check_buffer("forward_chunks", "out_buf", out_buf, f * step * p)
    cdef const floating* bp = _bias_pointer("forward_chunks", bias, f, <const floating*> NULL)
    if n * c * f == 0:
        return
    cdef Py_ssize_t n0, mi, i, g, fi, mp
    cdef floating* tall = NULL
    if _shifts_tall(step, kh, kw, stride, pad):
        tall = <floating*> malloc(step * c * h * w * sizeof(floating))
        if tall == NULL:
            raise MemoryError("forward_chunks: no memory for a channel-major copy of a chunk")
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef const floating* wp = &w_mat[0, 0, 0]
    cdef floating* op = &out[0, 0, 0, 0]
    cdef floating* col = &col_buf[0]
    cdef floating* y = &out_buf[0]
    cdef floating* dst
    with nogil:
        while True:
            n0 = mc_next_chunk(&next_image[0], step)
            if n0 >= n:
                break
            mi = min(step, n - n0)
            mp = mi * p
            _im2col_t_body(xp + n0 * c * h * w, mi, c, h, w, kh, kw, stride, pad, oh, ow, col, tall, False)
            if mi == 1:
                # One image (large layers): its GEMM output is already NCHW, no copy.
                for g in range(groups):
                    dst = op + (n0 * f + g * fg) * p
                    _gemm(False, False, fg, p, k, wp + g * fg * k, k, col + g * k * p, p, 0, dst, p)
                    if bp != NULL:
                        _add_bias(dst, bp + g * fg, fg, p)
                continue
            for g in range(groups):
                _gemm(False, False, fg, mp, k, wp + g * fg * k, k, col + g * k * mp, mp, 0, y + g * fg * mp, mp)
            # y (F, m, P) -> out[n0:n0 + m] (m, F, P), the bias added on the way.
            for i in range(mi):
                for fi in range(f):
                    dst = op + ((n0 + i) * f + fi) * p
                    if bp == NULL:
                        memcpy(dst, y + (fi * mi + i) * p, p * sizeof(floating))
                    else:
                        _add_bias_copy(dst, y + (fi * mi + i) * p, bp[fi], p)
    free(tall)


def backward_chunks(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] dout,
                    const floating[:, :, ::1] w_mat, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t stride,
                    Py_ssize_t pad, floating[:, :, :, ::1] dx, floating[:, :, ::1] dw_t,
                    floating[::1] col_buf, floating[::1] dout_buf,
                    Py_ssize_t step, Py_ssize_t first, Py_ssize_t every):
    """conv_im2col.backward's chunk loop for one thread: chunks number first, first + every,
    first + 2*every, ... of ``step`` images each (a fixed share, so that dW's sum does not
    depend on the timing).  Per chunk of m images: dout copied to (F, m*OH*OW) in dout_buf
    (one image: read in place); the columns recomputed into col_buf and
    dW_g^T += col_g @ dout_g^T; then dcol_g = W_g^T @ dout_g into col_buf, added back onto
    the chunk's images of dx.  (A 1x1 stride-1 unpadded layer has pointwise_backward below.)

    x (N, C, H, W); dout (N, F, OH, OW); w_mat (G, F/G, C/G*KH*KW); dx (N, C, H, W), or None
    when not wanted; dw_t (G, C/G*KH*KW, F/G), added to, or None when not wanted;
    col_buf, dout_buf: this thread's workspaces (C*KH*KW*step*OH*OW, F*step*OH*OW values).
    """
    if not mc_gemm_ready():
        raise RuntimeError("backward_chunks: no BLAS yet (gemm_use)")
    cdef bint need_dx = dx is not None, need_dw = dw_t is not None
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    oh_, ow_ = _check_chunk_layer("backward_chunks", (n, c, h, w), (w_mat.shape[0], w_mat.shape[1], w_mat.shape[2]),
                                  kh, kw, stride, pad, "dout", (dout.shape[0], dout.shape[1], dout.shape[2], dout.shape[3]))
    cdef Py_ssize_t oh = oh_, ow = ow_, p = oh_ * ow_
    cdef Py_ssize_t groups = w_mat.shape[0], fg = w_mat.shape[1], k = w_mat.shape[2], f = groups * fg
    if need_dx and (dx.shape[0], dx.shape[1], dx.shape[2], dx.shape[3]) != (n, c, h, w):
        raise ValueError(f"backward_chunks: expected dx {(n, c, h, w)}, received {(dx.shape[0], dx.shape[1], dx.shape[2], dx.shape[3])}")
    if need_dw and (dw_t.shape[0], dw_t.shape[1], dw_t.shape[2]) != (groups, k, fg):
        raise ValueError(f"backward_chunks: expected dw_t {(groups, k, fg)}, received {(dw_t.shape[0], dw_t.shape[1], dw_t.shape[2])}")
    if step < 1 or every < 1 or first < 0:
        raise ValueError(f"backward_chunks: expected step, every >= 1 and first >= 0, received {step}, {every}, {first}")
    _check_buffer("backward_chunks", "col_buf", col_buf, c * kh * kw * step * p)
    _check_buffer("backward_chunks", "dout_buf", dout_buf, f * step * p)
    if n * c * f == 0 or not (need_dx or need_dw):
        return
    cdef Py_ssize_t n0, mi, i, g, fi, mp
    cdef floating* tall = NULL
    if need_dw and _shifts_tall(step, kh, kw, stride, pad):
        tall = <floating*> malloc(step * c * h * w * sizeof(floating))
        if tall == NULL:
            raise MemoryError("backward_chunks: no memory for a channel-major copy of a chunk")
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef const floating* gp = &dout[0, 0, 0, 0]
    cdef const floating* wp = &w_mat[0, 0, 0]
    cdef const floating* d
    cdef floating* dxp = &dx[0, 0, 0, 0] if need_dx else NULL
    cdef floating* dwp = &dw_t[0, 0, 0] if need_dw else NULL
    cdef floating* col = &col_buf[0]
    cdef floating* dbuf = &dout_buf[0]
    with nogil:
        n0 = first * step
        while n0 < n:
            mi = min(step, n - n0)
            mp = mi * p
            if mi == 1:
                d = gp + n0 * f * p                       # already (F, OH*OW): no copy
            else:
                for fi in range(f):
                    for i in range(mi):
                        memcpy(dbuf + (fi * mi + i) * p, gp + ((n0 + i) * f + fi) * p, p * sizeof(floating))
                d = dbuf
            if need_dw:
                _im2col_t_body(xp + n0 * c * h * w, mi, c, h, w, kh, kw, stride, pad, oh, ow, col, tall, False)
                for g in range(groups):  # dW_g^T (K, F/G) += col_g (K, m*P) @ dout_g^T
                    _gemm(False, True, k, fg, mp, col + g * k * mp, mp, d + g * fg * mp, mp, 1, dwp + g * k * fg, fg)
            if need_dx:
                for g in range(groups):  # dcol_g (K, m*P) = W_g^T @ dout_g, over the columns
                    _gemm(True, False, k, mp, fg, wp + g * fg * k, k, d + g * fg * mp, mp, 0, col + g * k * mp, mp)
                _col2im_t_body(col, mi, c, h, w, kh, kw, stride, pad, oh, ow, dxp + n0 * c * h * w, True, False)
            n0 += every * step
    free(tall)


# ---------------------------------------------------------------- 1x1 layers on OpenMP threads
#
# A 1x1 stride-1 unpadded layer needs no columns and no workspace: per image and group the
# forward is out_g = W_g @ x_g, the backward dW_g^T += x_g @ dout_g^T and dx_g = W_g^T @ dout_g.
# So its loop over the images needs nothing from Python per thread, and runs on OpenMP's
# threads rather than on minicnn.runtime's pool.  An OpenMP region needs neither Python nor
# the GIL to start and join: ~5 us (a call with almost no work, 2-core Xeon VM: 6.3 us on two
# threads, 1.6 on one).  A pool thread runs Python before and after its share -- its
# closure, its workspaces, handing its result back -- and each time it waits for the GIL
# the calling thread holds, waking it costs 0.03-0.05 ms on that VM: at the start and at
# the end of every call.  Measured there, ResNet-50's 256 -> 64 layer at 14x14, batch 32,
# pool -> OpenMP: forward 1.17-1.19 -> 1.07 ms, backward 2.15-2.17 -> 2.05-2.08 ms.

cdef extern from "pointwise_gemm.h" nogil:
    int minicnn_pointwise_ready()
    int minicnn_pointwise_gemm(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* a, Py_ssize_t lda,
                               const float* b, Py_ssize_t ldb, const float* bias, float* c, Py_ssize_t ldc)


def pointwise_ready():
    """True if this CPU and build run the AVX-512 kernel of 1x1 layers' forward GEMMs (pointwise_gemm.h)."""
    return bool(minicnn_pointwise_ready())


cdef bint _use_pointwise_kernel(name, bint kernel, floating* like) except -1:
    """Whether pointwise_forward runs its GEMMs by pointwise_gemm.h: asked for (``kernel``),
    float32, and a CPU for it."""
    if not kernel:
        return False
    problem = None
    if floating is double:
        problem = "is float32 only, received float64 arrays"
    elif not minicnn_pointwise_ready():
        problem = "needs AVX-512, which this CPU or build lacks"
    if problem is not None:
        raise ValueError(f"{name}: the pointwise kernel {problem}")
    return True


cdef void _pointwise_image_forward(const floating* xp, const floating* wp, const floating* bp, floating* op,
                                   Py_ssize_t i, Py_ssize_t c, Py_ssize_t groups, Py_ssize_t fg,
                                   Py_ssize_t p, bint own_gemm) noexcept nogil:
    cdef Py_ssize_t g, cg = c // groups, f = groups * fg
    cdef floating* dst
    for g in range(groups):
        dst = op + (i * f + g * fg) * p
        if floating is float:
            if own_gemm:     # the bias comes in with the kernel's first pass
                minicnn_pointwise_gemm(fg, p, cg, wp + g * fg * cg, cg, xp + (i * c + g * cg) * p, p,
                                       bp + g * fg if bp != NULL else NULL, dst, p)
                continue
        _gemm(False, False, fg, p, cg, wp + g * fg * cg, cg, xp + (i * c + g * cg) * p, p, 0, dst, p)
        if bp != NULL:
            _add_bias(dst, bp + g * fg, fg, p)


def _check_pointwise(name, x_shape, w_shape, arg, got):
    n, c, h, w = x_shape
    groups, fg, cg = w_shape
    if groups < 1 or c % groups or cg != c // groups or got != (n, groups * fg, h, w):
        raise ValueError(f"{name}: expected w_mat (G, F/G, C/G) for C={c} and {arg} ({n}, F, {h}, {w}), "
                         f"received w_mat {tuple(w_shape)} and {arg} {got}")


def pointwise_forward(const floating[:, :, :, ::1] x, const floating[:, :, ::1] w_mat, object bias,
                      floating[:, :, :, ::1] out, int threads, bint pointwise_kernel=False):
    """A 1x1 stride-1 unpadded layer's forward, out[i] = W_g @ x[i]_g (+ bias) per image and
    group, the images shared out over ``threads`` OpenMP threads as they come free (BLAS must
    be single-threaded meanwhile).  The GEMMs by BLAS, or -- ``pointwise_kernel``, float32 on
    an AVX-512 CPU only -- by the kernel of pointwise_gemm.h.

    x (N, C, H, W); w_mat (G, F/G, C/G); bias (F,) or None; out (N, F, H, W), overwritten.
    """
    if not mc_gemm_ready():
        raise RuntimeError("pointwise_forward: no BLAS yet (gemm_use)")
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], p = x.shape[2] * x.shape[3]
    cdef Py_ssize_t groups = w_mat.shape[0], fg = w_mat.shape[1], i
    _check_pointwise("pointwise_forward", (n, c, x.shape[2], x.shape[3]), (groups, fg, w_mat.shape[2]),
                     "out", (out.shape[0], out.shape[1], out.shape[2], out.shape[3]))
    if threads < 1:
        raise ValueError(f"pointwise_forward: expected threads >= 1, received {threads}")
    cdef bint own_gemm = _use_pointwise_kernel("pointwise_forward", pointwise_kernel, <floating*> NULL)
    cdef const floating* bp = _bias_pointer("pointwise_forward", bias, groups * fg, <const floating*> NULL)
    if n * c * fg == 0:
        return
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef const floating* wp = &w_mat[0, 0, 0]
    cdef floating* op = &out[0, 0, 0, 0]
    for i in prange(n, nogil=True, schedule="dynamic", num_threads=threads, use_threads_if=threads > 1):
        _pointwise_image_forward(xp, wp, bp, op, i, c, groups, fg, p, own_gemm)


cdef void _pointwise_share_backward(const floating* xp, const floating* gp, const floating* wp, floating* dxp,
                                    floating* dwp, Py_ssize_t first, Py_ssize_t every, Py_ssize_t n,
                                    Py_ssize_t c, Py_ssize_t groups, Py_ssize_t fg, Py_ssize_t p) noexcept nogil:
    cdef Py_ssize_t i = first, g, cg = c // groups, f = groups * fg
    cdef const floating* d
    while i < n:
        for g in range(groups):
            d = gp + (i * f + g * fg) * p
            if dwp != NULL:      # dW_g^T (Cg, F/G) += x_g (Cg, P) @ dout_g^T
                _gemm(False, True, cg, fg, p, xp + (i * c + g * cg) * p, p, d, p, 1, dwp + g * cg * fg, fg)
            if dxp != NULL:      # dx_g (Cg, P) = W_g^T @ dout_g
                _gemm(True, False, cg, p, fg, wp + g * fg * cg, cg, d, p, 0, dxp + (i * c + g * cg) * p, p)
        i += every


def pointwise_backward(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] dout,
                       const floating[:, :, ::1] w_mat, floating[:, :, :, ::1] dx,
                       floating[:, :, :, ::1] dw_parts, int threads):
    """A 1x1 stride-1 unpadded layer's backward, per image and group dx_g = W_g^T @ dout_g and
    dW_g^T += x_g @ dout_g^T, on ``threads`` OpenMP threads (BLAS single-threaded meanwhile).
    Share t of the images -- t, t + T, t + 2T, ... -- sums its dW^T into dw_parts[t]: what each
    part holds does not depend on which thread ran it or when, so the caller's sum of the parts
    in order gives the same bits every call.

    x (N, C, H, W); dout (N, F, H, W); w_mat (G, F/G, C/G); dx (N, C, H, W), overwritten, or None;
    dw_parts (threads, G, C/G, F/G), added to, or None.
    """
    if not mc_gemm_ready():
        raise RuntimeError("pointwise_backward: no BLAS yet (gemm_use)")
    cdef bint need_dx = dx is not None, need_dw = dw_parts is not None
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], p = x.shape[2] * x.shape[3]
    cdef Py_ssize_t groups = w_mat.shape[0], fg = w_mat.shape[1], cg = w_mat.shape[2], f = groups * fg
    _check_pointwise("pointwise_backward", (n, c, x.shape[2], x.shape[3]), (groups, fg, cg),
                     "dout", (dout.shape[0], dout.shape[1], dout.shape[2], dout.shape[3]))
    if threads < 1:
        raise ValueError(f"pointwise_backward: expected threads >= 1, received {threads}")
    if need_dx and (dx.shape[0], dx.shape[1], dx.shape[2], dx.shape[3]) != (x.shape[0], x.shape[1], x.shape[2], x.shape[3]):
        raise ValueError(f"pointwise_backward: expected dx {(x.shape[0], x.shape[1], x.shape[2], x.shape[3])}, "
                         f"received {(dx.shape[0], dx.shape[1], dx.shape[2], dx.shape[3])}")
    if need_dw and (dw_parts.shape[0], dw_parts.shape[1], dw_parts.shape[2], dw_parts.shape[3]) != (threads, groups, cg, fg):
        raise ValueError(f"pointwise_backward: expected dw_parts {(threads, groups, cg, fg)}, received "
                         f"{(dw_parts.shape[0], dw_parts.shape[1], dw_parts.shape[2], dw_parts.shape[3])}")
    if n * c * f == 0 or not (need_dx or need_dw):
        return
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef const floating* gp = &dout[0, 0, 0, 0]
    cdef const floating* wp = &w_mat[0, 0, 0]
    cdef floating* dxp = &dx[0, 0, 0, 0] if need_dx else NULL
    cdef floating* dwp = &dw_parts[0, 0, 0, 0] if need_dw else NULL
    cdef Py_ssize_t t
    # A prange over the shares, not the images: whichever OpenMP thread runs share t (and if
    # fewer threads came than asked, one runs two shares), share t is the same images in the
    # same order.
    for t in prange(threads, nogil=True, schedule="static", chunksize=1, num_threads=threads,
                    use_threads_if=threads > 1):
        _pointwise_share_backward(xp, gp, wp, dxp, dwp + t * c * fg if need_dw else NULL,
                                  t, threads, n, c, groups, fg, p)

