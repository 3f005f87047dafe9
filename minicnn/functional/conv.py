"""2-D convolution (cross-correlation, as every deep-learning library computes it).

    out[n, f, i, j] = b[f] + sum_{c, p, q} w[f, c, p, q] * xpad[n, g*Cg + c, i*S + p, j*S + q]

where ``g`` is the group of filter ``f``: with ``groups=G`` the C input channels and
F filters are split into G independent convolutions of C/G -> F/G channels each
(AlexNet's two-GPU split, ResNeXt's cardinality; G = C is a depthwise conv).

Shapes::

    x    (N, C, H, W)
    w    (F, C // G, KH, KW)
    b    (F,) or None
    out  (N, F, OH, OW),  OH = (H + 2*pad - KH) // stride + 1,  OW likewise

Two versions:

* ``conv2d_forward_naive`` / ``conv2d_backward_naive`` -- a loop over output positions,
  one window at a time: slow, but it is the definition, and the tests' reference;
* ``conv2d_forward`` / ``conv2d_backward`` -- im2col + GEMM, the one that is used.
  The windows of each image become the columns of a (C*KH*KW, OH*OW) matrix, and the
  whole layer is one batched matrix product per group:
  ``(G, F/G, Cg*KH*KW) @ (N, G, Cg*KH*KW, OH*OW) -> (N, G, F/G, OH*OW)``, which is
  already the NCHW output.  Grouped convolution is the same single matmul with a
  group axis, never a Python loop over groups.
"""
from minicnn import backend
from minicnn.functional._validate import check_float_array, check_int, check_shape, output_size
from minicnn.functional.im2col import col2im, im2col


def _conv_geometry(op, x, w, b, stride, pad, groups):
    """Validate conv arguments; return (stride, pad, groups, OH, OW)."""
    check_float_array(op, "x", x, ndim=4)
    check_float_array(op, "w", w, ndim=4, dtype=x.dtype)
    stride = check_int(op, "stride", stride, 1)
    pad = check_int(op, "pad", pad, 0)
    groups = check_int(op, "groups", groups, 1)
    n, c, h, wd = x.shape
    f, cg, kh, kw = w.shape
    if c % groups or f % groups:
        raise ValueError(f"{op}: expected input channels ({c}) and filters ({f}) divisible by "
                         f"groups, received groups={groups}")
    if cg * groups != c:
        raise ValueError(f"{op}: expected w of shape (F, C // groups, KH, KW) = ({f}, {c // groups}, "
                         f"{kh}, {kw}) for x with C={c} channels, received w of shape {tuple(w.shape)}")
    if kh < 1 or kw < 1 or f < 1:
        raise ValueError(f"{op}: expected a non-empty w, received shape {tuple(w.shape)}")
    if b is not None:
        check_float_array(op, "b", b, ndim=1, dtype=x.dtype)
        check_shape(op, "b", b, (f,))
    oh, ow = output_size(op, h, wd, kh, kw, stride, pad)
    return stride, pad, groups, oh, ow


