"""Local response normalisation across channels (AlexNet, Sec. 3.3).

    b[n, c] = a[n, c] / (k + alpha / size * sum_{c' in window(c)} a[n, c']^2) ** beta

``window(c)`` is the ``size`` channels from ``c - size//2`` to ``c + (size-1)//2``, clipped
at the ends (zero padding) -- the Caffe / PyTorch definition.

Convention trap: the AlexNet paper writes the sum *without* the 1/size, with
``n=5, alpha=1e-4, beta=0.75, k=2``.  Here alpha is divided by size, so the paper's
setting is ``size=5, alpha=5e-4`` (= 1e-4 * 5), ``beta=0.75, k=2``.

Shapes: x (N, C, H, W); out and dx the same.
"""
from minicnn import backend
from minicnn.functional._validate import check_float_array, check_int, check_shape


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
    scale = _channel_window_sum(xp, x * x, size // 2, (size - 1) // 2)
    scale *= dt(alpha / size)
    scale += dt(k)
    out = x * scale ** dt(-beta)
    return out, (x, scale, size, dt(alpha), dt(beta))


def lrn_backward(dout, cache):
    """Backward of LRN.

    d b_c / d a_j = [c == j] * scale_c^-beta - 2 * alpha * beta / size * a_c * a_j * scale_c^(-beta-1)
    for every c whose window holds j, so dx_j gathers over the channels c with j in
    window(c), i.e. c in [j - (size-1)//2, j + size//2].

    Inputs: dout (N, C, H, W); cache.  Returns dx: (N, C, H, W).
    """
    x, scale, size, alpha, beta = cache
    op = "lrn_backward"
    xp = backend.get_array_module(dout=dout, x=x, op=op)
    check_float_array(op, "dout", dout, dtype=x.dtype)
    check_shape(op, "dout", dout, x.shape)
    scale_pow = scale ** (-beta)
    t = dout * x * scale_pow / scale                   # dout_c * a_c * scale_c^(-beta-1)
    gathered = _channel_window_sum(xp, t, (size - 1) // 2, size // 2)
    return dout * scale_pow - x.dtype.type(2 * alpha * beta / size) * x * gathered
