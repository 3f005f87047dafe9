"""Local response normalisation across channels (AlexNet, Sec. 3.3).

    b[n, c] = a[n, c] / (k + alpha / size * sum_{c' in window(c)} a[n, c']^2) ** beta

``window(c)`` is the ``size`` channels from ``c - size//2`` to ``c + (size-1)//2``, clipped
at the ends (zero padding) -- the Caffe / PyTorch definition.

Convention trap: the AlexNet paper writes the sum *without* the 1/size, with
``n=5, alpha=1e-4, beta=0.75, k=2``.  Here alpha is divided by size, so the paper's
setting is ``size=5, alpha=5e-4`` (= 1e-4 * 5), ``beta=0.75, k=2``.

Shapes: x (N, C, H, W); out and dx the same.

The plain version below is NumPy/CuPy-generic (the path CuPy runs).  On the CPU the Cython
kernels in ``minicnn/_ext/lrn.pyx`` compute the same in one pass per direction: the power
is taken once per element (by square roots for beta = 0.75) and scale ** -beta is kept for
the backward pass, which then takes none.  They recompute the window sums from x in the
backward pass, so -- as for conv2d -- x must not be changed between the two passes.
"""
import numpy as np

from minicnn import backend
from minicnn.checks import check_int
from minicnn.functional._validate import check_float_array, check_shape


def _channel_window_sum(xp, v, before, after):
    """s[:, c] = sum of v[:, c - before .. c + after] over channels, zero outside [0, C)."""
    c = v.shape[1]
    vpad = xp.pad(v, ((0, 0), (before, after), (0, 0), (0, 0)))
    s = vpad[:, 0:c].copy()
    for d in range(1, before + after + 1):
        s += vpad[:, d:d + c]
    return s


def lrn_forward(x, size=5, alpha=1e-4, beta=0.75, k=2.0):
    """Cross-channel local response normalisation (Caffe / PyTorch convention, see module doc).

    Inputs: x (N, C, H, W); size (odd or even int >= 1), alpha, beta, k floats (k > 0).
    Returns (out, cache); out: (N, C, H, W).
    """
    op = "lrn_forward"
    xp = backend.get_array_module(x=x, op=op)
    check_float_array(op, "x", x, ndim=4)
    size = check_int(op, "size", size, 1)
    if not k > 0:
        raise ValueError(f"{op}: expected k > 0 (it keeps the denominator positive), received {k!r}")
    dt = x.dtype.type
    kernels = backend.cython_kernels(xp, "lrn")
    if kernels is not None:
        x = np.ascontiguousarray(x)
        n, c, h, w = x.shape
        out = np.empty(x.shape, dtype=x.dtype)
        scale_pow = np.empty(x.shape, dtype=x.dtype)
        alpha, beta, k = float(alpha), float(beta), float(k)
        kernels.forward(x.reshape(n, c, h * w), size, alpha / size, beta, k,
                        out.reshape(n, c, h * w), scale_pow.reshape(n, c, h * w))
        # scale is not kept (the backward pass recomputes it from x), scale ** -beta is.
        return out, (x, None, scale_pow, size, alpha, beta, k)
    scale = _scale(xp, x, size, alpha, k)
    out = x * scale ** dt(-beta)
    return out, (x, scale, None, size, dt(alpha), dt(beta), dt(k))


def _scale(xp, x, size, alpha, k):
    """scale = k + alpha / size * (window sum of x^2), in x's dtype (the plain path)."""
    dt = x.dtype.type
    scale = _channel_window_sum(xp, x * x, size // 2, (size - 1) // 2)
    scale *= dt(alpha / size)
    scale += dt(k)
    return scale


def lrn_backward(dout, cache):
    """Backward of LRN.

    d b_c / d a_j = [c == j] * scale_c^-beta - 2 * alpha * beta / size * a_c * a_j * scale_c^(-beta-1)
    for every c whose window holds j, so dx_j gathers over the channels c with j in
    window(c), i.e. c in [j - (size-1)//2, j + size//2].

    Inputs: dout (N, C, H, W); cache.  Returns dx: (N, C, H, W).
    """
    x, scale, scale_pow, size, alpha, beta, k = cache
    op = "lrn_backward"
    xp = backend.get_array_module(dout=dout, x=x, op=op)
    check_float_array(op, "dout", dout, dtype=x.dtype)
    check_shape(op, "dout", dout, x.shape)
    if scale is None:
        # Forward ran the Cython kernel: x is a contiguous NumPy array, scale_pow its scale ** -beta.
        kernels = backend.cython_kernels(xp, "lrn")
        if kernels is None:   # switched off after the forward pass: recompute scale
            scale = _scale(xp, x, size, alpha, k)
        else:
            n, c, h, w = x.shape
            dx = np.empty(x.shape, dtype=x.dtype)
            kernels.backward(np.ascontiguousarray(dout).reshape(n, c, h * w), x.reshape(n, c, h * w),
                             scale_pow.reshape(n, c, h * w), size, alpha / size, k,
                             2 * alpha * beta / size, dx.reshape(n, c, h * w))
            return dx
    scale_pow = scale ** (-beta)
    t = dout * x * scale_pow / scale                   # dout_c * a_c * scale_c^(-beta-1)
    gathered = _channel_window_sum(xp, t, (size - 1) // 2, size // 2)
    return dout * scale_pow - x.dtype.type(2 * alpha * beta / size) * x * gathered
