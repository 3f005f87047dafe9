"""Weight initialisation: He (Kaiming) and Glorot (Xavier) draws for the layers' weights.

Why it matters: with weights drawn at a fixed scale, the variance of the activations
is multiplied at every layer by ``fan_in * Var(w)`` (times 1/2 after a ReLU, which
zeroes half of its input).  Choosing ``Var(w)`` to make that factor 1 keeps signals
and gradients at the same scale through a deep network.

* Glorot & Bengio (2010), "Understanding the difficulty of training deep feedforward
  neural networks" (AISTATS): for linear/tanh units, balance the forward and backward
  passes with ``Var(w) = 2 / (fan_in + fan_out)``  ("Xavier").
* He, Zhang, Ren & Sun (2015), "Delving Deep into Rectifiers: Surpassing Human-Level
  Performance on ImageNet Classification" (ICCV): after ReLUs, ``Var(w) = 2 / fan_in``
  ("He" or "Kaiming"), which trains 30-layer plain nets that Xavier cannot.

For a weight of shape ``(out, in)`` (Linear) or ``(F, C // groups, KH, KW)`` (Conv2d):
``fan_in = in`` or ``C // groups * KH * KW`` (the inputs each output sums over) and
``fan_out = out`` or ``F * KH * KW`` (the outputs each input feeds; with groups this
is PyTorch's convention too).

Every helper draws directly in the requested dtype with the given Generator (a float32
draw is about 3x faster than drawing float64 and casting, which matters for VGG's 138M
weights), so a seed gives the same weights on either backend but *different* weights
in float32 and float64; convert a built model with ``model.to(np.float64)`` to keep its
weights.  The numbers come from NumPy and are then moved to the active backend
(``minicnn.backend.get_backend()``).
"""
import math

import numpy as np

from minicnn import backend
# The seed -> Generator rule is minicnn.checks'; still importable as minicnn.nn.init.as_generator.
from minicnn.checks import as_generator, check_int

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _dtype(op, dtype):
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in _FLOAT_DTYPES:
        raise ValueError(f"{op}: expected dtype float32 or float64, received {dtype!r}")
    return dt


def _shape(op, shape):
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        raise ValueError(f"{op}: expected a shape (tuple of ints), received {shape!r}") from None
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"{op}: expected a non-empty shape of positive sizes, received {shape}")
    return shape


def _finish(a, dtype):
    """Move the draw (already of ``dtype``) to the active backend."""
    return backend.to_backend(a.astype(dtype, copy=False), backend.get_backend())


def fans(shape):
    """(fan_in, fan_out) of a weight of shape (out, in) or (F, C // groups, KH, KW)."""
    shape = _shape("fans", shape)
    if len(shape) < 2:
        raise ValueError(f"fans: expected a weight of rank >= 2, received shape {shape}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _fan(op, value, default):
    return default if value is None else check_int(op, "fan", value, 1)


def normal(shape, std, rng=None, dtype=np.float32):
    """Samples of N(0, std^2), shape ``shape``."""
    shape, dtype = _shape("normal", shape), _dtype("normal", dtype)
    a = as_generator(rng).standard_normal(shape, dtype=dtype)
    a *= dtype.type(std)
    return _finish(a, dtype)


def uniform(shape, bound, rng=None, dtype=np.float32):
    """Samples of U(-bound, bound), shape ``shape``."""
    shape, dtype = _shape("uniform", shape), _dtype("uniform", dtype)
    a = as_generator(rng).random(shape, dtype=dtype)   # [0, 1) -> [-bound, bound)
    a *= dtype.type(2 * bound)
    a -= dtype.type(bound)
    return _finish(a, dtype)


def he_normal(shape, fan_in=None, rng=None, dtype=np.float32):
    """He et al. (2015) normal init: ``w ~ N(0, 2 / fan_in)``, i.e. std = sqrt(2 / fan_in).

    The variance that keeps activations at a constant scale through ReLU layers
    (PyTorch's ``kaiming_normal_(mode='fan_in', nonlinearity='relu')``).  ``fan_in``
    defaults to ``fans(shape)[0]``.
    """
    fan_in = _fan("he_normal", fan_in, fans(shape)[0] if fan_in is None else None)
    return normal(shape, math.sqrt(2.0 / fan_in), rng, dtype)


def he_uniform(shape, fan_in=None, rng=None, dtype=np.float32):
    """He et al. (2015) uniform init: ``w ~ U(-b, b)`` with ``b = sqrt(6 / fan_in)``.

    A uniform on (-b, b) has variance b^2 / 3, so this is Var(w) = 2 / fan_in as in he_normal.
    """
    fan_in = _fan("he_uniform", fan_in, fans(shape)[0] if fan_in is None else None)
    return uniform(shape, math.sqrt(6.0 / fan_in), rng, dtype)


def xavier_uniform(shape, fan_in=None, fan_out=None, rng=None, dtype=np.float32):
    """Glorot & Bengio (2010) uniform init: ``w ~ U(-b, b)``, ``b = sqrt(6 / (fan_in + fan_out))``.

    Var(w) = 2 / (fan_in + fan_out), the compromise between keeping the forward
    (fan_in) and the backward (fan_out) variance constant for linear/tanh units.
    """
    d_in, d_out = fans(shape) if fan_in is None or fan_out is None else (None, None)
    fan_in, fan_out = _fan("xavier_uniform", fan_in, d_in), _fan("xavier_uniform", fan_out, d_out)
    return uniform(shape, math.sqrt(6.0 / (fan_in + fan_out)), rng, dtype)


def xavier_normal(shape, fan_in=None, fan_out=None, rng=None, dtype=np.float32):
    """Glorot & Bengio (2010) normal init: ``w ~ N(0, 2 / (fan_in + fan_out))``."""
    d_in, d_out = fans(shape) if fan_in is None or fan_out is None else (None, None)
    fan_in, fan_out = _fan("xavier_normal", fan_in, d_in), _fan("xavier_normal", fan_out, d_out)
    return normal(shape, math.sqrt(2.0 / (fan_in + fan_out)), rng, dtype)


def zeros(shape, dtype=np.float32):
    """Zeros (biases; BatchNorm's beta and running mean), on the active backend."""
    shape, dtype = _shape("zeros", shape), _dtype("zeros", dtype)
    return backend.array_module().zeros(shape, dtype=dtype)


def ones(shape, dtype=np.float32):
    """Ones (BatchNorm's gamma and running variance), on the active backend."""
    shape, dtype = _shape("ones", shape), _dtype("ones", dtype)
    return backend.array_module().ones(shape, dtype=dtype)
