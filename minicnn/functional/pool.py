"""Pooling: max, average and global average.

Shapes::

    x    (N, C, H, W)
    out  (N, C, OH, OW),  OH = (H + 2*pad - KH) // stride + 1  (floor, as PyTorch), OW likewise

``size`` is an int or a pair (KH, KW); ``stride`` and ``pad`` are ints.  AlexNet's
overlapping pooling is ``size=3, stride=2``.  As in PyTorch, ``pad`` may be at most
half the window, so that every window holds at least one real pixel.

Max pooling records, for every output, the kernel tap ``p * KW + q`` of the first
maximum in its window (row-major scan order).  The backward pass routes each
output's gradient to exactly that one input (argmax-first): on ties only the
first maximum receives gradient, which is what PyTorch and cuDNN do, and what the
numeric gradient of a tie-free input agrees with.

The plain version below loops over the KH*KW kernel taps, each a strided slice of
the whole batch (NumPy/CuPy-generic, the path CuPy runs); on the CPU the Cython
kernels in ``minicnn/_ext/pool.pyx`` compute the same out and argmax directly.
"""
from minicnn import backend
from minicnn.checks import check_int
from minicnn.functional._validate import check_float_array, check_shape, output_size, pair


def _pool_geometry(op, x, size, stride, pad):
    """Validate pooling arguments; return (kh, kw, stride, pad, oh, ow)."""
    check_float_array(op, "x", x, ndim=4)
    kh, kw = pair(op, "size", size, 1)
    stride = check_int(op, "stride", stride, 1)
    pad = check_int(op, "pad", pad, 0)
    if pad > kh // 2 or pad > kw // 2:
        raise ValueError(f"{op}: expected pad <= half the window ({kh}x{kw} allows pad <= "
                         f"{min(kh, kw) // 2}), received pad={pad}")
    oh, ow = output_size(op, x.shape[2], x.shape[3], kh, kw, stride, pad)
    return kh, kw, stride, pad, oh, ow


def _taps(kh, kw, stride, oh, ow):
    """Yield (tap index, row slice, column slice) of every kernel tap over the padded input."""
    for p in range(kh):
        rows = slice(p, p + stride * oh, stride)
        for q in range(kw):
            yield p * kw + q, rows, slice(q, q + stride * ow, stride)


def _pad(xp, x, pad, value):
    if pad == 0:
        return x
    return xp.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=value)


def max_pool2d_forward(x, size, stride, pad=0):
    """Max pooling.

    Inputs:
    - x: (N, C, H, W) float32 or float64
    - size: int or (KH, KW); stride: int >= 1; pad: int, 0 <= pad <= size // 2 (padding is -inf)
    Returns (out, cache); out: (N, C, OH, OW).  The cache holds the argmax tap of every output.
    """
    op = "max_pool2d_forward"
    xp = backend.get_array_module(x=x, op=op)
    kh, kw, stride, pad, oh, ow = _pool_geometry(op, x, size, stride, pad)
    n, c = x.shape[:2]
    out = xp.empty((n, c, oh, ow), dtype=x.dtype)
    kernels = backend.cython_kernels(xp, "pool")
    # The kernel writes every entry; the plain path's first tap relies on zeros.
    argmax = (xp.empty if kernels is not None else xp.zeros)((n, c, oh, ow), dtype=xp.int32)
    if kernels is not None:
        kernels.max_pool_forward(xp.ascontiguousarray(x), kh, kw, stride, pad, out, argmax)
    else:
        xpad = _pad(xp, x, pad, -xp.inf)
        for t, rows, cols in _taps(kh, kw, stride, oh, ow):
            window_tap = xpad[:, :, rows, cols]
            if t == 0:
                out[...] = window_tap
                continue
            # Strictly greater: an equal later tap never wins.  A NaN wins once, as in
            # numpy.max and the Cython kernel, so a diverging net shows NaN, not a number.
            better = (window_tap > out) | (xp.isnan(window_tap) & ~xp.isnan(out))
            xp.copyto(out, window_tap, where=better)
            xp.copyto(argmax, t, where=better)
    return out, (x.shape, argmax, kh, kw, stride, pad)


