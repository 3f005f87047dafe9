"""Early, clear errors for bad input: every op checks what it receives before computing.

Each check raises ``ValueError`` naming the op, what was expected and what was
received, so a user never meets a NumPy broadcast error from deep inside an op.
The checks of plain values (ints, numbers, probabilities) are ``minicnn.checks``; these
are the array checks the ops share.
"""
from minicnn.checks import check_int

# check_int is re-exported for nn/ and models/, which still import it from here.
__all__ = ["check_float_array", "check_shape", "check_int", "pair", "output_size"]

FLOAT_DTYPES = ("float32", "float64")
_FLOAT_CHARS = ("f", "d")


def check_float_array(op, name, a, ndim=None, dtype=None):
    """``a`` must be a float32/float64 array (of rank ``ndim`` and dtype ``dtype`` if given)."""
    if not hasattr(a, "shape") or not hasattr(a, "dtype"):
        raise ValueError(f"{op}: expected {name} to be a float32 or float64 array, "
                         f"received {type(a).__name__}")
    # The dtype's one-letter code ('f' float32, 'd' float64): ``dtype.name`` is built in
    # Python on every access (the check took 2.9 us with it, 0.44 us now); an op checks
    # several arrays, and a LeNet step makes ~40 such checks.
    if getattr(a.dtype, "char", None) not in _FLOAT_CHARS:
        raise ValueError(f"{op}: expected {name} to be float32 or float64, received dtype "
                         f"{a.dtype.name} (convert with .astype(np.float32))")
    if dtype is not None and a.dtype != dtype:
        raise ValueError(f"{op}: expected {name} with dtype {dtype} (like the input), received "
                         f"{a.dtype.name}; mixing float32 and float64 would silently promote")
    if ndim is not None:
        ndims = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if a.ndim not in ndims:
            want = " or ".join(str(d) for d in ndims)
            raise ValueError(f"{op}: expected {name} of rank {want}, received shape {tuple(a.shape)}")


def check_shape(op, name, a, shape):
    """``a.shape`` must equal ``shape``."""
    if tuple(a.shape) != tuple(shape):
        raise ValueError(f"{op}: expected {name} of shape {tuple(shape)}, received {tuple(a.shape)}")


def pair(op, name, v, minimum):
    """An int or a pair of ints -> (int, int), each >= ``minimum``."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{op}: expected {name} as an int or a pair (h, w), received {v!r}")
        return check_int(op, name, v[0], minimum), check_int(op, name, v[1], minimum)
    v = check_int(op, name, v, minimum)
    return v, v


def output_size(op, h, w, kh, kw, stride, pad):
    """The output size of a window op, ``(H - KH + 2P) // S + 1`` per axis (floor, as PyTorch).

    Raises if the kernel does not fit in the padded input.
    """
    if kh > h + 2 * pad or kw > w + 2 * pad:
        raise ValueError(f"{op}: expected a kernel no larger than the padded input "
                         f"({h + 2 * pad}x{w + 2 * pad} = {h}x{w} + 2*pad {pad}), "
                         f"received kernel {kh}x{kw}")
    return (h - kh + 2 * pad) // stride + 1, (w - kw + 2 * pad) // stride + 1
