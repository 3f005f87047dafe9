# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Direct stride-1 convolution in float32, with AVX-512 / AVX2 code chosen at run time.

The kernel is C (``direct_conv.h``): compiled for instruction sets the baseline build does
not assume, and picked by asking the CPU.  This module is its Python face::

    x     (N, C, H, W)                     float32, C-contiguous
    wpk   (ceil(F / FB), C, KH, KW, FB)    the weights packed by ``pack_weights``
    b     (F,) or None
    out   (N, F, OH, OW),  OH = H + 2*pad_h - KH + 1,  OW likewise

``isa()`` is 0 where the kernel cannot run (then ``minicnn.functional.conv`` keeps im2col).
"""
import numpy as np

cdef extern from "direct_conv.h" nogil:
    int minicnn_direct_isa()
    long minicnn_direct_fblock(int isa)
    long minicnn_direct_row_len(int isa, long ow, long kw)
    int minicnn_direct_conv_f32(int isa, const float* x, long n, long c, long h, long w,
                                const float* wpk, long f, long kh, long kw,
                                long pad_h, long pad_w, const float* bias,
                                float* out, long oh, long ow, float* xpad)
    int minicnn_direct_lanes_fit(int isa, long f, long ow)
    int minicnn_direct_conv_lanes_f32(int isa, const float* x, long n, long c, long h, long w,
                                      const float* wpk, long f, long kh, long kw,
                                      long pad_h, long pad_w, const float* bias,
                                      float* out, long oh, long ow, float* xpad)
    long minicnn_direct_grad_w_scratch(int isa, long m, long c, long f, long oh, long ow,
                                       long kh, long kw)
    int minicnn_direct_grad_w_f32(int isa, const float* x, const float* dout, long m, long c,
                                  long h, long w, long f, long kh, long kw, long pad_h, long pad_w,
                                  long oh, long ow, float* dw, float* scratch)

ISA_NAMES = {0: None, 1: "avx2", 2: "avx512"}
LANES = 16      # the filters-in-lanes kernel's block: a vector of 16 filters


def isa():
    """The best instruction set the kernel runs with on this CPU: 2 AVX-512, 1 AVX2 + FMA, 0 none."""
    return minicnn_direct_isa()


def pack_weights(w, int isa_level, long block=0):
    """w (F, C, KH, KW) -> (ceil(F / FB), C, KH, KW, FB) float32, zero filters past F: each
    register block's weights for one (c, p, q) lie side by side.  FB: the kernel's block of
    filters (8), or ``block`` -- LANES = 16 packs for the filters-in-lanes kernel, which
    conv() then runs (where lanes_fit() says it can)."""
    cdef long fb = block if block > 0 else minicnn_direct_fblock(isa_level)
    f, c, kh, kw = w.shape
    blocks = -(-f // fb)
    wpk = np.zeros((blocks * fb, c, kh, kw), dtype=np.float32)
    wpk[:f] = w
    return np.ascontiguousarray(wpk.reshape(blocks, fb, c, kh, kw).transpose(0, 2, 3, 4, 1))


def scratch_len(int isa_level, long c, long oh, long ow, long kh, long kw):
    """Floats of scratch conv() needs (one padded image)."""
    return c * (oh + kh - 1) * minicnn_direct_row_len(isa_level, ow, kw)


def _check_conv(name, x, long f, long kh, long kw, long pad_h, long pad_w, b, out, scratch,
                int isa_level):
    """ValueError unless out, b and scratch fit x and an f-filter kh x kw stride-1 conv."""
    n, c, h, w = x.shape[:4]
    oh, ow = out.shape[2], out.shape[3]
    if out.shape[0] != n or out.shape[1] != f or oh != h + 2 * pad_h - kh + 1 \
            or ow != w + 2 * pad_w - kw + 1 or oh < 1 or ow < 1 or pad_h < 0 or pad_w < 0:
        raise ValueError(f"{name}: out of shape {tuple(out.shape)} does not fit x of shape "
                         f"{tuple(x.shape)}, a {kh}x{kw} kernel and padding ({pad_h}, {pad_w})")
    if scratch.shape[0] < scratch_len(isa_level, c, oh, ow, kh, kw):
        raise ValueError(f"{name}: scratch too small")
    if b is not None and b.shape[0] != f:
        raise ValueError(f"{name}: expected b of shape ({f},), received {tuple(b.shape)}")


def conv(const float[:, :, :, ::1] x, const float[:, :, :, :, ::1] wpk, long f,
         long pad_h, long pad_w, b, float[:, :, :, ::1] out, float[::1] scratch, int isa_level):
    """out = the stride-1 convolution of x with the packed weights (+ b), for all of x's images:
    by the filters-in-lanes kernel if they were packed in blocks of LANES, else by the kernel
    with the output columns in the lanes."""
    cdef long n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    cdef long kh = wpk.shape[2], kw = wpk.shape[3]
    cdef long oh = out.shape[2], ow = out.shape[3]
    cdef const float[::1] bias
    cdef const float* bias_ptr = NULL
    cdef bint lanes = wpk.shape[4] == LANES
    if wpk.shape[1] != c or wpk.shape[0] * wpk.shape[4] < f \
            or not (lanes or wpk.shape[4] == minicnn_direct_fblock(isa_level)):
        raise ValueError(f"direct.conv: packed weights of shape {tuple(wpk.shape)} do not fit "
                         f"x with {c} channels and {f} filters")
    _check_conv("direct.conv", x, f, kh, kw, pad_h, pad_w, b, out, scratch, isa_level)
    if lanes and not minicnn_direct_lanes_fit(isa_level, f, ow):
        raise ValueError(f"direct.conv: weights packed for the filters-in-lanes kernel, which does not "
                         f"take {f} filters and rows of {ow} with instruction set "
                         f"{ISA_NAMES.get(isa_level, isa_level)}")
    if b is not None:
        bias = b
        bias_ptr = &bias[0]
    if n == 0:
        return
    cdef int rc
    with nogil:
        if lanes:
            rc = minicnn_direct_conv_lanes_f32(isa_level, &x[0, 0, 0, 0], n, c, h, w, &wpk[0, 0, 0, 0, 0],
                                               f, kh, kw, pad_h, pad_w, bias_ptr, &out[0, 0, 0, 0],
                                               oh, ow, &scratch[0])
        else:
            rc = minicnn_direct_conv_f32(isa_level, &x[0, 0, 0, 0], n, c, h, w, &wpk[0, 0, 0, 0, 0], f,
                                         kh, kw, pad_h, pad_w, bias_ptr, &out[0, 0, 0, 0], oh, ow,
                                         &scratch[0])
    if rc != 0:
        raise RuntimeError(f"direct.conv: this CPU cannot run instruction set {ISA_NAMES.get(isa_level, isa_level)}")


def lanes_fit(int isa_level, long f, long ow):
    """True if the filters-in-lanes kernel runs a layer of f filters with rows of ow outputs on
    this instruction set (then pack the weights with block=LANES)."""
    return bool(minicnn_direct_lanes_fit(isa_level, f, ow))


def grad_w_scratch_len(int isa_level, long m, long c, long f, long oh, long ow, long kh, long kw):
    """Floats of scratch grad_w() needs for m images (their padded x and dout)."""
    return minicnn_direct_grad_w_scratch(isa_level, m, c, f, oh, ow, kh, kw)


def grad_w(const float[:, :, :, ::1] x, const float[:, :, :, ::1] dout, long pad_h, long pad_w,
           float[:, :, :, ::1] dw, float[::1] scratch, int isa_level):
    """dw += the weight gradient of the stride-1 conv over all of x's images:
    dw[f, c, p, q] += sum_{n, i, j} dout[n, f, i, j] * xpad[n, c, i + p, j + q]."""
    cdef long m = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    cdef long f = dw.shape[0], kh = dw.shape[2], kw = dw.shape[3]
    cdef long oh = dout.shape[2], ow = dout.shape[3]
    if dw.shape[1] != c or dout.shape[0] != m or dout.shape[1] != f \
            or oh != h + 2 * pad_h - kh + 1 or ow != w + 2 * pad_w - kw + 1 \
            or oh < 1 or ow < 1 or pad_h < 0 or pad_w < 0:
        raise ValueError(f"direct.grad_w: x {tuple(x.shape)}, dout {tuple(dout.shape)} and dw "
                         f"{tuple(dw.shape)} with padding ({pad_h}, {pad_w}) are not one stride-1 conv")
    if scratch.shape[0] < grad_w_scratch_len(isa_level, m, c, f, oh, ow, kh, kw):
        raise ValueError("direct.grad_w: scratch too small")
    if m == 0:
        return
    cdef int rc
    with nogil:
        rc = minicnn_direct_grad_w_f32(isa_level, &x[0, 0, 0, 0], &dout[0, 0, 0, 0], m, c, h, w, f,
                                       kh, kw, pad_h, pad_w, oh, ow, &dw[0, 0, 0, 0], &scratch[0])
    if rc != 0:
        raise RuntimeError(f"direct.grad_w: this CPU cannot run instruction set {ISA_NAMES.get(isa_level, isa_level)}")