def max_pool2d_backward(dout, cache):
    """Backward of max pooling: each output's gradient goes to its window's first maximum.

    Inputs: dout (N, C, OH, OW); cache from max_pool2d_forward.
    Returns dx: (N, C, H, W) (overlapping windows add).
    """
    x_shape, argmax, kh, kw, stride, pad = cache
    op = "max_pool2d_backward"
    xp = backend.get_array_module(dout=dout, argmax=argmax, op=op)
    check_float_array(op, "dout", dout)
    check_shape(op, "dout", dout, argmax.shape)
    n, c, h, w = x_shape
    oh, ow = argmax.shape[2:]
    kernels = backend.cython_kernels(xp, "pool")
    if kernels is not None:
        dx = xp.empty(x_shape, dtype=dout.dtype)
        kernels.max_pool_backward(xp.ascontiguousarray(dout), argmax, kw, stride, pad, dx)
        return dx
    dxpad = xp.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=dout.dtype)
    zero = xp.zeros((), dtype=dout.dtype)
    for t, rows, cols in _taps(kh, kw, stride, oh, ow):
        dxpad[:, :, rows, cols] += xp.where(argmax == t, dout, zero)
    return dxpad[:, :, pad:pad + h, pad:pad + w]


def avg_pool2d_forward(x, size, stride, pad=0):
    """Average pooling.  Zero padding counts in the average (PyTorch's count_include_pad=True).

    Inputs: x (N, C, H, W); size int or (KH, KW); stride; pad (<= size // 2).
    Returns (out, cache); out: (N, C, OH, OW).
    """
    op = "avg_pool2d_forward"
    xp = backend.get_array_module(x=x, op=op)
    kh, kw, stride, pad, oh, ow = _pool_geometry(op, x, size, stride, pad)
    xpad = _pad(xp, x, pad, 0)
    out = xp.zeros((x.shape[0], x.shape[1], oh, ow), dtype=x.dtype)
    for _, rows, cols in _taps(kh, kw, stride, oh, ow):
        out += xpad[:, :, rows, cols]
    out *= x.dtype.type(1.0 / (kh * kw))
    return out, (x.shape, kh, kw, stride, pad)


def avg_pool2d_backward(dout, cache):
    """Backward of average pooling: each output spreads dout / (KH*KW) over its window.

    Inputs: dout (N, C, OH, OW); cache. Returns dx: (N, C, H, W).
    """
    x_shape, kh, kw, stride, pad = cache
    op = "avg_pool2d_backward"
    xp = backend.get_array_module(dout=dout, op=op)
    n, c, h, w = x_shape
    check_float_array(op, "dout", dout, ndim=4)
    oh, ow = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1
    check_shape(op, "dout", dout, (n, c, oh, ow))
    share = dout * dout.dtype.type(1.0 / (kh * kw))
    dxpad = xp.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=dout.dtype)
    for _, rows, cols in _taps(kh, kw, stride, oh, ow):
        dxpad[:, :, rows, cols] += share
    return dxpad[:, :, pad:pad + h, pad:pad + w]


def global_avg_pool_forward(x):
    """Global average pooling (NiN, GoogLeNet, ResNet): the mean of each channel's whole map.

    Inputs: x (N, C, H, W).  Returns (out, cache); out: (N, C).
    """
    check_float_array("global_avg_pool_forward", "x", x, ndim=4)
    return x.mean(axis=(2, 3)), x.shape


def global_avg_pool_backward(dout, cache):
    """Backward of global average pooling: dout / (H*W) to every position.

    Inputs: dout (N, C); cache (the input shape).  Returns dx: (N, C, H, W).
    """
    n, c, h, w = cache
    op = "global_avg_pool_backward"
    xp = backend.get_array_module(dout=dout, op=op)
    check_float_array(op, "dout", dout)
    check_shape(op, "dout", dout, (n, c))
    share = dout * dout.dtype.type(1.0 / (h * w))
    return xp.broadcast_to(share[:, :, None, None], (n, c, h, w)).copy()
