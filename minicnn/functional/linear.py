"""Fully connected (affine) layer: out = x @ w.T + b.

Shapes::

    x    (N, D) or (N, d1, ..., dk) with d1*...*dk = D (flattened, as CS231n's affine layer)
    w    (M, D)        -- (out, in), as PyTorch
    b    (M,) or None
    out  (N, M)
"""
from minicnn import backend, runtime
from minicnn.functional._validate import check_float_array, check_shape


def linear_forward(x, w, b):
    """Affine map of each row of x.

    Inputs: x (N, D...) float32/float64; w (M, D) of x's dtype; b (M,) or None.
    Returns (out, cache); out: (N, M).
    """
    op = "linear_forward"
    backend.get_array_module(x=x, w=w, b=b, op=op)
    check_float_array(op, "x", x)
    check_float_array(op, "w", w, ndim=2, dtype=x.dtype)
    if x.ndim < 2:
        raise ValueError(f"{op}: expected x of shape (N, D) (or (N, d1, ...)), received {tuple(x.shape)}")
    m, d = w.shape
    n = x.shape[0]
    x2 = x.reshape(n, -1) if x.ndim > 2 else x
    if x2.shape[1] != d:
        raise ValueError(f"{op}: expected x with {d} features per example (w is {tuple(w.shape)}), "
                         f"received x of shape {tuple(x.shape)} ({x2.shape[1]} features)")
    with runtime.blas_threads_for(n * d * m):   # small GEMMs on one BLAS thread: runtime.py says why
        out = x2 @ w.T
    if b is not None:
        check_float_array(op, "b", b, ndim=1, dtype=x.dtype)
        check_shape(op, "b", b, (m,))
        out += b
    return out, (x.shape, x2, w, b is not None)


def linear_backward(dout, cache, need_dw=True):
    """Backward of linear_forward.

    Inputs: dout (N, M); cache; need_dw: False skips dw and db (None), for a frozen layer.
    Returns (dx, dw, db): x's shape, (M, D), (M,) (None without bias).
    """
    x_shape, x2, w, has_bias = cache
    op = "linear_backward"
    backend.get_array_module(dout=dout, w=w, op=op)
    check_float_array(op, "dout", dout, dtype=w.dtype)
    check_shape(op, "dout", dout, (x2.shape[0], w.shape[0]))
    with runtime.blas_threads_for(dout.size * w.shape[1]):   # as in linear_forward
        dx = (dout @ w).reshape(x_shape)
        dw = dout.T @ x2 if need_dw else None   # sums over the batch: every example used the same w
    if not need_dw:
        return dx, None, None
    db = dout.sum(axis=0) if has_bias else None
    return dx, dw, db
