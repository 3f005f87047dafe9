"""2-D convolution (cross-correlation, as every deep-learning library computes it).

    out[n, f, i, j] = b[f] + sum_{c, p, q} w[f, c, p, q] * xpad[n, g*Cg + c, i*S + p, j*S + q]

``xpad`` is x with ``pad`` zeros on each side of H and W, S the stride, and ``g`` the group
of filter ``f``: with ``groups=G`` the C input channels and F filters are split into G
independent convolutions of Cg = C/G -> F/G channels each (AlexNet's two-GPU split,
ResNeXt's cardinality; G = C is a depthwise conv).

Shapes::

    x    (N, C, H, W)
    w    (F, C // G, KH, KW)
    b    (F,) or None
    out  (N, F, OH, OW),  OH = (H + 2*pad - KH) // stride + 1,  OW likewise

This file reads top to bottom:

1. ``conv2d_forward_naive`` / ``conv2d_backward_naive`` -- the definition as loops, one
   output position at a time: slow, but the tests' reference for every other version;
2. ``forward_batched`` / ``backward_batched`` -- im2col + GEMM, the textbook algorithm:
   the layer as one batched matrix product.  CuPy runs it;
3. ``conv2d_forward`` / ``conv2d_backward`` -- the public pair, which ask
   ``choose_algorithm`` which version runs a layer.  On the CPU, with the Cython kernels,
   that is one of three faster versions, each in its own file with the measurements that
   justify it: ``conv_im2col.py`` (the same im2col + GEMM, cut into cache-sized chunks
   shared out over the cores), ``conv_winograd.py`` (Winograd's F(2x2, 3x3) for wide 3x3
   layers; the algorithm itself, in plain NumPy, is ``winograd.py``) and ``conv_direct.py``
   (vector-FMA kernels for thin float32 layers).

The cache keeps x rather than its columns, and the backward pass recomputes them (as
PyTorch does): one copy of each activation in memory instead of KH*KW.
"""
from minicnn import backend
from minicnn.checks import check_int
from minicnn.functional import conv_direct, conv_im2col, conv_winograd
from minicnn.functional._validate import check_float_array, check_shape, output_size
from minicnn.functional.im2col import col2im, im2col

# ------------------------------------------------------------------ 1. the definition


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


# ------------------------------------------------------------------ 2. im2col + GEMM


