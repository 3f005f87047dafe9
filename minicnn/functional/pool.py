"""Pooling: max, average, adaptive average and global average.

Shapes::

    x    (N, C, H, W)
    out  (N, C, OH, OW),  OH = (H + 2*pad - KH) // stride + 1  (floor, as PyTorch), OW likewise

``size`` is an int or a pair (KH, KW); ``stride`` and ``pad`` are ints.  AlexNet's
overlapping pooling is ``size=3, stride=2``.  As in PyTorch, ``pad`` may be at most
half the window, so that every window holds at least one real pixel.

``ceil_mode=True`` rounds the division up instead, PyTorch's (and Caffe's) rule::

    OH = ceil((H + 2*pad - KH) / stride) + 1,  minus 1 if (OH - 1) * stride >= H + pad

so that a last, partial window covers the rows that floor would drop -- unless it would
start inside the bottom padding.  A window hanging over the bottom or right edge takes
the max (or average, see avg_pool2d_forward) over what it does cover.  SqueezeNet and
GoogLeNet pool this way (Caffe had no other mode): 109 -> 54 where floor gives 53.

Max pooling records, for every output, the kernel tap ``p * KW + q`` of the first
maximum in its window (row-major scan order).  The backward pass routes each
output's gradient to exactly that one input (argmax-first): on ties only the
first maximum receives gradient, which is what PyTorch and cuDNN do, and what the
numeric gradient of a tie-free input agrees with.

The plain version below loops over the KH*KW kernel taps, each a strided slice of
the whole batch (NumPy/CuPy-generic, the path CuPy runs); on the CPU the Cython
kernels in ``minicnn/_ext/pool.pyx`` compute the same out and argmax directly.
"""
from minicnn import backend, runtime
from minicnn.checks import check_int
from minicnn.functional._validate import check_float_array, check_shape, output_size, pair


def pooled_size(n, k, stride, pad, ceil_mode=False):
    """Number of windows of size ``k`` along an axis of ``n`` pixels (see the module docstring).

    Below 1 when not even one window fits; the callers turn that into an error.
    """
    span = n + 2 * pad - k
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1          # ceil(span / stride) + 1
    if (out - 1) * stride >= n + pad:     # the last window would start in the padding
        out -= 1
    return out


def _pool_geometry(op, x, size, stride, pad, ceil_mode=False):
    """Validate pooling arguments; return (kh, kw, stride, pad, oh, ow)."""
    check_float_array(op, "x", x, ndim=4)
    kh, kw = pair(op, "size", size, 1)
    stride = check_int(op, "stride", stride, 1)
    pad = check_int(op, "pad", pad, 0)
    if pad > kh // 2 or pad > kw // 2:
        raise ValueError(f"{op}: expected pad <= half the window ({kh}x{kw} allows pad <= "
                         f"{min(kh, kw) // 2}), received pad={pad}")
    if not isinstance(ceil_mode, bool):
        raise ValueError(f"{op}: expected ceil_mode True or False, received {ceil_mode!r}")
    if not ceil_mode:
        oh, ow = output_size(op, x.shape[2], x.shape[3], kh, kw, stride, pad)
        return kh, kw, stride, pad, oh, ow
    h, w = x.shape[2:]
    oh, ow = pooled_size(h, kh, stride, pad, True), pooled_size(w, kw, stride, pad, True)
    if oh < 1 or ow < 1:
        raise ValueError(f"{op}: expected a {kh}x{kw} window to fit the {h}x{w} input padded "
                         f"by {pad} (ceil_mode), received an output size of {oh}x{ow}")
    return kh, kw, stride, pad, oh, ow


def _taps(kh, kw, stride, oh, ow):
    """Yield (tap index, row slice, column slice) of every kernel tap over the padded input."""
    for p in range(kh):
        rows = slice(p, p + stride * oh, stride)
        for q in range(kw):
            yield p * kw + q, rows, slice(q, q + stride * ow, stride)


def _padded_shape(x_shape, kh, kw, stride, pad, oh, ow):
    """(N, C, H', W') of the input padded by ``pad`` all round, and on the bottom and right
    by as much more as ceil_mode's last windows hang over the edge (0 in floor mode)."""
    n, c, h, w = x_shape
    return (n, c, max(h + 2 * pad, (oh - 1) * stride + kh), max(w + 2 * pad, (ow - 1) * stride + kw))