def conv2d_forward(x, w, b, stride=1, pad=0, groups=1):
    """Convolution by im2col + one batched GEMM.

    Inputs:
    - x: (N, C, H, W) float32 or float64
    - w: (F, C // groups, KH, KW), same dtype;  b: (F,) or None
    - stride, pad, groups: ints (stride >= 1, pad >= 0, groups divides C and F)
    Returns (out, cache); out: (N, F, OH, OW).
    """
    op = "conv2d_forward"
    xp = backend.get_array_module(x=x, w=w, b=b, op=op)
    stride, pad, groups, oh, ow = _conv_geometry(op, x, w, b, stride, pad, groups)
    n, c = x.shape[:2]
    f, cg, kh, kw = w.shape
    col = im2col(x, kh, kw, stride, pad)                      # (N, C, KH, KW, OH, OW)
    col_mat = col.reshape(n, groups, cg * kh * kw, oh * ow)   # a view: no copy
    w_mat = w.reshape(groups, f // groups, cg * kh * kw)
    out = xp.matmul(w_mat, col_mat).reshape(n, f, oh, ow)    # (N, G, F/G, P) is NCHW already
    if b is not None:
        out += b.reshape(1, f, 1, 1)
    cache = (x.shape, w, b is not None, col, stride, pad, groups)
    return out, cache


def conv2d_backward(dout, cache):
    """Backward pass of conv2d_forward.

    Inputs:
    - dout: (N, F, OH, OW) upstream gradient (never modified)
    - cache: from conv2d_forward
    Returns (dx, dw, db): (N, C, H, W), (F, C // groups, KH, KW), (F,) (db is None without bias).
    """
    x_shape, w, has_bias, col, stride, pad, groups = cache
    xp = backend.get_array_module(dout=dout, w=w, op="conv2d_backward")
    n, c, kh, kw, oh, ow = col.shape
    f, cg = w.shape[:2]
    check_float_array("conv2d_backward", "dout", dout, dtype=w.dtype)
    check_shape("conv2d_backward", "dout", dout, (n, f, oh, ow))

    dout_mat = dout.reshape(n, groups, f // groups, oh * ow)
    col_mat = col.reshape(n, groups, cg * kh * kw, oh * ow)
    w_mat = w.reshape(groups, f // groups, cg * kh * kw)
    db = dout.sum(axis=(0, 2, 3)) if has_bias else None
    # dW = sum over images of dout_n @ col_n^T; the transpose is a view BLAS reads directly.
    dw = xp.matmul(dout_mat, col_mat.swapaxes(2, 3)).sum(axis=0).reshape(w.shape)
    # dcol = W^T @ dout per image and group; col2im adds each column back onto its window.
    dcol = xp.matmul(w_mat.swapaxes(1, 2), dout_mat).reshape(n, c, kh, kw, oh, ow)
    dx = col2im(dcol, x_shape, stride, pad)
    return dx, dw, db


def conv2d_forward_naive(x, w, b, stride=1, pad=0, groups=1):
    """Convolution as its definition: for every output position, a window times the filters.

    Same inputs, outputs and errors as conv2d_forward; written for reading and as the
    tests' reference, not for speed.
    """
    op = "conv2d_forward_naive"
    xp = backend.get_array_module(x=x, w=w, b=b, op=op)
    stride, pad, groups, oh, ow = _conv_geometry(op, x, w, b, stride, pad, groups)
    n, c, h, wd = x.shape
    f, cg, kh, kw = w.shape
    fg = f // groups
    xpad = xp.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = xp.zeros((n, f, oh, ow), dtype=x.dtype)
    for g in range(groups):
        w_g = w[g * fg:(g + 1) * fg]                                 # (F/G, Cg, KH, KW)
        for i in range(oh):
            for j in range(ow):
                window = xpad[:, g * cg:(g + 1) * cg,
                              i * stride:i * stride + kh, j * stride:j * stride + kw]  # (N, Cg, KH, KW)
                out[:, g * fg:(g + 1) * fg, i, j] = xp.tensordot(window, w_g, axes=([1, 2, 3], [1, 2, 3]))
    if b is not None:
        out += b.reshape(1, f, 1, 1)
    return out, (x, w, b is not None, stride, pad, groups)


def conv2d_backward_naive(dout, cache):
    """Backward of conv2d_forward_naive, window by window: each output's gradient flows
    back to the window (dx) and the filter (dw) that produced it.

    Returns (dx, dw, db) with the shapes of x, w and b.
    """
    x, w, has_bias, stride, pad, groups = cache
    xp = backend.get_array_module(dout=dout, x=x, op="conv2d_backward_naive")
    n, c, h, wd = x.shape
    f, cg, kh, kw = w.shape
    fg = f // groups
    oh, ow = dout.shape[2:]
    check_shape("conv2d_backward_naive", "dout", dout, (n, f, oh, ow))
    xpad = xp.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dxpad = xp.zeros_like(xpad)
    dw = xp.zeros_like(w)
    for g in range(groups):
        cs, fs = slice(g * cg, (g + 1) * cg), slice(g * fg, (g + 1) * fg)
        for i in range(oh):
            for j in range(ow):
                hs, ws = slice(i * stride, i * stride + kh), slice(j * stride, j * stride + kw)
                d = dout[:, fs, i, j]                                              # (N, F/G)
                dxpad[:, cs, hs, ws] += xp.tensordot(d, w[fs], axes=([1], [0]))    # (N, Cg, KH, KW)
                dw[fs] += xp.tensordot(d, xpad[:, cs, hs, ws], axes=([0], [0]))     # (F/G, Cg, KH, KW)
    dx = dxpad[:, :, pad:pad + h, pad:pad + wd]
    db = dout.sum(axis=(0, 2, 3)) if has_bias else None
    return dx, dw, db
