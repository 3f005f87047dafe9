"""The argument checks every part of minicnn shares, written once.

Each raises ``ValueError`` naming the caller (``op``), what was expected and what was
received, so a bad argument is reported where it enters and never as a NumPy traceback
from deep inside an op.  This module imports nothing from minicnn: every layer may use it.

    stride = check_int("conv2d_forward", "stride", stride, 1)
    p = check_prob("Dropout", "p", p)
    rng = as_generator(rng)
"""
import numbers
import operator

import numpy as np


def check_int(op, name, v, minimum=None):
    """``v`` as an int, refusing bools and floats (``True`` is not a stride); >= ``minimum``
    when one is given."""
    try:
        if isinstance(v, bool):
            raise TypeError
        iv = operator.index(v)
    except TypeError:
        want = f"an int >= {minimum}" if minimum is not None else "an int"
        raise ValueError(f"{op}: expected {name} to be {want}, received {v!r}") from None
    if minimum is not None and iv < minimum:
        raise ValueError(f"{op}: expected {name} >= {minimum}, received {iv}")
    return iv


def check_number(op, name, v, *, low=None, high=None, low_open=False, high_open=False):
    """``v`` as a float (an int or a float, not a bool, not NaN) within the given bounds.

    ``low_open`` / ``high_open`` exclude the bound itself: ``check_number(op, "lr", lr,
    low=0, low_open=True)`` asks for lr > 0.
    """
    ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and not np.isnan(v)
    if ok and low is not None:
        ok = v > low if low_open else v >= low
    if ok and high is not None:
        ok = v < high if high_open else v <= high
    if not ok:
        bounds = []
        if low is not None:
            bounds.append(f"{name} {'>' if low_open else '>='} {low:g}")
        if high is not None:
            bounds.append(f"{name} {'<' if high_open else '<='} {high:g}")
        want = f"a number with {' and '.join(bounds)}" if bounds else "a number"
        raise ValueError(f"{op}: expected {name} to be {want}, received {v!r}")
    return float(v)


def check_positive(op, name, v):
    """``v`` > 0, as a float."""
    return check_number(op, name, v, low=0, low_open=True)


def check_prob(op, name, p, *, allow_zero=True, allow_one=True):
    """``p`` a probability in [0, 1] (either end excluded on request), as a float."""
    return check_number(op, name, p, low=0, high=1, low_open=not allow_zero, high_open=not allow_one)


def as_generator(rng=None, op="as_generator"):
    """A ``numpy.random.Generator`` from ``rng``: a Generator (returned as is), an int seed
    >= 0, or None (fresh OS entropy).  Global ``np.random`` state is never used."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        if rng < 0:
            raise ValueError(f"{op}: expected a seed >= 0, received {rng}")
        return np.random.default_rng(int(rng))
    raise ValueError(f"{op}: expected rng as a numpy.random.Generator, an int seed >= 0 or None, "
                     f"received {type(rng).__name__} {rng!r}")


def check_xy(where, x, y):
    """Refuse anything but images x (N, C, H, W), N >= 1, with integer labels y (N,): what
    training, evaluation and the batch loader all take."""
    if getattr(x, "ndim", None) != 4:
        raise ValueError(f"{where}: expected images x of shape (N, C, H, W), received "
                         f"{getattr(x, 'shape', type(x).__name__)}")
    if getattr(y, "ndim", None) != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"{where}: expected labels y of shape ({x.shape[0]},), received "
                         f"{getattr(y, 'shape', type(y).__name__)}")
    if y.dtype.kind not in "iu":
        raise ValueError(f"{where}: expected integer labels, received dtype {y.dtype}")
    if x.shape[0] == 0:
        raise ValueError(f"{where}: expected at least one image, received none")


def check_pair(where, data):
    """``data`` as an (x, y) pair checked by ``check_xy``."""
    try:
        x, y = data
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected an (x, y) pair of arrays, received "
                         f"{type(data).__name__}") from None
    check_xy(where, x, y)
    return x, y