def _pad(xp, x, padded_shape, pad, value):
    h, w = x.shape[2:]
    bottom, right = padded_shape[2] - h - pad, padded_shape[3] - w - pad
    if pad == bottom == right == 0:
        return x
    return xp.pad(x, ((0, 0), (0, 0), (pad, bottom), (pad, right)), constant_values=value)


def max_pool2d_forward(x, size, stride, pad=0, ceil_mode=False):
    """Max pooling.

    Inputs:
    - x: (N, C, H, W) float32 or float64
    - size: int or (KH, KW); stride: int >= 1; pad: int, 0 <= pad <= size // 2 (padding is -inf)
    - ceil_mode: round the output size up (see the module docstring); default floor
    Returns (out, cache); out: (N, C, OH, OW).  The cache holds the argmax tap of every output.
    """
    op = "max_pool2d_forward"
    xp = backend.get_array_module(x=x, op=op)
    kh, kw, stride, pad, oh, ow = _pool_geometry(op, x, size, stride, pad, ceil_mode)
    n, c = x.shape[:2]
    kernels = backend.cython_kernels(xp, "pool")
    if kernels is not None:
        # The kernel writes every entry of out and argmax (their memory recycled: runtime.py).
        out = runtime.empty_output((n, c, oh, ow), x.dtype)
        argmax = runtime.empty_output((n, c, oh, ow), xp.int32)
        kernels.max_pool_forward(xp.ascontiguousarray(x), kh, kw, stride, pad, out, argmax, ceil_mode)
    else:
        out = xp.empty((n, c, oh, ow), dtype=x.dtype)
        argmax = xp.zeros((n, c, oh, ow), dtype=xp.int32)     # the first tap relies on zeros
        # -inf on the bottom and right too: a window over the edge sees only its real pixels.
        xpad = _pad(xp, x, _padded_shape(x.shape, kh, kw, stride, pad, oh, ow), pad, -xp.inf)
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
        dx = runtime.empty_output(x_shape, dout.dtype)
        kernels.max_pool_backward(xp.ascontiguousarray(dout), argmax, kw, stride, pad, dx)
        return dx
    # (oh, ow) tell a ceil_mode pass from a floor one: the padded grid is the forward's.
    dxpad = xp.zeros(_padded_shape(x_shape, kh, kw, stride, pad, oh, ow), dtype=dout.dtype)
    zero = xp.zeros((), dtype=dout.dtype)
    for t, rows, cols in _taps(kh, kw, stride, oh, ow):
        dxpad[:, :, rows, cols] += xp.where(argmax == t, dout, zero)
    return dxpad[:, :, pad:pad + h, pad:pad + w]


def _avg_scale(xp, x_shape, kh, kw, stride, pad, oh, ow, ceil_mode, dtype):
    """What each window's sum is multiplied by: 1 / (KH*KW), or with ceil_mode an (OH, OW)
    array of 1 / (its rows * its columns) within the zero-padded input -- padding
    included, the overhang past it not (PyTorch's divisor)."""
    if not ceil_mode:
        return dtype.type(1.0 / (kh * kw))

    def covered(n, k, count):
        starts = xp.arange(count) * stride - pad
        return xp.minimum(starts + k, n + pad) - starts
    area = covered(x_shape[2], kh, oh)[:, None] * covered(x_shape[3], kw, ow)[None, :]
    return (1.0 / area).astype(dtype)


def avg_pool2d_forward(x, size, stride, pad=0, ceil_mode=False):
    """Average pooling.  Zero padding counts in the average (PyTorch's count_include_pad=True).

    Inputs: x (N, C, H, W); size int or (KH, KW); stride; pad (<= size // 2); ceil_mode.
    Returns (out, cache); out: (N, C, OH, OW).

    Each window's sum is divided by KH*KW, or with ceil_mode by the part of the window
    that lies within the zero-padded input (PyTorch's divisor: the overhang past the
    padding does not count, the padding does).
    """
    op = "avg_pool2d_forward"
    xp = backend.get_array_module(x=x, op=op)
    kh, kw, stride, pad, oh, ow = _pool_geometry(op, x, size, stride, pad, ceil_mode)
    xpad = _pad(xp, x, _padded_shape(x.shape, kh, kw, stride, pad, oh, ow), pad, 0)
    out = xp.zeros((x.shape[0], x.shape[1], oh, ow), dtype=x.dtype)
    for _, rows, cols in _taps(kh, kw, stride, oh, ow):
        out += xpad[:, :, rows, cols]
    out *= _avg_scale(xp, x.shape, kh, kw, stride, pad, oh, ow, ceil_mode, x.dtype)
    return out, (x.shape, kh, kw, stride, pad, ceil_mode)