def forward_batched(x, w, b, stride, pad, groups):
    """out (N, F, OH, OW) by im2col + GEMM, the whole batch at once.

    The windows of each image become the columns of a (Cg*KH*KW, OH*OW) matrix per group
    (``im2col``), and the layer is one batched matrix product,

        (G, F/G, Cg*KH*KW) @ (N, G, Cg*KH*KW, OH*OW) -> (N, G, F/G, OH*OW),

    already the NCHW output: grouped convolution is the same matmul with a group axis, no
    Python loop over groups.  Simple and backend-generic (CuPy runs it), but on a CPU it
    makes a column matrix KH*KW times the size of x and runs N small GEMMs, one per image:
    conv_im2col.py does the same algebra in cache-sized chunks.  Arguments as checked by
    conv2d_forward.
    """
    xp = backend.get_array_module(x)
    n = x.shape[0]
    f, cg, kh, kw = w.shape
    col = im2col(x, kh, kw, stride, pad)                     # (N, C, KH, KW, OH, OW)
    oh, ow = col.shape[4:]
    col = col.reshape(n, groups, cg * kh * kw, oh * ow)
    out = xp.matmul(w.reshape(groups, f // groups, cg * kh * kw), col).reshape(n, f, oh, ow)
    if b is not None:
        out += b.reshape(1, f, 1, 1)
    return out


def backward_batched(dout, x, w, stride, pad, groups, need_dx=True, need_dw=True):
    """(dx, dw) of forward_batched.  With X the columns of x and Y = W X the output (per group):

        dW = dY X^T   (summed over images)        dX = W^T dY, then col2im(dX) -> dx

    ``need_dx=False`` / ``need_dw=False`` skip dx / dw (None).
    """
    xp = backend.get_array_module(x)
    n, c = x.shape[:2]
    f, cg, kh, kw = w.shape
    oh, ow = dout.shape[2:]
    dout_mat = dout.reshape(n, groups, f // groups, oh * ow)
    w_mat = w.reshape(groups, f // groups, cg * kh * kw)
    dw = None
    if need_dw:
        col = im2col(x, kh, kw, stride, pad).reshape(n, groups, cg * kh * kw, oh * ow)
        # dW = sum over images of dout_n @ col_n^T; the transpose is a view BLAS reads directly.
        dw = xp.matmul(dout_mat, col.swapaxes(2, 3)).sum(axis=0).reshape(w.shape)
    if not need_dx:
        return None, dw
    # dcol = W^T @ dout per image and group; col2im adds each column back onto its window.
    dcol = xp.matmul(w_mat.swapaxes(1, 2), dout_mat).reshape(n, c, kh, kw, oh, ow)
    return col2im(dcol, x.shape, stride, pad), dw


# ------------------------------------------------------------------ 3. the public pair


def choose_algorithm(xp, x, w, stride=1, pad=0, groups=1):
    """Which version conv2d_forward and conv2d_backward run for this layer, by name
    (``xp``: the array module of x, from backend.get_array_module).

    In this order (all four compute the same convolution; the tests check each against
    the naive loops):

    * CuPy arrays, or the Cython kernels switched off or not built -> "batched"
      (forward_batched: the textbook im2col + GEMM, what a GPU runs well);
    * a thin float32 layer (stride 1, no groups, at most conv_direct.MAX_CHANNELS = 16
      channels) on a CPU with AVX2 or AVX-512 -> "direct" (conv_direct.py: there im2col's
      GEMMs are too thin for BLAS);
    * a 3x3 stride-1 layer with at least conv_winograd.MIN_CHANNELS = 16 input and output
      channels, no groups -> "winograd" (conv_winograd.py: 2.25x fewer multiplies);
    * anything else -> "im2col" (conv_im2col.py: im2col + GEMM in cache-sized chunks).
    """
    if backend.cython_kernels(xp, "im2col") is None:
        return "batched"
    if conv_direct.applies(x, w, stride, pad, groups):
        return "direct"
    if conv_winograd.applies(w.shape, stride, groups):
        return "winograd"
    return "im2col"


def conv2d_forward(x, w, b, stride=1, pad=0, groups=1):
    """Convolution, by the algorithm choose_algorithm picks for the layer.

    Inputs:
    - x: (N, C, H, W) float32 or float64
    - w: (F, C // groups, KH, KW), same dtype;  b: (F,) or None
    - stride, pad, groups: ints (stride >= 1, pad >= 0, groups divides C and F)
    Returns (out, cache); out: (N, F, OH, OW).

    The cache holds x, not its columns: the backward pass recomputes them (as PyTorch
    does), which keeps a network's memory at one copy of each activation instead of
    KH*KW copies.  So x must not be modified in place before conv2d_backward.
    """
    op = "conv2d_forward"
    xp = backend.get_array_module(x=x, w=w, b=b, op=op)
    stride, pad, groups, oh, ow = _conv_geometry(op, x, w, b, stride, pad, groups)
    algorithm = choose_algorithm(xp, x, w, stride, pad, groups)
    if b is not None:
        b = xp.ascontiguousarray(b)         # the kernels read it as a flat array (a view may be strided)
    if algorithm == "batched":
        out = forward_batched(x, w, b, stride, pad, groups)
    elif algorithm == "direct":
        out = conv_direct.forward(x, w, b, pad, pad)
    elif algorithm == "winograd":
        out = conv_winograd.forward(x, w, b, pad, oh, ow)
    else:
        out = conv_im2col.forward(x, w, b, stride, pad, groups, oh, ow)
    return out, (x, w, b is not None, stride, pad, groups)


def conv2d_backward(dout, cache, need_dx=True, need_dw=True):
    """Backward pass of conv2d_forward, by the same algorithm as the forward pass.

    Inputs:
    - dout: (N, F, OH, OW) upstream gradient (never modified)
    - cache: from conv2d_forward
    - need_dx: False skips the input gradient (dx is then None): a network's first conv
      reads the images, whose gradient nothing uses, and dx is about half its backward
    - need_dw: False skips the weight and bias gradients (dw and db are then None): a
      frozen layer (``Module.freeze``) passes dx on and trains nothing
    Returns (dx, dw, db): (N, C, H, W), (F, C // groups, KH, KW), (F,) (db is None without bias).
    """
    x, w, has_bias, stride, pad, groups = cache
    op = "conv2d_backward"
    xp = backend.get_array_module(dout=dout, w=w, op=op)
    n, c, h, wd = x.shape
    f, cg, kh, kw = w.shape
    oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    check_float_array(op, "dout", dout, dtype=w.dtype)
    check_shape(op, "dout", dout, (n, f, oh, ow))
    need_dx, need_dw = bool(need_dx), bool(need_dw)
    # db summed over the batch first, then over the positions: NumPy's one sum over the axes
    # (0, 2, 3) ran 2-3x slower (a 1x1 layer's dout at batch 32: 106 vs 52 us).
    db = dout.sum(axis=0).reshape(f, -1).sum(axis=1) if has_bias and need_dw else None
    if not (need_dx or need_dw):
        return None, None, None
    algorithm = choose_algorithm(xp, x, w, stride, pad, groups)
    if algorithm == "batched":
        dx, dw = backward_batched(dout, x, w, stride, pad, groups, need_dx, need_dw)
    elif algorithm == "direct":
        dx, dw = conv_direct.backward(dout, x, w, pad, need_dx, need_dw)
    elif algorithm == "winograd":
        dx, dw = conv_winograd.backward(dout, x, w, pad, need_dx, need_dw)
    else:
        dx, dw = conv_im2col.backward(dout, x, w, stride, pad, groups, need_dx, need_dw)
    return dx, dw, db


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
