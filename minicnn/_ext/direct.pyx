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


def isa():
    """The best instruction set the kernel runs with on this CPU: 2 AVX-512, 1 AVX2 + FMA, 0 none."""
    return minicnn_direct_isa()


def pack_weights(w, int isa_level):
    """w (F, C, KH, KW) -> (ceil(F / FB), C, KH, KW, FB) float32, zero filters past F: each
    register block's weights for one (c, p, q) lie side by side."""
    cdef long fb = minicnn_direct_fblock(isa_level)
    f, c, kh, kw = w.shape
    blocks = -(-f // fb)
    wpk = np.zeros((blocks * fb, c, kh, kw), dtype=np.float32)
    wpk[:f] = w
    return np.ascontiguousarray(wpk.reshape(blocks, fb, c, kh, kw).transpose(0, 2, 3, 4, 1))


def scratch_len(int isa_level, long c, long oh, long ow, long kh, long kw):
    """Floats of scratch conv() needs (one padded image)."""
    return c * (oh + kh - 1) * minicnn_direct_row_len(isa_level, ow, kw)


def conv(const float[:, :, :, ::1] x, const float[:, :, :, :, ::1] wpk, long f,
         long pad_h, long pad_w, b, float[:, :, :, ::1] out, float[::1] scratch, int isa_level):
    """out = the stride-1 convolution of x with the packed weights (+ b), for all of x's images."""
    cdef long n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    cdef long kh = wpk.shape[2], kw = wpk.shape[3]
    cdef long oh = out.shape[2], ow = out.shape[3]
    cdef const float[::1] bias
    cdef const float* bias_ptr = NULL
    if wpk.shape[1] != c or wpk.shape[4] != minicnn_direct_fblock(isa_level) \
            or wpk.shape[0] * wpk.shape[4] < f:
        raise ValueError(f"direct.conv: packed weights of shape {tuple(wpk.shape)} do not fit "
                         f"x with {c} channels and {f} filters")
    if out.shape[0] != n or out.shape[1] != f or oh != h + 2 * pad_h - kh + 1 \
            or ow != w + 2 * pad_w - kw + 1 or oh < 1 or ow < 1 or pad_h < 0 or pad_w < 0:
        raise ValueError(f"direct.conv: out of shape {tuple(out.shape)} does not fit x of shape "
                         f"{tuple(x.shape)}, a {kh}x{kw} kernel and padding ({pad_h}, {pad_w})")
    if scratch.shape[0] < scratch_len(isa_level, c, oh, ow, kh, kw):
        raise ValueError("direct.conv: scratch too small")
    if b is not None:
        bias = b
        if bias.shape[0] != f:
            raise ValueError(f"direct.conv: expected b of shape ({f},), received {tuple(b.shape)}")
        bias_ptr = &bias[0]
    if n == 0:
        return
    cdef int rc
    with nogil:
        rc = minicnn_direct_conv_f32(isa_level, &x[0, 0, 0, 0], n, c, h, w, &wpk[0, 0, 0, 0, 0], f,
                                     kh, kw, pad_h, pad_w, bias_ptr, &out[0, 0, 0, 0], oh, ow,
                                     &scratch[0])
    if rc != 0:
        raise RuntimeError(f"direct.conv: this CPU cannot run instruction set {ISA_NAMES.get(isa_level, isa_level)}")


def lanes_fit(int isa_level, long f, long ow):
    """True if conv_lanes runs a layer of f filters with rows of ow outputs on this instruction set."""
    return bool(minicnn_direct_lanes_fit(isa_level, f, ow))


def conv_lanes(const float[:, :, :, ::1] x, const float[:, :, :, ::1] wpk, long pad_h, long pad_w, b,
               float[:, :, :, ::1] out, float[::1] scratch, int isa_level):
    """conv() with the filters in the vector lanes (direct_conv.h says when that pays):
    wpk (C, KH, KW, F) -- w.transpose(1, 2, 3, 0) -- for a layer that lanes_fit() accepts."""
    cdef long n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    cdef long kh = wpk.shape[1], kw = wpk.shape[2], f = wpk.shape[3]
    cdef long oh = out.shape[2], ow = out.shape[3]
    cdef const float[::1] bias
    cdef const float* bias_ptr = NULL
    if wpk.shape[0] != c or out.shape[0] != n or out.shape[1] != f \
            or oh != h + 2 * pad_h - kh + 1 or ow != w + 2 * pad_w - kw + 1 \
            or oh < 1 or ow < 1 or pad_h < 0 or pad_w < 0:
        raise ValueError(f"direct.conv_lanes: x {tuple(x.shape)}, weights {tuple(wpk.shape)} and out "
                         f"{tuple(out.shape)} with padding ({pad_h}, {pad_w}) are not one stride-1 conv")
    if not minicnn_direct_lanes_fit(isa_level, f, ow):
        raise ValueError(f"direct.conv_lanes: {f} filters and rows of {ow} do not fit the kernel "
                         f"with instruction set {ISA_NAMES.get(isa_level, isa_level)}")
    if scratch.shape[0] < scratch_len(isa_level, c, oh, ow, kh, kw):
        raise ValueError("direct.conv_lanes: scratch too small")
    if b is not None:
        bias = b
        if bias.shape[0] != f:
            raise ValueError(f"direct.conv_lanes: expected b of shape ({f},), received {tuple(b.shape)}")
        bias_ptr = &bias[0]
    if n == 0:
        return
    cdef int rc
    with nogil:
        rc = minicnn_direct_conv_lanes_f32(isa_level, &x[0, 0, 0, 0], n, c, h, w, &wpk[0, 0, 0, 0], f,
                                           kh, kw, pad_h, pad_w, bias_ptr, &out[0, 0, 0, 0], oh, ow,
                                           &scratch[0])
    if rc != 0:
        raise RuntimeError(f"direct.conv_lanes: this CPU cannot run instruction set {ISA_NAMES.get(isa_level, isa_level)}")


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