def avg_pool2d_backward(dout, cache):
    """Backward of average pooling: each output spreads dout / (its divisor) over its window.

    Inputs: dout (N, C, OH, OW); cache. Returns dx: (N, C, H, W).
    """
    x_shape, kh, kw, stride, pad, ceil_mode = cache
    op = "avg_pool2d_backward"
    xp = backend.get_array_module(dout=dout, op=op)
    n, c, h, w = x_shape
    check_float_array(op, "dout", dout, ndim=4)
    oh, ow = pooled_size(h, kh, stride, pad, ceil_mode), pooled_size(w, kw, stride, pad, ceil_mode)
    check_shape(op, "dout", dout, (n, c, oh, ow))
    share = dout * _avg_scale(xp, x_shape, kh, kw, stride, pad, oh, ow, ceil_mode, dout.dtype)
    dxpad = xp.zeros(_padded_shape(x_shape, kh, kw, stride, pad, oh, ow), dtype=dout.dtype)
    for _, rows, cols in _taps(kh, kw, stride, oh, ow):
        dxpad[:, :, rows, cols] += share
    return dxpad[:, :, pad:pad + h, pad:pad + w]


def _adaptive_windows(n, count):
    """PyTorch's adaptive windows along an axis: window i covers [floor(i*n/count),
    ceil((i+1)*n/count)), so the windows tile the axis and neighbours overlap by at most
    one pixel when count does not divide n (and repeat pixels when count > n)."""
    return [(i * n // count, -(-(i + 1) * n // count)) for i in range(count)]


def adaptive_avg_pool2d_forward(x, output_size):
    """Adaptive average pooling (torchvision's AlexNet, VGG, GoogLeNet auxiliary heads):
    whatever H and W, the output is ``output_size``, each value the mean of its window.

    Inputs: x (N, C, H, W); output_size int or (OH, OW).
    Returns (out, cache); out: (N, C, OH, OW).  Windows: see ``_adaptive_windows``.
    """
    op = "adaptive_avg_pool2d_forward"
    xp = backend.get_array_module(x=x, op=op)
    check_float_array(op, "x", x, ndim=4)
    oh, ow = pair(op, "output_size", output_size, 1)
    n, c, h, w = x.shape
    if h < 1 or w < 1:
        raise ValueError(f"{op}: expected an input of at least 1x1, received {h}x{w}")
    out = xp.empty((n, c, oh, ow), dtype=x.dtype)
    rows, cols = _adaptive_windows(h, oh), _adaptive_windows(w, ow)
    for i, (r0, r1) in enumerate(rows):
        for j, (c0, c1) in enumerate(cols):
            out[:, :, i, j] = x[:, :, r0:r1, c0:c1].mean(axis=(2, 3))
    return out, (x.shape, rows, cols)


def adaptive_avg_pool2d_backward(dout, cache):
    """Backward of adaptive average pooling: each output spreads dout / (window area) over
    its window; overlapping windows add.  Inputs: dout (N, C, OH, OW); cache.
    Returns dx: (N, C, H, W)."""
    x_shape, rows, cols = cache
    op = "adaptive_avg_pool2d_backward"
    xp = backend.get_array_module(dout=dout, op=op)
    check_float_array(op, "dout", dout, ndim=4)
    check_shape(op, "dout", dout, x_shape[:2] + (len(rows), len(cols)))
    dx = xp.zeros(x_shape, dtype=dout.dtype)
    for i, (r0, r1) in enumerate(rows):
        for j, (c0, c1) in enumerate(cols):
            area = dout.dtype.type((r1 - r0) * (c1 - c0))
            dx[:, :, r0:r1, c0:c1] += (dout[:, :, i, j] / area)[:, :, None, None]
    return dx


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
